"""A small OpenAI-compatible HTTP server for any LLM backend: the embedded planner LM or a local HF model.

It lets any OpenAI client (another robot, a notebook, `OpenAIBackend`) use a model that lives on this
machine, and gives `OpenAIBackend` a real server to be tested against. Standard library only:

    python -m agent_stack.cognition.llm.server --model embedded --port 8000
    python -m agent_stack.cognition.llm.server --model hf:/models/qwen2.5-0.5b-instruct --max-n 1

Routes: `POST /v1/chat/completions`, `POST /v1/completions` (raw text; `echo` + `logprobs` for scoring),
`GET /v1/models`. A malformed request gets HTTP 400 with an OpenAI-style error naming the field.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from agent_stack.cognition.llm.base import LLM, Completion, LLMError, Messages, check_sampling


class BadRequest(ValueError):
    """A request refused with HTTP 400; the message names the offending field."""


# ---- request handling, free of HTTP so it can be read (and tested) on its own ----

def list_models(backend: LLM) -> dict:
    return {"object": "list", "data": [{"id": backend.name, "object": "model", "owned_by": "agent_stack"}]}


def chat_completion(backend: LLM, body: dict, max_n: int | None = None) -> dict:
    """Answer a chat-completions request. A JSON-schema response format is passed to the backend, which
    honours it or not; `n` above `max_n` returns `max_n` choices, as limited real servers do."""
    messages = _messages(body.get("messages"))
    n, temperature, top_p, stop, seed = _sampling(body, max_n)
    max_tokens = _field(body, "max_tokens", int, None)
    if max_tokens is None:
        max_tokens = _field(body, "max_completion_tokens", int, 256)
    _check(n, temperature, top_p, max_tokens)
    completions = backend.generate(messages, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                                   stop=stop, seed=seed, response_schema=_response_schema(body))
    want_logprobs = _field(body, "logprobs", bool, False)
    choices = [{"index": i, "message": {"role": "assistant", "content": c.text},
                "finish_reason": c.finish_reason or "stop",
                "logprobs": _chat_logprobs(c) if want_logprobs else None} for i, c in enumerate(completions)]
    return _response("chat.completion", backend, choices, completions)


def text_completion(backend: LLM, body: dict, max_n: int | None = None) -> dict:
    """Answer a completions request on raw text. `echo` with `logprobs` returns every prompt token's
    log-probability (with `max_tokens` 0, nothing is generated): how clients score a continuation."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise BadRequest("'prompt' must be one string (token ids and batches are not served)")
    n, temperature, top_p, stop, seed = _sampling(body, max_n)
    echo = _field(body, "echo", bool, False)
    max_tokens = _field(body, "max_tokens", int, 16)
    if max_tokens == 0 and not echo:
        raise BadRequest("'max_tokens' 0 is only meaningful with 'echo'")
    _check(n, temperature, top_p, max(max_tokens, 1))
    want_logprobs = _field(body, "logprobs", int, None) is not None
    text_logprobs = getattr(backend, "text_logprobs", None)
    if want_logprobs and text_logprobs is None:
        raise BadRequest(f"{backend.name} cannot report log-probabilities of raw text; drop 'logprobs'")
    # Backends without a raw-text path (`complete`) read the prompt as one user message.
    complete: Callable[..., list[Completion]] = getattr(backend, "complete", backend.generate)
    completions = (complete(prompt, n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                            stop=stop, seed=seed)
                   if max_tokens > 0 else [Completion(text="", finish_reason="length")] * n)
    choices = []
    for i, c in enumerate(completions):
        logprobs = None
        if want_logprobs:
            # Prompt tokens from the prompt alone, so that generated text cannot re-tokenise its last token.
            entries = text_logprobs(prompt) if echo else []
            if c.text:
                entries += [e for e in text_logprobs(prompt + c.text) if e.offset >= len(prompt)]
            logprobs = {"tokens": [e.token for e in entries], "token_logprobs": [e.logprob for e in entries],
                        "top_logprobs": None, "text_offset": [e.offset for e in entries]}
        choices.append({"index": i, "text": (prompt if echo else "") + c.text, "logprobs": logprobs,
                        "finish_reason": c.finish_reason or "stop"})
    return _response("text_completion", backend, choices, completions)


def _response(kind: str, backend: LLM, choices: list[dict], completions: list[Completion]) -> dict:
    generated = sum(c.tokens for c in completions)
    return {"id": f"{kind}-{uuid.uuid4().hex}", "object": kind, "created": int(time.time()),
            "model": backend.name, "choices": choices,
            # The LLM protocol does not count prompt tokens.
            "usage": {"prompt_tokens": 0, "completion_tokens": generated, "total_tokens": generated}}


def _chat_logprobs(completion: Completion) -> dict | None:
    if completion.token_logprobs is None:
        return None
    # The LLM protocol reports log-probabilities without token strings.
    return {"content": [{"token": "", "logprob": lp, "bytes": None, "top_logprobs": []}
                        for lp in completion.token_logprobs]}


def _field(body: dict, name: str, kind: type, default: Any) -> Any:
    value = body.get(name)
    if value is None:
        return default
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise BadRequest(f"'{name}' must be of type {kind.__name__}, got {value!r}")
    return value


def _sampling(body: dict, max_n: int | None) -> tuple[int, float, float, list[str] | None, int | None]:
    n = _field(body, "n", int, 1)
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("'stop' must be a string or a list of strings")
    return (n if max_n is None else min(n, max_n), _field(body, "temperature", float, 1.0),
            _field(body, "top_p", float, 1.0), stop, _field(body, "seed", int, None))


def _check(n: int, temperature: float, top_p: float, max_tokens: int) -> None:
    try:
        check_sampling(n, temperature, top_p, max_tokens)
    except ValueError as e:
        raise BadRequest(str(e)) from e


def _messages(value: Any) -> Messages:
    if not isinstance(value, list) or not value:
        raise BadRequest("'messages' must be a non-empty list of {'role', 'content'} objects")
    messages = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise BadRequest("each message must be an object with a string 'role'")
        content = m.get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content
                              if isinstance(p, dict) and p.get("type") == "text")
        if not isinstance(content, str):
            raise BadRequest("a message's 'content' must be a string or a list of text parts")
        messages.append({"role": m["role"], "content": content})
    return messages


def _response_schema(body: dict) -> dict | None:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") not in ("text", "json_object", "json_schema"):
        raise BadRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'")
    if fmt["type"] != "json_schema":
        return None
    schema = (fmt.get("json_schema") or {}).get("schema")
    if not isinstance(schema, dict):
        raise BadRequest("'response_format.json_schema.schema' must be a JSON schema object")
    return schema


# ---- HTTP ----

ROUTES: dict[str, Callable[[LLM, dict, int | None], dict]] = {
    "/v1/chat/completions": chat_completion, "/v1/completions": text_completion}


class LLMServer(ThreadingHTTPServer):
    """Serves one backend; each request runs in its own thread (the HF backend serialises them)."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], backend: LLM, max_n: int | None = None) -> None:
        super().__init__(address, _Handler)
        self.backend = backend
        self.max_n = max_n

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: LLMServer
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects

    def do_GET(self) -> None:
        if self.path.split("?")[0].rstrip("/") == "/v1/models":
            self._reply(200, list_models(self.server.backend))
        else:
            self._reply(404, _error(f"no route GET {self.path}", "not_found_error"))

    def do_POST(self) -> None:
        body_bytes = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        route = ROUTES.get(self.path.split("?")[0].rstrip("/"))
        if route is None:
            self._reply(404, _error(f"no route POST {self.path}", "not_found_error"))
            return
        try:
            try:
                body = json.loads(body_bytes or b"null")
            except json.JSONDecodeError as e:
                raise BadRequest(f"the request body is not JSON: {e}") from e
            if not isinstance(body, dict):
                raise BadRequest("the request body must be a JSON object")
            self._reply(200, route(self.server.backend, body, self.server.max_n))
        except BadRequest as e:
            self._reply(400, _error(str(e), "invalid_request_error"))
        except Exception as e:  # a failing backend must not take the server down
            self._reply(500, _error(f"{type(e).__name__}: {e}", "server_error"))

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _error(message: str, kind: str) -> dict:
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _interrupt(*_: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agent_stack.cognition.llm.server",
                                     description="Serve an LLM backend over the OpenAI HTTP API.")
    parser.add_argument("--model", required=True, help="'embedded' (the shipped planner LM) or 'hf:DIR'")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port; the URL is printed")
    parser.add_argument("--max-n", type=int, default=None,
                        help="most choices per request; asking more gets this many (llama.cpp serves 1)")
    parser.add_argument("--device", default="cpu", help="torch device of the model")
    parser.add_argument("--dtype", default=None, help="e.g. bfloat16; default: as saved")
    parser.add_argument("--name", default=None,
                        help="model id listed by /v1/models; default: the --model spec")
    args = parser.parse_args(argv)
    if args.model != "embedded" and not args.model.startswith("hf:"):
        parser.error("--model must be 'embedded' or 'hf:DIR'")
    if args.max_n is not None and args.max_n < 1:
        parser.error("--max-n must be >= 1")

    from agent_stack.cognition.llm.factory import make_llm

    try:
        backend = make_llm(args.model, device=args.device, dtype=args.dtype, name=args.name or args.model)
    except LLMError as e:
        parser.exit(1, f"error: {e}\n")
    server = LLMServer((args.host, args.port), backend, max_n=args.max_n)
    signal.signal(signal.SIGTERM, _interrupt)  # stop as on Ctrl-C, closing the socket
    print(f"serving {backend.name} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
