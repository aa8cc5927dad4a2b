"""The one interface every LLM backend implements (openai, hf, embedded), and its errors.

`generate` takes a prompt string or chat messages ([{"role", "content"}]) and returns n completions,
each with per-token log-probabilities where the backend offers them. `score` is the log-probability of a
continuation given a prompt (value functions, reranking); backends that cannot compute it raise
`ScoringUnsupported`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Messages = list[dict[str, str]]


class LLMError(RuntimeError):
    """A backend failed after its retries (unreachable server, bad response, missing model files)."""


class ScoringUnsupported(LLMError):
    """The backend cannot score a given continuation (e.g. a chat endpoint without prompt logprobs)."""


@dataclass(frozen=True)
class Completion:
    text: str
    token_logprobs: tuple[float, ...] | None = None
    """Log-probability of each generated token, or None when the backend does not report them."""
    finish_reason: str | None = None
    """"stop", "length", ... as the backend reports it."""
    tokens: int = 0
    """Generated tokens (counted against budgets)."""

    @property
    def logprob(self) -> float | None:
        return None if self.token_logprobs is None else float(sum(self.token_logprobs))


@runtime_checkable
class LLM(Protocol):
    name: str

    def generate(self, prompt: str | Messages, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, stop: list[str] | None = None, seed: int | None = None,
                 response_schema: dict | None = None) -> list[Completion]:
        """n completions of `prompt`. temperature 0 is greedy. `response_schema` (JSON schema) is used
        when the backend can constrain its output, ignored otherwise."""

    def score(self, prompt: str | Messages, continuation: str) -> float:
        """log p(continuation | prompt), summed over the continuation's tokens."""


def messages_of(prompt: str | Messages) -> Messages:
    """Chat messages of a prompt; a plain string is one user message."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    if not isinstance(prompt, list) or not all(isinstance(m, dict) and "role" in m and "content" in m
                                               for m in prompt):
        raise TypeError("a prompt is a string or a list of {'role', 'content'} messages")
    return prompt


def check_sampling(n: int, temperature: float, top_p: float, max_tokens: int) -> None:
    """Reject impossible sampling settings at the boundary, so every backend fails the same way."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
