"""The local Hugging Face backend on a tiny random model: shapes, seeds, stop strings, logprobs vs score."""

from __future__ import annotations

import math

import pytest

from agent_stack.cognition.llm import LLM, LLMError, make_llm
from agent_stack.cognition.llm import factory as llm_factory

PROMPT = "pick up the red block"


@pytest.fixture(scope="module")
def hf_lm(tiny_hf_lm_dir):
    from agent_stack.cognition.llm.hf_backend import HFBackend

    return HFBackend(tiny_hf_lm_dir)


def test_is_an_llm_and_renders_the_chat_template(hf_lm):
    assert isinstance(hf_lm, LLM)
    text = hf_lm.render([{"role": "system", "content": "plan"}, {"role": "user", "content": PROMPT}])
    assert text == f"<|system|> plan <|user|> {PROMPT} <|assistant|>"
    assert hf_lm.render(PROMPT) == f"<|user|> {PROMPT} <|assistant|>"


def test_sampling_returns_n_completions_with_logprobs(hf_lm):
    out = hf_lm.generate(PROMPT, n=3, temperature=1.0, max_tokens=6, seed=0)
    assert len(out) == 3
    for c in out:
        assert 1 <= c.tokens <= 6
        assert c.finish_reason in ("stop", "length")
        assert c.token_logprobs is not None and len(c.token_logprobs) <= c.tokens
        assert all(lp <= 0 and math.isfinite(lp) for lp in c.token_logprobs)


def test_seed_makes_sampling_reproducible(hf_lm):
    def sample(seed):
        return [c.text for c in hf_lm.generate(PROMPT, n=4, temperature=1.0, max_tokens=8, seed=seed)]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)
    assert len(set(sample(1))) > 1


def test_greedy_copies_one_answer_n_times(hf_lm):
    out = hf_lm.generate(PROMPT, n=3, max_tokens=6)
    assert len(out) == 3 and len({c.text for c in out}) == 1


def test_greedy_logprob_equals_score(hf_lm):
    messages = [{"role": "system", "content": "plan"}, {"role": "user", "content": PROMPT}]
    c = hf_lm.generate(messages, max_tokens=10)[0]
    assert c.text and len(c.token_logprobs) == len(c.text.split())
    assert c.logprob == pytest.approx(hf_lm.score(messages, c.text), abs=1e-4)
    assert hf_lm.score(messages, "") == 0.0


def test_stop_string_truncates_the_text_and_its_logprobs(hf_lm):
    full = hf_lm.generate(PROMPT, max_tokens=10)[0]
    words = full.text.split()
    stop = words[1]
    cut = full.text.index(stop)
    c = hf_lm.generate(PROMPT, max_tokens=10, stop=[stop, "never appears"])[0]
    assert c.text == full.text[:cut] and c.finish_reason == "stop"
    assert c.token_logprobs == full.token_logprobs[:len(full.text[:cut].split())]


def test_max_tokens_is_clamped_to_the_context(hf_lm):
    long_prompt = " ".join(["red"] * 120)  # 123 tokens with the template; the context is 128
    c = hf_lm.generate(long_prompt, temperature=1.0, max_tokens=50, seed=0)[0]
    assert c.tokens <= 5
    with pytest.raises(LLMError, match="context"):
        hf_lm.generate(" ".join(["red"] * 200))


def test_text_logprobs_report_every_token_with_its_offset(hf_lm):
    entries = hf_lm.text_logprobs(PROMPT)
    assert [e.token for e in entries] == PROMPT.split()
    assert [e.offset for e in entries] == [PROMPT.index(w) for w in PROMPT.split()]
    assert entries[0].logprob is None and all(e.logprob < 0 for e in entries[1:])


@pytest.mark.parametrize("bad", [{"n": 0}, {"temperature": -0.1}, {"top_p": 0.0}, {"top_p": 1.5},
                                 {"max_tokens": 0}])
def test_rejects_impossible_sampling_settings(hf_lm, bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        hf_lm.generate(PROMPT, **bad)


def test_missing_or_non_model_directory_is_a_clear_error(tmp_path):
    from agent_stack.cognition.llm.hf_backend import HFBackend

    with pytest.raises(LLMError, match="no model directory"):
        HFBackend(tmp_path / "absent")
    with pytest.raises(LLMError, match="no config.json"):
        HFBackend(tmp_path)


def test_factory_specs(tiny_hf_lm_dir, tmp_path, monkeypatch):
    assert make_llm(f"hf:{tiny_hf_lm_dir}").name == f"hf:{tiny_hf_lm_dir}"
    with pytest.raises(ValueError, match="embedded"):
        make_llm("gpt-4")
    monkeypatch.setattr(llm_factory, "EMBEDDED_WEIGHTS", tmp_path)
    with pytest.raises(LLMError, match="train planner-lm"):
        make_llm("embedded")
    monkeypatch.setattr(llm_factory, "EMBEDDED_WEIGHTS", tiny_hf_lm_dir)
    assert make_llm("embedded").name == "embedded"
