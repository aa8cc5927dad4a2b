"""The planner LM corpus: deterministic, every target plan runs on its scene, held-out phrasings are never
trained on, and the training prompt is exactly what an HF backend renders at inference."""

from __future__ import annotations

import random

import pytest

from agent_stack.cognition.plan import parse_plan
from agent_stack.cognition.planner_lm.corpus import (
    SPLITS,
    make_corpus,
    run,
    template_ids,
)
from agent_stack.cognition.planner_lm.tokenizer import build_tokenizer
from agent_stack.cognition.prompts import planner_messages
from agent_stack.train.train_planner_lm import batches, corpus_texts, encode, prompt_text


@pytest.fixture(scope="module")
def corpora():
    return {split: make_corpus(split, 300, seed=0) for split in SPLITS}


def test_deterministic_for_a_seed():
    first, again, other = (make_corpus("train", 40, seed=s) for s in (3, 3, 4))
    assert [(e.messages, e.completion) for e in first] == [(e.messages, e.completion) for e in again]
    assert [e.completion for e in first] != [e.completion for e in other]


@pytest.mark.parametrize("split", SPLITS)
def test_every_target_plan_passes_the_preconditions(corpora, split):
    for example in corpora[split]:
        assert run(example.scene, list(example.fixed) + list(example.plan.subgoals)) is not None, example
        assert parse_plan(example.completion) == example.plan
        assert example.messages == planner_messages(example.instruction, example.scene.describe(),
                                                    example.feedback)


def test_all_kinds_are_generated(corpora):
    assert {e.kind for e in corpora["train"]} == {"single", "compound", "goal", "replan", "partial"}
    assert any(e.feedback.startswith("done: ") or e.feedback.startswith("failed: ") for e in corpora["train"])
    assert any(e.feedback.startswith("planned so far: ") for e in corpora["train"])


def test_heldout_phrasings_are_disjoint_from_training(corpora):
    train_ids, heldout_ids = template_ids("train"), template_ids("heldout")
    assert not train_ids & heldout_ids
    assert all(set(e.templates) <= train_ids for e in corpora["train"])
    for example in corpora["heldout"]:
        assert example.templates and set(example.templates) <= heldout_ids, example
    train_instructions = {e.instruction for e in make_corpus("train", 600, seed=0)}
    heldout_instructions = {e.instruction for e in corpora["heldout"]}
    assert len(heldout_instructions) >= 200
    assert not heldout_instructions & train_instructions


def test_training_prompt_is_the_inference_prompt(corpora):
    examples = corpora["train"][:100]
    tokenizer = build_tokenizer(corpus_texts(examples))
    for example, encoded in zip(examples, encode(tokenizer, examples)):
        ids, prompt_len = encoded.tokens, encoded.prompt_length
        rendered = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
        assert rendered == prompt_text(tokenizer, example) == f"<s>{example.messages[-1]['content']}\n"
        templated = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True)
        templated = templated["input_ids"] if isinstance(templated, dict) or hasattr(templated, "keys") \
            else templated
        assert ids[:prompt_len] == list(templated)
        assert tokenizer(rendered)["input_ids"] == ids[:prompt_len]  # add_special_tokens adds nothing
        assert tokenizer.decode(ids[prompt_len:], skip_special_tokens=True) == example.completion
        assert ids[-1] == tokenizer.eos_token_id
        instruction = tokenizer.decode(ids[encoded.instruction_start:prompt_len], skip_special_tokens=True)
        assert instruction == f" {example.instruction}\n"


def test_word_dropout_replaces_only_instruction_words(corpora):
    examples = corpora["train"][:32]
    tokenizer = build_tokenizer(corpus_texts(examples))
    unk = tokenizer.unk_token_id
    dropped = 0
    for source in encode(tokenizer, examples):
        ids, _, labels = next(batches([source], 1, tokenizer.pad_token_id, random.Random(0), unk_id=unk,
                                      word_dropout=0.5))
        assert labels[0].tolist()[source.prompt_length:] == source.tokens[source.prompt_length:]
        for position, (seen, original) in enumerate(zip(ids[0].tolist(), source.tokens)):
            if seen != original:
                assert seen == unk and source.instruction_start <= position < source.prompt_length - 1
                dropped += 1
    assert dropped > 0
