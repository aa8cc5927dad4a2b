"""Write RLDS datasets as TFDS builder directories that `tfds.builder_from_directory` opens.

Shards are written one file at a time, each atomically (a temporary file renamed into place), so a run
that stops part-way leaves only whole shards and a re-run can skip them. `finalize` then writes the TFDS
metadata (`dataset_info.json`, `features.json`) from the shard files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf
import tensorflow_datasets as tfds

FILE_TEMPLATE = "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"


class RLDSWriter:
    """Writes episodes (`{"steps": [step, ...], "episode_metadata": {...}}`) into `root/name/version/`."""

    def __init__(self, root: str | os.PathLike, name: str, features: tfds.features.FeaturesDict, *,
                 version: str = "1.0.0", split: str = "train", description: str = "") -> None:
        if "steps" not in features.keys():
            raise ValueError(f"RLDS features need a 'steps' Dataset feature, got keys {sorted(features.keys())}")
        self.name, self.features, self.version, self.split = name, features, version, split
        self.description = description
        self.builder_dir = Path(root).expanduser() / name / version

    def shard_path(self, index: int, num_shards: int) -> Path:
        if not 0 <= index < num_shards:
            raise ValueError(f"shard index {index} is outside 0..{num_shards - 1}")
        return self.builder_dir / f"{self.name}-{self.split}.tfrecord-{index:05d}-of-{num_shards:05d}"

    def has_shard(self, index: int, num_shards: int) -> bool:
        return self.shard_path(index, num_shards).is_file()

    def write_shard(self, index: int, num_shards: int, episodes: Iterable[dict]) -> int:
        """Serialise `episodes` into shard `index` of `num_shards`; returns how many were written."""
        path = self.shard_path(index, num_shards)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        count = 0
        try:
            with tf.io.TFRecordWriter(str(partial)) as writer:
                for episode in episodes:
                    writer.write(self.features.serialize_example(episode))
                    count += 1
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
        return count

    def finalize(self, num_shards: int) -> tfds.core.DatasetBuilder:
        """Write the TFDS metadata once every shard exists; returns the builder that reads the dataset."""
        missing = [i for i in range(num_shards) if not self.has_shard(i, num_shards)]
        if missing:
            raise FileNotFoundError(f"{self.builder_dir}: shards {missing} of {num_shards} are not written yet")
        stale = sorted(p.name for p in self.builder_dir.glob(f"{self.name}-{self.split}.tfrecord-*")
                       if not p.name.endswith(f"-of-{num_shards:05d}"))
        if stale:
            raise ValueError(f"{self.builder_dir} holds shards of another shard count: {stale[:3]}; "
                             "write into an empty directory")
        tfds.folder_dataset.write_metadata(
            data_dir=self.builder_dir, features=self.features, version=self.version,
            filename_template=FILE_TEMPLATE, check_data=True, description=self.description)
        return tfds.builder_from_directory(self.builder_dir)
