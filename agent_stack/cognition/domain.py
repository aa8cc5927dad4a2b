"""What a reasoning strategy needs to know about a planning domain, and the tabletop domain.

Strategies (`strategies/`) are domain-agnostic: they ask the domain for prompts, parse completions into
steps, and verify (partial) plans. `TabletopDomain` plans skills for the robot from a symbolic scene;
`pddl.PDDLDomain` plans actions of any STRIPS PDDL domain with unified-planning as the verifier.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from agent_stack.cognition.llm.base import Messages
from agent_stack.cognition.plan import PLAN_SCHEMA, Plan, Subgoal, parse_plan
from agent_stack.cognition.prompts import planner_messages
from agent_stack.cognition.scene import SymbolicScene
from agent_stack.cognition.verifier import Verdict, verify_plan


@runtime_checkable
class Domain(Protocol):
    name: str
    response_schema: dict | None
    """JSON schema of an answer, for backends with structured output; None for free text."""

    def messages(self, problem, feedback: str = "") -> Messages:
        """The prompt for `problem`; `feedback` says what happened so far or which steps are fixed."""

    def parse(self, text: str) -> tuple[Hashable, ...]:
        """The steps in a completion; raises ValueError (plan.PlanParseError) on malformed output."""

    def verify(self, problem, steps: Sequence) -> Verdict:
        """Whether `steps` run from the problem's initial state (and reach its goal, where known)."""

    def render(self, steps: Sequence) -> str:
        """Steps as compact text for feedback and traces, e.g. `pick_up(red); stack(red, blue)`."""

    def partial_feedback(self, steps: Sequence) -> str:
        """Feedback that asks for the rest of a plan whose first `steps` are fixed (tree of thought)."""


@dataclass(frozen=True)
class TabletopProblem:
    instruction: str
    scene: SymbolicScene
    feedback: str = ""
    """What happened so far (Inner Monologue): done and failed subgoals, with reasons."""


class TabletopDomain:
    """Skills of the tabletop robot (skills.py) on a symbolic scene; optional safety rules veto plans."""

    name = "tabletop"
    response_schema = PLAN_SCHEMA

    def __init__(self, safety=None) -> None:
        self.safety = safety
        """An object with `check_plan(steps, scene) -> list[str]` (safety.SafetyRules), or None."""

    def messages(self, problem: TabletopProblem, feedback: str = "") -> Messages:
        joined = "; ".join(part for part in (problem.feedback, feedback) if part)
        return planner_messages(problem.instruction, problem.scene.describe(), joined)

    def parse(self, text: str) -> tuple[Subgoal, ...]:
        return parse_plan(text).subgoals

    def verify(self, problem: TabletopProblem, steps: Sequence[Subgoal]) -> Verdict:
        verdict = verify_plan(steps, problem.scene)
        if verdict.valid and self.safety is not None:
            reasons = self.safety.check_plan(steps, problem.scene)
            if reasons:
                return Verdict(False, tuple(reasons), None, verdict.executable_steps, None, verdict.final_state)
        return verdict

    def render(self, steps: Sequence[Subgoal]) -> str:
        return Plan(tuple(steps)).calls()

    def partial_feedback(self, steps: Sequence[Subgoal]) -> str:
        return f"planned so far: {self.render(steps)}" if steps else ""
