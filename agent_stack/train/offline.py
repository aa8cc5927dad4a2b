"""The offline training loop shared by every policy trained from RLDS windows (the VLA, Diffusion Policy).

AdamW with linear warmup and cosine decay, gradient clipping and accumulation, optional EMA of the
weights, bf16 autocast on GPU, DistributedDataParallel under torchrun. Checkpoints
(`<out>/checkpoints/step_N/`) hold the policy files (what the caller's `save_policy` writes) and the
training state; `resume=True` restores step, optimiser, scheduler, RNG and the data position, so the
resumed run computes exactly what the uninterrupted run would have. The model is any module whose
forward maps a pipeline batch to `(loss, metrics)` (LeRobot's convention).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.tensorboard import SummaryWriter

import agent_stack.data  # noqa: F401  (loads TensorFlow isolated: see agent_stack/native_libraries.py)
from agent_stack.checkpoint import (
    CHECKPOINTS_DIR,
    WEIGHTS_FILE,
    latest_checkpoint,
    load_weights,
    read_json,
    step_dir_name,
    write_directory_atomically,
    write_json,
)
from agent_stack.data.pipeline import DataConfig, parse_mixture
from agent_stack.data.standardize import dataset_entry
from agent_stack.data.torch_dataset import RLDSWindowDataset, make_dataloader
from agent_stack.normalization import DatasetStatistics
from agent_stack.train.distributed import DistributedContext, setup_distributed, teardown_distributed
from agent_stack.train.optimization import parameter_groups, warmup_cosine
from agent_stack.train.state import (
    gather_parameter_digests,
    gather_rng_states,
    load_training_state,
    save_training_state,
)

RUN_CONFIG = "run_config.json"
"""The run's train / model / data configs, written when it starts; `--resume` reads them back."""

SavePolicy = Callable[[Path, nn.Module, DatasetStatistics, dict], None]
"""(directory, model, statistics of the policy's dataset, metadata) -> writes the policy's files."""


@dataclasses.dataclass
class TrainConfig:
    steps: int = 20_000
    """Optimiser steps."""
    batch_size: int = 64
    """Samples per optimiser step and process (split over `grad_accumulation` micro-batches)."""
    grad_accumulation: int = 1
    lr: float = 3e-4
    weight_decay: float = 0.05
    warmup_steps: int = 500
    min_lr_ratio: float = 0.1
    """The cosine decays to lr * min_lr_ratio."""
    grad_clip: float = 1.0
    ema_decay: float | None = None
    """EMA of the weights (e.g. 0.999); the checkpoint's policy weights are then the EMA ones."""
    save_every: int = 1000
    log_every: int = 50
    num_workers: int = 0
    """DataLoader workers (spawned); 0 lets tf.data decode in this process's threads."""
    device: str = "auto"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accumulation", "save_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size % self.grad_accumulation:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by grad_accumulation "
                             f"{self.grad_accumulation}")
        if self.lr <= 0 or self.warmup_steps < 0 or not 0 <= self.min_lr_ratio <= 1 or self.grad_clip <= 0:
            raise ValueError("TrainConfig needs lr > 0, warmup_steps >= 0, 0 <= min_lr_ratio <= 1, "
                             "grad_clip > 0")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            raise ValueError(f"TrainConfig.ema_decay must be in (0, 1), got {self.ema_decay}")
        if self.num_workers < 0:
            raise ValueError(f"TrainConfig.num_workers must be >= 0, got {self.num_workers}")

    @property
    def micro_batch_size(self) -> int:
        return self.batch_size // self.grad_accumulation


def to_device(batch, device: torch.device):
    if isinstance(batch, dict):
        return {key: to_device(value, device) for key, value in batch.items() if key != "instruction"}
    return batch.to(device, non_blocking=True)


def train_offline(train: TrainConfig, data: DataConfig, out: Path, *, make_model: Callable[[], nn.Module],
                  save_policy: SavePolicy, context: DistributedContext, name: str, resume: bool = False,
                  progress: bool = True) -> Path:
    """Train the module `make_model()` builds (its forward maps a batch to (loss, metrics)) on `data`;
    checkpoints hold what `save_policy` writes plus the training state. Returns the last checkpoint."""
    out = Path(out)
    torch.manual_seed(train.seed + context.rank)
    checkpoint = latest_checkpoint(out) if resume else None
    batches_taken = 0
    if checkpoint is not None:
        batches_taken = read_json(checkpoint / "training_state.json")["batches_taken"]
    dataset = RLDSWindowDataset(data, train=True, batch_size=train.micro_batch_size, embed_language=True,
                                rank=context.rank, world_size=context.world_size, skip=batches_taken)
    policy_dataset = dataset.dataset_names[0]  # the policy acts in the first dataset's action space
    statistics = dataset.statistics[policy_dataset]
    metadata = {"dataset": policy_dataset, "control_hz": dataset_entry(policy_dataset).control_hz,
                "data": dataclasses.asdict(data), "train": dataclasses.asdict(train)}

    # Creating the loader's iterator draws from torch's RNG: do it before the RNG state is restored.
    batches = iter(make_dataloader(dataset, num_workers=train.num_workers))
    model = make_model().to(context.device)
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(train.ema_decay))
           if train.ema_decay is not None else None)
    optimizer = torch.optim.AdamW(parameter_groups(model, train.weight_decay), lr=train.lr, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(train.warmup_steps, train.steps, train.min_lr_ratio))
    start = 0
    if checkpoint is not None:
        state = load_training_state(checkpoint, model=model, optimizer=optimizer, scheduler=scheduler,
                                    rank=context.rank, world_size=context.world_size)
        if ema is not None:  # the policy weights of the checkpoint are the EMA ones
            load_weights(ema.module, checkpoint / WEIGHTS_FILE)
            ema.n_averaged.fill_(state["step"])
        start = state["step"]
    trained = DistributedDataParallel(model) if context.distributed else model

    writer = SummaryWriter(str(out / "tensorboard"), purge_step=start) if context.is_main else None
    autocast = torch.autocast(device_type=context.device.type, dtype=torch.bfloat16,
                              enabled=context.device.type == "cuda")
    last = checkpoint
    with _progress(enabled=progress and context.is_main) as bar:
        task = bar.add_task(f"train {name}", total=train.steps, completed=start, loss=float("nan"))
        for step in range(start, train.steps):
            trained.train()
            totals: dict[str, float] = {}
            for micro in range(train.grad_accumulation):
                batch = to_device(next(batches), context.device)
                batches_taken += 1
                sync = micro == train.grad_accumulation - 1 or not context.distributed
                with autocast, (trained.no_sync() if not sync else _nothing()):
                    loss, metrics = trained(batch)
                    (loss / train.grad_accumulation).backward()
                for name, value in {"loss": loss, **metrics}.items():
                    totals[name] = totals.get(name, 0.0) + float(value.detach()) / train.grad_accumulation
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update_parameters(model)
            done = step + 1
            bar.update(task, completed=done, loss=totals["loss"])
            if writer is not None and (done % train.log_every == 0 or done == train.steps):
                if progress and not bar.console.is_terminal:  # a log file gets a line instead of the bar
                    bar.console.log(f"step {done}/{train.steps} " +
                                    " ".join(f"{name} {value:.4f}" for name, value in totals.items()))
                for name, value in totals.items():
                    writer.add_scalar(f"train/{name}", value, done)
                writer.add_scalar("train/grad_norm", float(grad_norm), done)
                writer.add_scalar("train/lr", scheduler.get_last_lr()[0], done)
            if done % train.save_every == 0 or done == train.steps:
                last = _save_checkpoint(out, context, done, batches_taken, model, ema, optimizer, scheduler,
                                        lambda tmp, policy_model: save_policy(tmp, policy_model, statistics,
                                                                              {**metadata, "step": done}))
    if writer is not None:
        writer.close()
    return last


def _save_checkpoint(out: Path, context: DistributedContext, step: int, batches_taken: int, model, ema,
                     optimizer, scheduler, write_policy: Callable[[Path, nn.Module], None]) -> Path:
    rng_states = gather_rng_states(context.world_size)  # every rank takes part in the gathers
    digests = gather_parameter_digests(model, context.world_size)
    if len(set(digests)) > 1:
        raise RuntimeError(f"DDP replicas diverged at step {step}: parameter digests {digests}")
    directory = out / CHECKPOINTS_DIR / step_dir_name(step)
    if context.is_main:
        policy_model = ema.module if ema is not None else model

        def write(tmp: Path) -> None:
            write_policy(tmp, policy_model)
            save_training_state(tmp, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                                batches_taken=batches_taken, rng_states=rng_states, parameter_digests=digests)

        write_directory_atomically(directory, write)
    context.barrier()
    return directory


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), disable=not enabled)


class ModelConfig(Protocol):
    def to_dict(self) -> dict: ...


def run(out: Path, *, resume: bool, name: str,
        new_configs: Callable[[], tuple[TrainConfig, ModelConfig, DataConfig]],
        model_config_from_dict: Callable[[dict], ModelConfig], make_model: Callable[[ModelConfig], nn.Module],
        save_policy: SavePolicy, progress: bool = True) -> int:
    """What every `agent-stack train <name>` command does with its run directory: a new run refuses a
    directory that holds checkpoints and saves its configs there; `resume` continues with the saved ones.
    Configuration errors are one line on stderr and exit code 2."""
    run_config = out / RUN_CONFIG
    try:
        if resume:
            if not run_config.is_file():
                raise ValueError(f"--resume: {out} has no {RUN_CONFIG}; start the run without --resume")
            saved = read_json(run_config)
            train = TrainConfig(**saved["train"])
            model_config = model_config_from_dict(saved["model"])
            data = DataConfig(**saved["data"])
        else:
            train, model_config, data = new_configs()
            if latest_checkpoint(out) is not None:
                raise ValueError(f"{out} already holds checkpoints; pass --resume to continue that run "
                                 "or choose another --out")
    except (ValueError, FileNotFoundError, TypeError) as error:
        print(f"agent-stack train {name}: {error}", file=sys.stderr)
        return 2
    context = setup_distributed(train.device)
    try:
        if context.is_main and not resume:
            out.mkdir(parents=True, exist_ok=True)
            write_json(run_config, {"train": dataclasses.asdict(train), "model": model_config.to_dict(),
                                    "data": dataclasses.asdict(data)})
        context.barrier()
        last = train_offline(train, data, out, make_model=lambda: make_model(model_config),
                             save_policy=save_policy, context=context, name=name, resume=resume,
                             progress=progress)
        if context.is_main:
            print(f"checkpoint: {last}")
    finally:
        teardown_distributed()
    return 0


# --- command line shared by the offline trainers -------------------------------------------------------

TRAIN_FLAGS = {
    "steps": int, "batch_size": int, "grad_accumulation": int, "lr": float, "weight_decay": float,
    "warmup_steps": int, "grad_clip": float, "ema_decay": float, "save_every": int, "log_every": int,
    "num_workers": int, "device": str, "seed": int,
}


def add_run_arguments(parser: argparse.ArgumentParser, model_config_name: str) -> None:
    """Data, run directory and TrainConfig flags (each TrainConfig field as --field-name)."""
    parser.add_argument("--data", help="RLDS builder directory, dataset name, or weighted mixture 'a:2,b:1'")
    parser.add_argument("--data-dir", help="where datasets given by name live (default ~/tensorflow_datasets)")
    parser.add_argument("--split", default="train", help="TFDS split, slices allowed (default: train)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (checkpoints, TensorBoard)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in --out from its latest checkpoint, with its saved configuration")
    parser.add_argument("--model-config", type=Path,
                        help=f"JSON file of {model_config_name} fields (flags override it)")
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--no-progress", action="store_true")
    for name, kind in TRAIN_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)


def train_config_from_args(args: argparse.Namespace, defaults: dict | None = None) -> TrainConfig:
    """TrainConfig from the flags given, on top of the trainer's `defaults`, on top of TrainConfig's."""
    given = {name: getattr(args, name) for name in TRAIN_FLAGS if getattr(args, name) is not None}
    return TrainConfig(**{**(defaults or {}), **given})


def data_mixture(args: argparse.Namespace) -> tuple[list[str], list[float] | None]:
    if not args.data:
        raise ValueError("--data is required for a new run")
    return parse_mixture(args.data)
