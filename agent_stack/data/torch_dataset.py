"""A PyTorch IterableDataset over the tf.data pipeline, sharded across DataLoader workers and DDP ranks.

Each (rank, worker) pair reads a disjoint set of episodes (`tfds.even_splits`), so an epoch yields every
window once across the whole job. TensorFlow does not survive `fork` once its thread pools are running,
so use DataLoader workers with `multiprocessing_context="spawn"` (see `make_dataloader`); with
`num_workers=0` tf.data's own threads already decode in parallel.

The stream is deterministic for a given config (seeded file order, shuffle and augmentation), so a
training run resumes its exact data position with `skip`: the number of elements this rank has taken.
DataLoader takes elements from its workers in turn, so on resume the worker slots are rotated to make the
worker that was next in line come first.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from agent_stack.language import InstructionEncoder
from agent_stack.data.pipeline import DataConfig, Mixture
from agent_stack.data.rlds import iterate_numpy
from agent_stack.normalization import DatasetStatistics


def _to_torch(tree):
    with warnings.catch_warnings():
        # tf.data hands out read-only views of buffers that nothing else holds, so torch can own them
        # without a copy.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return _convert(tree)


def _convert(tree):
    if isinstance(tree, dict):
        return {key: _convert(value) for key, value in tree.items()}
    if isinstance(tree, bytes):
        return tree.decode()
    if tree.dtype == object:
        return [item.decode() for item in tree]
    return torch.from_numpy(np.asarray(tree))


class RLDSWindowDataset(IterableDataset):
    """Samples (or batches, with `batch_size`) of the pipeline described in agent_stack.data.pipeline,
    as torch tensors; `instruction` is a str (a list of str in a batch). With `embed_language`, also
    `instruction_embedding`: float32 (384,) MiniLM sentence embedding.

    Statistics are computed (or read from cache) on construction, so `self.statistics` can be saved
    beside a checkpoint before training starts."""

    def __init__(self, config: DataConfig, *, train: bool = True, batch_size: int | None = None,
                 embed_language: bool = False, statistics: dict[str, DatasetStatistics] | None = None,
                 rank: int | None = None, world_size: int | None = None, skip: int = 0) -> None:
        super().__init__()
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.config, self.train, self.batch_size, self.embed_language = config, train, batch_size, embed_language
        self.skip = skip
        mixture = Mixture(config, statistics)
        self.statistics = mixture.statistics
        self.dataset_names = [source.name for source in mixture.sources]
        # Pickled by reference into spawned workers, which imports there the modules that registered
        # these datasets' standardisations (a plugin's, a test's), so the workers can open them too.
        self._standardizations = [source.entry.standardize for source in mixture.sources]
        distributed = dist.is_available() and dist.is_initialized()
        # Read here, in the main process: spawned DataLoader workers do not inherit the process group.
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.world_size = world_size if world_size is not None else (dist.get_world_size() if distributed else 1)

    def shard(self) -> tuple[int, int, int]:
        """(index, count) of the episode shard this process and DataLoader worker reads, and how many of
        its elements were taken before (`skip`)."""
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        taken_rounds, next_slot = divmod(self.skip, num_workers)
        slot = (worker_id + next_slot) % num_workers
        taken = taken_rounds + (1 if slot < next_slot else 0)
        return self.rank * num_workers + slot, self.world_size * num_workers, taken

    def __iter__(self):
        index, count, taken = self.shard()
        mixture = Mixture(self.config, self.statistics)
        samples = mixture.dataset(index, count, train=self.train)
        if self.batch_size is not None:
            samples = samples.batch(self.batch_size, drop_remainder=self.train and self.config.repeat)
        samples = samples.skip(taken).prefetch(2)
        encoder = InstructionEncoder() if self.embed_language else None
        for element in iterate_numpy(samples, mixture.sources):
            element = _to_torch(element)
            if encoder is not None:
                texts = element["instruction"]
                vectors = encoder([texts] if isinstance(texts, str) else texts)
                element["instruction_embedding"] = torch.from_numpy(vectors[0] if isinstance(texts, str) else vectors)
            yield element


def make_dataloader(dataset: RLDSWindowDataset, num_workers: int = 0, batch_size: int | None = None) -> DataLoader:
    """A DataLoader that is safe with TensorFlow in its workers; pass `batch_size` only for an unbatched
    dataset (the dataset's own tf.data batching is faster)."""
    if dataset.batch_size is not None and batch_size is not None:
        raise ValueError("the dataset already batches; leave the DataLoader's batch_size unset")
    return DataLoader(dataset, batch_size=batch_size, num_workers=num_workers,
                      multiprocessing_context="spawn" if num_workers > 0 else None,
                      persistent_workers=num_workers > 0)
