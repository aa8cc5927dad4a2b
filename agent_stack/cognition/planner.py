"""The planner facade: instruction + symbolic scene -> a verified, safe plan (or the reasons there is none).

`Planner(PlannerConfig())` picks an LLM backend (`llm.factory.make_llm`), a reasoning strategy
(`strategies.make_strategy`) and the tabletop domain with the safety rules. `plan` refuses unsafe
instructions before any LLM call, runs the strategy under its budget, and verifies the answer once more:
a `PlanResult` is valid only for a plan the verifier and the safety rules accept.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from agent_stack.cognition.domain import Domain, TabletopDomain, TabletopProblem
from agent_stack.cognition.llm.base import LLM
from agent_stack.cognition.plan import Plan
from agent_stack.cognition.safety import SafetyRules
from agent_stack.cognition.scene import SymbolicScene
from agent_stack.cognition.strategies import STRATEGIES, Budget, Strategy, make_strategy, option_names
from agent_stack.configs import JSONConfig

STRATEGY_OPTIONS = ("samples", "temperature", "top_p", "beam", "branching", "depth", "retries", "search",
                    "value", "vote")
"""PlannerConfig fields passed on to the strategy when set and when the strategy takes them."""


@dataclass
class PlannerConfig(JSONConfig):
    backend: str = "embedded"
    """LLM backend spec: "embedded", "hf:DIR" or "openai:URL#model" (llm.factory.make_llm)."""
    strategy: str = "self_consistency"
    """Reasoning strategy name or alias (strategies.STRATEGIES): cot, sc, tot, got, vgd."""
    samples: int | None = None
    """Self-consistency: sampled plans (None: the strategy's default)."""
    temperature: float | None = None
    """Sampling temperature (None: the strategy's default, 0 for chain of thought)."""
    top_p: float | None = None
    beam: int | None = None
    """Tree / graph of thoughts: nodes kept per depth."""
    branching: int | None = None
    """Tree / graph of thoughts, value-guided decoding: continuations per expansion."""
    depth: int | None = None
    """Tree / graph of thoughts, value-guided decoding: deepest partial plan."""
    retries: int | None = None
    """Chain of thought: resamples after malformed or rejected output."""
    search: str | None = None
    """Tree / graph of thoughts: "bfs" or "dfs"."""
    value: str | None = None
    """Tree / graph of thoughts, value-guided decoding: value function, e.g. "verifier+logprob"."""
    vote: str | None = None
    """Self-consistency: "majority" or "verifier"."""
    max_calls: int | None = 32
    """Budget: LLM calls per plan (None: unlimited)."""
    max_tokens: int | None = 16384
    """Budget: generated tokens per plan."""
    max_seconds: float | None = 120.0
    """Budget: wall-clock seconds per plan."""
    seed: int = 0
    """Seed of the first LLM call; the same seed and a deterministic backend give the same plan."""
    safety: SafetyRules = field(default_factory=SafetyRules)

    def __post_init__(self) -> None:
        if isinstance(self.safety, dict):
            self.safety = SafetyRules.from_dict(self.safety)
        if not isinstance(self.safety, SafetyRules):
            raise ValueError(f"PlannerConfig.safety must be SafetyRules or a dict, got {self.safety!r}")
        if not isinstance(self.backend, str) or not self.backend.strip():
            raise ValueError(f"PlannerConfig.backend must be a spec such as 'embedded', got {self.backend!r}")
        if self.strategy not in STRATEGIES:
            raise ValueError(f"PlannerConfig.strategy must be in {sorted(STRATEGIES)}, got {self.strategy!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"PlannerConfig.seed must be an integer, got {self.seed!r}")
        for name in ("samples", "beam", "branching", "depth", "retries"):
            value, least = getattr(self, name), 0 if name == "retries" else 1
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < least):
                raise ValueError(f"PlannerConfig.{name} must be None or an integer >= {least}, got {value!r}")
        try:
            Budget(self.max_calls, self.max_tokens, self.max_seconds)
        except ValueError as error:
            raise ValueError(f"PlannerConfig.{str(error).removeprefix('Budget.')}") from None
        try:
            self.make_strategy()
        except ValueError as error:
            raise ValueError(f"PlannerConfig: {error}") from None

    def strategy_options(self) -> dict:
        """The options that are set and that the chosen strategy takes."""
        takes = option_names(self.strategy)
        return {n: getattr(self, n) for n in STRATEGY_OPTIONS if getattr(self, n) is not None and n in takes}

    def make_strategy(self) -> Strategy:
        return make_strategy(self.strategy, **self.strategy_options())

    def budget(self) -> Budget:
        return Budget(self.max_calls, self.max_tokens, self.max_seconds)

    def to_dict(self) -> dict:
        return {**{f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
                "safety": self.safety.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


@dataclass
class PlanResult:
    plan: Plan | None
    valid: bool
    reasons: list[str]
    """Why the plan is invalid or missing (empty when valid)."""
    trace: list[dict]
    calls: int
    tokens: int
    seconds: float
    strategy: str
    instruction: str = ""
    info: dict = field(default_factory=dict)
    """Strategy statistics (consensus, ...) and the budget limit that stopped the run, if any."""

    def to_dict(self) -> dict:
        """JSON-ready, as published on the `plan` topic."""
        return {"instruction": self.instruction, "valid": self.valid, "reasons": list(self.reasons),
                "plan": None if self.plan is None else self.plan.to_dict(), "strategy": self.strategy,
                "calls": self.calls, "tokens": self.tokens, "seconds": self.seconds, "info": self.info,
                "trace": self.trace}

    def to_json(self) -> str:
        return json.dumps(self.to_dict())


class Planner:
    """Instruction + scene -> PlanResult, with the configured backend, strategy and safety rules."""

    def __init__(self, config: PlannerConfig | None = None, llm: LLM | None = None,
                 domain: Domain | None = None) -> None:
        self.config = config or PlannerConfig()
        if llm is None:
            from agent_stack.cognition.llm.factory import make_llm  # backends import heavy libraries
            llm = make_llm(self.config.backend)
        self.llm = llm
        self.domain = domain or TabletopDomain(self.config.safety)

    def plan(self, instruction: str, scene: SymbolicScene, feedback: str = "") -> PlanResult:
        strategy = self.config.make_strategy()
        refused = self.config.safety.check_instruction(instruction)
        if refused:
            return PlanResult(None, False, refused, [], 0, 0, 0.0, strategy.name, instruction)
        problem = TabletopProblem(instruction, scene, feedback)
        result = strategy.run(self.llm, self.domain, problem, self.config.budget(), self.config.seed)
        info = {**result.info, **({"stopped": result.stopped} if result.stopped else {})}
        if not result.steps:
            reasons = [f"no plan parsed ({result.stopped or 'every completion was malformed'})"]
            return PlanResult(None, False, reasons, result.trace, result.calls, result.tokens, result.seconds,
                              result.strategy, instruction, info)
        verdict = self.domain.verify(problem, result.steps)  # checked here, whatever the strategy did
        reasons = [] if verdict.valid else [verdict.explain()]
        return PlanResult(Plan(tuple(result.steps)), verdict.valid, reasons, result.trace, result.calls,
                          result.tokens, result.seconds, result.strategy, instruction, info)
