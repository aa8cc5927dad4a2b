"""The training input pipeline: standardised episodes -> normalised windows -> (weighted mixture) -> batches.

Built with tf.data so decoding, resizing and windowing run in TensorFlow's thread pool. Each image is
decoded once per episode and the observation history is gathered from the decoded frames, so history
H costs a copy, not H decodes. One sample per step t of every episode:

* `observation/image`, `observation/wrist_image`: uint8 (H, S, S, 3), frames t-H+1 .. t;
* `observation/state`: float32 (H, D), normalised; `observation/pad_mask`: bool (H,), False for frames
  before the episode start (those repeat the first frame);
* `observation/has_wrist_image`, `observation/has_state`: bool, False where the dataset lacks them
  (their values are then zeros), so datasets with and without a wrist camera mix;
* `action`: float32 (K, 7), steps t .. t+K-1, normalised (gripper unnormalised); with
  `action_space="target"` the same steps' target actions instead, float32 (K, 10) (`Standardized.target`);
  `action_pad_mask`: bool (K,), False past the episode end (those repeat the last action);
* `contact_point`: with `action_space="target"` only, float32 (3,), normalised as the targets: the episode's
  lowest end-effector target (the first step within `CONTACT_HEIGHT_TOLERANCE` of it), where the hand
  meets the object (the grasp of a pick, the push height beside a pushed block); the same for every step;
  with it `observation/start_image`: uint8 (1, S, S, 3), the front frame of the episode's first step, where
  the object is in view and the arm still far from it;
* `terminate`: bool (K,), true at and after the episode's last step;
* `instruction`: tf.string; `dataset_index`: int32 position of the dataset in the mixture.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf
import tensorflow_datasets as tfds

from agent_stack.data.rlds import RLDSSource, open_rlds
from agent_stack.data.statistics import load_or_compute_statistics
from agent_stack.normalization import (
    ACTION_SPACES,
    GRIPPER_INDEX,
    TARGET_GRIPPER_INDEX,
    DatasetStatistics,
    Statistics,
)


CONTACT_HEIGHT_TOLERANCE = 0.01
"""Metres above an episode's lowest end-effector target that still count as its contact point: a push
holds its height for many steps, and the first of them is where the hand reaches the block."""


@dataclasses.dataclass
class DataConfig:
    """What to read and how to shape it. Saved as JSON beside checkpoints."""

    datasets: list[str]
    """RLDS datasets: builder-directory paths or names under `data_dir`."""
    weights: list[float] | None = None
    """Sampling weight per dataset (normalised to sum 1); None samples them equally."""
    data_dir: str | None = None
    """Where datasets given by name live (default ~/tensorflow_datasets)."""
    split: str = "train"
    """TFDS split, slices allowed (e.g. 'train[:90%]')."""
    image_size: int = 128
    """Images are resized to image_size x image_size."""
    history: int = 2
    """Observation frames per sample (H)."""
    action_chunk: int = 1
    """Future actions per sample (K)."""
    action_space: str = "delta"
    """'delta': the actions as the datasets standardise them (end-effector deltas, DESIGN.md); 'target':
    their absolute form, the end-effector target pose each commands (only datasets that record it)."""
    wrist_image: bool = True
    """Yield the wrist camera (zeros and has_wrist_image=False for datasets without one)."""
    state_dim: int | None = None
    """Proprioception is zero-padded to this size; None uses the datasets' own size, which must agree."""
    augment: bool = False
    """Random resized crop and colour jitter, the same for every frame of a sample (training only)."""
    shuffle_buffer: int = 1000
    """Samples in the shuffle buffer (each holds H frames per camera, so memory grows with it)."""
    repeat: bool = True
    """Cycle through the data forever (training); False reads each episode once."""
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("DataConfig.datasets is empty")
        if self.weights is not None:
            if len(self.weights) != len(self.datasets):
                raise ValueError(f"DataConfig.weights has {len(self.weights)} values for {len(self.datasets)} datasets")
            if any(w < 0 for w in self.weights) or sum(self.weights) <= 0:
                raise ValueError(f"DataConfig.weights must be >= 0 with a positive sum, got {self.weights}")
        for name in ("image_size", "history", "action_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"DataConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.shuffle_buffer < 0:
            raise ValueError(f"DataConfig.shuffle_buffer must be >= 0, got {self.shuffle_buffer}")
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"DataConfig.action_space must be one of {tuple(ACTION_SPACES)}, "
                             f"got {self.action_space!r}")

    @property
    def normalized_weights(self) -> list[float]:
        weights = self.weights or [1.0] * len(self.datasets)
        return [w / sum(weights) for w in weights]


def parse_mixture(text: str) -> tuple[list[str], list[float] | None]:
    """'fractal20220817_data:2,bridge:1' -> (names, weights); weights None when none is given."""
    names, weights = [], []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, weight = item.rpartition(":") if ":" in item.rsplit("/", 1)[-1] else (item, "", "")
        try:
            weights.append(float(weight) if weight else None)
        except ValueError:
            raise ValueError(f"mixture item {item!r}: weight {weight!r} is not a number") from None
        names.append(name)
    if not names:
        raise ValueError(f"no dataset in mixture {text!r}")
    if all(w is None for w in weights):
        return names, None
    if any(w is None for w in weights):
        raise ValueError(f"mixture {text!r}: give a weight to every dataset or to none")
    return names, weights


class Mixture:
    """The opened datasets of a DataConfig, with their statistics."""

    def __init__(self, config: DataConfig, statistics: dict[str, DatasetStatistics] | None = None) -> None:
        self.config = config
        self.sources: list[RLDSSource] = [open_rlds(name, config.data_dir) for name in config.datasets]
        split = config.split.split("[")[0]
        for source in self.sources:
            source.check_split(split)
        if statistics is None:
            statistics = {s.name: load_or_compute_statistics(s, split) for s in self.sources}
        missing = [s.name for s in self.sources if s.name not in statistics]
        if missing:
            raise ValueError(f"no normalisation statistics for datasets {missing}")
        self.statistics = statistics
        if config.action_space == "target":
            untargeted = [s.name for s in self.sources if statistics[s.name].target is None]
            if untargeted:
                raise ValueError(f"action_space 'target' needs datasets that record the end-effector target "
                                 f"of each action; {untargeted} do not (tabletop data records it from "
                                 "version 1.2.0 on: collect it again)")
        self.state_dim = self._state_dim()

    def _state_dim(self) -> int:
        dims = {s.name: self.statistics[s.name].state.dim for s in self.sources if self.statistics[s.name].state}
        if self.config.state_dim is not None:
            too_big = {name: d for name, d in dims.items() if d > self.config.state_dim}
            if too_big:
                raise ValueError(f"state_dim={self.config.state_dim} is smaller than the state of {too_big}")
            return self.config.state_dim
        if len(set(dims.values())) > 1:
            raise ValueError(f"the datasets' states differ in size {dims}; set DataConfig.state_dim to pad them")
        return next(iter(dims.values()), 0)

    def dataset(self, shard_index: int = 0, num_shards: int = 1, train: bool = True) -> tf.data.Dataset:
        """Unbatched samples from shard `shard_index` of `num_shards` (DataLoader workers x DDP ranks):
        each episode belongs to exactly one shard."""
        config = self.config
        streams = []
        for index, source in enumerate(self.sources):
            split = _shard_split(source, config.split, shard_index, num_shards)
            trajectories = source.trajectories(split, image_size=(config.image_size, config.image_size),
                                               shuffle_files=train and config.repeat,
                                               shuffle_seed=config.seed + index)
            if config.repeat:
                trajectories = trajectories.repeat()
            if train and config.repeat:
                trajectories = trajectories.shuffle(8, seed=config.seed + index)
            windows = trajectories.map(self._window_fn(source, index), num_parallel_calls=tf.data.AUTOTUNE,
                                       deterministic=True)
            streams.append(windows.unbatch())
        if len(streams) == 1:
            samples = streams[0]
        else:
            samples = tf.data.Dataset.sample_from_datasets(streams, weights=config.normalized_weights,
                                                           seed=config.seed, stop_on_empty_dataset=False)
        if train and config.shuffle_buffer > 1:
            samples = samples.shuffle(config.shuffle_buffer, seed=config.seed + shard_index)
        if train and config.augment:
            # One stateless seed per sample: the same config gives the same augmented stream on every run,
            # which is what lets a resumed training run continue exactly where it stopped.
            seeds = tf.data.Dataset.random(seed=config.seed + shard_index).batch(2)
            samples = tf.data.Dataset.zip(samples, seeds).map(augment_sample, num_parallel_calls=tf.data.AUTOTUNE,
                                                              deterministic=True)
        return samples

    def _window_fn(self, source: RLDSSource, dataset_index: int):
        config, statistics, state_dim = self.config, self.statistics[source.name], self.state_dim
        history, chunk, size = config.history, config.action_chunk, config.image_size

        def window(trajectory: dict) -> dict:
            length = tf.shape(trajectory["action"])[0]
            steps = tf.range(length)
            frames = steps[:, None] + tf.range(1 - history, 1)[None]  # (T, H): t-H+1 .. t
            futures = steps[:, None] + tf.range(chunk)[None]  # (T, K): t .. t+K-1
            frame_index = tf.maximum(frames, 0)
            future_index = tf.minimum(futures, length - 1)
            observation = {
                "image": tf.gather(trajectory["image"], frame_index),
                "pad_mask": frames >= 0,
                "has_wrist_image": tf.fill([length], "wrist_image" in trajectory),
                "has_state": tf.fill([length], "state" in trajectory),
            }
            if config.wrist_image:
                observation["wrist_image"] = (tf.gather(trajectory["wrist_image"], frame_index)
                                              if "wrist_image" in trajectory
                                              else tf.zeros([length, history, size, size, 3], tf.uint8))
            if "state" in trajectory:
                state = normalize(trajectory["state"], statistics.state)
                state = tf.pad(state, [[0, 0], [0, state_dim - statistics.state.dim]])
            else:
                state = tf.zeros([length, state_dim], tf.float32)
            observation["state"] = tf.gather(state, frame_index)
            last = tf.logical_or(trajectory["is_last"], steps == length - 1)
            if config.action_space == "target":
                actions = normalize(trajectory["target"], statistics.target, skip=(TARGET_GRIPPER_INDEX,))
            else:
                actions = normalize(trajectory["action"], statistics.action, skip=(GRIPPER_INDEX,))
            sample = {
                "observation": observation,
                "action": tf.gather(actions, future_index),
                "action_pad_mask": futures < length,
                "terminate": tf.logical_or(tf.gather(last, future_index), futures >= length),
                "instruction": trajectory["instruction"],
                "dataset_index": tf.fill([length], dataset_index),
            }
            if config.action_space == "target":
                height = trajectory["target"][:, 2]
                contact = tf.argmax(height <= tf.reduce_min(height) + CONTACT_HEIGHT_TOLERANCE)
                sample["contact_point"] = tf.tile(actions[contact][None, :3], [length, 1])
                observation["start_image"] = tf.tile(trajectory["image"][None, :1], [length, 1, 1, 1, 1])
            return sample

        return window


def normalize(x: tf.Tensor, statistics: Statistics, skip: tuple[int, ...] = ()) -> tf.Tensor:
    """`Statistics.normalize` in TensorFlow."""
    low, high, passthrough = statistics.bounds(skip)
    return tf.where(passthrough, x, tf.clip_by_value(2.0 * (x - low) / (high - low) - 1.0, -1.0, 1.0))


def _shard_split(source: RLDSSource, split: str, shard_index: int, num_shards: int) -> str:
    if not 0 <= shard_index < num_shards:
        raise ValueError(f"shard {shard_index} is outside 0..{num_shards - 1}")
    if num_shards == 1:
        return split
    episodes = source.num_episodes(split.split("[")[0])
    if episodes < num_shards:
        raise ValueError(f"dataset {source.name!r} has {episodes} episodes, too few to give each of the "
                         f"{num_shards} loader shards (DataLoader workers x DDP ranks) one; use fewer workers")
    return tfds.even_splits(split, n=num_shards)[shard_index]


def augment_sample(sample: dict, seed: tf.Tensor) -> dict:
    """Random resized crop (scale 0.8-1, as Octo) and colour jitter, one draw per sample for all its frames.
    `seed`: int64 (2,), the stateless seed of this sample's draw; each camera gets its own draw."""
    observation = dict(sample["observation"])
    for camera, key in enumerate(("image", "wrist_image", "start_image")):
        if key in observation:
            observation[key] = _augment_frames(observation[key], seed + camera)
    return {**sample, "observation": observation}


def _augment_frames(frames: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, 6)

    def uniform(i, shape, low, high):
        return tf.random.stateless_uniform(shape, seeds[i], low, high)

    size = tf.shape(frames)[1:3]
    scale = tf.sqrt(uniform(0, [], 0.8, 1.0))
    offset = uniform(1, [2], 0.0, 1.0) * (1.0 - scale)
    box = tf.concat([offset, offset + scale], 0)[None]
    count = tf.shape(frames)[0]
    images = tf.image.crop_and_resize(tf.cast(frames, tf.float32) / 255.0, tf.repeat(box, count, 0),
                                      tf.range(count), size)
    images = tf.image.adjust_brightness(images, uniform(2, [], -0.1, 0.1))
    images = tf.image.adjust_contrast(images, uniform(3, [], 0.9, 1.1))
    images = tf.image.adjust_saturation(images, uniform(4, [], 0.9, 1.1))
    images = tf.image.adjust_hue(images, uniform(5, [], -0.05, 0.05))
    return tf.cast(tf.clip_by_value(images * 255.0 + 0.5, 0.0, 255.0), tf.uint8)
