"""Self-consistency (Wang et al. 2023): sample diverse reasoning paths, marginalise them out by voting.

K samples at temperature ~0.8 with top-p 0.9, each with its own seed. The "answer" of a path is its parsed
step sequence, so structurally identical plans pool their votes; unparseable samples are counted in the
trace and info but get no vote. `vote="majority"` is Wang's plain majority; `vote="verifier"` weights
each vote by the verifier (1 for a verified plan, `invalid_weight` otherwise), so an invalid majority
cannot win over a valid minority. Ties go to the larger group, then the higher summed log-probability
where the backend reports it, then the earliest sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent_stack.cognition.strategies.base import (
    BudgetExhausted,
    Sample,
    Session,
    Steps,
    Strategy,
    is_solution,
    register,
)
from agent_stack.cognition.verifier import Verdict

VOTES = ("majority", "verifier")


@dataclass
class _Ballot:
    steps: Steps
    verdict: Verdict
    first: int
    count: int = 0
    weight: float = 0.0
    logprob: float | None = None

    def key(self) -> tuple[float, int, float, int]:
        return self.weight, self.count, -math.inf if self.logprob is None else self.logprob, -self.first


@register("self_consistency", "sc")
@dataclass
class SelfConsistency(Strategy):
    samples: int = 5
    """K, the sampled reasoning paths."""
    temperature: float = 0.8
    top_p: float = 0.9
    vote: str = "verifier"
    """"majority" (Wang 2023) or "verifier" (votes weighted by the verifier)."""
    invalid_weight: float = 0.0
    """The vote of a plan the verifier rejects, with vote="verifier"."""

    def _check_options(self) -> None:
        super()._check_options()
        if self.vote not in VOTES:
            raise ValueError(f"SelfConsistency.vote must be one of {VOTES}, got {self.vote!r}")
        if not 0.0 <= self.invalid_weight < 1.0:
            raise ValueError(f"SelfConsistency.invalid_weight must be in [0, 1), got {self.invalid_weight!r}")

    def solve(self, session: Session) -> tuple[Steps | None, Verdict | None]:
        drawn: list[Sample] = []
        try:
            for index in range(self.samples):
                drawn += session.sample(temperature=self.temperature, top_p=self.top_p,
                                        seed=session.seed + index)
        except BudgetExhausted:
            pass  # vote over the paths sampled so far
        return self._aggregate(session, drawn)

    def _aggregate(self, session: Session, drawn: list[Sample]) -> tuple[Steps | None, Verdict | None]:
        ballots: dict[Steps, _Ballot] = {}
        for index, sample in enumerate(drawn):
            if sample.steps is None:
                continue
            ballot = ballots.setdefault(sample.steps, _Ballot(sample.steps, sample.verdict, index))
            ballot.count += 1
            counts = self.vote == "majority" or is_solution(sample.verdict)
            ballot.weight += 1.0 if counts else self.invalid_weight
            if sample.logprob is not None:
                ballot.logprob = (ballot.logprob or 0.0) + sample.logprob
        failures = sum(s.steps is None for s in drawn)
        session.info.update(samples=len(drawn), parse_failures=failures, distinct_plans=len(ballots))
        if not ballots:
            session.info["consensus"] = 0.0
            return None, None
        winner = max(ballots.values(), key=_Ballot.key)
        session.info["consensus"] = round(winner.count / len(drawn), 4)
        session.info["votes"] = [{"steps": session.domain.render(b.steps), "count": b.count,
                                  "weight": b.weight, "valid": b.verdict.valid} for b in ballots.values()]
        return winner.steps, winner.verdict
