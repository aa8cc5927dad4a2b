"""The shipped planner LM: loads offline as a plain HF folder, plans held-out instructions correctly, stays
small; the training CLI writes such a folder; a short run learns (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from agent_stack.cognition.plan import PlanParseError, parse_plan
from agent_stack.cognition.planner_lm.configuration_planner_lm import PlannerLMConfig
from agent_stack.cognition.planner_lm.corpus import make_corpus
from agent_stack.train import cli
from agent_stack.train.train_planner_lm import CARD_FILE, TrainConfig, prompt_text, train_planner_lm

WEIGHTS = Path(__file__).resolve().parents[2] / "agent_stack" / "cognition" / "planner_lm" / "weights"
TINY_MODEL = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--intermediate-size", "64"]


@pytest.fixture(scope="module")
def shipped():
    tokenizer = AutoTokenizer.from_pretrained(WEIGHTS, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(WEIGHTS, local_files_only=True).eval()  # as the hf backend
    return tokenizer, model


def _greedy(tokenizer, model, example) -> str:
    ids = tokenizer(prompt_text(tokenizer, example), return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, do_sample=False, max_new_tokens=256)
    return tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


def test_shipped_folder_is_small_and_complete():
    names = {p.name for p in WEIGHTS.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "generation_config.json", CARD_FILE, "README.md"} <= names
    assert sum(p.stat().st_size for p in WEIGHTS.iterdir()) <= 8 * 2**20
    assert "chat_template" in json.loads((WEIGHTS / "tokenizer_config.json").read_text())
    card = json.loads((WEIGHTS / CARD_FILE).read_text())
    assert card["heldout"]["n"] >= 200 and 0 <= card["heldout"]["accuracy"] <= 1


def test_shipped_model_plans_heldout_instructions(shipped):
    """Greedy decoding of fixed held-out single-step examples (phrasings never trained on) yields plans with
    exact plans for some (3 of 8 when shipped); an untrained model gets none. The shipped model is not yet
    reliable at copying colours (see corpus_card.json for its held-out accuracy), hence the low bar."""
    tokenizer, model = shipped
    examples = [e for e in make_corpus("heldout", 60, seed=123) if e.kind == "single"][:8]
    skills_right = exact = 0
    for example in examples:
        try:
            plan = parse_plan(_greedy(tokenizer, model, example))
        except PlanParseError:
            continue
        skills_right += [s.skill for s in plan.subgoals] == [s.skill for s in example.plan.subgoals]
        exact += plan == example.plan
    assert skills_right >= 2 and exact >= 2, f"{skills_right} skill sequences, {exact} exact plans of 8"


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="num_heads"):
        PlannerLMConfig(hidden_size=30, num_heads=4)
    with pytest.raises(ValueError, match="dtype"):
        PlannerLMConfig(dtype="int8")


def test_cli_writes_a_loadable_hf_folder(tmp_path):
    out = tmp_path / "lm"
    code = cli.main(["planner-lm", "--out", str(out), "--steps", "3", *TINY_MODEL, "--corpus-size", "60",
                     "--heldout-size", "2", "--no-progress", "--logdir", str(tmp_path / "tb")])
    assert code == 0
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(out, local_files_only=True)
    assert model.config.vocab_size == len(tokenizer)
    assert json.loads((out / CARD_FILE).read_text())["train"]["steps_done"] == 3
    assert not list(tmp_path.glob(".lm.tmp-*"))  # written atomically


@pytest.mark.slow
def test_short_training_run_drives_the_completion_loss_down(tmp_path):
    card = train_planner_lm(TrainConfig(steps=250, batch_size=16, corpus_size=1500, heldout_size=0,
                                        warmup_steps=20, pddl_fraction=0.0),
                            PlannerLMConfig(hidden_size=64, num_layers=2, num_heads=2, intermediate_size=128),
                            tmp_path / "lm", logdir=tmp_path / "tb", progress=False)
    assert card["train"]["final_loss"] < 0.3 * card["train"]["initial_loss"]
