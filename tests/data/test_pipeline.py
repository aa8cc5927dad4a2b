"""The training pipeline: windows, pad masks, normalisation, mixtures, sharding, augmentation, torch."""

from __future__ import annotations

import collections

import numpy as np
import pytest
import torch

from agent_stack.control.osc import quat_to_rot6d
from agent_stack.data.pipeline import DataConfig, Mixture, parse_mixture
from agent_stack.data.rlds import iterate_numpy
from agent_stack.data.torch_dataset import RLDSWindowDataset, make_dataloader
from agent_stack.normalization import TARGET_ACTION_DIM, TARGET_GRIPPER_INDEX
from tests.data.conftest import CONTACT_STEP, IMAGE_SIZE, target_pose, write_dataset

LENGTHS = [5, 7, 4, 6, 5, 8]


def _config(*datasets, **overrides) -> DataConfig:
    fields = dict(datasets=[str(d) for d in datasets], image_size=IMAGE_SIZE, history=3, action_chunk=4,
                  repeat=False, shuffle_buffer=0)
    return DataConfig(**{**fields, **overrides})


def _identity(sample) -> tuple[int, int]:
    """(episode, step) of a sample, read from the current frame's pixels (see conftest.episode)."""
    frame = sample["observation"]["image"][-1]
    return int(frame[0, 0, 1]), int(frame[0, 0, 0])


def _samples(mixture: Mixture, shard=(0, 1), train=False) -> list[dict]:
    return list(iterate_numpy(mixture.dataset(*shard, train=train), mixture.sources))


def test_windows_hold_history_chunk_masks_and_normalised_values(dataset_dir):
    mixture = Mixture(_config(dataset_dir))
    samples = _samples(mixture)
    assert len(samples) == sum(LENGTHS)
    statistics = mixture.statistics["agent_stack_test_with_wrist"]
    by_identity = {_identity(s): s for s in samples}
    for (episode, t), sample in by_identity.items():
        length = LENGTHS[episode]
        frames = np.arange(t - 2, t + 1)
        np.testing.assert_array_equal(sample["observation"]["pad_mask"], frames >= 0)
        # Frames before the start repeat the first frame; the wrist camera follows the same frames.
        np.testing.assert_array_equal(sample["observation"]["image"][:, 0, 0, 0], np.maximum(frames, 0))
        np.testing.assert_array_equal(sample["observation"]["wrist_image"][:, 0, 0, 2], 9)
        futures = np.arange(t, t + 4)
        np.testing.assert_array_equal(sample["action_pad_mask"], futures < length)
        np.testing.assert_array_equal(sample["terminate"], futures >= length - 1)
        raw = np.minimum(futures, length - 1).astype(np.float32)
        expected = statistics.normalize_action(np.stack([[a] * 6 + [a % 2] for a in raw]).astype(np.float32))
        np.testing.assert_allclose(sample["action"], expected, atol=1e-6)
        assert sample["instruction"] == f"episode {episode}".encode()
        assert sample["observation"]["has_wrist_image"] and sample["observation"]["has_state"]
        assert np.all(np.abs(sample["observation"]["state"]) <= 1.0)


def test_target_action_space_yields_normalised_absolute_targets_and_the_contact_point(dataset_dir, tmp_path):
    mixture = Mixture(_config(dataset_dir, action_space="target"))
    statistics = mixture.statistics["agent_stack_test_with_wrist"]
    assert statistics.target.dim == TARGET_ACTION_DIM
    for sample in _samples(mixture):
        episode, t = _identity(sample)
        futures = np.minimum(np.arange(t, t + 4), LENGTHS[episode] - 1)  # past the end: hold the last target
        poses = [target_pose(episode, f) for f in futures]
        raw = [[*pose[:3], *quat_to_rot6d(pose[3:]), f % 2] for pose, f in zip(poses, futures)]
        expected = statistics.target.normalize(np.array(raw, np.float32), skip=(TARGET_GRIPPER_INDEX,))
        np.testing.assert_allclose(sample["action"], expected, atol=1e-5)
        # The first step within 1 cm of the lowest target, not the lowest (that comes 2 steps later)
        contact = statistics.target.normalize(np.array([*target_pose(episode, CONTACT_STEP)[:3]] + [0.0] * 7,
                                                       np.float32))[:3]
        np.testing.assert_allclose(sample["contact_point"], contact, atol=1e-5)
        start = sample["observation"]["start_image"]
        assert start.shape == (1, IMAGE_SIZE, IMAGE_SIZE, 3) and tuple(start[0, 0, 0, :2]) == (0, episode)

    without_targets = write_dataset(tmp_path / "b", LENGTHS, wrist=False)
    with pytest.raises(ValueError, match="record the end-effector target"):
        Mixture(_config(dataset_dir, without_targets, action_space="target"))


@pytest.mark.parametrize("num_shards", [2, 4])
def test_shards_partition_the_episodes(dataset_dir, num_shards):
    mixture = Mixture(_config(dataset_dir))
    seen = collections.Counter()
    for shard in range(num_shards):
        seen.update(_identity(s) for s in _samples(mixture, (shard, num_shards)))
    assert sum(seen.values()) == sum(LENGTHS) and max(seen.values()) == 1


def test_too_many_shards_is_a_clear_error(dataset_dir):
    with pytest.raises(ValueError, match="6 episodes, too few"):
        Mixture(_config(dataset_dir)).dataset(0, 7)


def test_dataloader_workers_and_ranks_read_every_window_once(dataset_dir):
    seen = collections.Counter()
    # Both ranks' loaders start their worker processes before either is read: the start-ups overlap.
    loaders = [iter(make_dataloader(RLDSWindowDataset(_config(dataset_dir), train=False, rank=rank, world_size=2),
                                    num_workers=2, batch_size=None)) for rank in range(2)]
    for loader in loaders:
        for sample in loader:
            seen[_identity({"observation": {"image": sample["observation"]["image"].numpy()}})] += 1
    assert sum(seen.values()) == sum(LENGTHS) and max(seen.values()) == 1


def test_mixture_follows_weights_and_pads_missing_cameras_and_state(tmp_path):
    with_wrist = write_dataset(tmp_path / "a", LENGTHS, state_dim=3)
    without_wrist = write_dataset(tmp_path / "b", [9, 9, 9], wrist=False, state_dim=5)
    with pytest.raises(ValueError, match="state_dim"):
        Mixture(_config(with_wrist, without_wrist))
    config = _config(with_wrist, without_wrist, weights=[3.0, 1.0], state_dim=6, repeat=True, history=1,
                     action_chunk=1)
    mixture = Mixture(config)
    samples = mixture.dataset(train=True).take(4000)
    counts = collections.Counter()
    for sample in iterate_numpy(samples, mixture.sources):
        counts[int(sample["dataset_index"])] += 1
        state = sample["observation"]["state"]
        assert state.shape == (1, 6)
        if sample["dataset_index"] == 1:
            assert not sample["observation"]["has_wrist_image"] and not sample["observation"]["wrist_image"].any()
            assert not state[:, 5:].any()
        else:
            assert not state[:, 3:].any()
    assert counts[0] / 4000 == pytest.approx(0.75, abs=0.03)


def test_augmentation_only_on_the_training_path(dataset_dir):
    config = _config(dataset_dir, augment=True, repeat=True, shuffle_buffer=10)
    mixture = Mixture(config)
    evaluation = _samples(Mixture(_config(dataset_dir, augment=True)), train=False)
    assert all(np.all(s["observation"]["image"][..., 2] == 7) for s in evaluation)
    training = list(iterate_numpy(mixture.dataset(train=True).take(50), mixture.sources))
    changed = [not np.all(s["observation"]["image"][..., 2] == 7) for s in training]
    assert sum(changed) > 40
    assert training[0]["observation"]["image"].shape == (3, IMAGE_SIZE, IMAGE_SIZE, 3)


def test_torch_batches_with_language_embeddings(dataset_dir):
    dataset = RLDSWindowDataset(_config(dataset_dir, repeat=True, shuffle_buffer=20), batch_size=8,
                                embed_language=True)
    batch = next(iter(dataset))
    assert batch["observation"]["image"].dtype == torch.uint8
    assert batch["observation"]["image"].shape == (8, 3, IMAGE_SIZE, IMAGE_SIZE, 3)
    assert batch["action"].shape == (8, 4, 7) and batch["action"].dtype == torch.float32
    assert isinstance(batch["instruction"], list) and len(batch["instruction"]) == 8
    embeddings = batch["instruction_embedding"]
    assert embeddings.shape == (8, 384)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(8))
    same = [i for i, text in enumerate(batch["instruction"]) if text == batch["instruction"][0]]
    for i in same:
        torch.testing.assert_close(embeddings[i], embeddings[0])


def test_mixture_strings_and_config_validation():
    assert parse_mixture("fractal20220817_data:2,bridge:1") == (["fractal20220817_data", "bridge"], [2.0, 1.0])
    assert parse_mixture("/data/a/1.0.0, b") == (["/data/a/1.0.0", "b"], None)
    with pytest.raises(ValueError, match="every dataset or to none"):
        parse_mixture("a:1,b")
    with pytest.raises(ValueError, match="not a number"):
        parse_mixture("a:heavy")
    with pytest.raises(ValueError, match="history"):
        DataConfig(datasets=["a"], history=0)
    with pytest.raises(ValueError, match="weights"):
        DataConfig(datasets=["a", "b"], weights=[1.0])
    with pytest.raises(ValueError, match="action_space"):
        DataConfig(datasets=["a"], action_space="joint")
