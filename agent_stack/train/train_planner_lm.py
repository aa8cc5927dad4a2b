"""`agent-stack train planner-lm`: train the embedded planner LM on the synthetic planning corpus.

    agent-stack train planner-lm --out agent_stack/cognition/planner_lm/weights --steps 3000
    agent-stack train planner-lm --out /tmp/tiny --steps 5 --hidden-size 32 --num-layers 1 --corpus-size 200

Builds the corpus (`cognition.planner_lm.corpus`, plus PDDL Blocksworld examples when that module exists),
a word-level tokenizer from it, and a small Llama; trains with AdamW, warmup + cosine and gradient
clipping, the loss on completion tokens only (the prompt is context, not a target). The result is a
Hugging Face folder (safetensors, tokenizer with chat template, generation config) written atomically to
--out, with `corpus_card.json` and README.md giving corpus size, training time and the held-out
exact-plan accuracy (greedy decode -> parse_plan -> equal to the target plan).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import random
import sys
import time
from collections import Counter
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaForCausalLM

from agent_stack.checkpoint import write_directory_atomically, write_json
from agent_stack.cognition.plan import PlanParseError, parse_plan
from agent_stack.cognition.planner_lm.configuration_planner_lm import PlannerLMConfig
from agent_stack.cognition.planner_lm.corpus import Example, domain_examples, make_corpus
from agent_stack.cognition.planner_lm.tokenizer import CHAT_TEMPLATE, build_tokenizer
from agent_stack.native_libraries import import_tensorflow

CARD_FILE = "corpus_card.json"
MAX_NEW_TOKENS = 256


@dataclasses.dataclass
class TrainConfig:
    steps: int = 3000
    """Optimiser steps."""
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    corpus_size: int = 40_000
    """Tabletop training examples (PDDL examples come on top, `pddl_fraction` of the mixture)."""
    pddl_fraction: float = 0.2
    """Share of PDDL Blocksworld examples in the mixture, when `cognition.pddl.corpus` exists."""
    word_dropout: float = 0.0
    """Chance that each instruction word becomes <unk> in a training batch: a user's unseen words then read
    as context the model has learned to plan around, not as noise it never saw."""
    heldout_size: int = 300
    """Held-out examples (unseen phrasings) decoded for the exact-plan accuracy at the end; 0 skips it."""
    time_limit_s: float | None = None
    """Stop after this much training time; the cosine then runs on time, so the LR still ends low."""
    init_from: str | None = None
    """Continue training the HF folder at this path (its tokenizer is kept) instead of a fresh model."""
    log_every: int = 50
    threads: int = 2
    """torch CPU threads (the machine is shared)."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "corpus_size", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1 or self.grad_clip <= 0:
            raise ValueError("TrainConfig needs lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1, "
                             "grad_clip > 0")
        if self.time_limit_s is not None and self.time_limit_s <= 0:
            raise ValueError(f"TrainConfig.time_limit_s must be > 0, got {self.time_limit_s}")
        if not 0 <= self.pddl_fraction < 1 or self.heldout_size < 0 or not 0 <= self.word_dropout < 1:
            raise ValueError("TrainConfig needs 0 <= pddl_fraction < 1, 0 <= word_dropout < 1 and "
                             "heldout_size >= 0")


def lr_multiplier(train: TrainConfig, step: int, elapsed_s: float) -> float:
    """Linear warmup, then cosine down to min_lr_ratio over steps or time, whichever is further along."""
    if step < train.warmup_steps:
        return (step + 1) / train.warmup_steps
    progress = (step - train.warmup_steps) / max(1, train.steps - train.warmup_steps)
    if train.time_limit_s is not None:
        progress = max(progress, elapsed_s / train.time_limit_s)
    cosine = 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    return train.min_lr_ratio + (1.0 - train.min_lr_ratio) * cosine


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on norms (tensors with fewer than 2 dims)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": [p for p in model.parameters() if p.ndim < 2], "weight_decay": 0.0}]


def prompt_text(tokenizer, example: Example) -> str:
    """The prompt exactly as an HF backend renders it: the chat template with the generation prompt."""
    return tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)


def build_corpus(train: TrainConfig) -> list[Example]:
    examples = make_corpus("train", train.corpus_size, train.seed)
    extra = round(train.corpus_size * train.pddl_fraction / (1 - train.pddl_fraction))
    return examples + (domain_examples(extra, train.seed) if extra else [])


def corpus_texts(examples: list[Example]) -> list[str]:
    """What the tokenizer must cover: every user turn and completion."""
    return [m["content"] for e in examples for m in e.messages if m["role"] == "user"] + \
           [e.completion for e in examples]


@dataclasses.dataclass(frozen=True)
class EncodedExample:
    tokens: list[int]
    """prompt + completion + eos"""
    prompt_length: int
    instruction_start: int
    """Index of the instruction's first token; the instruction runs to the end of the prompt."""


INSTRUCTION_LABEL = "Instruction:"


def encode(tokenizer, examples: list[Example]) -> list[EncodedExample]:
    encoded = []
    for example in examples:
        text = prompt_text(tokenizer, example)
        prompt = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        label = text.rfind(INSTRUCTION_LABEL)  # PDDL prompts have none: nothing is dropped there
        label_end = len(text) if label < 0 else label + len(INSTRUCTION_LABEL)
        instruction_start = next((i for i, (start, _) in enumerate(prompt["offset_mapping"]) if start >= label_end),
                                 len(prompt["input_ids"]))
        completion = tokenizer(example.completion, add_special_tokens=False)["input_ids"]
        encoded.append(EncodedExample(prompt["input_ids"] + completion + [tokenizer.eos_token_id],
                                      len(prompt["input_ids"]), instruction_start))
    return encoded


def batches(encoded: list[EncodedExample], batch_size: int, pad_id: int, rng: random.Random, *,
            unk_id: int, word_dropout: float = 0.0):
    """Endless batches of similar length (shuffled chunks sorted by length, so little padding), with
    labels -100 on the prompt and the padding: the loss is on the completion only. With `word_dropout`,
    instruction tokens (not the trailing newline) become `unk_id` at that rate, drawn anew each epoch."""
    while True:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        chunk = batch_size * 50
        groups = []
        for start in range(0, len(order), chunk):
            part = sorted(order[start:start + chunk], key=lambda i: len(encoded[i].tokens))
            groups += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
        rng.shuffle(groups)
        for group in groups:
            width = max(len(encoded[i].tokens) for i in group)
            ids = torch.full((len(group), width), pad_id)
            labels = torch.full((len(group), width), -100)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            for row, i in enumerate(group):
                tokens, prompt_len = list(encoded[i].tokens), encoded[i].prompt_length
                for position in range(encoded[i].instruction_start, prompt_len - 1):
                    if word_dropout and rng.random() < word_dropout:
                        tokens[position] = unk_id
                ids[row, :len(tokens)] = torch.tensor(tokens)
                labels[row, prompt_len:len(tokens)] = torch.tensor(tokens[prompt_len:])
                mask[row, :len(tokens)] = 1
            yield ids, mask, labels


def make_model(model_config: PlannerLMConfig, tokenizer) -> LlamaForCausalLM:
    hf = model_config.hf_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id,
                                tokenizer.pad_token_id)
    return LlamaForCausalLM(hf)


def save_folder(directory: Path, model: LlamaForCausalLM, tokenizer, model_config: PlannerLMConfig) -> None:
    """HF folder: weights in the config's dtype (safetensors), tokenizer with chat template, greedy
    generation config. The chat template also goes into tokenizer_config.json for older transformers."""
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
    dtype = getattr(torch, model_config.dtype)
    model.to(dtype).save_pretrained(directory, safe_serialization=True)
    model.to(torch.float32)
    tokenizer.save_pretrained(directory)
    config_path = directory / "tokenizer_config.json"
    data = json.loads(config_path.read_text())
    data.update(chat_template=CHAT_TEMPLATE, tokenizer_class="PreTrainedTokenizerFast")
    write_json(config_path, data)
    model_config.save(directory)


@torch.no_grad()
def exact_plan_accuracy(directory: Path, examples: list[Example], batch_size: int = 32) -> dict:
    """Greedy-decode each prompt with the saved folder (as the hf backend loads it) and compare the parsed
    plan with the target; returns overall and per-kind accuracy and a few failures."""
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, local_files_only=True, dtype=torch.float32).eval()
    correct: Counter = Counter()
    total: Counter = Counter()
    failures = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start:start + batch_size]
        inputs = tokenizer([prompt_text(tokenizer, e) for e in chunk], return_tensors="pt", padding=True,
                           add_special_tokens=False)
        output = model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS)
        texts = tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        for example, text in zip(chunk, texts):
            try:
                ok = parse_plan(text) == example.plan
            except PlanParseError:
                ok = False
            total[example.kind] += 1
            correct[example.kind] += ok
            if not ok and len(failures) < 10:
                failures.append({"instruction": example.instruction, "feedback": example.feedback,
                                 "target": example.plan.calls(), "output": text})
    return {"accuracy": sum(correct.values()) / max(1, sum(total.values())), "n": sum(total.values()),
            "by_kind": {k: round(correct[k] / total[k], 4) for k in sorted(total)}, "failures": failures}


def train_planner_lm(train: TrainConfig, model_config: PlannerLMConfig, out: Path, *,
                     logdir: Path | None = None, progress: bool = True) -> dict:
    """Train and write the HF folder to `out` atomically; returns the card (also saved in the folder)."""
    out = Path(out)
    torch.manual_seed(train.seed)
    torch.set_num_threads(train.threads)
    started = time.monotonic()
    examples = build_corpus(train)
    previous = []
    if train.init_from:
        tokenizer = AutoTokenizer.from_pretrained(train.init_from, local_files_only=True)
        model = LlamaForCausalLM.from_pretrained(train.init_from, local_files_only=True, dtype=torch.float32)
        card_path = Path(train.init_from) / CARD_FILE
        if card_path.is_file():
            old = json.loads(card_path.read_text())
            previous = old.get("previous_runs", []) + [old["train"]]
    else:
        tokenizer = build_tokenizer(corpus_texts(examples))
        model = make_model(model_config, tokenizer)
    encoded = encode(tokenizer, examples)
    optimizer = torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr, betas=(0.9, 0.95))
    # torch.utils.tensorboard imports TensorFlow where it is installed. Loaded the usual way, TensorFlow
    # crashes a process that also loads MuJoCo (agent_stack/native_libraries.py): load it isolated first.
    import_tensorflow()
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(logdir or out.parent / f"{out.name}_tensorboard"))
    stream = batches(encoded, train.batch_size, tokenizer.pad_token_id, random.Random(train.seed),
                     unk_id=tokenizer.unk_token_id, word_dropout=train.word_dropout)
    corpus_s = time.monotonic() - started
    losses: list[float] = []
    model.train()
    step, train_started = 0, time.monotonic()
    with _progress(progress) as bar:
        task = bar.add_task("train planner-lm", total=train.steps, loss=float("nan"))
        while step < train.steps and (train.time_limit_s is None
                                      or time.monotonic() - train_started < train.time_limit_s):
            lr = train.lr * lr_multiplier(train, step, time.monotonic() - train_started)
            for group in optimizer.param_groups:
                group["lr"] = lr
            step += 1
            ids, mask, labels = next(stream)
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
            bar.update(task, completed=step, loss=losses[-1])
            if step % train.log_every == 0:
                recent = sum(losses[-train.log_every:]) / len(losses[-train.log_every:])
                if progress and not bar.console.is_terminal:  # a log file gets a line instead of the bar
                    bar.console.log(f"step {step}/{train.steps} loss {recent:.4f}")
                writer.add_scalar("train/loss", recent, step)
                writer.add_scalar("train/grad_norm", float(grad_norm), step)
                writer.add_scalar("train/lr", lr, step)
    train_s = time.monotonic() - started - corpus_s
    card = {
        "model": {"architecture": "LlamaForCausalLM", **dataclasses.asdict(model_config),
                  "parameters": sum(p.numel() for p in model.parameters()), "vocab_size": len(tokenizer)},
        "corpus": {"examples": len(examples), "by_kind": dict(Counter(e.kind for e in examples)),
                   "completion_tokens": sum(len(e.tokens) - e.prompt_length for e in encoded),
                   "tokens": sum(len(e.tokens) for e in encoded),
                   "pddl_blocksworld": any(e.kind == "pddl" for e in examples)},
        "train": {**dataclasses.asdict(train), "steps_done": step, "initial_loss": round(losses[0], 4),
                  "final_loss": round(sum(losses[-train.log_every:]) / len(losses[-train.log_every:]), 4),
                  "corpus_seconds": round(corpus_s, 1), "train_seconds": round(train_s, 1),
                  "device": "cpu", "torch_threads": train.threads},
        "previous_runs": previous,
    }

    def write(tmp: Path) -> None:
        save_folder(tmp, model, tokenizer, model_config)
        if train.heldout_size:
            heldout = make_corpus("heldout", train.heldout_size, train.seed)
            evaluated = exact_plan_accuracy(tmp, heldout)
            card["heldout"] = {"split": "heldout (phrasing templates, connectives and relation phrasings "
                                        "never seen in training)", **evaluated}
            writer.add_scalar("eval/heldout_exact_plan_accuracy", evaluated["accuracy"], step)
        write_json(tmp / CARD_FILE, card)
        (tmp / "README.md").write_text(_readme(card))

    write_directory_atomically(out, write)
    writer.close()
    return card


def _readme(card: dict) -> str:
    heldout = card.get("heldout")
    accuracy = (f"{heldout['accuracy']:.1%} exact-plan accuracy on {heldout['n']} held-out instructions "
                f"(by kind: {heldout['by_kind']})" if heldout else "not evaluated")
    model, corpus, train = card["model"], card["corpus"], card["train"]
    return f"""# Embedded planner LM

A {model['parameters'] / 1e6:.2f} M parameter Llama-architecture causal LM ({model['num_layers']} layers,
width {model['hidden_size']}, word-level vocabulary of {model['vocab_size']}), trained by
`agent-stack train planner-lm` on a synthetic corpus of tabletop planning prompts
(`agent_stack/cognition/planner_lm/corpus.py`). Load it with the `hf` backend (transformers
AutoModelForCausalLM + AutoTokenizer, local files only); the chat template renders the user message only.

- corpus: {corpus['examples']} examples ({corpus['by_kind']}), {corpus['tokens']} tokens;
  PDDL Blocksworld mixed in: {corpus['pddl_blocksworld']}
- training: {train['steps_done']} steps of {train['batch_size']}, {train['train_seconds']:.0f} s on CPU
  ({train['torch_threads']} threads), completion loss {train['initial_loss']} -> {train['final_loss']}
- held-out: {accuracy}

Numbers are from `corpus_card.json`, which the training run wrote.
"""


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), disable=not enabled)


# --- command line ----------------------------------------------------------------------------------------

MODEL_FLAGS = {"hidden_size": int, "num_layers": int, "num_heads": int, "intermediate_size": int,
               "max_length": int, "dtype": str}
TRAIN_FLAGS = {"steps": int, "batch_size": int, "lr": float, "weight_decay": float, "warmup_steps": int,
               "min_lr_ratio": float, "grad_clip": float, "corpus_size": int, "pddl_fraction": float,
               "word_dropout": float, "heldout_size": int, "time_limit_s": float, "init_from": str,
               "log_every": int, "threads": int, "seed": int}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-stack train planner-lm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the HF model folder to write (replaced)")
    parser.add_argument("--logdir", type=Path, help="TensorBoard directory (default: <out>_tensorboard)")
    parser.add_argument("--batch", type=int, dest="batch_size", help="alias of --batch-size")
    parser.add_argument("--no-progress", action="store_true")
    for name, kind in {**MODEL_FLAGS, **TRAIN_FLAGS}.items():
        if name != "batch_size":
            parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)
    parser.add_argument("--batch-size", type=int, dest="batch_size")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        given = {n: v for n, v in vars(args).items() if v is not None}
        model_config = PlannerLMConfig(**{n: given[n] for n in MODEL_FLAGS if n in given})
        train = TrainConfig(**{n: given[n] for n in TRAIN_FLAGS if n in given})
    except (TypeError, ValueError) as error:
        print(f"agent-stack train planner-lm: {error}", file=sys.stderr)
        return 2
    card = train_planner_lm(train, model_config, args.out, logdir=args.logdir, progress=not args.no_progress)
    heldout = card.get("heldout")
    print(f"wrote {args.out}: loss {card['train']['initial_loss']} -> {card['train']['final_loss']} in "
          f"{card['train']['train_seconds']:.0f} s" +
          (f", held-out exact-plan accuracy {heldout['accuracy']:.1%} (n={heldout['n']})" if heldout else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
