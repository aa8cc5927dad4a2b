"""The OpenAI-compatible backend against the project's own server (a real subprocess serving a tiny HF
model) and against small in-process stubs that misbehave the way real servers do."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_stack.cognition.llm import LLM, LLMError, ScoringUnsupported, make_llm
from agent_stack.cognition.llm.openai_backend import OpenAIBackend
from agent_stack.cognition.plan import PLAN_SCHEMA

PROMPT = "pick up the red block"


@pytest.fixture(scope="module")
def server_url(tiny_hf_lm_dir, tmp_path_factory):
    """`python -m agent_stack.cognition.llm.server` on a free port, serving at most 2 choices per request."""
    log = tmp_path_factory.mktemp("llm_server") / "stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "agent_stack.cognition.llm.server", "--model",
                                 f"hf:{tiny_hf_lm_dir}", "--port", "0", "--max-n", "2", "--name", "tiny"],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        line = proc.stdout.readline()  # printed once the socket is bound
        assert line.startswith("serving"), f"server did not start:\n{line}{log.read_text()}"
        url = line.split()[-1]
        with urllib.request.urlopen(f"{url}/models", timeout=10) as response:
            assert json.load(response)["data"][0]["id"] == "tiny"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_model_is_discovered_from_the_server(server_url):
    backend = OpenAIBackend(server_url)
    assert isinstance(backend, LLM)
    assert backend.model == "tiny"


def test_n_choices_in_one_request_with_logprobs_and_seed(server_url):
    backend = OpenAIBackend(server_url)
    out = backend.generate(PROMPT, n=2, temperature=1.0, max_tokens=6, seed=3)
    assert len(out) == 2 and backend.max_n is None
    assert all(c.token_logprobs is not None and len(c.token_logprobs) <= c.tokens <= 6 for c in out)
    again = backend.generate(PROMPT, n=2, temperature=1.0, max_tokens=6, seed=3)
    assert [c.text for c in again] == [c.text for c in out]


def test_fewer_choices_than_asked_fall_back_to_seeded_requests(server_url):
    def texts(n, seed):
        return [c.text for c in OpenAIBackend(server_url).generate(PROMPT, n=n, temperature=1.0, max_tokens=6,
                                                                   seed=seed)]

    backend = OpenAIBackend(server_url)
    out = backend.generate(PROMPT, n=5, temperature=1.0, max_tokens=6, seed=3)
    assert len(out) == 5 and backend.max_n == 2  # requests of 2, 2, 1 choices seeded 3, 5, 7
    assert [c.text for c in out] == texts(2, 3) + texts(2, 5) + texts(1, 7)


def test_greedy_logprob_equals_score_through_the_completions_endpoint(server_url, tiny_hf_lm_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_hf_lm_dir, local_files_only=True)
    backend = OpenAIBackend(server_url, render=lambda m: tokenizer.apply_chat_template(
        m, tokenize=False, add_generation_prompt=True))
    c = backend.generate(PROMPT, max_tokens=8)[0]
    assert c.text and c.logprob == pytest.approx(backend.score(PROMPT, c.text), abs=1e-3)
    assert OpenAIBackend(server_url).score("pick up the", " red block") < 0  # plain-text rendering


def test_response_schema_is_sent_and_accepted(server_url):
    out = OpenAIBackend(server_url).generate(PROMPT, max_tokens=4, response_schema=PLAN_SCHEMA)
    assert len(out) == 1


def test_completions_echo_returns_prompt_token_logprobs(server_url):
    import openai

    client = openai.OpenAI(base_url=server_url, api_key="none")
    response = client.completions.create(model="tiny", prompt=PROMPT, echo=True, logprobs=1, max_tokens=0)
    lp = response.choices[0].logprobs
    assert response.choices[0].text == PROMPT
    assert lp.tokens == PROMPT.split() and lp.token_logprobs[0] is None
    assert lp.text_offset == [PROMPT.index(w) for w in PROMPT.split()]


@pytest.mark.parametrize(("route", "body", "field"), [
    ("chat/completions", {"messages": "pick up"}, "messages"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "temperature": -1}, "temperature"),
    ("chat/completions", {"messages": [{"role": "user", "content": "x"}], "n": "two"}, "'n'"),
    ("completions", {"prompt": [1, 2, 3]}, "prompt"),
])
def test_bad_requests_get_http_400_naming_the_field(server_url, route, body, field):
    request = urllib.request.Request(f"{server_url}/{route}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 400
    error = json.load(caught.value)["error"]
    assert error["type"] == "invalid_request_error" and field in error["message"]


# ---- stubs: servers that reject fields, answer slowly, or have no completions endpoint ----

class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, reject: frozenset[str] = frozenset(), delay: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _StubHandler)
        self.reject, self.delay, self.requests = reject, delay, []
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _StubHandler(BaseHTTPRequestHandler):
    """Like llama.cpp: one choice per request, a 400 for fields it does not take, no /completions."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append(body)
        time.sleep(self.server.delay)
        rejected = sorted(self.server.reject & body.keys())
        if not self.path.endswith("/chat/completions"):
            self._reply(404, {"error": {"message": "not found"}})
        elif rejected:
            self._reply(400, {"error": {"message": f"'{rejected[0]}' is not supported"}})
        else:
            self._reply(200, {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                              "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                           "message": {"role": "assistant", "content": "ok"}}],
                              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    def _reply(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub():
    servers = []

    def start(**kwargs) -> StubServer:
        servers.append(StubServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_rejected_response_format_is_retried_without_and_remembered(stub):
    server = stub(reject=frozenset({"response_format"}))
    backend = OpenAIBackend(server.url, model="m", max_retries=0)
    for _ in range(2):
        assert backend.generate(PROMPT, response_schema=PLAN_SCHEMA)[0].text == "ok"
    assert ["response_format" in r for r in server.requests] == [True, False, False]
    assert all(r["logprobs"] for r in server.requests)


def test_rejected_n_falls_back_to_one_seeded_request_per_choice(stub):
    server = stub(reject=frozenset({"n"}))
    backend = OpenAIBackend(server.url, model="m", max_retries=0)
    out = backend.generate(PROMPT, n=3, temperature=1.0, seed=5)
    assert len(out) == 3 and out[0].token_logprobs is None and backend.max_n == 1
    assert [(r.get("n"), r["seed"]) for r in server.requests] == [(3, 5), (None, 5), (None, 6), (None, 7)]


def test_slow_server_times_out_with_a_clear_error(stub):
    server = stub(delay=2.0)
    backend = OpenAIBackend(server.url, model="m", timeout=0.3, max_retries=0)
    start = time.monotonic()
    with pytest.raises(LLMError, match="did not answer within 0.3 s"):
        backend.generate(PROMPT)
    assert time.monotonic() - start < 1.5


def test_unreachable_server_is_a_quick_clear_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    backend = OpenAIBackend(url, model="m", timeout=1.0, max_retries=1)
    start = time.monotonic()
    with pytest.raises(LLMError, match=f"cannot reach {url} \\(model m\\)"):
        backend.generate(PROMPT)
    assert time.monotonic() - start < 5
    with pytest.raises(ValueError, match="n must be"):
        backend.generate(PROMPT, n=0)


def test_server_without_completions_endpoint_cannot_score(stub):
    backend = OpenAIBackend(stub().url, model="m", max_retries=0)
    with pytest.raises(ScoringUnsupported, match="cannot echo"):
        backend.score(PROMPT, "ok")


def test_factory_parses_openai_specs():
    backend = make_llm("openai:http://localhost:8000/v1#llama3", timeout=5.0)
    assert isinstance(backend, OpenAIBackend)
    assert (backend.base_url, backend.model, backend.name) == (
        "http://localhost:8000/v1", "llama3", "openai:http://localhost:8000/v1#llama3")
    assert make_llm("openai:http://localhost:8000/v1").name == "openai:http://localhost:8000/v1"
