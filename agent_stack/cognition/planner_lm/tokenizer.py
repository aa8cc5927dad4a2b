"""Word-level tokenizer of the planner LM, built from its corpus (nothing is downloaded).

A token is a word or a run of punctuation, carrying the space before it as "▁" (so `{"`, `":`, `▁"` and
`"}},` are single tokens and a JSON plan is ~20 tokens a step); decoding maps "▁" back to spaces and joins
without separators, so `decode(encode(text)) == text` for any text made of known tokens — a plan comes
back as valid JSON. The chat template renders only the user turns (the model learned the system prompt
implicitly) after the bos token; the tokenizer adds no special tokens itself, so applying the template
and tokenizing with or without `add_special_tokens` gives the same ids in training and at inference.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

BOS, EOS, PAD, UNK = "<s>", "</s>", "<pad>", "<unk>"
SPACE = "\u2581"
CHAT_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                 "{{ message['content'] }}\n{% endif %}{% endfor %}")
"""User turns only, each followed by a newline; the generation prompt is empty (the answer starts with
"Thought:")."""

_TOKEN = Regex(f"{SPACE}?[A-Za-z0-9_]+|{SPACE}?[^A-Za-z0-9_{SPACE}\\s]+|\\s")


def build_tokenizer(texts: Iterable[str], min_frequency: int = 1) -> PreTrainedTokenizerFast:
    """A tokenizer whose vocabulary is every token of `texts` seen at least `min_frequency` times."""
    tokenizer = Tokenizer(models.WordLevel(unk_token=UNK))
    tokenizer.normalizer = normalizers.Replace(" ", SPACE)
    tokenizer.pre_tokenizer = pre_tokenizers.Split(_TOKEN, behavior="isolated")
    tokenizer.decoder = decoders.Replace(SPACE, " ")
    trainer = trainers.WordLevelTrainer(special_tokens=[PAD, BOS, EOS, UNK], min_frequency=min_frequency)
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                   unk_token=UNK, chat_template=CHAT_TEMPLATE,
                                   clean_up_tokenization_spaces=False, model_max_length=4096)
