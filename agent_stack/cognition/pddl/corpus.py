"""Blocksworld training examples for the embedded planner LM, and a small grounded STRIPS solver (BFS).

`blocksworld_examples(n, seed)` returns (user prompt, completion) pairs. The prompt is exactly the user
message `PDDLDomain.messages(problem, feedback)[-1]["content"]` renders (tests check this against the
unified-planning path); the completion is

    Thought: unmet goals (on b c) (on a b).
    Plan:
    (unstack a b)
    (put-down a)
    ...

with an optimal plan from breadth-first search. About half the examples are partial: the feedback
`planned so far: (unstack a b) (put-down a)` fixes a prefix (of the optimal plan, or a short random walk of
applicable actions, as tree-of-thought explores) and the completion holds only the remaining actions.

For speed the corpus builds blocksworld tasks natively (no PDDL parsing, ~1 ms a problem); `strips_task`
grounds any STRIPS `PDDLProblem` from its unified-planning model for the same solver.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass

from agent_stack.cognition.pddl import blocksworld as bw
from agent_stack.cognition.pddl.domain import (
    FEEDBACK_PLANNED,
    GroundAction,
    PDDLProblem,
    _conjuncts,
    _expr,
    user_message,
)

THOUGHT_PREFIX = "Thought:"
PLAN_PREFIX = "Plan:"

_BW_PREDICATES = ("on", "ontable", "clear", "handempty", "holding")
"""Declaration order in `blocksworld.DOMAIN_PDDL`: the order facts are listed in prompts."""


@dataclass(frozen=True)
class StripsTask:
    """A grounded STRIPS problem with facts as PDDL text (`"(on a b)"`)."""

    domain_name: str
    objects_text: str
    init: frozenset[str]
    goal: tuple[str, ...]
    actions: tuple[tuple[GroundAction, frozenset[str], frozenset[str], frozenset[str]], ...]
    """(step, preconditions, add, delete), in a fixed order (so BFS breaks ties the same way every run)."""
    fact_order: dict

    def sorted_facts(self, facts) -> list[str]:
        return sorted(facts, key=lambda f: (self.fact_order.get(f, (len(self.fact_order),)), f))

    def prompt(self, feedback: str = "") -> str:
        return user_message(self.domain_name, self.objects_text, self.sorted_facts(self.init), self.goal, feedback)

    def applicable(self, state: frozenset[str]):
        return [(step, add, delete) for step, pre, add, delete in self.actions if pre <= state]

    def run(self, steps, state: frozenset[str] | None = None) -> frozenset[str] | None:
        """The state after `steps`, or None when one cannot run."""
        table = {step: (pre, add, delete) for step, pre, add, delete in self.actions}
        state = self.init if state is None else state
        for step in steps:
            pre, add, delete = table[GroundAction(step[0], tuple(step[1]))]
            if not pre <= state:
                return None
            state = (state - delete) | add
        return state

    def unmet(self, state: frozenset[str]) -> list[str]:
        return [g for g in self.goal if g not in state]


def bfs_plan(task: StripsTask, start: frozenset[str] | None = None, max_states: int = 500_000):
    """A shortest plan from `start` (default: the initial state) to the goal, or None."""
    start = task.init if start is None else start
    goal = frozenset(task.goal)
    if goal <= start:
        return ()
    parents: dict[frozenset[str], tuple] = {start: None}
    frontier = deque([start])
    while frontier:
        state = frontier.popleft()
        for step, add, delete in task.applicable(state):
            following = (state - delete) | add
            if following in parents:
                continue
            parents[following] = (state, step)
            if goal <= following:
                plan = []
                while parents[following] is not None:
                    following, step = parents[following]
                    plan.append(step)
                return tuple(reversed(plan))
            if len(parents) > max_states:
                return None
            frontier.append(following)
    return None


def blocksworld_task(init: bw.Towers, goal: bw.Towers) -> StripsTask:
    """The grounded task of `blocksworld.problem_pddl(name, init, goal)`, built without parsing PDDL."""
    blocks = sorted(b for tower in init for b in tower)
    rank = {b: i for i, b in enumerate(blocks)}
    order = {}
    for fact in _bw_atoms(blocks):
        name, *args = fact[1:-1].split()
        order[fact] = (_BW_PREDICATES.index(name), [rank[a] for a in args])
    actions = []
    for x in blocks:
        actions.append((GroundAction("pick-up", (x,)), frozenset({f"(clear {x})", f"(ontable {x})", "(handempty)"}),
                        frozenset({f"(holding {x})"}),
                        frozenset({f"(ontable {x})", f"(clear {x})", "(handempty)"})))
    for x in blocks:
        actions.append((GroundAction("put-down", (x,)), frozenset({f"(holding {x})"}),
                        frozenset({f"(clear {x})", "(handempty)", f"(ontable {x})"}), frozenset({f"(holding {x})"})))
    for x, y in itertools.product(blocks, blocks):
        actions.append((GroundAction("stack", (x, y)), frozenset({f"(holding {x})", f"(clear {y})"}),
                        frozenset({f"(clear {x})", "(handempty)", f"(on {x} {y})"}),
                        frozenset({f"(holding {x})", f"(clear {y})"})))
    for x, y in itertools.product(blocks, blocks):
        actions.append((GroundAction("unstack", (x, y)), frozenset({f"(on {x} {y})", f"(clear {x})", "(handempty)"}),
                        frozenset({f"(holding {x})", f"(clear {y})"}),
                        frozenset({f"(clear {x})", "(handempty)", f"(on {x} {y})"})))
    return StripsTask(bw.DOMAIN_NAME, " ".join(blocks), frozenset(bw.tower_facts(init)), tuple(bw.goal_facts(goal)),
                      tuple(actions), order)


def _bw_atoms(blocks: list[str]) -> list[str]:
    return ([f"(on {x} {y})" for x in blocks for y in blocks] + [f"(ontable {x})" for x in blocks]
            + [f"(clear {x})" for x in blocks] + ["(handempty)"] + [f"(holding {x})" for x in blocks])


def strips_task(problem: PDDLProblem) -> StripsTask:
    """Ground any STRIPS PDDLProblem (positive conjunctive preconditions and goal, plain add/delete effects)."""
    up = problem.up_problem
    actions = []
    for action in up.actions:
        pre = [c for p in action.preconditions for c in _conjuncts(p)]
        if not all(c.is_fluent_exp() for c in pre):
            raise ValueError(f"{action.name}: only positive conjunctive preconditions are supported")
        if any(e.is_conditional() or e.is_forall() or not e.value.is_bool_constant() for e in action.effects):
            raise ValueError(f"{action.name}: only plain add/delete effects are supported")
        domains = [[o.name for o in up.objects(p.type)] for p in action.parameters]
        for combo in itertools.product(*domains):
            binding = {"?" + p.name: o for p, o in zip(action.parameters, combo)}

            def ground(node, binding=binding):
                return " ".join(binding.get(t, t) for t in _expr(node).replace(")", " )").split()).replace(" )", ")")

            adds = frozenset(ground(e.fluent) for e in action.effects if e.value.bool_constant_value())
            deletes = frozenset(ground(e.fluent) for e in action.effects if not e.value.bool_constant_value())
            actions.append((GroundAction(action.name, combo), frozenset(ground(c) for c in pre), adds, deletes))
    goal = tuple(_expr(c) for g in up.goals for c in _conjuncts(g))
    order = {fact: (i,) for i, fact in enumerate(problem.sorted_facts([t for _, t in problem._atoms]))}
    return StripsTask(problem.domain_name, problem.objects_text(), problem.facts(), goal, tuple(actions), order)


def completion(task: StripsTask, state: frozenset[str], steps) -> str:
    """`Thought: unmet goals ...` then `Plan:` and one action per line; nothing after the last action."""
    thought = f"{THOUGHT_PREFIX} unmet goals {' '.join(task.unmet(state))}."
    return "\n".join([thought, PLAN_PREFIX, *(GroundAction(n, tuple(a)).pddl() for n, a in steps)])


def example(task: StripsTask, rng: random.Random, partial: bool) -> tuple[str, str] | None:
    """One (prompt, completion) pair for `task`: the whole plan, or the rest after a fixed prefix."""
    plan = bfs_plan(task)
    if not plan:
        return None
    if not partial:
        return task.prompt(), completion(task, task.init, plan)
    if rng.random() < 0.5 and len(plan) > 1:
        prefix = plan[:rng.randint(1, len(plan) - 1)]
    else:  # a short random walk, as tree of thought explores off the optimal path
        prefix, state = [], task.init
        for _ in range(rng.randint(1, 3)):
            step, add, delete = rng.choice(task.applicable(state))
            prefix.append(step)
            state = (state - delete) | add
        prefix = tuple(prefix)
    state = task.run(prefix)
    rest = bfs_plan(task, state)
    if not rest:
        return None
    feedback = f"{FEEDBACK_PLANNED} {' '.join(s.pddl() for s in prefix)}"
    return task.prompt(feedback), completion(task, state, rest)


def random_task(n_blocks: int, rng: random.Random) -> StripsTask:
    """The same distribution as `blocksworld.random_problem`."""
    blocks = bw.block_names(n_blocks)
    init = bw.random_towers(blocks, rng)
    init_facts = set(bw.tower_facts(init))
    while True:
        goal = bw.random_towers(blocks, rng)
        facts = bw.goal_facts(goal)
        if facts and not set(facts) <= init_facts:
            return blocksworld_task(init, goal)


def blocksworld_examples(n: int, seed: int, sizes=(3, 4, 5)) -> list[tuple[str, str]]:
    """`n` (prompt, completion) pairs, alternating whole plans and partial-plan continuations; the same for
    the same arguments."""
    rng = random.Random(f"blocksworld-corpus-{seed}")
    out: list[tuple[str, str]] = []
    while len(out) < n:
        task = random_task(rng.choice(list(sizes)), rng)
        pair = example(task, rng, partial=len(out) % 2 == 1)
        if pair is not None:
            out.append(pair)
    return out
