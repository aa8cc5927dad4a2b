"""Per-dataset normalisation statistics (agent_stack.normalization): one streaming pass over an RLDS
dataset, cached as JSON beside the data.

Mean, std, min and max are exact (Welford); the percentiles come from a uniform reservoir of at most
`RESERVOIR_SIZE` rows, so they are exact for datasets up to that many steps and a close estimate above.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from agent_stack.data.rlds import RLDSSource, iterate_numpy
from agent_stack.normalization import ACTION_DIM, TARGET_ACTION_DIM, DatasetStatistics, Statistics

RESERVOIR_SIZE = 1_000_000
CACHE_DIR = Path("~/.cache/agent_stack/statistics")


class _RunningStatistics:
    """Welford moments, extrema and a reservoir sample of rows, updated one batch of rows at a time."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.count = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.reservoir = np.zeros((0, dim), np.float32)
        self.rng = np.random.default_rng(seed)

    def update(self, rows: np.ndarray) -> None:
        rows = np.asarray(rows, np.float64)
        if not np.all(np.isfinite(rows)):
            raise ValueError("non-finite values in the data")
        n = len(rows)
        if n == 0:
            return
        batch_mean = rows.mean(0)
        delta = batch_mean - self.mean
        total = self.count + n
        self.mean += delta * n / total
        self.m2 += ((rows - batch_mean) ** 2).sum(0) + delta**2 * self.count * n / total
        self.min, self.max = np.minimum(self.min, rows.min(0)), np.maximum(self.max, rows.max(0))
        self._sample(rows.astype(np.float32))
        self.count = total

    def _sample(self, rows: np.ndarray) -> None:
        """Algorithm R: row number k (0-based, over the whole pass) replaces a random slot with
        probability size / (k + 1) once the reservoir is full."""
        room = max(RESERVOIR_SIZE - len(self.reservoir), 0)
        self.reservoir = np.concatenate([self.reservoir, rows[:room]])
        rest = rows[room:]
        if len(rest):
            numbers = self.count + room + np.arange(len(rest))
            slots = self.rng.integers(0, numbers + 1)
            chosen = slots < RESERVOIR_SIZE
            self.reservoir[slots[chosen]] = rest[chosen]

    def result(self) -> Statistics:
        if self.count == 0:
            raise ValueError("no steps to compute statistics from")
        p01, p99 = np.percentile(self.reservoir, [1, 99], axis=0)
        std = np.sqrt(self.m2 / self.count)
        return Statistics(*(list(map(float, v)) for v in (self.mean, std, self.min, self.max, p01, p99)))


def fingerprint(source: RLDSSource, split: str) -> str:
    split_info = source.builder.info.splits[split]
    return f"{source.builder.info.version}-{split_info.num_examples}-{split_info.num_bytes}-{source.entry.fingerprint}"


def compute_statistics(source: RLDSSource, split: str = "train") -> DatasetStatistics:
    """One pass over the standardised actions, states and target actions of `split` (images are not
    decoded)."""
    trajectories = source.trajectories(split, decode_images=False).map(
        lambda t: {k: t[k] for k in ("action", "state", "target") if k in t})
    action = state = target = None
    episodes = 0
    for trajectory in iterate_numpy(trajectories.prefetch(tf.data.AUTOTUNE), [source]):
        action = action or _RunningStatistics(ACTION_DIM)
        action.update(trajectory["action"])
        if "state" in trajectory:
            state = state or _RunningStatistics(trajectory["state"].shape[-1], seed=1)
            state.update(trajectory["state"])
        if "target" in trajectory:
            target = target or _RunningStatistics(TARGET_ACTION_DIM, seed=2)
            target.update(trajectory["target"])
        episodes += 1
    if action is None:
        raise ValueError(f"dataset {source.name!r} split {split!r} has no episodes")
    return DatasetStatistics(dataset=source.name, split=split, fingerprint=fingerprint(source, split),
                             num_episodes=episodes, num_steps=action.count, action=action.result(),
                             state=state.result() if state else None,
                             target=target.result() if target else None)


def statistics_path(source: RLDSSource, split: str) -> Path:
    """Beside the data when that directory is writable, else in the user's cache."""
    name = f"agent_stack_statistics_{split}.json"
    if os.access(source.builder_dir, os.W_OK):
        return source.builder_dir / name
    return CACHE_DIR.expanduser() / f"{source.name}-{source.builder.info.version}-{name}"


def load_or_compute_statistics(source: RLDSSource, split: str = "train",
                               recompute: bool = False) -> DatasetStatistics:
    """Cached statistics when they match this data and standardisation, else computed and cached."""
    path = statistics_path(source, split)
    if path.is_file() and not recompute:
        try:
            cached = DatasetStatistics.load(path)
        except ValueError:
            cached = None  # unreadable or from another format: recomputed and overwritten below
        if cached is not None and cached.fingerprint == fingerprint(source, split):
            return cached
    statistics = compute_statistics(source, split)
    statistics.save(path)
    return statistics
