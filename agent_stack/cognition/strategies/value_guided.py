"""Value-guided decoding: build the plan one step at a time, steered by a value function.

At each step the LLM proposes `branching` continuations of the plan so far (one call, n = k). Each
proposes a next step; the candidate partial plans are reranked by V (values.py, by default the verifier
plus the completion's log-probability) of the plan the continuation completes, and the best is kept. The
model ends the plan when the best-ranked candidate's continuation is a verified complete plan; otherwise
its first step is committed and decoding continues, up to `depth` steps. (Step-level reranking as in
verifier-guided decoding; the value function is the tree-of-thoughts state evaluator.)
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_stack.cognition.strategies.base import Session, Steps, Strategy, can_extend, is_solution, register
from agent_stack.cognition.strategies.values import ValueFunction, check_value_spec
from agent_stack.cognition.verifier import Verdict


@dataclass(frozen=True)
class _Candidate:
    steps: Steps
    rollout: Steps
    verdict: Verdict
    value: float


@register("value_guided", "vgd")
@dataclass
class ValueGuided(Strategy):
    branching: int = 3
    """k: candidate continuations per step."""
    depth: int = 8
    """Most steps decoded."""
    value: str = "verifier+logprob"
    votes: int = 3
    """Sampled answers per self-evaluation, when `value` includes it."""
    temperature: float = 0.8
    top_p: float = 0.9

    def _check_options(self) -> None:
        super()._check_options()
        check_value_spec(self.value, "ValueGuided")

    def solve(self, session: Session) -> tuple[Steps | None, Verdict | None]:
        values = ValueFunction(self.value, self.votes)
        plan: Steps = ()
        for _ in range(self.depth):
            candidates = self._candidates(session, plan, values)
            if not candidates:
                break
            best = max(candidates, key=lambda c: (c.value, -len(c.rollout)))
            if is_solution(best.verdict):
                return best.rollout, best.verdict
            plan = best.steps
            session.note("committed", steps=session.domain.render(plan), value=round(best.value, 4))
        return session.best if session.best is not None else (None, None)

    def _candidates(self, session: Session, plan: Steps, values: ValueFunction) -> list[_Candidate]:
        samples = session.sample(session.domain.partial_feedback(plan), prefix=plan, n=self.branching,
                                 temperature=self.temperature, top_p=self.top_p, purpose="step")
        candidates = []
        for sample in samples:
            if sample.steps is None or not sample.continuation:
                continue
            steps = plan + sample.continuation[:1]
            if not can_extend(session.verify_prefix(steps), len(steps)):
                continue
            candidates.append(_Candidate(steps, sample.steps, sample.verdict,
                                         values(session, sample.steps, sample.verdict, sample)))
        return candidates
