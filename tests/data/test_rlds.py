"""Reading and writing RLDS: the writer's shards, the reader's standardised episodes, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from agent_stack.data.rlds import CorruptShardError, iterate_numpy, numpy_trajectory, open_rlds
from agent_stack.data.rlds_writer import RLDSWriter
from agent_stack.data.standardize import MissingKeyError, UnsupportedDatasetError, gripper_open_from_relative
from tests.data.conftest import IMAGE_SIZE, WITH_WRIST, episode, features


def test_episodes_read_back_standardised(dataset_dir):
    source = open_rlds(str(dataset_dir))
    assert source.name == WITH_WRIST and source.num_episodes() == 6
    episodes = list(iterate_numpy(source.trajectories(), [source]))
    assert sorted(len(e["action"]) for e in episodes) == [4, 5, 5, 6, 7, 8]
    for e in episodes:
        index = int(e["instruction"][0].decode().split()[1])
        length = len(e["action"])
        assert e["image"].shape == (length, IMAGE_SIZE, IMAGE_SIZE, 3) and e["image"].dtype == np.uint8
        np.testing.assert_array_equal(e["image"][:, 0, 0, 0], np.arange(length))
        assert np.all(e["image"][..., 1] == index) and np.all(e["wrist_image"][..., 2] == 9)
        np.testing.assert_array_equal(e["action"][:, 0], np.arange(length))
        np.testing.assert_array_equal(e["state"][:, 0], index + np.arange(length))
        assert e["is_first"][0] and e["is_last"][-1] and e["is_last"].sum() == 1


def test_open_by_name_under_data_dir_and_resize(dataset_dir):
    source = open_rlds(WITH_WRIST, data_dir=str(dataset_dir.parent.parent))
    assert source.builder_dir == dataset_dir
    trajectory = numpy_trajectory(source, 1, image_size=(8, 8))
    assert trajectory["image"].shape == (7, 8, 8, 3)
    with pytest.raises(IndexError, match="has 6 episodes"):
        numpy_trajectory(source, 6)


def test_unknown_locations_and_names_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        open_rlds("fractal20220817_data", data_dir=str(tmp_path))
    writer = RLDSWriter(tmp_path, "some_unregistered_robot_data", features(wrist=False, state_dim=2))
    writer.write_shard(0, 1, [episode(0, 3, wrist=False, state_dim=2)])
    writer.finalize(1)
    with pytest.raises(UnsupportedDatasetError, match="register_dataset") as error:
        open_rlds(str(writer.builder_dir))
    assert "fractal20220817_data" in str(error.value) and WITH_WRIST in str(error.value)


def test_missing_key_fails_on_open_naming_dataset_and_key(tmp_path):
    # Written under the with-wrist name, but without the wrist camera its standardisation reads.
    writer = RLDSWriter(tmp_path, WITH_WRIST, features(wrist=False, state_dim=3))
    writer.write_shard(0, 1, [episode(0, 3, wrist=False, state_dim=3)])
    writer.finalize(1)
    with pytest.raises(MissingKeyError, match=f"{WITH_WRIST}.*'observation/wrist_image'"):
        open_rlds(str(writer.builder_dir))


def test_truncated_shard_is_named(dataset_dir):
    shard = sorted(dataset_dir.glob("*.tfrecord-*"))[1]
    shard.write_bytes(shard.read_bytes()[:-100])
    source = open_rlds(str(dataset_dir))
    with pytest.raises(CorruptShardError, match=shard.name):
        list(iterate_numpy(source.trajectories(), [source]))


def test_corrupt_shard_is_named(dataset_dir):
    shard = sorted(dataset_dir.glob("*.tfrecord-*"))[0]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    source = open_rlds(str(dataset_dir))
    with pytest.raises(CorruptShardError, match=shard.name):
        list(iterate_numpy(source.trajectories(), [source]))


def test_missing_shard_fails_on_open(dataset_dir):
    shard = sorted(dataset_dir.glob("*.tfrecord-*"))[0]
    shard.unlink()
    with pytest.raises(CorruptShardError, match=shard.name):
        open_rlds(str(dataset_dir))


def test_writer_shards_are_atomic_and_finalize_needs_all(tmp_path):
    writer = RLDSWriter(tmp_path, WITH_WRIST, features(wrist=True, state_dim=3))

    def failing_episodes():
        yield episode(0, 3, wrist=True, state_dim=3)
        raise RuntimeError("simulator crashed")

    with pytest.raises(RuntimeError):
        writer.write_shard(0, 2, failing_episodes())
    assert not writer.has_shard(0, 2) and not list(writer.builder_dir.iterdir())
    writer.write_shard(1, 2, [episode(1, 3, wrist=True, state_dim=3)])
    with pytest.raises(FileNotFoundError, match=r"shards \[0\] of 2"):
        writer.finalize(2)
    writer.write_shard(0, 2, [episode(0, 3, wrist=True, state_dim=3)])
    assert writer.finalize(2).info.splits["train"].num_examples == 2


def test_relative_gripper_commands_become_absolute_openings():
    # +1 close, -1 open, 0 keep: open until the first close, closed until the open, then open.
    commands = np.array([[0.0], [0.0], [1.0], [0.0], [0.0], [-1.0], [0.0]], np.float32)
    np.testing.assert_array_equal(gripper_open_from_relative(commands).numpy()[:, 0], [1, 1, 0, 0, 0, 1, 1])
    # Starting with an open command means the gripper was closed before it.
    np.testing.assert_array_equal(gripper_open_from_relative(np.array([[0.0], [-1.0]])).numpy()[:, 0], [0, 1])
    np.testing.assert_array_equal(gripper_open_from_relative(np.zeros((3, 1))).numpy()[:, 0], [1, 1, 1])
