"""Normalisation statistics of actions and proprioception: what travels beside every checkpoint.

Numpy only (no TensorFlow), so policies load them at inference without the data stack. Each action and
state dimension has its 1st and 99th percentile mapped to [-1, 1] and clipped (DESIGN.md); the gripper
dimension of an action (its last) is already an opening in [0, 1] and stays as is. Datasets that record
the end-effector target each action commanded also have statistics of that absolute target action.
`agent_stack.data.statistics` computes them from RLDS data.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

ACTION_DIM = 7
"""x y z roll pitch yaw deltas in the robot base frame, then the gripper opening (DESIGN.md)."""
GRIPPER_INDEX = 6
TARGET_ACTION_DIM = 10
"""The absolute form of an action: the end-effector target pose it commands, base frame: x y z (m), the
first two columns of the rotation matrix (the continuous 6-D rotation of Zhou et al. 2019, which Chi et
al. use for absolute actions), then the gripper opening."""
TARGET_GRIPPER_INDEX = 9
ACTION_SPACES = {"delta": ACTION_DIM, "target": TARGET_ACTION_DIM}
"""The two forms of an action, with their sizes: the end-effector delta (what datasets standardise to) and
the target pose it commands (for datasets that record it)."""
FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Statistics:
    """Statistics of one vector quantity, each a list with one value per dimension."""

    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]
    p01: list[float]
    p99: list[float]

    def __post_init__(self) -> None:
        dims = {name: len(getattr(self, name)) for name in ("mean", "std", "min", "max", "p01", "p99")}
        if len(set(dims.values())) != 1:
            raise ValueError(f"statistics fields disagree on the dimension: {dims}")
        for name in dims:
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"statistics field {name!r} holds a non-finite value: {getattr(self, name)}")

    @property
    def dim(self) -> int:
        return len(self.mean)

    def bounds(self, skip: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(low, high, passthrough) float32/bool per dim: dims in `skip` and constant dims are not
        normalised (their high is moved off low so that dividing by high - low stays finite)."""
        low, high = np.asarray(self.p01, np.float32), np.asarray(self.p99, np.float32)
        passthrough = high - low < 1e-8
        passthrough[list(skip)] = True
        return low, np.where(passthrough, low + 2.0, high), passthrough

    def normalize(self, x: np.ndarray, skip: tuple[int, ...] = ()) -> np.ndarray:
        """Map [p01, p99] to [-1, 1] and clip; dims in `skip` (and constant ones) pass unchanged."""
        low, high, passthrough = self.bounds(skip)
        x = np.asarray(x, np.float32)
        return np.where(passthrough, x, np.clip(2.0 * (x - low) / (high - low) - 1.0, -1.0, 1.0))

    def denormalize(self, x: np.ndarray, skip: tuple[int, ...] = ()) -> np.ndarray:
        """Inverse of `normalize` inside [p01, p99] (values clipped there come back at the bounds)."""
        low, high, passthrough = self.bounds(skip)
        x = np.asarray(x, np.float32)
        return np.where(passthrough, x, (x + 1.0) / 2.0 * (high - low) + low)


@dataclasses.dataclass(frozen=True)
class DatasetStatistics:
    dataset: str
    split: str
    fingerprint: str
    """Identifies the data and the standardisation they were computed from; a mismatch means recompute."""
    num_episodes: int
    num_steps: int
    action: Statistics
    state: Statistics | None
    target: Statistics | None = None
    """Of the target actions (TARGET_ACTION_DIM), for datasets that record them."""

    def __post_init__(self) -> None:
        if self.action.dim != ACTION_DIM:
            raise ValueError(f"action statistics of {self.dataset!r} have {self.action.dim} dims, need {ACTION_DIM}")
        if self.target is not None and self.target.dim != TARGET_ACTION_DIM:
            raise ValueError(f"target statistics of {self.dataset!r} have {self.target.dim} dims, need "
                             f"{TARGET_ACTION_DIM}")

    def normalize_action(self, action):
        return self.action.normalize(action, skip=(GRIPPER_INDEX,))

    def denormalize_action(self, action: np.ndarray) -> np.ndarray:
        return self.action.denormalize(action, skip=(GRIPPER_INDEX,))

    def denormalize_target(self, target: np.ndarray) -> np.ndarray:
        if self.target is None:
            raise ValueError(f"the statistics of {self.dataset!r} have no target actions")
        return self.target.denormalize(target, skip=(TARGET_GRIPPER_INDEX,))

    def to_json(self) -> dict:
        return {"format_version": FORMAT_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_json(cls, data: dict) -> DatasetStatistics:
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"statistics format {data.get('format_version')!r} is not {FORMAT_VERSION}")
        fields = {k: v for k, v in data.items() if k != "format_version"}
        try:
            fields["action"] = Statistics(**fields["action"])
            fields["state"] = Statistics(**fields["state"]) if fields.get("state") else None
            fields["target"] = Statistics(**fields["target"]) if fields.get("target") else None
            return cls(**fields)
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed statistics: {error}") from error

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # A private partial file per writer: ranks of a distributed job may save the same statistics at once.
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(self.to_json(), indent=1))
        os.replace(partial, path)

    @classmethod
    def load(cls, path: Path) -> DatasetStatistics:
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from error
