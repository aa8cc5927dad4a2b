"""Symbolic plan verification: simulate the skills' preconditions and effects from the current scene.

A plan is executable only if every step's preconditions hold in the scene the steps before it leave;
the verdict names the first failing step and why ("there is no yellow block", "the hand holds the red
block"). Strategies use it to filter, weight votes and score partial plans; the planner never publishes a
plan it rejects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from agent_stack.cognition.plan import Subgoal
from agent_stack.cognition.scene import SymbolicScene
from agent_stack.cognition.skills import SKILLS


@dataclass(frozen=True)
class Verdict:
    valid: bool
    reasons: tuple[str, ...] = ()
    failed_step: int | None = None
    """Index of the first step that cannot run, or None."""
    executable_steps: int = 0
    """How many steps from the start can run (a partial plan's progress, used as a value)."""
    goal_reached: bool | None = None
    """Whether the final state satisfies the problem's goal, where the domain can tell (PDDL); else None."""
    final_state: object = field(default=None, compare=False)

    def explain(self) -> str:
        if self.valid:
            return "valid"
        where = "" if self.failed_step is None else f"step {self.failed_step + 1}: "
        return where + "; ".join(self.reasons)


def verify_plan(steps: Sequence[Subgoal], scene: SymbolicScene) -> Verdict:
    """Simulate `steps` on `scene` with the skill library's preconditions and effects."""
    if not steps:
        return Verdict(False, ("the plan is empty",), None, 0, None, scene)
    state = scene
    for index, step in enumerate(steps):
        skill = SKILLS[step.skill]
        reasons = skill.preconditions(state, step.arguments)
        if reasons:
            return Verdict(False, tuple(f"{step.call()}: {r}" for r in reasons), index, index, None, state)
        state = skill.apply(state, step.arguments)
    return Verdict(True, (), None, len(steps), None, state)
