"""`agent-stack collect`: the dataset it writes, read back two ways, replayed, resumed, recoloured copies;
argument errors.

The collector runs as the user runs it, as a command in a process of its own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import agent_stack.data  # noqa: F401  (before TensorFlow, see agent_stack/data/__init__.py)
import tensorflow_datasets as tfds

from agent_stack.data.rlds import iterate_numpy, open_rlds
from agent_stack.control.osc import ee_delta_between, quat_to_rot6d
from agent_stack.data.tabletop import TABLETOP_DATASET, TABLETOP_VERSION
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import recolour_instruction, task_from_instruction

ROOT = Path(__file__).resolve().parents[2]
FAMILY = "pick_up"
EPISODES = 2
IMAGE_SIZE = 64
TIMEOUT_S = 300

def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)


def run_collect(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return run("-m", "sim.collect", "--task", FAMILY, "--episodes", str(EPISODES), "--episodes-per-shard",
               "1", "--image-size", str(IMAGE_SIZE), "--out", str(out), *extra)


@pytest.fixture(scope="module")
def builder_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("collect")
    result = run_collect(out)
    assert result.returncode == 0, result.stderr
    return out / TABLETOP_DATASET / TABLETOP_VERSION


def raw_episodes(builder_dir: Path) -> list[dict]:
    builder = tfds.builder_from_directory(builder_dir)
    return list(tfds.as_numpy(builder.as_dataset(split="train").map(
        lambda e: {**e, "steps": e["steps"].batch(1000).get_single_element()})))


def flatten(tree: dict) -> list:
    """The leaves of a nested dict, in sorted key order."""
    return [leaf for key in sorted(tree) for leaf in (flatten(tree[key]) if isinstance(tree[key], dict)
                                                      else [tree[key]])]


def test_builder_holds_successful_episodes_in_the_open_x_schema(builder_dir):
    builder = tfds.builder_from_directory(builder_dir)
    split = builder.info.splits["train"]
    assert (split.num_examples, split.num_shards) == (EPISODES, EPISODES)
    steps = builder.info.features["steps"]
    assert set(steps.keys()) == {"observation", "action", "target_pose", "language_instruction", "reward",
                                 "discount", "is_first", "is_last", "is_terminal"}
    assert set(steps["observation"].keys()) == {"image", "wrist_image", "state"}
    assert steps["observation"]["image"].shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
    assert steps["action"].shape == steps["target_pose"].shape == (7,)
    assert steps["observation"]["state"].shape == (14,)

    episodes = raw_episodes(builder_dir)
    assert len({e["episode_metadata"]["seed"] for e in episodes}) == EPISODES
    for episode in episodes:
        metadata, s = episode["episode_metadata"], episode["steps"]
        assert metadata["task_family"] == FAMILY.encode() and metadata["success"]
        length = len(s["action"])
        assert 5 < length < 300
        assert s["is_first"].tolist() == [True] + [False] * (length - 1)
        assert s["is_last"].tolist() == s["is_terminal"].tolist() == [False] * (length - 1) + [True]
        assert s["reward"].tolist() == [0.0] * (length - 1) + [1.0] and np.all(s["discount"] == 1.0)
        assert len(set(s["language_instruction"])) == 1
        assert np.all((s["action"][:, 6] >= 0) & (s["action"][:, 6] <= 1))
        assert s["observation"]["image"].std() > 10 and s["observation"]["wrist_image"].std() > 10


def test_reads_back_through_open_rlds(builder_dir):
    source = open_rlds(str(builder_dir.parent))  # the dataset directory: the reader picks the version
    assert source.name == TABLETOP_DATASET and source.num_episodes() == EPISODES
    standardized = list(iterate_numpy(source.trajectories(), [source]))
    for raw, standard in zip(raw_episodes(builder_dir), standardized):
        steps = raw["steps"]
        np.testing.assert_array_equal(standard["action"], steps["action"])
        np.testing.assert_array_equal(standard["state"], steps["observation"]["state"])
        np.testing.assert_array_equal(standard["image"], steps["observation"]["image"])
        np.testing.assert_array_equal(standard["wrist_image"], steps["observation"]["wrist_image"])
        assert standard["instruction"].tolist() == steps["language_instruction"].tolist()
        # The target action: position, the 6-D rotation of the quaternion, the action's gripper opening.
        poses = steps["target_pose"]
        rotations = [quat_to_rot6d(quat) for quat in poses[:, 3:]]
        expected = np.concatenate([poses[:, :3], rotations, steps["action"][:, 6:]], axis=1)
        np.testing.assert_allclose(standard["target"], expected, atol=1e-5)
        assert standard["is_last"][-1] and standard["is_terminal"][-1]


def test_recorded_actions_replay_to_the_same_states_and_success(builder_dir):
    env = TabletopEnv(TabletopConfig(render=False))
    for episode in raw_episodes(builder_dir):
        steps, metadata = episode["steps"], episode["episode_metadata"]
        task = task_from_instruction(metadata["task"].decode())
        assert task.family == FAMILY and steps["language_instruction"][0].decode() in task.phrasings()
        observation, _ = env.reset(seed=int(metadata["seed"]), task=task)
        successes = []
        for action, recorded_state, target_pose in zip(steps["action"], steps["observation"]["state"],
                                                       steps["target_pose"]):
            np.testing.assert_array_equal(observation["state"], recorded_state)
            observation, _, success, _, _ = env.step(action)
            successes.append(success)
            np.testing.assert_allclose(np.concatenate(env.ee_target_pose()), target_pose, atol=1e-6)
        # Success exactly on the last recorded action, not before: the episode ends where the task is done.
        assert successes[-1] and not any(successes[:-1])


def test_recorded_targets_drive_the_env_through_the_episode(builder_dir):
    """What a policy of the 'target' action space does: each recorded target, turned into a delta against the
    env's current target (`ee_delta_between`), moves the env's target onto it, and the episode succeeds."""
    env = TabletopEnv(TabletopConfig(render=False))
    for episode in raw_episodes(builder_dir):
        steps, metadata = episode["steps"], episode["episode_metadata"]
        task = task_from_instruction(metadata["task"].decode())
        observation, _ = env.reset(seed=int(metadata["seed"]), task=task)
        for action, target_pose in zip(steps["action"], steps["target_pose"]):
            ref = observation["ee_target"]
            delta = np.append(ee_delta_between(ref[:3], ref[3:], target_pose[:3], target_pose[3:]), action[6])
            np.testing.assert_allclose(delta, action, atol=1e-5)
            observation, _, success, _, _ = env.step(delta)
            np.testing.assert_allclose(observation["ee_target"], target_pose, atol=1e-5)
        assert success


def test_rerun_rewrites_only_the_missing_shard(builder_dir, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(builder_dir.parent.parent, out)
    copy = out / TABLETOP_DATASET / TABLETOP_VERSION
    kept, removed = sorted(copy.glob("*.tfrecord-*"))
    before = raw_episodes(copy)
    removed.unlink()
    kept_mtime = kept.stat().st_mtime_ns

    result = run_collect(out)
    assert result.returncode == 0, result.stderr
    assert "skipped 1 of 2 shards already written: 0" in result.stdout
    assert kept.stat().st_mtime_ns == kept_mtime and removed.is_file()
    # Same seeds, same episodes: every value alike (not the bytes: protobuf map order varies by process).
    after = raw_episodes(copy)
    assert len(after) == EPISODES
    for old, new in zip(before, after):
        for old_value, new_value in zip(flatten(old), flatten(new), strict=True):
            np.testing.assert_array_equal(old_value, new_value)
    summary = json.loads((copy / "collect_summary.json").read_text())
    assert summary["last_run"]["shards_written"] == 1 and summary["families"][FAMILY]["episodes"] == EPISODES

    other = run_collect(out, "--seed", "7")
    assert other.returncode == 2 and "other arguments {'seed': 0}" in other.stderr


def test_colour_permutations_write_recoloured_copies_of_each_demonstration(tmp_path):
    permutations = 2
    result = run("-m", "sim.collect", "--task", "place_on_pad", "--episodes", "1", "--image-size",
                 str(IMAGE_SIZE), "--colour-permutations", str(permutations), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    builder_dir = tmp_path / TABLETOP_DATASET / TABLETOP_VERSION
    demonstration, *copies = raw_episodes(builder_dir)
    assert len(copies) == permutations and demonstration["episode_metadata"]["recolouring"] == b""
    original_task = task_from_instruction(demonstration["episode_metadata"]["task"].decode())
    renamings = []
    env = TabletopEnv(TabletopConfig(image_size=(IMAGE_SIZE, IMAGE_SIZE)))
    for copy in copies:
        metadata, steps = copy["episode_metadata"], copy["steps"]
        renaming = dict(pair.split(":") for pair in metadata["recolouring"].decode().split())
        assert sorted(renaming) == sorted(renaming.values()) and any(k != v for k, v in renaming.items())
        renamings.append(renaming)
        assert metadata["seed"] == demonstration["episode_metadata"]["seed"] and metadata["success"]
        assert metadata["task"].decode() == recolour_instruction(original_task.instruction, renaming)
        for key in ("action", "reward", "is_first", "is_last", "is_terminal"):
            np.testing.assert_array_equal(steps[key], demonstration["steps"][key])
        np.testing.assert_array_equal(steps["observation"]["state"],
                                      demonstration["steps"]["observation"]["state"])
        instruction = demonstration["steps"]["language_instruction"][0].decode()
        assert set(steps["language_instruction"]) == {recolour_instruction(instruction, renaming).encode()}

        # Every stored frame is the demonstration's scene drawn under the renaming: where the renaming changes
        # a pixel, the stored one is the renamed colour (up to JPEG loss), not the colour as run.
        env.reset(seed=int(metadata["seed"]), task=original_task)
        from_renamed, from_as_run = [], []  # errors of the stored pixels the renaming changes
        for t, action in enumerate(steps["action"]):
            for camera, mjcf_camera in (("image", "front"), ("wrist_image", "wrist")):
                as_run = env.render(mjcf_camera).astype(float)
                with env.recoloured(renaming):
                    renamed = env.render(mjcf_camera).astype(float)
                stored = steps["observation"][camera][t].astype(float)
                assert np.abs(stored - renamed).mean() < 5, (t, camera)
                changed = np.abs(renamed - as_run).max(-1) > 60
                from_renamed += np.abs(stored - renamed)[changed].mean(-1).tolist()
                from_as_run += np.abs(stored - as_run)[changed].mean(-1).tolist()
            env.step(action)
        assert len(from_renamed) > 20 * len(steps["action"])
        assert np.mean(from_renamed) < np.mean(from_as_run) / 4
    env.close()
    assert renamings[0] != renamings[1]
    summary = json.loads((builder_dir / "collect_summary.json").read_text())
    assert summary["episodes"] == 1 + permutations and summary["families"]["place_on_pad"]["episodes"] == 1


def test_unknown_family_is_a_clear_error(tmp_path):
    result = run_collect(tmp_path, "--task", "nonsense")
    assert result.returncode == 2
    assert "unknown task family 'nonsense'" in result.stderr
    assert all(name in result.stderr for name in ("all", "pick_up", "stack", "push_left"))
    assert not any(tmp_path.iterdir())
