"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, `server.py`) as a backend.

Servers differ in what they accept: llama.cpp serves one choice per request, some reject `n`, structured
output or logprobs with HTTP 400. The backend learns this from the first answers and adapts (several
requests with distinct seeds, fields dropped) instead of failing, and remembers it for later calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import openai

from agent_stack.cognition.llm.base import (
    Completion,
    LLMError,
    Messages,
    ScoringUnsupported,
    check_sampling,
    messages_of,
)

OPTIONAL_FIELDS = ("n", "response_format", "logprobs")
"""Request fields a server may reject with HTTP 400, most often rejected first."""


def plain_text(messages: Messages) -> str:
    """Message contents joined by newlines: how `score` renders chat messages for a raw-text completions
    endpoint unless it is given the server model's chat template."""
    return "\n".join(m["content"] for m in messages)


class OpenAIBackend:
    """Chat completions over HTTP with the official `openai` client (which retries with exponential backoff).

    `render` turns chat messages into the raw text that `score` sends to the completions endpoint; pass the
    served model's chat template (e.g. `lambda m: tokenizer.apply_chat_template(m, tokenize=False,
    add_generation_prompt=True)`) to score exactly what `generate` conditions on.
    """

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_retries: int = 2,
                 render: Callable[[Messages], str] = plain_text) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = f"openai:{self.base_url}" + (f"#{model}" if model else "")
        self.timeout = timeout
        self.max_n: int | None = None
        """Most choices the server returns per request, once it has returned fewer than asked."""
        self._model = model
        self._render = render
        self._unsupported: set[str] = set()  # optional fields this server rejected: never sent again
        self._supported: set[str] = set()  # fields it accepted once: never blamed for a later 400
        self._client = openai.OpenAI(base_url=self.base_url, timeout=timeout, max_retries=max_retries,
                                     api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none")

    @property
    def model(self) -> str:
        """The model named at construction, else the first one the server lists."""
        if self._model is None:
            ids = [m.id for m in self._call(self._client.models.list)]
            if not ids:
                raise LLMError(f"{self.base_url} serves no models")
            self._model = ids[0]
        return self._model

    def generate(self, prompt: str | Messages, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, stop: list[str] | None = None, seed: int | None = None,
                 response_schema: dict | None = None) -> list[Completion]:
        """n completions, in one request where the server allows; otherwise in several, the i-th choice
        seeded with seed + i so the samples differ and repeat across runs."""
        check_sampling(n, temperature, top_p, max_tokens)
        messages = messages_of(prompt)
        completions: list[Completion] = []
        while len(completions) < n:
            k = n - len(completions) if self.max_n is None else min(n - len(completions), self.max_n)
            got = self._chat(messages, k, temperature, top_p, max_tokens, stop,
                             None if seed is None else seed + len(completions), response_schema)
            if not got:
                raise LLMError(f"{self._where()} returned no choices")
            if len(got) < k:
                self.max_n = len(got)
            completions += got[:k]
        return completions

    def score(self, prompt: str | Messages, continuation: str) -> float:
        """log p(continuation | prompt) from the completions endpoint's echoed prompt log-probabilities."""
        text = self._render(messages_of(prompt))
        full = text + continuation
        try:
            response = self._call(self._client.completions.create, model=self.model, prompt=full, echo=True,
                                  logprobs=1, max_tokens=1, temperature=0.0)
        except (openai.BadRequestError, openai.NotFoundError) as e:
            raise ScoringUnsupported(f"{self._where()} cannot echo prompt log-probabilities on /completions: "
                                     f"{_message(e)}") from e
        lp = response.choices[0].logprobs if response.choices else None
        if lp is None or not lp.token_logprobs or not lp.text_offset:
            raise ScoringUnsupported(f"{self._where()} returned no prompt log-probabilities")
        # A token belongs to the continuation when it ends after the prompt and starts before the end of
        # the scored text (the one generated token starts at len(full) and is left out).
        ends = [*lp.text_offset[1:], float("inf")]
        picked = [value for start, end, value in zip(lp.text_offset, ends, lp.token_logprobs, strict=True)
                  if end > len(text) and start < len(full)]
        if (continuation and not picked) or any(value is None for value in picked):
            raise ScoringUnsupported(f"{self._where()} did not echo log-probabilities for the continuation")
        return float(sum(picked))

    # ---- internals ----

    def _chat(self, messages: Messages, k: int, temperature: float, top_p: float, max_tokens: int,
              stop: list[str] | None, seed: int | None, schema: dict | None) -> list[Completion]:
        """One chat request; on HTTP 400 the likeliest unproven optional field is dropped, remembered as
        unsupported, and the request retried."""
        optional: dict[str, Any] = {"n": k if k > 1 else None, "logprobs": True,
                                    "response_format": None if schema is None else {
                                        "type": "json_schema",
                                        "json_schema": {"name": "response", "schema": schema}}}
        request: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature,
                                   "top_p": top_p, "max_tokens": max_tokens}
        if stop:
            request["stop"] = stop
        if seed is not None:
            request["seed"] = seed
        while True:
            fields = {f: optional[f] for f in OPTIONAL_FIELDS
                      if optional[f] is not None and f not in self._unsupported}
            try:
                response = self._call(self._client.chat.completions.create, **request, **fields)
            except openai.BadRequestError as e:
                suspect = _suspect(fields.keys() - self._supported, _message(e))
                if suspect is None:
                    raise LLMError(f"{self._where()} rejected the request: {_message(e)}") from e
                self._unsupported.add(suspect)
                continue
            self._supported.update(fields)
            return [_completion_of(choice, response) for choice in response.choices]

    def _call(self, method: Callable[..., Any], **kwargs: Any) -> Any:
        """Call the client, turning transport and server errors into LLMError naming the URL and model."""
        try:
            return method(**kwargs)
        except openai.APITimeoutError as e:
            raise LLMError(f"{self._where()} did not answer within {self.timeout} s") from e
        except openai.APIConnectionError as e:
            raise LLMError(f"cannot reach {self._where()}: {e}") from e
        except (openai.BadRequestError, openai.NotFoundError):
            raise  # the caller decides: drop a field, or scoring unsupported
        except openai.APIStatusError as e:
            raise LLMError(f"{self._where()} answered HTTP {e.status_code}: {_message(e)}") from e

    def _where(self) -> str:
        return f"{self.base_url} (model {self._model or 'not chosen yet'})"


def _suspect(unproven: set[str], message: str) -> str | None:
    """The field to blame for a 400: one the error message names, else the likeliest unproven one."""
    named = [f for f in OPTIONAL_FIELDS if f in unproven and re.search(rf"\b{f}\b", message)]
    ordered = [f for f in OPTIONAL_FIELDS if f in unproven]
    return (named or ordered or [None])[0]


def _message(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict):
        body = body.get("error", body)
        if isinstance(body, dict) and "message" in body:
            return str(body["message"])
    return str(error.message)


def _completion_of(choice: Any, response: Any) -> Completion:
    content = choice.logprobs.content if choice.logprobs is not None else None
    logprobs = None if content is None else tuple(float(t.logprob) for t in content)
    if logprobs is not None:
        tokens = len(logprobs)
    else:  # the usage counts all choices together
        used = response.usage.completion_tokens if response.usage is not None else 0
        tokens = used // max(len(response.choices), 1)
    return Completion(text=choice.message.content or "", token_logprobs=logprobs,
                      finish_reason=choice.finish_reason, tokens=tokens)
