"""Fixtures for the cognition tests: a tiny random causal LM directory, built offline in seconds."""

from __future__ import annotations

import pytest

TINY_WORDS = ("pick up put the a red green blue yellow block pad bin on in to and then move push place "
              "stack Plan: Thought: Scene: Instruction: Feedback: { } [ ] : , subgoals skill args color "
              "target").split()
TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="session")
def tiny_hf_lm_dir(tmp_path_factory):
    """A 2-layer random GPT-2 with a word-level tokenizer and a chat template, saved with
    `save_pretrained`. Word-level tokens decode and re-encode exactly, so generated text scores as the
    tokens that produced it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[UNK]", *TINY_WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece()  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", eos_token="<|end|>",
                                        pad_token="<|end|>")
    tokenizer.add_tokens(["<|system|>", "<|user|>", "<|assistant|>"])
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    eos = tokenizer.eos_token_id
    config = GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=128, vocab_size=len(tokenizer),
                        bos_token_id=eos, eos_token_id=eos, pad_token_id=eos, initializer_range=0.5)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    out = tmp_path_factory.mktemp("tiny_hf_lm")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
