"""Checkpoint directories: safetensors weights + JSON, written atomically, found by step.

A training run writes `<run>/checkpoints/step_<N>/`; each checkpoint directory is complete or absent,
because it is written under a temporary name and renamed into place. A policy loads from a checkpoint
directory or from a run directory (its latest checkpoint).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from agent_stack.normalization import DatasetStatistics

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATISTICS_FILE = "statistics.json"
METADATA_FILE = "metadata.json"
"""A policy checkpoint: weights, its config (JSON), the normalisation statistics, free-form metadata."""
CHECKPOINTS_DIR = "checkpoints"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def write_directory_atomically(directory: Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` to fill a fresh temporary directory, then rename it to `directory` (replacing it)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.parent / f".{directory.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        write(tmp)
        if directory.exists():
            old = directory.parent / f".{directory.name}.old-{os.getpid()}"
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old)
        else:
            os.replace(tmp, directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def write_json(path: Path, data) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read {path}: {error}") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")  # noqa: TRY004  (a malformed file, not a caller error)
    return data


def checkpoint_steps(run_dir: Path) -> dict[int, Path]:
    """{step: directory} of the complete checkpoints of a run."""
    root = Path(run_dir) / CHECKPOINTS_DIR
    found = {}
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and child.is_dir():
                found[int(match.group(1))] = child
    return dict(sorted(found.items()))


def latest_checkpoint(run_dir: Path) -> Path | None:
    steps = checkpoint_steps(run_dir)
    return steps[max(steps)] if steps else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory as given, or the latest checkpoint of a run directory."""
    path = Path(path)
    if (path / WEIGHTS_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a checkpoint directory (with {WEIGHTS_FILE}) nor a training "
                                f"run directory with {CHECKPOINTS_DIR}/step_*")
    return latest


def save_weights(state_dict: dict[str, torch.Tensor], path: Path) -> None:
    save_file({name: tensor.detach().contiguous().cpu() for name, tensor in state_dict.items()}, str(path))


def load_weights(module: torch.nn.Module, path: Path) -> None:
    """Strict load with an error that says which file and which tensors disagree."""
    try:
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise ValueError(f"cannot read weights {path}: {error}") from error
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(name for name in set(expected) & set(tensors) if expected[name].shape != tensors[name].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"weights {path} do not fit the model built from its config: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}, wrong shape {wrong[:5]}")
    module.load_state_dict(tensors)


def save_policy_files(directory: Path, model: torch.nn.Module, statistics: DatasetStatistics,
                      metadata: dict) -> None:
    """Weights, `model.config`, statistics and metadata of a policy into `directory` (which must exist)."""
    save_weights(model.state_dict(), directory / WEIGHTS_FILE)
    model.config.save(directory / CONFIG_FILE)
    statistics.save(directory / STATISTICS_FILE)
    write_json(directory / METADATA_FILE, metadata)


def read_policy_files(directory: Path, config_class):
    """(config, statistics, metadata) of the policy checkpoint in `directory`; FileNotFoundError names a
    missing file. The weights are checked for, not loaded (the caller builds the model from the config)."""
    for name in (CONFIG_FILE, STATISTICS_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"checkpoint {directory} has no {name}")
    metadata = read_json(directory / METADATA_FILE) if (directory / METADATA_FILE).is_file() else {}
    return (config_class.load(directory / CONFIG_FILE), DatasetStatistics.load(directory / STATISTICS_FILE),
            metadata)
