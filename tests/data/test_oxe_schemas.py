"""Every Open-X-Embodiment layout agent_stack supports, written with its published TFDS features and read back
through `open_rlds`: the standardised action, instruction, cameras and state must be what the raw episode
holds, transformed as the expectations below (numpy, independent of agent_stack.data.oxe) say."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest

import agent_stack.data  # noqa: F401  (before TensorFlow, see agent_stack/data/__init__.py)
import tensorflow as tf
import tensorflow_datasets as tfds

from agent_stack.data.rlds import iterate_numpy, open_rlds
from agent_stack.data.rlds_writer import RLDSWriter
from agent_stack.data.standardize import (
    MissingKeyError,
    UnsupportedDatasetError,
    dataset_entry,
    registered_datasets,
)
from tests.data.oxe_features import FRACTAL20220817_DATA, KUKA, SCHEMAS, PublishedSchema, fake_episode

EPISODE_LENGTHS = (3, 5)  # distinct, so read-back episodes pair with written ones by length
# Written into language_table's zero-padded UTF-8 instruction; the accent makes a two-byte character.
LANGUAGE_TABLE_INSTRUCTION = "push the blue cube next to the café"

RawSteps = list[dict]


def values(steps: RawSteps, *path: str) -> np.ndarray:
    """The value at `path` (one key per level: kuka has a key containing '/') of every step, stacked."""
    stacked = []
    for step in steps:
        for key in path:
            step = step[key]
        stacked.append(step)
    return np.stack(stacked)


def texts(steps: RawSteps, *path: str) -> list[str]:
    return [str(text) for text in values(steps, *path)]


def eef(translation, rotation, gripper) -> np.ndarray:
    gripper = np.asarray(gripper, np.float32).reshape(-1, 1)
    return np.concatenate([translation, rotation, gripper], axis=1).astype(np.float32)


def opening_from_relative(commands) -> np.ndarray:
    """+1 close / -1 open / ~0 keep, as a gripper opening per step; before the first command the gripper is
    in the state that command leaves (a gripper told to close was open), and open when none is given."""
    commands = np.ravel(commands)
    issued = commands[np.abs(commands) > 0.1]
    closed = bool(len(issued)) and issued[0] < 0
    opening = []
    for command in commands:
        if abs(command) > 0.1:
            closed = command > 0
        opening.append(0.0 if closed else 1.0)
    return np.array(opening)


def opening_from_closedness(closedness) -> np.ndarray:
    return 1.0 - np.clip(closedness, 0.0, 1.0)


def utf8_from_codes(codes: np.ndarray) -> str:
    return bytes(int(code) for code in codes if code).decode("utf-8")


def write_language_table_instruction(steps: RawSteps) -> None:
    encoded = np.frombuffer(LANGUAGE_TABLE_INSTRUCTION.encode("utf-8"), np.uint8)
    for step in steps:
        codes = np.zeros(512, np.int32)
        codes[: len(encoded)] = encoded
        step["observation"]["instruction"] = codes


@dataclasses.dataclass(frozen=True)
class Expected:
    """How one layout's raw steps map to the standardised episode."""

    image: tuple[str, ...]
    instruction: Callable[[RawSteps], list[str]]
    action: Callable[[RawSteps], np.ndarray]
    state: Callable[[RawSteps], np.ndarray] | None
    wrist_image: tuple[str, ...] | None = None
    prepare: Callable[[RawSteps], None] | None = None
    """Overwrites random values that are not valid data for the field (language_table's byte string)."""


def _google_robot_action(steps: RawSteps) -> np.ndarray:
    return eef(values(steps, "action", "world_vector"), values(steps, "action", "rotation_delta"),
               opening_from_relative(values(steps, "action", "gripper_closedness_action")))


def _natural_language(steps: RawSteps) -> list[str]:
    return texts(steps, "observation", "natural_language_instruction")


def _bridge_data_v2(steps: RawSteps) -> np.ndarray:
    action = values(steps, "action")
    return eef(action[:, :3], action[:, 3:6], np.clip(action[:, 6], 0, 1))


def _flipped_closedness(steps: RawSteps) -> np.ndarray:
    action = values(steps, "action")
    return eef(action[:, :3], action[:, 3:6], opening_from_closedness(action[:, 6]))


BRIDGE_DATA_V2 = Expected(
    image=("observation", "image_0"), instruction=lambda s: texts(s, "language_instruction"),
    action=_bridge_data_v2, state=lambda s: values(s, "observation", "state"))
UT_AUSTIN_FRANKA = Expected(
    image=("observation", "image"), wrist_image=("observation", "wrist_image"),
    instruction=lambda s: texts(s, "language_instruction"), action=_flipped_closedness,
    state=lambda s: values(s, "observation", "state")[:, :8])

EXPECTED = {
    "fractal20220817_data": Expected(
        image=("observation", "image"), instruction=_natural_language, action=_google_robot_action,
        state=lambda s: np.concatenate([values(s, "observation", "base_pose_tool_reached"),
                                        values(s, "observation", "gripper_closed")], axis=1)),
    "kuka": Expected(
        image=("observation", "image"), instruction=_natural_language, action=_google_robot_action,
        state=lambda s: np.concatenate(
            [values(s, "observation", "clip_function_input/base_pose_tool_reached"),
             values(s, "observation", "gripper_closed")], axis=1)),
    "language_table": Expected(
        image=("observation", "rgb"),
        instruction=lambda s: [utf8_from_codes(codes) for codes in values(s, "observation", "instruction")],
        action=lambda s: np.concatenate([values(s, "action"), np.zeros((len(s), 4)), np.ones((len(s), 1))],
                                        axis=1),
        state=lambda s: values(s, "observation", "effector_translation"),
        prepare=write_language_table_instruction),
    "bridge[oxe]": Expected(
        image=("observation", "image"), instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             values(s, "action", "open_gripper")),
        state=lambda s: values(s, "observation", "state")),
    "bridge[bridge_data_v2]": BRIDGE_DATA_V2,
    "bridge_dataset": BRIDGE_DATA_V2,
    "taco_play": Expected(
        image=("observation", "rgb_static"), wrist_image=("observation", "rgb_gripper"),
        instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "rel_actions_world")[:, :3],
                             values(s, "action", "rel_actions_world")[:, 3:6],
                             np.clip((values(s, "action", "rel_actions_world")[:, 6] + 1) / 2, 0, 1)),
        state=lambda s: values(s, "observation", "robot_obs")[:, :7]),
    "jaco_play": Expected(
        image=("observation", "image"), wrist_image=("observation", "image_wrist"),
        instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), np.zeros((len(s), 3)),
                             opening_from_relative(values(s, "action", "gripper_closedness_action"))),
        state=lambda s: values(s, "observation", "end_effector_cartesian_pos")),
    "berkeley_cable_routing": Expected(
        image=("observation", "image"), wrist_image=("observation", "wrist45_image"),
        instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             np.zeros(len(s))),
        state=lambda s: values(s, "observation", "robot_state")),
    "roboturk": Expected(
        image=("observation", "front_rgb"), instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             opening_from_closedness(values(s, "action", "gripper_closedness_action"))),
        state=None),
    "viola": Expected(
        image=("observation", "agentview_rgb"), wrist_image=("observation", "eye_in_hand_rgb"),
        instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             opening_from_closedness(values(s, "action", "gripper_closedness_action"))),
        state=lambda s: np.concatenate([values(s, "observation", "joint_states"),
                                        values(s, "observation", "gripper_states")], axis=1)),
    "berkeley_autolab_ur5": Expected(
        image=("observation", "image"), wrist_image=("observation", "hand_image"),
        instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             opening_from_relative(values(s, "action", "gripper_closedness_action"))),
        state=lambda s: values(s, "observation", "robot_state")[:, 6:14]),
    "toto": Expected(
        image=("observation", "image"), instruction=_natural_language,
        action=lambda s: eef(values(s, "action", "world_vector"), values(s, "action", "rotation_delta"),
                             values(s, "action", "open_gripper")),
        state=lambda s: values(s, "observation", "state")),
    "stanford_hydra_dataset_converted_externally_to_rlds": Expected(
        image=("observation", "image"), wrist_image=("observation", "wrist_image"),
        instruction=lambda s: texts(s, "language_instruction"), action=_flipped_closedness,
        state=lambda s: values(s, "observation", "state")[:, [0, 1, 2, 7, 8, 9, 24]]),
    "austin_buds_dataset_converted_externally_to_rlds": UT_AUSTIN_FRANKA,
    "utaustin_mutex": UT_AUSTIN_FRANKA,
}


def write_episodes(root, name: str, features: tfds.features.FeaturesDict, episodes: list[dict]):
    writer = RLDSWriter(root, name, features)
    writer.write_shard(0, 1, episodes)
    writer.finalize(1)
    return writer.builder_dir


def assert_camera_read_back(images: np.ndarray, features: tfds.features.FeaturesDict, steps: RawSteps,
                            path: tuple[str, ...]) -> None:
    """`images` are the frames written at `path`, as decoded from the bytes the feature encodes them to
    (JPEG is lossy, PNG exact)."""
    feature = features["steps"].feature
    for key in path:
        feature = feature[key]
    written = [tf.io.decode_image(feature.encode_example(frame), channels=3).numpy()
               for frame in values(steps, *path)]
    np.testing.assert_array_equal(images, np.stack(written))


def test_every_registered_oxe_dataset_has_a_published_schema_and_an_expectation():
    registered = {name for name in registered_datasets()
                  if dataset_entry(name).standardize.__module__ == "agent_stack.data.oxe"}
    assert registered == {schema.dataset for schema in SCHEMAS}
    assert set(EXPECTED) == {schema.id for schema in SCHEMAS}


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda schema: schema.id)
def test_published_schema_reads_back_standardised(tmp_path, schema: PublishedSchema):
    expected = EXPECTED[schema.id]
    rng = np.random.default_rng(0)
    episodes = [fake_episode(schema.features, length, rng) for length in EPISODE_LENGTHS]
    if expected.prepare:
        for episode in episodes:
            expected.prepare(episode["steps"])
    builder_dir = write_episodes(tmp_path, schema.dataset, schema.features, episodes)

    by_name = open_rlds(schema.dataset, data_dir=str(tmp_path))
    by_path = open_rlds(str(builder_dir))
    assert by_name.builder_dir == by_path.builder_dir == builder_dir
    read = list(iterate_numpy(by_name.trajectories(), [by_name]))
    for got, again in zip(read, iterate_numpy(by_path.trajectories(), [by_path]), strict=True):
        assert got.keys() == again.keys()
        for key in got:
            np.testing.assert_array_equal(got[key], again[key])

    assert sorted(len(trajectory["action"]) for trajectory in read) == sorted(EPISODE_LENGTHS)
    for trajectory in read:
        steps = next(e["steps"] for e in episodes if len(e["steps"]) == len(trajectory["action"]))
        action = trajectory["action"]
        assert action.dtype == np.float32 and action.shape == (len(steps), 7)
        np.testing.assert_allclose(action, expected.action(steps), rtol=1e-6, atol=1e-6)
        assert np.all((action[:, 6] >= 0) & (action[:, 6] <= 1))
        assert [text.decode() for text in trajectory["instruction"]] == expected.instruction(steps)
        assert_camera_read_back(trajectory["image"], schema.features, steps, expected.image)
        if expected.wrist_image is None:
            assert "wrist_image" not in trajectory
        else:
            assert_camera_read_back(trajectory["wrist_image"], schema.features, steps, expected.wrist_image)
        if expected.state is None:
            assert "state" not in trajectory
        else:
            np.testing.assert_array_equal(trajectory["state"], expected.state(steps).astype(np.float32))
        assert trajectory["is_first"][0] and trajectory["is_last"][-1] and trajectory["is_last"].sum() == 1


def without_key(features: tfds.features.FeaturesDict, path: tuple[str, ...]) -> tfds.features.FeaturesDict:
    """A copy of an RLDS spec with the step feature at `path` removed."""

    def drop(feature: tfds.features.FeaturesDict, path: tuple[str, ...]) -> tfds.features.FeaturesDict:
        head, *rest = path
        children = dict(feature.items())
        if rest:
            children[head] = drop(children[head], tuple(rest))
        else:
            del children[head]
        return tfds.features.FeaturesDict(children)

    top = dict(features.items())
    top["steps"] = tfds.features.Dataset(drop(features["steps"].feature, path))
    return tfds.features.FeaturesDict(top)


@pytest.mark.parametrize(("name", "features", "path", "named"), [
    pytest.param("fractal20220817_data", FRACTAL20220817_DATA,
                 ("observation", "natural_language_instruction"),
                 "'observation/natural_language_instruction'", id="fractal20220817_data"),
    # kuka's key has a slash of its own.
    pytest.param("kuka", KUKA, ("observation", "clip_function_input/base_pose_tool_reached"),
                 "'observation/clip_function_input/base_pose_tool_reached'", id="kuka"),
])
def test_dataset_missing_a_key_fails_on_open_naming_dataset_and_key(tmp_path, name, features, path, named):
    features = without_key(features, path)
    episode = fake_episode(features, 2, np.random.default_rng(0))
    builder_dir = write_episodes(tmp_path, name, features, [episode])
    with pytest.raises(MissingKeyError, match=f"{name}.*{named}"):
        open_rlds(str(builder_dir))


def test_unknown_dataset_name_lists_supported_datasets(tmp_path):
    features = FRACTAL20220817_DATA
    builder_dir = write_episodes(tmp_path, "not_an_oxe_dataset", features,
                                 [fake_episode(features, 2, np.random.default_rng(0))])
    with pytest.raises(UnsupportedDatasetError, match="not_an_oxe_dataset") as error:
        open_rlds(str(builder_dir))
    assert all(schema.dataset in str(error.value) for schema in SCHEMAS)
