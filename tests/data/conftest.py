"""Small RLDS datasets written by the tests, with a standardisation registered for them."""

from __future__ import annotations

import numpy as np
import pytest

import agent_stack.data  # noqa: F401  (before TensorFlow, see agent_stack/data/__init__.py)
import tensorflow_datasets as tfds

from agent_stack.data.rlds_writer import RLDSWriter
from agent_stack.data.standardize import Standardized, Steps, register_dataset, target_action

WITH_WRIST = "agent_stack_test_with_wrist"
WITHOUT_WRIST = "agent_stack_test_without_wrist"
IMAGE_SIZE = 16


@register_dataset(WITH_WRIST)
def _with_wrist(steps: Steps) -> Standardized:
    return Standardized(image=steps["observation/image"], wrist_image=steps["observation/wrist_image"],
                        instruction=steps["language_instruction"], action=steps["action"],
                        state=steps["observation/state"],
                        target=target_action(steps["target_pose"], steps["action"][:, 6:]))


@register_dataset(WITHOUT_WRIST)  # records target poses but, like most Open-X datasets, yields no targets
def _without_wrist(steps: Steps) -> Standardized:
    return Standardized(image=steps["observation/image"], wrist_image=None,
                        instruction=steps["language_instruction"], action=steps["action"],
                        state=steps["observation/state"])


def features(wrist: bool, state_dim: int) -> tfds.features.FeaturesDict:
    F = tfds.features
    image = F.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3), encoding_format="png")
    observation = {"image": image, "state": F.Tensor(shape=(state_dim,), dtype=np.float32)}
    if wrist:
        observation["wrist_image"] = image
    return F.FeaturesDict({
        "steps": F.Dataset({
            "observation": F.FeaturesDict(observation),
            "action": F.Tensor(shape=(7,), dtype=np.float32),
            "target_pose": F.Tensor(shape=(7,), dtype=np.float32),
            "language_instruction": F.Text(),
            "reward": F.Scalar(dtype=np.float32),
            "discount": F.Scalar(dtype=np.float32),
            "is_first": F.Scalar(dtype=np.bool_),
            "is_last": F.Scalar(dtype=np.bool_),
            "is_terminal": F.Scalar(dtype=np.bool_),
        }),
        "episode_metadata": F.FeaturesDict({"episode": F.Scalar(dtype=np.int64)}),
    })


def episode(index: int, length: int, wrist: bool, state_dim: int) -> dict:
    """Frame t of episode e: red = t, green = e, blue = 7 (wrist: 9); action = t in every dim but the
    gripper (t % 2); target pose at (t, e, a height that dips at CONTACT_STEP) turned t / 10 rad about z
    (`target_pose`); state = e + t; instruction 'episode e'. Tests read identities back from these."""
    steps = []
    for t in range(length):
        frame = np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
        frame[..., 0], frame[..., 1], frame[..., 2] = t, index, 7
        observation = {"image": frame, "state": np.full(state_dim, index + t, np.float32)}
        if wrist:
            observation["wrist_image"] = frame + np.array([0, 0, 2], np.uint8)
        steps.append({"observation": observation,
                      "action": np.array([t] * 6 + [t % 2], np.float32),
                      "target_pose": target_pose(index, t),
                      "language_instruction": f"episode {index}",
                      "reward": float(t == length - 1), "discount": 1.0,
                      "is_first": t == 0, "is_last": t == length - 1, "is_terminal": t == length - 1})
    return {"steps": steps, "episode_metadata": {"episode": index}}


CONTACT_STEP = 2
"""The hand descends until this step, then creeps 6 mm lower, within the pipeline's contact tolerance."""


def target_pose(index: int, t: int) -> np.ndarray:
    height = 0.1 * (CONTACT_STEP - t) if t < CONTACT_STEP else 0.003 * max(CONTACT_STEP + 2 - t, 0)
    return np.array([t, index, height, np.cos(t / 20), 0.0, 0.0, np.sin(t / 20)], np.float32)


def write_dataset(root, lengths: list[int], *, wrist: bool = True, state_dim: int = 3, num_shards: int = 2):
    """Episodes of the given lengths in `num_shards` shards; returns the builder directory."""
    writer = RLDSWriter(root, WITH_WRIST if wrist else WITHOUT_WRIST, features(wrist, state_dim))
    shards = np.array_split(np.arange(len(lengths)), num_shards)
    for shard, indices in enumerate(shards):
        writer.write_shard(shard, num_shards, [episode(int(i), lengths[i], wrist, state_dim) for i in indices])
    writer.finalize(num_shards)
    return writer.builder_dir


@pytest.fixture
def dataset_dir(tmp_path):
    return write_dataset(tmp_path, [5, 7, 4, 6, 5, 8])
