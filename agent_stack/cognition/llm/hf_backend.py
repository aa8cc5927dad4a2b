"""A local Hugging Face causal LM as an LLM backend: any `save_pretrained` directory, loaded offline.

A robot often has no network, so this backend never downloads (`local_files_only`). Reported
log-probabilities are the model's own distribution (temperature and top-p shape the sampling, not the
numbers), so `Completion.logprob` of a greedy answer equals `score` of the same text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agent_stack.cognition.llm.base import Completion, LLMError, Messages, check_sampling, messages_of


@dataclass(frozen=True)
class TokenLogprob:
    """One token of a text: its string, where it starts in the text, and log p(token | text before it)."""

    token: str
    offset: int
    logprob: float | None
    """None for the first token, which has no context to condition on."""


class HFBackend:
    """Generation and scoring with a local causal LM; thread-safe (one request at a time), so a server can
    share it between threads."""

    def __init__(self, path: str | Path, device: str | torch.device = "cpu",
                 dtype: str | torch.dtype | None = None, name: str | None = None) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_dir():
            raise LLMError(f"no model directory at {self.path}")
        if not (self.path / "config.json").is_file():
            raise LLMError(f"no config.json in {self.path}: not a Hugging Face model directory")
        self.name = name or f"hf:{self.path}"
        self.device = torch.device(device)
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
            self.model = AutoModelForCausalLM.from_pretrained(self.path, local_files_only=True,
                                                              **_dtype_kwargs(dtype))
        except (OSError, ValueError, KeyError) as e:
            raise LLMError(f"cannot load the causal LM in {self.path}: {e}") from e
        self.model.to(self.device).eval()
        self._templated = bool(getattr(self.tokenizer, "chat_template", None))
        eos = self.model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos.append(self.tokenizer.eos_token_id)
        self._eos_ids = frozenset(eos)
        pad = self.tokenizer.pad_token_id
        self._pad_id = pad if pad is not None else (min(self._eos_ids) if self._eos_ids else 0)
        self._context = getattr(self.model.config, "max_position_embeddings", None)
        self._stop_strings_ok = True
        self._lock = threading.Lock()

    # ---- the LLM protocol ----

    def generate(self, prompt: str | Messages, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, stop: list[str] | None = None, seed: int | None = None,
                 response_schema: dict | None = None) -> list[Completion]:
        """n completions of the chat-rendered prompt. `response_schema` is ignored: plain sampling cannot
        honour it, and the caller validates the JSON anyway."""
        check_sampling(n, temperature, top_p, max_tokens)
        ids = self._encode(self.render(prompt), special=not self._templated)
        return self._generate_ids(ids, n, temperature, top_p, max_tokens, stop or [], seed)

    def score(self, prompt: str | Messages, continuation: str) -> float:
        """log p(continuation | rendered prompt) in one forward pass. The continuation's tokens are cut from
        the tokenisation of the whole text (as lm-evaluation-harness does), so a tokenizer that merges across
        the boundary or adds a word-initial marker still scores the tokens it would have generated."""
        context = self.render(prompt)
        ctx = self._encode(context, special=not self._templated)
        if not ctx:
            raise LLMError(f"{self.name}: cannot score after an empty prompt")
        whole = self._encode(context + continuation, special=not self._templated)
        cont = whole[len(ctx):] if whole[:len(ctx)] == ctx else self._encode(continuation, special=False)
        if not cont:
            return 0.0
        ids = ctx + cont
        self._check_context(len(ids))
        with self._lock, torch.inference_mode():
            logits = self._forward(ids)[len(ctx) - 1:-1]
            target = torch.tensor(cont, device=self.device)
            return float(logits.float().log_softmax(-1).gather(-1, target[:, None]).sum())

    # ---- raw text (no chat template), for the completions endpoint of `server.py` ----

    def render(self, prompt: str | Messages) -> str:
        """The text the model sees: its chat template with the assistant turn opened, or, for a model
        without one, the message contents joined by newlines."""
        messages = messages_of(prompt)
        if self._templated:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n".join(m["content"] for m in messages)

    def complete(self, text: str, n: int = 1, temperature: float = 0.0, top_p: float = 1.0,
                 max_tokens: int = 256, stop: list[str] | None = None,
                 seed: int | None = None) -> list[Completion]:
        """n continuations of raw `text`, as a completions endpoint (not chat) defines them."""
        check_sampling(n, temperature, top_p, max_tokens)
        return self._generate_ids(self._encode(text, special=True), n, temperature, top_p, max_tokens,
                                  stop or [], seed)

    def text_logprobs(self, text: str) -> list[TokenLogprob]:
        """Every token of raw `text` with its offset and log-probability given the tokens before it: what an
        OpenAI completions endpoint returns for `echo=True, logprobs=...`."""
        enc = self.tokenizer(text, add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if not ids:
            return []
        self._check_context(len(ids))
        with self._lock, torch.inference_mode():
            logits = self._forward(ids)[:-1]
            target = torch.tensor(ids[1:], device=self.device)
            lps = logits.float().log_softmax(-1).gather(-1, target[:, None])[:, 0].tolist()
        strings = self.tokenizer.convert_ids_to_tokens(ids)
        return [TokenLogprob(text[start:end] if end > start else strings[i], start,
                             None if i == 0 else lps[i - 1]) for i, (start, end) in enumerate(offsets)]

    # ---- internals ----

    def _encode(self, text: str, special: bool) -> list[int]:
        # A chat template writes BOS itself; adding special tokens again would double it.
        return self.tokenizer(text, add_special_tokens=special)["input_ids"]

    def _forward(self, ids: list[int]) -> torch.Tensor:
        """Next-token logits at every position of one unpadded sequence."""
        x = torch.tensor([ids], device=self.device)
        return self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]

    def _check_context(self, length: int) -> None:
        if self._context is not None and length > self._context:
            raise LLMError(f"{self.name}: {length} tokens exceed the model's context of {self._context}")

    def _generate_ids(self, ids: list[int], n: int, temperature: float, top_p: float, max_tokens: int,
                      stop: list[str], seed: int | None) -> list[Completion]:
        if not ids:
            raise LLMError(f"{self.name}: the prompt is empty after tokenisation")
        if self._context is not None:
            if len(ids) >= self._context:
                raise LLMError(f"{self.name}: a prompt of {len(ids)} tokens fills the model's context of "
                               f"{self._context}")
            max_tokens = min(max_tokens, self._context - len(ids))
        x = torch.tensor([ids], device=self.device)
        sample = temperature > 0
        kwargs: dict = {"attention_mask": torch.ones_like(x), "max_new_tokens": max_tokens,
                        "do_sample": sample, "pad_token_id": self._pad_id,
                        "eos_token_id": sorted(self._eos_ids) or None,
                        "return_dict_in_generate": True, "output_logits": True}
        if sample:
            # top_k=0 overrides a top-k default in the model's generation_config: OpenAI semantics have none.
            kwargs.update(temperature=temperature, top_p=top_p, top_k=0, num_return_sequences=n)
        if stop and self._stop_strings_ok:
            kwargs.update(stop_strings=stop, tokenizer=self.tokenizer)
        with self._lock, self._seeded(seed):
            out = self._run_generate(x, kwargs)
        generated = out.sequences[:, len(ids):]
        logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
        logprobs = logprobs.gather(-1, generated[..., None])[..., 0]
        completions = [self._completion(generated[i].tolist(), logprobs[i].tolist(), stop)
                       for i in range(generated.shape[0])]
        return completions if sample else completions * n  # greedy: n identical answers, one decode

    def _run_generate(self, x: torch.Tensor, kwargs: dict):
        try:
            return self.model.generate(x, **kwargs)
        except ValueError:
            if "stop_strings" not in kwargs:
                raise
            # transformers' stop-string matcher cannot read some vocabularies (e.g. word-level);
            # stop strings are still cut from the text afterwards.
            self._stop_strings_ok = False
            kwargs = {k: v for k, v in kwargs.items() if k not in ("stop_strings", "tokenizer")}
            return self.model.generate(x, **kwargs)

    def _completion(self, tokens: list[int], logprobs: list[float], stop: list[str]) -> Completion:
        """Trim one generated row at EOS or the first stop string; keep the log-probabilities of the tokens
        that lie wholly inside the returned text."""
        eos_at = next((i for i, t in enumerate(tokens) if t in self._eos_ids), None)
        body = tokens if eos_at is None else tokens[:eos_at]
        used = len(tokens) if eos_at is None else eos_at + 1
        finish = "length" if eos_at is None else "stop"
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        hits = [i for i in (text.find(s) for s in stop if s) if i >= 0]
        if hits:
            cut = min(hits)
            kept = next((k - 1 for k in range(1, len(body) + 1)
                         if len(self.tokenizer.decode(body[:k], skip_special_tokens=True)) > cut), len(body))
            text, body, used, finish = text[:cut], body[:kept], min(kept + 1, used), "stop"
        return Completion(text=text, token_logprobs=tuple(logprobs[:len(body)]), finish_reason=finish,
                          tokens=used)

    @contextmanager
    def _seeded(self, seed: int | None) -> Iterator[None]:
        """Seed sampling without disturbing the caller's global RNG state."""
        if seed is None:
            yield
            return
        accelerator = self.device.type != "cpu"
        with torch.random.fork_rng(devices=[self.device] if accelerator else [],
                                   device_type=self.device.type if accelerator else "cuda"):
            torch.manual_seed(seed)
            yield


def _dtype_kwargs(dtype: str | torch.dtype | None) -> dict:
    if dtype is None:
        return {}
    if isinstance(dtype, str) and dtype != "auto":
        resolved = getattr(torch, dtype, None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"dtype must be 'auto' or a torch dtype name such as 'bfloat16', got {dtype!r}")
        dtype = resolved
    return {"dtype": dtype}
