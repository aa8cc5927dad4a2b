"""Chain of thought (Wei et al. 2022): one reasoned answer, greedy by default.

The prompt asks for a short thought before the plan. A completion that does not parse, or a plan the
verifier rejects, is resampled up to `retries` times with the parse error or the rejection as feedback
(Inner Monologue-style). The answer is the last verified plan; it is never reported valid unverified.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from agent_stack.cognition.strategies.base import Sample, Session, Steps, Strategy, is_solution, register
from agent_stack.cognition.verifier import Verdict


@register("chain_of_thought", "cot")
@dataclass
class ChainOfThought(Strategy):
    temperature: float = 0.0
    """0 is greedy decoding (Wei 2022 decode greedily)."""
    top_p: float = 1.0
    retries: int = field(default=2, metadata={"min": 0})
    """Resamples after malformed output or a rejected plan (0 for a single sample)."""

    def solve(self, session: Session) -> tuple[Steps | None, Verdict | None]:
        answer: Sample | None = None
        feedback = ""
        for _ in range(self.retries + 1):
            sample = session.sample(feedback, temperature=self.temperature, top_p=self.top_p)[0]
            if sample.steps is not None:
                answer = sample
                if is_solution(sample.verdict):
                    break
            feedback = _retry_feedback(session, sample)
        return (None, None) if answer is None else (answer.steps, answer.verdict)


def _retry_feedback(session: Session, sample: Sample) -> str:
    if sample.steps is None:
        return f"your previous answer could not be parsed ({sample.error}); answer with the plan format"
    plan = session.domain.render(sample.steps)
    return f"your previous plan {plan} was rejected: {sample.verdict.explain()}"
