"""Tree of thoughts (Yao et al. 2023): deliberate search over partial plans.

A node ("thought") is a partial plan. Expanding it asks the LLM for `branching` continuations of the fixed
prefix (`domain.partial_feedback`); each parsed continuation proposes a child (the prefix + its first
step) and a rollout (the prefix + the whole continuation). Children whose prefix the verifier rejects are
pruned; the rest are scored by the value function V (values.py) on their rollout. A child whose rollout is
a verified complete plan is a solution.

Search: "bfs" keeps the best `beam` children per depth (Yao's BFS, stopping at the first depth with a
solution); "dfs" descends into the best child first and backtracks out of branches with no viable child
(Yao's DFS, where the verifier plays the pruning threshold), down to `depth`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from agent_stack.cognition.strategies.base import (
    Sample,
    Session,
    Steps,
    Strategy,
    can_extend,
    is_solution,
    register,
)
from agent_stack.cognition.strategies.values import ValueFunction, check_value_spec
from agent_stack.cognition.verifier import Verdict

SEARCHES = ("bfs", "dfs")
ROOT = "<root>"


@dataclass(frozen=True)
class Node:
    steps: Steps
    """The partial plan this thought fixes."""
    rollout: Steps
    """The complete plan the proposing completion had in mind."""
    verdict: Verdict | None
    """The rollout's verdict (None at the root)."""
    value: float
    state: Hashable
    """Key of the state the partial plan leaves (graph of thoughts merges on it)."""
    sample: Sample | None = None


def rank(node: Node) -> tuple[float, int]:
    """Higher value first, then the shorter rollout."""
    return node.value, -len(node.rollout)


def state_key(verdict: Verdict, steps: Steps) -> Hashable:
    """The verifier's final state if hashable, else its repr; the steps where the domain reports none."""
    state = verdict.final_state
    if state is None:
        return steps
    try:
        hash(state)
    except TypeError:
        return repr(state)
    return state


@register("tree_of_thought", "tot")
@dataclass
class TreeOfThought(Strategy):
    search: str = "bfs"
    """"bfs" (beam search) or "dfs" (depth-first with backtracking)."""
    beam: int = 2
    """b: nodes kept per depth (bfs) or children tried per node (dfs)."""
    branching: int = 3
    """k: continuations sampled per expansion (one LLM call with n=k)."""
    depth: int = 6
    """Deepest partial plan expanded."""
    value: str = "verifier"
    """Value function: components of values.COMPONENTS joined by '+'."""
    votes: int = 3
    """Sampled answers per self-evaluation."""
    temperature: float = 0.8
    top_p: float = 0.9

    def _check_options(self) -> None:
        super()._check_options()
        if self.search not in SEARCHES:
            raise ValueError(f"{type(self).__name__}.search must be one of {SEARCHES}, got {self.search!r}")
        check_value_spec(self.value, type(self).__name__)

    def solve(self, session: Session) -> tuple[Steps | None, Verdict | None]:
        self._values = ValueFunction(self.value, self.votes)
        self._start(session)
        root = Node((), (), None, 0.0, ROOT)
        found = self._bfs(session, root) if self.search == "bfs" else self._dfs(session, root, 0)
        if found is None:
            return session.best if session.best is not None else (None, None)
        return found.rollout, found.verdict

    def _start(self, session: Session) -> None:
        """Per-run state of subclasses (graph of thoughts' caches)."""

    # --- search ------------------------------------------------------------------------------------------

    def _bfs(self, session: Session, root: Node) -> Node | None:
        frontier = [root]
        for _ in range(self.depth):
            children = self._admit(session, [c for node in frontier for c in self._expand(session, node)])
            solutions = self._solutions(session, children)
            if solutions:
                return max(solutions, key=rank)
            frontier = sorted(children, key=rank, reverse=True)[:self.beam]
            if not frontier:
                return None
        return None

    def _dfs(self, session: Session, node: Node, depth: int) -> Node | None:
        if depth >= self.depth:
            return None
        children = self._admit(session, self._expand(session, node))
        solutions = self._solutions(session, children)
        if solutions:
            return max(solutions, key=rank)
        for child in sorted(children, key=rank, reverse=True)[:self.beam]:
            found = self._dfs(session, child, depth + 1)
            if found is not None:
                return found
        session.note("backtrack", steps=session.domain.render(node.steps))
        return None

    # --- thoughts ----------------------------------------------------------------------------------------

    def _expand(self, session: Session, node: Node) -> list[Node]:
        """Children of `node`, one per distinct first step of its continuations, rejected prefixes pruned."""
        children: dict[Steps, Node] = {}
        for continuation, sample in self._continuations(session, node):
            steps = node.steps + continuation[:1]
            if not continuation or steps in children:
                continue
            prefix = session.verify_prefix(steps)
            if not can_extend(prefix, len(steps)):
                session.note("rejected", steps=session.domain.render(steps), reason=prefix.explain())
                continue
            rollout = node.steps + continuation
            verdict = session.verify(rollout)
            value = self._values(session, rollout, verdict, sample)
            children[steps] = Node(steps, rollout, verdict, value, state_key(prefix, steps), sample)
        return list(children.values())

    def _continuations(self, session: Session, node: Node) -> list[tuple[Steps, Sample]]:
        """(new steps, proposing sample) for `node`: one LLM call with n = branching."""
        feedback = session.domain.partial_feedback(node.steps)
        samples = session.sample(feedback, prefix=node.steps, n=self.branching, temperature=self.temperature,
                                 top_p=self.top_p, purpose="expand")
        return [(s.continuation, s) for s in samples if s.steps is not None]

    def _admit(self, session: Session, children: list[Node]) -> list[Node]:
        """Children that join the search (every one, in a tree)."""
        return children

    def _solutions(self, session: Session, children: list[Node]) -> list[Node]:
        return [c for c in children if is_solution(c.verdict)]
