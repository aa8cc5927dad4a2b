"""What every reasoning strategy shares: the budget, the metered LLM session with its trace, the result,
and the registry that finds a strategy by name.

A strategy is a typed dataclass of options with one method, `solve(session)`. It talks to the LLM only
through `Session`, which checks the `Budget` before every call, counts calls and tokens, parses and
verifies completions through the `Domain`, and records each call in the trace. When the budget runs out
the session raises `BudgetExhausted`; `Strategy.run` catches it and returns the best verified plan seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from agent_stack.cognition.domain import Domain
from agent_stack.cognition.llm.base import LLM, Completion, Messages
from agent_stack.cognition.verifier import Verdict

Steps = tuple[Hashable, ...]

STRATEGIES: dict[str, type[Strategy]] = {}
"""Strategy classes by registered name and alias."""


def register(name: str, *aliases: str) -> Callable[[type[Strategy]], type[Strategy]]:
    """Class decorator: make a strategy available to `make_strategy` under `name` (and `aliases`)."""
    def decorate(cls: type[Strategy]) -> type[Strategy]:
        cls.name = name
        for key in (name, *aliases):
            if key in STRATEGIES and STRATEGIES[key] is not cls:
                raise ValueError(f"strategy name {key!r} is already registered by {STRATEGIES[key].__name__}")
            STRATEGIES[key] = cls
        return cls
    return decorate


class BudgetExhausted(RuntimeError):
    """The budget allows no further LLM call; the message says which limit was hit."""


@dataclass(frozen=True)
class Budget:
    """Limits on one planning run, checked before every LLM call."""

    max_calls: int | None = 32
    """LLM requests (one request may return several completions)."""
    max_tokens: int | None = 16384
    """Generated tokens over all calls."""
    max_seconds: float | None = 120.0
    """Wall-clock seconds since the run started."""

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_seconds"):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if value is not None and (not number or value < 0):
                raise ValueError(f"Budget.{name} must be None or a number >= 0, got {value!r}")

    def exhausted(self, calls: int, tokens: int, seconds: float) -> str | None:
        """Why no further call is allowed, or None."""
        if self.max_calls is not None and calls >= self.max_calls:
            return f"call budget spent ({calls}/{self.max_calls} calls)"
        if self.max_tokens is not None and tokens >= self.max_tokens:
            return f"token budget spent ({tokens}/{self.max_tokens} tokens)"
        if self.max_seconds is not None and seconds >= self.max_seconds:
            return f"time budget spent ({seconds:.2f}/{self.max_seconds} s)"
        return None


@dataclass(frozen=True)
class Sample:
    """One completion, parsed and verified: `steps` is the full plan (the fixed prefix + what the model
    added), None when the text did not parse."""

    text: str
    prompt: Messages
    steps: Steps | None
    continuation: Steps
    error: str | None
    verdict: Verdict | None
    logprob: float | None
    tokens: int

    @property
    def mean_logprob(self) -> float | None:
        return None if self.logprob is None else self.logprob / max(self.tokens, 1)


@dataclass
class StrategyResult:
    steps: Steps | None
    verdict: Verdict | None
    trace: list[dict]
    calls: int
    tokens: int
    seconds: float
    strategy: str
    stopped: str | None = None
    """The budget limit that ended the run early, or None."""
    info: dict = field(default_factory=dict)
    """Strategy-specific statistics (e.g. self-consistency's consensus), JSON-ready."""

    @property
    def valid(self) -> bool:
        return bool(self.steps) and self.verdict is not None and self.verdict.valid


def is_solution(verdict: Verdict) -> bool:
    """A complete plan: valid, and not known to miss the goal."""
    return verdict.valid and verdict.goal_reached is not False


def can_extend(verdict: Verdict, length: int) -> bool:
    """A partial plan worth extending: every step runs, and any rejection concerns only the goal."""
    return verdict.executable_steps >= length and (verdict.valid or verdict.goal_reached is False)


def _plan_rank(verdict: Verdict, length: int) -> tuple[bool, float, int]:
    return is_solution(verdict), verdict.executable_steps / max(length, 1), -length


class Session:
    """The metered connection of one strategy run to the LLM, the domain and the problem."""

    def __init__(self, llm: LLM, domain: Domain, problem, budget: Budget, seed: int = 0,
                 max_new_tokens: int = 256, clock: Callable[[], float] = time.monotonic) -> None:
        self.llm, self.domain, self.problem, self.budget = llm, domain, problem, budget
        self.seed, self.max_new_tokens, self.clock = seed, max_new_tokens, clock
        self.started = clock()
        self.calls = 0
        self.tokens = 0
        self.trace: list[dict] = []
        self.info: dict = {}
        self.stopped: str | None = None
        self.best: tuple[Steps, Verdict] | None = None
        """The best complete plan verified so far (returned when the budget stops the run)."""

    @property
    def seconds(self) -> float:
        return self.clock() - self.started

    def note(self, event: str, **details) -> None:
        """A non-LLM event in the trace (a rejected node, a backtrack, a merge)."""
        self.trace.append({"event": event, **details})

    def verify(self, steps: Sequence) -> Verdict:
        """Verify a complete plan and remember it if it is the best so far."""
        steps = tuple(steps)
        verdict = self.domain.verify(self.problem, steps)
        if steps and (self.best is None or
                      _plan_rank(verdict, len(steps)) > _plan_rank(self.best[1], len(self.best[0]))):
            self.best = (steps, verdict)
        return verdict

    def verify_prefix(self, steps: Sequence) -> Verdict:
        """Verify a partial plan (not a candidate answer)."""
        return self.domain.verify(self.problem, tuple(steps))

    def sample(self, feedback: str = "", *, prefix: Steps = (), n: int = 1, temperature: float = 0.0,
               top_p: float = 1.0, seed: int | None = None, purpose: str = "plan") -> list[Sample]:
        """n plans for the problem: the domain's prompt with `feedback`; each completion is parsed, put
        after `prefix` (a model that repeats the prefix is understood) and verified."""
        prompt = self.domain.messages(self.problem, feedback)
        completions = self._generate(prompt, n, temperature, top_p, seed, self.domain.response_schema)
        samples = [self._sample(prompt, prefix, c) for c in completions]
        for sample in samples:
            self._record(purpose, prompt, feedback, temperature, sample.text, sample.tokens, sample.logprob,
                         steps=None if sample.steps is None else self.domain.render(sample.steps),
                         error=sample.error, valid=None if sample.verdict is None else sample.verdict.valid,
                         verdict=None if sample.verdict is None else sample.verdict.explain())
        return samples

    def ask(self, prompt: Messages, *, n: int = 1, temperature: float = 0.0, max_tokens: int = 8,
            purpose: str = "ask") -> list[Completion]:
        """Raw completions of any prompt (self-evaluation questions), metered and traced, not parsed."""
        completions = self._generate(prompt, n, temperature, 1.0, None, None, max_tokens)
        for completion in completions:
            self._record(purpose, prompt, "", temperature, completion.text, _tokens(completion),
                         completion.logprob)
        return completions

    def score(self, prompt: Messages, continuation: str) -> float:
        """log p(continuation | prompt) from the backend (one metered call); may raise ScoringUnsupported."""
        self._check()
        self.calls += 1
        value = self.llm.score(prompt, continuation)
        self._record("score", prompt, "", 0.0, continuation, 0, value)
        return value

    def result(self, steps: Steps | None, verdict: Verdict | None, strategy: str) -> StrategyResult:
        return StrategyResult(steps, verdict, self.trace, self.calls, self.tokens, round(self.seconds, 4),
                              strategy, self.stopped, self.info)

    def _check(self) -> None:
        reason = self.budget.exhausted(self.calls, self.tokens, self.seconds)
        if reason is not None:
            self.stopped = reason
            self.note("stopped", reason=reason)
            raise BudgetExhausted(reason)

    def _generate(self, prompt: Messages, n: int, temperature: float, top_p: float, seed: int | None,
                  schema: dict | None, max_tokens: int | None = None) -> list[Completion]:
        self._check()
        limit = max_tokens or self.max_new_tokens
        if self.budget.max_tokens is not None:
            limit = max(1, min(limit, self.budget.max_tokens - self.tokens))
        seed = self.seed + self.calls if seed is None else seed
        self.calls += 1
        completions = self.llm.generate(prompt, n=n, temperature=temperature, top_p=top_p, max_tokens=limit,
                                        seed=seed, response_schema=schema)
        self.tokens += sum(_tokens(c) for c in completions)
        return completions

    def _sample(self, prompt: Messages, prefix: Steps, completion: Completion) -> Sample:
        try:
            parsed = tuple(self.domain.parse(completion.text))
        except ValueError as error:
            return Sample(completion.text, prompt, None, (), str(error), None, completion.logprob,
                          _tokens(completion))
        continuation = _without_prefix(parsed, prefix)
        steps = prefix + continuation
        return Sample(completion.text, prompt, steps, continuation, None, self.verify(steps),
                      completion.logprob, _tokens(completion))

    def _record(self, purpose: str, prompt: Messages, feedback: str, temperature: float, text: str,
                tokens: int, logprob: float | None, **parsed) -> None:
        self.trace.append({"call": self.calls, "purpose": purpose, "prompt": prompt_hash(prompt),
                           "feedback": feedback, "temperature": temperature, "completion": text,
                           "tokens": tokens, "logprob": None if logprob is None else round(logprob, 4),
                           **parsed})


def _tokens(completion: Completion) -> int:
    """Generated tokens, estimated from the text (4 characters a token) when the backend reports none."""
    return completion.tokens or max(1, math.ceil(len(completion.text) / 4))


def _without_prefix(parsed: Steps, prefix: Steps) -> Steps:
    """The new steps of a completion: a model asked to continue `prefix` may repeat it first."""
    if prefix and len(parsed) > len(prefix) and parsed[:len(prefix)] == prefix:
        return parsed[len(prefix):]
    return parsed


def prompt_hash(prompt: Messages) -> str:
    return hashlib.sha1(json.dumps(prompt, sort_keys=True).encode()).hexdigest()[:12]


@dataclass
class Strategy(ABC):
    """Base of all strategies: options are dataclass fields; `run` meters one planning run."""

    name: ClassVar[str] = ""
    max_new_tokens: int = 256
    """Generated tokens allowed per completion."""

    def __post_init__(self) -> None:
        self._check_options()

    def _check_options(self) -> None:
        cls = type(self).__name__
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            least = spec.metadata.get("min", 1)
            integer = isinstance(value, int) and not isinstance(value, bool)
            if spec.type in ("int", int) and (not integer or value < least):
                raise ValueError(f"{cls}.{spec.name} must be an integer >= {least}, got {value!r}")
        temperature, top_p = getattr(self, "temperature", 0.0), getattr(self, "top_p", 1.0)
        if not 0.0 <= temperature <= 2.0:
            raise ValueError(f"{cls}.temperature must be in [0, 2], got {temperature!r}")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"{cls}.top_p must be in (0, 1], got {top_p!r}")

    def run(self, llm: LLM, domain: Domain, problem, budget: Budget | None = None, seed: int = 0,
            clock: Callable[[], float] = time.monotonic) -> StrategyResult:
        """Plan for `problem`; never raises on an exhausted budget (returns the best verified plan so far)."""
        session = Session(llm, domain, problem, budget or Budget(), seed, self.max_new_tokens, clock)
        try:
            steps, verdict = self.solve(session)
        except BudgetExhausted:
            steps, verdict = session.best if session.best is not None else (None, None)
        return session.result(steps, verdict, self.name)

    @abstractmethod
    def solve(self, session: Session) -> tuple[Steps | None, Verdict | None]:
        """The plan and its verdict (from `session.verify`), or (None, None)."""


def make_strategy(name: str, **options) -> Strategy:
    """The registered strategy `name` (or alias) with `options`; a bad name or option is a one-line error."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"strategy {cls.name!r} has no option(s) {unknown}; options: {sorted(known)}")
    return cls(**options)


def option_names(name: str) -> set[str]:
    """The options strategy `name` takes."""
    cls = STRATEGIES.get(name)
    if cls is None:
        raise ValueError(f"unknown strategy {name!r}; known: {sorted(STRATEGIES)}")
    return {f.name for f in dataclasses.fields(cls)}
