"""Graph of thoughts (Besta et al. 2024): the tree of thoughts with thoughts merged into a graph.

Three transformations on top of tree_of_thought.py:
- merge: partial plans that leave the same verifier state (`Verdict.final_state`) are one thought; only
  the shortest prefix reaching a state stays in the search, later arrivals are merged into it;
- reuse: a state's expansion (its continuations) and values are cached, so a thought reached again costs
  no LLM call (the plan's future depends on the state, not on the path to it);
- aggregate: every verified stretch of a rollout is remembered as a suffix from the states it passes;
  the best prefix reaching a state joined to a suffix from another branch is a new candidate plan,
  kept as a solution when the verifier accepts it.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from agent_stack.cognition.strategies.base import Sample, Session, Steps, can_extend, is_solution, register
from agent_stack.cognition.strategies.tree_of_thought import ROOT, Node, TreeOfThought, state_key


@register("graph_of_thought", "got")
@dataclass
class GraphOfThought(TreeOfThought):
    def _start(self, session: Session) -> None:
        self._expansions: dict[Hashable, list[tuple[Steps, Sample]]] = {}
        self._reached: dict[Hashable, Steps] = {ROOT: ()}
        """The shortest partial plan in the search per state."""
        self._suffixes: dict[Hashable, dict[Steps, Sample]] = {}
        """Verified plan endings per state they start from, with the sample that proposed them."""
        self._joined: set[Steps] = set()
        """Plans already proposed or joined."""

    def _continuations(self, session: Session, node: Node) -> list[tuple[Steps, Sample]]:
        if node.state in self._expansions:
            session.note("reused", steps=session.domain.render(node.steps))
            return self._expansions[node.state]
        self._expansions[node.state] = super()._continuations(session, node)
        return self._expansions[node.state]

    def _admit(self, session: Session, children: list[Node]) -> list[Node]:
        admitted = []
        for child in children:
            known = self._reached.get(child.state)
            if known is not None and len(known) <= len(child.steps):
                session.note("merged", steps=session.domain.render(child.steps),
                             into=session.domain.render(known))
                continue
            self._reached[child.state] = child.steps
            admitted.append(child)
        return admitted

    def _solutions(self, session: Session, children: list[Node]) -> list[Node]:
        for child in children:
            self._remember_suffixes(session, child)
        return super()._solutions(session, children) + self._aggregate(session)

    def _remember_suffixes(self, session: Session, node: Node) -> None:
        self._joined.add(node.rollout)  # a plan some branch proposed whole is no aggregation
        for cut in range(1, len(node.rollout)):
            prefix = session.verify_prefix(node.rollout[:cut])
            if not can_extend(prefix, cut):
                return
            self._suffixes.setdefault(state_key(prefix, node.rollout[:cut]), {}).setdefault(
                node.rollout[cut:], node.sample)

    def _aggregate(self, session: Session) -> list[Node]:
        """Best prefix of one branch + verified suffix of another, where they meet in the same state."""
        joined = []
        for state, prefix in self._reached.items():
            for suffix, sample in self._suffixes.get(state, {}).items():
                plan = prefix + suffix
                if plan in self._joined:
                    continue
                self._joined.add(plan)
                verdict = session.verify(plan)
                if is_solution(verdict):
                    session.note("aggregated", steps=session.domain.render(plan))
                    joined.append(Node(plan, plan, verdict, self._values(session, plan, verdict, sample),
                                       state, sample))
        return joined
