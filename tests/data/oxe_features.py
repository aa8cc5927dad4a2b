"""The published TFDS feature specs of the Open-X-Embodiment datasets agent_stack reads, and random episodes
that match any of them.

Each spec is copied from the dataset's page in the TFDS catalog (keys, shapes, dtypes, and the feature class:
`bool`/`float32`/`string` there is a scalar `Tensor`, `Scalar(...)` a `Scalar`, `Text(...)` a `Text`). The
catalog does not print an image's encoding; where the dataset's own features.json gives one it is set here
(noted per spec), elsewhere it is left unset, as in the catalog, and TFDS writes PNG.
"""

from __future__ import annotations

import dataclasses

import numpy as np

import agent_stack.data  # noqa: F401  (before TensorFlow, see agent_stack/data/__init__.py)
import tensorflow as tf
import tensorflow_datasets as tfds

F = tfds.features


def _tensor(*shape: int, dtype=np.float32, encoding=F.Encoding.NONE) -> F.Tensor:
    return F.Tensor(shape=shape, dtype=dtype, encoding=encoding)


def _bool() -> F.Tensor:
    return F.Tensor(shape=(), dtype=np.bool_)


def _string() -> F.Tensor:
    return F.Tensor(shape=(), dtype=np.str_)


def _image(height: int, width: int, channels: int = 3, dtype=np.uint8,
           encoding: str | None = None) -> F.Image:
    return F.Image(shape=(height, width, channels), dtype=dtype, encoding_format=encoding)


def _rlds_flags() -> dict:
    return {"is_first": _bool(), "is_last": _bool(), "is_terminal": _bool()}


def _converted_episode_metadata() -> F.FeaturesDict:
    """episode_metadata of the datasets converted with the RLDS dataset builder template."""
    return F.FeaturesDict({"file_path": F.Text()})


# https://www.tensorflow.org/datasets/catalog/fractal20220817_data
FRACTAL20220817_DATA = F.FeaturesDict({
    "aspects": F.FeaturesDict({
        "already_success": _bool(), "feasible": _bool(), "has_aspects": _bool(), "success": _bool(),
        "undesirable": _bool(),
    }),
    "attributes": F.FeaturesDict({
        "collection_mode": _tensor(dtype=np.int64), "collection_mode_name": _string(),
        "data_type": _tensor(dtype=np.int64), "data_type_name": _string(),
        "env": _tensor(dtype=np.int64), "env_name": _string(),
        "location": _tensor(dtype=np.int64), "location_name": _string(),
        "objects_family": _tensor(dtype=np.int64), "objects_family_name": _string(),
        "task_family": _tensor(dtype=np.int64), "task_family_name": _string(),
    }),
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "base_displacement_vector": _tensor(2),
            "base_displacement_vertical_rotation": _tensor(1),
            "gripper_closedness_action": _tensor(1),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(3, dtype=np.int32),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "base_pose_tool_reached": _tensor(7),
            "gripper_closed": _tensor(1),
            "gripper_closedness_commanded": _tensor(1),
            "height_to_bottom": _tensor(1),
            "image": _image(256, 320),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "orientation_box": _tensor(2, 3),
            "orientation_start": _tensor(4),
            "robot_orientation_positions_box": _tensor(3, 3),
            "rotation_delta_to_go": _tensor(3),
            "src_rotation": _tensor(4),
            "vector_to_go": _tensor(3),
            "workspace_bounds": _tensor(3, 3),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/kuka
# Tensor encodings from the dataset's features.json, which the catalog does not print: base_pose_tool_reached,
# gripper_closed and task_id are zlib-compressed (Octo and OpenVLA decompress the first two by hand).
KUKA = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "base_displacement_vector": _tensor(2),
            "base_displacement_vertical_rotation": _tensor(1),
            "gripper_closedness_action": _tensor(1),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(3, dtype=np.int32),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "clip_function_input/base_pose_tool_reached": _tensor(7, encoding=F.Encoding.ZLIB),
            "clip_function_input/workspace_bounds": _tensor(3, 3),
            "gripper_closed": _tensor(1, encoding=F.Encoding.ZLIB),
            "height_to_bottom": _tensor(1),
            "image": _image(512, 640),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "task_id": _tensor(1, encoding=F.Encoding.ZLIB),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
    "success": _bool(),
})

# language_table has no TFDS catalog page; this is the FeaturesDict TFDS prints for
# gs://gresearch/robotics/language_table/0.0.1 (also in https://github.com/google-research/language-table),
# with the JPEG encoding and the instruction's description ("A UTF-8 encoded string as bytes", zero-padded)
# from its features.json.
LANGUAGE_TABLE = F.FeaturesDict({
    "episode_id": _string(),
    "steps": F.Dataset({
        "action": _tensor(2),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "effector_target_translation": _tensor(2),
            "effector_translation": _tensor(2),
            "instruction": _tensor(512, dtype=np.int32),
            "rgb": _image(360, 640, encoding="jpeg"),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/bridge as it read before the catalog switched to the
# BridgeData V2 layout below (tensorflow/datasets docs/catalog/bridge.md at commit
# 124318866f274a497a9c9086b42ec82888aedb21): the OXE copy, gs://gresearch/robotics/bridge/0.1.0.
BRIDGE_OXE = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "open_gripper": _bool(),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "image": _image(480, 640),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "state": _tensor(7),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})


def _bridge_data_v2(image_encoding: str | None) -> F.FeaturesDict:
    """BridgeData V2's own RLDS layout (https://www.tensorflow.org/datasets/catalog/bridge, current page)."""
    return F.FeaturesDict({
        "episode_metadata": F.FeaturesDict({
            "episode_id": F.Scalar(dtype=np.int32),
            "file_path": _string(),
            "has_image_0": F.Scalar(dtype=np.bool_),
            "has_image_1": F.Scalar(dtype=np.bool_),
            "has_image_2": F.Scalar(dtype=np.bool_),
            "has_image_3": F.Scalar(dtype=np.bool_),
            "has_language": F.Scalar(dtype=np.bool_),
        }),
        "steps": F.Dataset({
            "action": _tensor(7),
            "discount": F.Scalar(dtype=np.float32),
            **_rlds_flags(),
            "language_embedding": _tensor(512),
            "language_instruction": _string(),
            "observation": F.FeaturesDict({
                "image_0": _image(256, 256, encoding=image_encoding),
                "image_1": _image(256, 256, encoding=image_encoding),
                "image_2": _image(256, 256, encoding=image_encoding),
                "image_3": _image(256, 256, encoding=image_encoding),
                "state": _tensor(7),
            }),
            "reward": F.Scalar(dtype=np.float32),
        }),
    })


# https://www.tensorflow.org/datasets/catalog/bridge (current page: the catalog's `bridge` now imports
# BridgeData V2, bridge_data_v2/0.0.1).
BRIDGE_CATALOG = _bridge_data_v2(image_encoding=None)

# bridge_dataset/1.0.0 from https://rail.eecs.berkeley.edu/datasets/bridge_release/data/tfds/ (OpenVLA's
# "bridge_orig"). Not in the TFDS catalog: the same data as the catalog's current `bridge`, so its layout,
# with JPEG images as the release stores them.
BRIDGE_DATASET = _bridge_data_v2(image_encoding="jpeg")

# https://www.tensorflow.org/datasets/catalog/taco_play
TACO_PLAY = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "actions": _tensor(7),
            "rel_actions_gripper": _tensor(7),
            "rel_actions_world": _tensor(7),
            "terminate_episode": _tensor(),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "depth_gripper": _tensor(84, 84),
            "depth_static": _tensor(150, 200),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "rgb_gripper": _image(84, 84),
            "rgb_static": _image(150, 200),
            "robot_obs": _tensor(15),
            "structured_language_instruction": _string(),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/jaco_play
JACO_PLAY = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "gripper_closedness_action": _tensor(1),
            "terminate_episode": _tensor(3, dtype=np.int32),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "end_effector_cartesian_pos": _tensor(7),
            "end_effector_cartesian_velocity": _tensor(6),
            "image": _image(224, 224),
            "image_wrist": _image(224, 224),
            "joint_pos": _tensor(8),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/berkeley_cable_routing
BERKELEY_CABLE_ROUTING = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "image": _image(128, 128),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "robot_state": _tensor(7),
            "top_image": _image(128, 128),
            "wrist225_image": _image(128, 128),
            "wrist45_image": _image(128, 128),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/roboturk
ROBOTURK = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "gripper_closedness_action": _tensor(1),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "front_rgb": _image(480, 640),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/viola
VIOLA = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "gripper_closedness_action": _tensor(),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "agentview_rgb": _image(224, 224),
            "ee_states": _tensor(16),
            "eye_in_hand_rgb": _image(224, 224),
            "gripper_states": _tensor(1),
            "joint_states": _tensor(7),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/berkeley_autolab_ur5
BERKELEY_AUTOLAB_UR5 = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "gripper_closedness_action": _tensor(),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "hand_image": _image(480, 640),
            "image": _image(480, 640),
            "image_with_depth": _image(480, 640, channels=1, dtype=np.float32),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "robot_state": _tensor(15),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/toto
TOTO = F.FeaturesDict({
    "steps": F.Dataset({
        "action": F.FeaturesDict({
            "open_gripper": _bool(),
            "rotation_delta": _tensor(3),
            "terminate_episode": _tensor(),
            "world_vector": _tensor(3),
        }),
        **_rlds_flags(),
        "observation": F.FeaturesDict({
            "image": _image(480, 640),
            "natural_language_embedding": _tensor(512),
            "natural_language_instruction": _string(),
            "state": _tensor(7),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})

# https://www.tensorflow.org/datasets/catalog/stanford_hydra_dataset_converted_externally_to_rlds
STANFORD_HYDRA = F.FeaturesDict({
    "episode_metadata": _converted_episode_metadata(),
    "steps": F.Dataset({
        "action": _tensor(7),
        "discount": F.Scalar(dtype=np.float32),
        "is_dense": F.Scalar(dtype=np.bool_),
        **_rlds_flags(),
        "language_embedding": _tensor(512),
        "language_instruction": F.Text(),
        "observation": F.FeaturesDict({
            "image": _image(240, 320),
            "state": _tensor(27),
            "wrist_image": _image(240, 320),
        }),
        "reward": F.Scalar(dtype=np.float32),
    }),
})


def _ut_austin_franka() -> F.FeaturesDict:
    """The layout austin_buds_dataset_converted_externally_to_rlds and utaustin_mutex share."""
    return F.FeaturesDict({
        "episode_metadata": _converted_episode_metadata(),
        "steps": F.Dataset({
            "action": _tensor(7),
            "discount": F.Scalar(dtype=np.float32),
            **_rlds_flags(),
            "language_embedding": _tensor(512),
            "language_instruction": F.Text(),
            "observation": F.FeaturesDict({
                "image": _image(128, 128),
                "state": _tensor(24),
                "wrist_image": _image(128, 128),
            }),
            "reward": F.Scalar(dtype=np.float32),
        }),
    })


# https://www.tensorflow.org/datasets/catalog/austin_buds_dataset_converted_externally_to_rlds
AUSTIN_BUDS = _ut_austin_franka()

# https://www.tensorflow.org/datasets/catalog/utaustin_mutex
UTAUSTIN_MUTEX = _ut_austin_franka()


@dataclasses.dataclass(frozen=True)
class PublishedSchema:
    dataset: str
    """The TFDS builder name, `name` in dataset_info.json, which selects the standardisation."""
    features: F.FeaturesDict
    variant: str = ""
    """Tells apart layouts published under one name."""

    @property
    def id(self) -> str:
        return f"{self.dataset}[{self.variant}]" if self.variant else self.dataset


SCHEMAS = [
    PublishedSchema("fractal20220817_data", FRACTAL20220817_DATA),
    PublishedSchema("kuka", KUKA),
    PublishedSchema("language_table", LANGUAGE_TABLE),
    PublishedSchema("bridge", BRIDGE_OXE, variant="oxe"),
    PublishedSchema("bridge", BRIDGE_CATALOG, variant="bridge_data_v2"),
    PublishedSchema("bridge_dataset", BRIDGE_DATASET),
    PublishedSchema("taco_play", TACO_PLAY),
    PublishedSchema("jaco_play", JACO_PLAY),
    PublishedSchema("berkeley_cable_routing", BERKELEY_CABLE_ROUTING),
    PublishedSchema("roboturk", ROBOTURK),
    PublishedSchema("viola", VIOLA),
    PublishedSchema("berkeley_autolab_ur5", BERKELEY_AUTOLAB_UR5),
    PublishedSchema("toto", TOTO),
    PublishedSchema("stanford_hydra_dataset_converted_externally_to_rlds", STANFORD_HYDRA),
    PublishedSchema("austin_buds_dataset_converted_externally_to_rlds", AUSTIN_BUDS),
    PublishedSchema("utaustin_mutex", UTAUSTIN_MUTEX),
]

# --- random episodes ----------------------------------------------------------------------------------------

# Images are random blocks of colour rather than per-pixel noise: full-size noise frames make PNG encoding
# slow and are JPEG's worst case, and blocks still tell every frame and camera apart.
_IMAGE_BLOCK = 16
_WORDS = ("pick", "place", "the", "red", "block", "open", "drawer", "into", "bowl", "left", "cup")


def fake_episode(features: F.FeaturesDict, length: int, rng: np.random.Generator) -> dict:
    """A random episode matching an RLDS `features` spec: `length` steps whose is_first / is_last /
    is_terminal mark the first and last step, every other value random of its feature's shape and dtype."""
    episode = {key: _fake_value(feature, rng) for key, feature in features.items() if key != "steps"}
    steps = [_fake_value(features["steps"].feature, rng) for _ in range(length)]
    for t, step in enumerate(steps):
        flags = {"is_first": t == 0, "is_last": t == length - 1, "is_terminal": t == length - 1}
        step.update({flag: value for flag, value in flags.items() if flag in step})
    episode["steps"] = steps
    return episode


def _fake_value(feature: F.FeatureConnector, rng: np.random.Generator):
    if isinstance(feature, F.FeaturesDict):
        return {key: _fake_value(child, rng) for key, child in feature.items()}
    if isinstance(feature, F.Image):
        return _fake_image(feature.shape, feature.np_dtype, rng)
    if isinstance(feature, F.Tensor):  # Text and Scalar included
        if feature.tf_dtype.is_bool:
            return rng.random(feature.shape) < 0.5
        if feature.tf_dtype == tf.string:
            return " ".join(rng.choice(_WORDS, size=int(rng.integers(2, 7))))
        if feature.tf_dtype.is_floating:
            return rng.normal(size=feature.shape).astype(feature.np_dtype)
        if feature.tf_dtype.is_integer:
            return rng.integers(0, 100, size=feature.shape).astype(feature.np_dtype)
    raise TypeError(f"fake_episode cannot fill a {type(feature).__name__} feature ({feature})")


def _fake_image(shape: tuple[int, int, int], dtype, rng: np.random.Generator) -> np.ndarray:
    height, width, channels = shape
    blocks = rng.integers(0, 256, size=(-(-height // _IMAGE_BLOCK), -(-width // _IMAGE_BLOCK), channels))
    image = np.repeat(np.repeat(blocks, _IMAGE_BLOCK, axis=0), _IMAGE_BLOCK, axis=1)[:height, :width]
    if np.issubdtype(dtype, np.floating):  # e.g. a depth image: metres, not colours
        return (image / 64.0).astype(dtype)
    return image.astype(dtype)
