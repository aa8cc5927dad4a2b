"""Value functions for search strategies: how promising is a partial plan, judged by its rollout?

Yao et al. 2023 (Tree of Thoughts) call this the state evaluator V(s). Components, combined by mean:
- "verifier": 1 for a verified complete plan, else 0.9 x the fraction of the rollout's steps that run;
- "logprob": exp(mean token log-probability) of the completion that proposed the node, from the
  backend's token logprobs or `llm.score` (left out where neither is available);
- "self_eval": the LLM's own P("yes") that the rollout carries out the instruction, from the first
  token's probability when logprobs exist, else the fraction of sampled "yes" votes.
Values are cached per rollout, so a node reached twice is evaluated once.
"""

from __future__ import annotations

import math

from agent_stack.cognition.llm.base import ScoringUnsupported
from agent_stack.cognition.strategies.base import Sample, Session, Steps, is_solution
from agent_stack.cognition.verifier import Verdict

COMPONENTS = ("verifier", "logprob", "self_eval")
SELF_EVAL_QUESTION = "Does this plan carry out the instruction in this scene? Answer yes or no."


def check_value_spec(spec: str, owner: str) -> None:
    """One-line error unless `spec` is components joined by '+', e.g. "verifier+logprob"."""
    parts = spec.split("+") if isinstance(spec, str) else []
    if not parts or any(p not in COMPONENTS for p in parts):
        raise ValueError(f"{owner}.value must be components of {COMPONENTS} joined by '+', got {spec!r}")


def verifier_value(verdict: Verdict, length: int) -> float:
    if is_solution(verdict):
        return 1.0
    return 0.9 * verdict.executable_steps / max(length, 1)


class ValueFunction:
    """V(rollout) in [0, 1] as the mean of the components named in `spec`."""

    def __init__(self, spec: str = "verifier", votes: int = 3) -> None:
        check_value_spec(spec, "ValueFunction")
        self.components = tuple(spec.split("+"))
        self.votes = votes
        self.cache: dict[Steps, float] = {}

    def __call__(self, session: Session, rollout: Steps, verdict: Verdict, sample: Sample) -> float:
        if rollout not in self.cache:
            values = [v for v in (self._component(name, session, rollout, verdict, sample)
                                  for name in self.components) if v is not None]
            self.cache[rollout] = sum(values) / len(values) if values else 0.0
        return self.cache[rollout]

    def _component(self, name: str, session: Session, rollout: Steps, verdict: Verdict,
                   sample: Sample) -> float | None:
        if name == "verifier":
            return verifier_value(verdict, len(rollout))
        if name == "logprob":
            return logprob_value(session, sample)
        return self_eval_value(session, rollout, self.votes)


def logprob_value(session: Session, sample: Sample) -> float | None:
    mean = sample.mean_logprob
    if mean is None:
        try:
            mean = session.score(sample.prompt, sample.text) / max(sample.tokens, 1)
        except ScoringUnsupported:
            return None
    return math.exp(min(mean, 0.0))


def self_eval_value(session: Session, rollout: Steps, votes: int) -> float:
    """P(yes) that `rollout` is right, asked of the LLM after the plan prompt (Yao 2023 'value' prompt)."""
    prompt = session.domain.messages(session.problem) + [
        {"role": "assistant", "content": session.domain.render(rollout)},
        {"role": "user", "content": SELF_EVAL_QUESTION}]
    answers = session.ask(prompt, n=votes, temperature=0.7, purpose="self_eval")
    return sum(_p_yes(a.text, a.token_logprobs) for a in answers) / max(len(answers), 1)


def _p_yes(text: str, token_logprobs: tuple[float, ...] | None) -> float:
    says_yes = text.strip().lower().startswith("yes")
    if not token_logprobs:
        return float(says_yes)
    p_first = math.exp(token_logprobs[0])
    return p_first if says_yes else 1.0 - p_first
