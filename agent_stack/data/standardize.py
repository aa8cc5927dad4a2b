"""One standardisation function per RLDS dataset, into the common format every model trains on.

Each Open-X-Embodiment dataset stores its cameras, language and actions under its own keys and in its
own conventions. A standardisation function maps one episode (a whole trajectory: every tensor has a
leading time axis) to `Standardized`:

* `image` / `wrist_image` — the primary (third-person) and wrist camera, as stored (encoded or decoded);
* `instruction` — one language instruction per step (tf.string);
* `action` — float32 (T, 7): end-effector delta in the robot base frame, x y z (m) and roll pitch yaw
  (rad), then the gripper as an absolute opening, 1 = open, 0 = closed (the EEF_POS convention of the
  Open-X standardisation, see DESIGN.md);
* `state` — float32 (T, D) proprioception, or None when the dataset records none usable;
* `target` — float32 (T, 10): the same actions in absolute form, the end-effector target pose each one
  commands (x y z, 6-D rotation, gripper: `target_action`), or None when the dataset does not record it.

Adding a dataset touches one place: a decorated function, e.g.

    @register_dataset("my_robot_dataset", control_hz=10)
    def my_robot_dataset(steps: Steps) -> Standardized:
        return Standardized(
            image=steps["observation/image"],
            wrist_image=None,
            instruction=steps["language_instruction"],
            action=tf.concat([steps["action"][:, :6], gripper_open(steps["action"][:, 6:])], axis=-1),
            state=steps["observation/state"],
        )

`steps[...]` takes slash-separated key paths and raises `MissingKeyError` naming the dataset and the
key, so a dataset whose schema differs from what its function expects fails on open, not mid-training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
from collections.abc import Callable, Mapping

import tensorflow as tf


class MissingKeyError(KeyError):
    """A standardisation function asked for a key the dataset does not have."""

    def __str__(self) -> str:  # KeyError quotes its message; this one is a sentence.
        return str(self.args[0])


class UnsupportedDatasetError(ValueError):
    """No standardisation function is registered for this dataset name."""


@dataclasses.dataclass
class Standardized:
    image: tf.Tensor
    wrist_image: tf.Tensor | None
    instruction: tf.Tensor
    action: tf.Tensor
    state: tf.Tensor | None
    target: tf.Tensor | None = None


class Steps:
    """Read-only view of one episode's steps by slash-separated key path, with errors naming the dataset."""

    def __init__(self, dataset: str, steps: Mapping):
        self.dataset = dataset
        self._steps = steps

    def __getitem__(self, path: str) -> tf.Tensor:
        parts = path.split("/")
        node, depth = self._steps, 0
        while depth < len(parts):
            # A key may itself hold a slash (kuka's 'clip_function_input/base_pose_tool_reached'): the
            # longest key that matches wins.
            matches = [end for end in range(len(parts), depth, -1)
                       if isinstance(node, Mapping) and "/".join(parts[depth:end]) in node]
            if not matches:
                where = "/".join(parts[:depth]) or "steps"
                present = sorted(node) if isinstance(node, Mapping) else []
                raise MissingKeyError(
                    f"dataset {self.dataset!r}: its steps have no key {path!r} "
                    f"(keys under {where!r}: {present}); the dataset's schema differs from what its "
                    "standardisation function in agent_stack.data expects")
            node, depth = node["/".join(parts[depth:matches[0]])], matches[0]
        return node

    def __contains__(self, path: str) -> bool:
        try:
            self[path]
        except MissingKeyError:
            return False
        return True

    @property
    def length(self) -> tf.Tensor:
        return tf.shape(self["is_first"])[0]


StandardizeFn = Callable[[Steps], Standardized]


@dataclasses.dataclass(frozen=True)
class DatasetEntry:
    name: str
    standardize: StandardizeFn
    control_hz: float | None
    """Recording rate of the dataset's steps, where published (documentation only)."""

    @property
    def fingerprint(self) -> str:
        """Changes whenever the code of the module defining the standardisation changes (the function and
        the helpers it calls), so cached statistics go stale."""
        source = inspect.getsource(inspect.getmodule(self.standardize))
        return hashlib.sha256(source.encode()).hexdigest()[:16]


_REGISTRY: dict[str, DatasetEntry] = {}


def register_dataset(name: str, *, control_hz: float | None = None) -> Callable[[StandardizeFn], StandardizeFn]:
    """Register `fn` as the standardisation of the RLDS dataset (TFDS builder) called `name`."""

    def decorate(fn: StandardizeFn) -> StandardizeFn:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} is registered twice ({_REGISTRY[name].standardize.__module__} "
                             f"and {fn.__module__})")
        _REGISTRY[name] = DatasetEntry(name=name, standardize=fn, control_hz=control_hz)
        return fn

    return decorate


def registered_datasets() -> list[str]:
    _load_builtin_entries()
    return sorted(_REGISTRY)


def dataset_entry(name: str) -> DatasetEntry:
    _load_builtin_entries()
    if name not in _REGISTRY:
        raise UnsupportedDatasetError(
            f"no standardisation is registered for RLDS dataset {name!r}. Supported: "
            f"{', '.join(sorted(_REGISTRY))}. To add one, write a function decorated with "
            "@agent_stack.data.register_dataset(name) that maps its steps to Standardized "
            "(see agent_stack/data/standardize.py), in a module imported before the dataset is opened.")
    return _REGISTRY[name]


def _load_builtin_entries() -> None:
    # Importing these modules registers the built-in datasets.
    from agent_stack.data import oxe, tabletop  # noqa: F401


# --- helpers the standardisation functions share ------------------------------------------------------------


def as_float(x: tf.Tensor) -> tf.Tensor:
    return tf.cast(x, tf.float32)


def gripper_open(x: tf.Tensor) -> tf.Tensor:
    """An absolute gripper signal where larger means more open, clipped into [0, 1]."""
    return tf.clip_by_value(as_float(x), 0.0, 1.0)


def gripper_open_from_closedness(x: tf.Tensor) -> tf.Tensor:
    """An absolute closedness signal (1 = closed, 0 = open) flipped to the common opening convention."""
    return 1.0 - tf.clip_by_value(as_float(x), 0.0, 1.0)


def gripper_open_from_relative(x: tf.Tensor) -> tf.Tensor:
    """Relative gripper commands (+1 close, -1 open, about 0 keep) to the absolute opening at each step.

    Each step holds the last command beyond +-0.1; steps before the first command take the opposite of it
    (a gripper told to close was open), and an episode with no command stays open. Shape (T, 1) -> (T, 1).
    """
    x = tf.reshape(as_float(x), [-1])
    command = tf.where(x > 0.1, 1.0, tf.where(x < -0.1, -1.0, 0.0))
    issued = tf.not_equal(command, 0.0)
    commands = tf.boolean_mask(command, issued)
    first = tf.cond(tf.size(commands) > 0, lambda: commands[0], lambda: tf.constant(1.0))
    count = tf.math.cumsum(tf.cast(issued, tf.int32))
    # The appended value keeps the gather in range when the episode has no command at all.
    last = tf.gather(tf.concat([commands, [first]], 0), tf.maximum(count - 1, 0))
    held = tf.where(count > 0, last, -first)
    return tf.reshape((1.0 - held) / 2.0, [-1, 1])


def target_action(pose: tf.Tensor, gripper: tf.Tensor) -> tf.Tensor:
    """(T, 7) target poses (x y z, quaternion w x y z) and (T, 1) openings -> (T, 10) target actions: the
    position, the first two columns of the rotation matrix, the gripper (as `osc.quat_to_rot6d`)."""
    pose = as_float(pose)
    quat = pose[:, 3:] / tf.norm(pose[:, 3:], axis=-1, keepdims=True)
    w, x, y, z = tf.unstack(quat, axis=-1)
    rot6d = tf.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),
                      2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)], axis=-1)
    return tf.concat([pose[:, :3], rot6d, gripper_open(gripper)], axis=-1)
