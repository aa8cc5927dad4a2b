"""Open RLDS datasets (Open-X-Embodiment downloads, or what `agent-stack collect` writes) with TFDS.

`open_rlds` finds the TFDS builder directory, picks the dataset's standardisation by the builder's name,
and checks up front that the dataset has every key that standardisation reads. `RLDSSource.trajectories`
is the one code path every consumer (statistics, the windowed training loader, `agent-stack data show`)
reads episodes through: one element per episode, every tensor with a leading time axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from agent_stack.data.standardize import DatasetEntry, Steps, dataset_entry
from agent_stack.normalization import ACTION_DIM, TARGET_ACTION_DIM

DEFAULT_DATA_DIR = "~/tensorflow_datasets"
INFO_FILE = "dataset_info.json"
# Upper bound on steps per episode when a nested steps dataset is gathered into one batch.
MAX_EPISODE_STEPS = 2**31 - 1


class CorruptShardError(RuntimeError):
    """A shard file of an RLDS dataset cannot be read: truncated, corrupt, or missing."""


def find_builder_dir(dataset: str, data_dir: str | None = None) -> Path:
    """The TFDS builder directory (the one holding dataset_info.json) for a path or a dataset name."""
    path = Path(dataset).expanduser()
    if (path / INFO_FILE).is_file():
        return path
    if path.is_dir():  # a dataset directory holding one folder per version
        return _latest_version(path)
    root = Path(data_dir or DEFAULT_DATA_DIR).expanduser()
    if (root / dataset).is_dir():
        return _latest_version(root / dataset)
    raise FileNotFoundError(
        f"RLDS dataset {dataset!r} not found: it is neither a TFDS builder directory (with {INFO_FILE}) "
        f"nor a dataset under the data dir {root} (looked for {root / dataset}/<version>/{INFO_FILE})")


def _latest_version(dataset_dir: Path) -> Path:
    versions = [p for p in dataset_dir.iterdir() if (p / INFO_FILE).is_file()]
    if not versions:
        raise FileNotFoundError(f"{dataset_dir} holds no version directory with {INFO_FILE}")
    return max(versions, key=lambda p: tuple(int(x) if x.isdigit() else -1 for x in p.name.split(".")))


def _image_keys(features, prefix: str = "") -> list[str]:
    """Slash paths of every Image feature in a features dict."""
    keys = []
    for key, feature in features.items():
        path = f"{prefix}{key}"
        if isinstance(feature, tfds.features.Image):
            keys.append(path)
        elif isinstance(feature, tfds.features.FeaturesDict):
            keys += _image_keys(feature, path + "/")
    return keys


def _nest(paths: list[str], leaf) -> dict:
    tree: dict = {}
    for path in paths:
        *parents, last = path.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = leaf
    return tree


@dataclasses.dataclass
class RLDSSource:
    """One RLDS dataset on disk and the standardisation that reads it."""

    builder: tfds.core.DatasetBuilder
    entry: DatasetEntry

    @property
    def name(self) -> str:
        return self.builder.info.name

    @property
    def builder_dir(self) -> Path:
        return Path(str(self.builder.data_dir))

    def num_episodes(self, split: str = "train") -> int:
        return self.builder.info.splits[split].num_examples

    def check_split(self, split: str) -> None:
        base = split.split("[")[0]
        if base not in self.builder.info.splits:
            raise ValueError(f"dataset {self.name!r} has no split {base!r}; it has {sorted(self.builder.info.splits)}")

    def _standardize(self, steps: dict, decode: bool, image_size: tuple[int, int] | None) -> dict:
        steps = Steps(self.name, steps)
        standard = self.entry.standardize(steps)
        if standard.action.shape.rank != 2 or standard.action.shape[-1] != ACTION_DIM:
            raise ValueError(f"dataset {self.name!r}: standardised action must be (T, {ACTION_DIM}), "
                             f"got {standard.action.shape}")
        out = {"instruction": standard.instruction, "action": tf.cast(standard.action, tf.float32)}
        for flag in ("is_first", "is_last", "is_terminal"):
            out[flag] = tf.cast(steps[flag], tf.bool)
        if standard.state is not None:
            out["state"] = tf.cast(tf.reshape(standard.state, [tf.shape(standard.action)[0], -1]), tf.float32)
        if standard.target is not None:
            if standard.target.shape.rank != 2 or standard.target.shape[-1] != TARGET_ACTION_DIM:
                raise ValueError(f"dataset {self.name!r}: standardised target must be "
                                 f"(T, {TARGET_ACTION_DIM}), got {standard.target.shape}")
            out["target"] = tf.cast(standard.target, tf.float32)
        cameras = {"image": standard.image, "wrist_image": standard.wrist_image}
        for key, images in cameras.items():
            if images is None:
                continue
            if decode:
                images = _decode_images(images, image_size)
            out[key] = images
        return out

    def trajectories(self, split="train", *, decode_images: bool = True,
                     image_size: tuple[int, int] | None = None, shuffle_files: bool = False,
                     shuffle_seed: int | None = None,
                     parallel_calls: int = tf.data.AUTOTUNE) -> tf.data.Dataset:
        """Standardised episodes. Images stay encoded (tf.string) unless `decode_images`; then they are
        decoded to uint8 and, with `image_size` (height, width), resized. A `shuffle_seed` makes the
        shuffled file order (of every pass, when repeated) the same on every run."""
        if isinstance(split, str):  # sub-splits from tfds.even_splits come from a checked split already
            self.check_split(split)
        # Every camera is read still encoded, so only the cameras the standardisation picks get decoded.
        decoders = {"steps": _nest(_image_keys(self.builder.info.features["steps"]), tfds.decode.SkipDecoding())}
        episodes = self.builder.as_dataset(split=split, shuffle_files=shuffle_files, decoders=decoders,
                                           read_config=tfds.ReadConfig(try_autocache=False,
                                                                               shuffle_seed=shuffle_seed))

        def to_trajectory(episode):
            steps = episode["steps"].batch(MAX_EPISODE_STEPS).get_single_element()
            return self._standardize(steps, decode_images, image_size)

        return episodes.map(to_trajectory, num_parallel_calls=parallel_calls, deterministic=True)

    def _shard_lengths(self) -> dict[Path, int]:
        """Episodes per shard file of every split, as dataset_info.json records them."""
        return {self.builder_dir / Path(str(f)).name: n for split in self.builder.info.splits.values()
                for f, n in zip(split.filenames, split.shard_lengths)}

    def shard_files(self) -> list[Path]:
        return list(self._shard_lengths())

    def find_corrupt_shard(self) -> tuple[Path, str] | None:
        """The first shard file that is missing, fails its record checksums, or holds fewer episodes than
        dataset_info.json records; None when all are whole."""
        for path, recorded in self._shard_lengths().items():
            if not path.is_file():
                return path, "file missing"
            try:
                count = sum(1 for _ in tf.data.TFRecordDataset(str(path)))
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
                return path, error.message.splitlines()[0]
            if count != recorded:
                return path, f"{count} episodes, dataset_info.json records {recorded}"
        return None


def iterate_numpy(dataset: tf.data.Dataset, sources: list[RLDSSource]) -> Iterator:
    """`dataset.as_numpy_iterator()`, with a read failure turned into an error naming the bad shard file."""
    try:
        yield from dataset.as_numpy_iterator()
    except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
        for source in sources:
            bad = source.find_corrupt_shard()
            if bad is not None:
                raise CorruptShardError(f"dataset {source.name!r}: shard {bad[0]} is unreadable ({bad[1]}); "
                                        "re-download or re-write it") from error
        raise


def _decode_images(images: tf.Tensor, image_size: tuple[int, int] | None) -> tf.Tensor:
    if images.dtype == tf.string:
        images = tf.map_fn(lambda data: tf.io.decode_image(data, channels=3, expand_animations=False), images,
                           fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8))
    if image_size is None:
        return images

    def resize():
        resized = tf.image.resize(images, image_size, method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    already_sized = tf.reduce_all(tf.equal(tf.shape(images)[1:3], image_size))
    return tf.ensure_shape(tf.cond(already_sized, lambda: images, resize), [None, *image_size, 3])


def open_rlds(dataset: str, data_dir: str | None = None) -> RLDSSource:
    """Open an RLDS dataset by builder-directory path or by name under `data_dir` (~/tensorflow_datasets)."""
    builder = tfds.builder_from_directory(find_builder_dir(dataset, data_dir))
    source = RLDSSource(builder=builder, entry=dataset_entry(builder.info.name))
    missing = [p for p in source.shard_files() if not p.is_file()]
    if missing:
        raise CorruptShardError(f"dataset {source.name!r}: shard files missing: {[str(p) for p in missing[:5]]}")
    _check_keys(source)
    return source


def _check_keys(source: RLDSSource) -> None:
    """Run the standardisation once on placeholder steps built from the feature spec, so a dataset missing
    a key the standardisation reads fails now, naming the key, rather than inside a training run."""
    spec = source.builder.info.features["steps"].get_tensor_info()
    encoded = set(_image_keys(source.builder.info.features["steps"]))

    def placeholder(info, path: str):
        if isinstance(info, dict):
            return {k: placeholder(v, f"{path}/{k}".lstrip("/")) for k, v in info.items()}
        if path in encoded:
            return tf.zeros([2], tf.string)
        shape = [2] + [d if d is not None else 1 for d in info.shape]
        return tf.zeros(shape, info.tf_dtype) if info.tf_dtype != tf.string else tf.fill(shape, "")

    source._standardize(placeholder(spec, ""), decode=False, image_size=None)


def numpy_trajectory(source: RLDSSource, index: int, split: str = "train",
                     image_size: tuple[int, int] | None = None) -> dict[str, np.ndarray]:
    """Episode `index` of `split`, standardised and decoded, as numpy arrays."""
    count = source.num_episodes(split.split("[")[0])
    if not 0 <= index < count:
        raise IndexError(f"dataset {source.name!r} split {split!r} has {count} episodes; no episode {index}")
    dataset = source.trajectories(f"{split}[{index}:{index + 1}]", image_size=image_size)
    return next(iterate_numpy(dataset, [source]))
