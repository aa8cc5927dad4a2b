"""Standardisation of the Open-X-Embodiment RLDS datasets into agent_stack's common format.

One function per dataset, registered under its TFDS builder name (the `name` in its dataset_info.json).
Which camera is primary or wrist, where the instruction lives, how the action becomes the 7-D end-effector
delta + gripper opening, and which proprioception to keep follow Octo (`octo/data/oxe/oxe_dataset_configs.py`,
`oxe_standardization_transforms.py`) and OpenVLA (`prismatic/vla/datasets/rlds/oxe/configs.py`,
`transforms.py`), with three deliberate differences:

* every step is kept: no dropping of Bridge's all-zero first action and no relabelling of actions from the
  reached states, because the reader takes is_first/is_last from the raw steps and each step needs its action;
* the instruction is kept as stored (as OpenVLA does), where Octo blanks instructions it deems uninformative;
* a continuous gripper target is clipped into [0, 1] rather than binarised.

Units are each dataset's own (metres and radians where the dataset says so, normalised commands otherwise,
e.g. taco_play); the per-dataset normalisation statistics absorb the scale. `control_hz` is the recording
rate listed in the OpenVLA-derived dataset configs.
"""

from __future__ import annotations

import tensorflow as tf

from agent_stack.data.standardize import (
    Standardized,
    Steps,
    as_float,
    gripper_open,
    gripper_open_from_closedness,
    gripper_open_from_relative,
    register_dataset,
)

# --- helpers ------------------------------------------------------------------------------------------------


def _column(x: tf.Tensor) -> tf.Tensor:
    """A per-step scalar, stored as shape (T,) or (T, 1), as a float32 (T, 1) column."""
    return tf.reshape(as_float(x), [-1, 1])


def _eef_action(translation: tf.Tensor, rotation: tf.Tensor, gripper: tf.Tensor) -> tf.Tensor:
    """(T, 3) translation, (T, 3) rotation and a per-step gripper opening -> the (T, 7) action."""
    return tf.concat([as_float(translation), as_float(rotation), _column(gripper)], axis=-1)


def _filled(like: tf.Tensor, width: int, value: float) -> tf.Tensor:
    """(T, width) of `value`, T taken from the leading axis of `like`."""
    return tf.fill([tf.shape(like)[0], width], value)


def _decode_zero_padded_utf8(codes: tf.Tensor) -> tf.Tensor:
    """(T, N) integer byte values of zero-padded UTF-8 text -> (T,) tf.string with the padding removed.

    language_table stores its instruction this way ("A UTF-8 encoded string as bytes", one byte per int32).
    Each byte maps to its one-byte string and 0 to the empty string (UTF-8 text never contains NUL), so
    multi-byte characters come back intact, which decoding the values as code points would break.
    """
    byte_strings = tf.constant([b""] + [bytes([value]) for value in range(1, 256)])
    return tf.strings.reduce_join(tf.gather(byte_strings, tf.cast(codes, tf.int32)), axis=-1)


def _google_robot_action(steps: Steps) -> tf.Tensor:
    """RT-1-style dict action: world_vector + rotation_delta, gripper_closedness_action a relative command
    (+1 close, -1 open, 0 keep); Octo's rel2abs_gripper_actions."""
    return _eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                       gripper_open_from_relative(steps["action/gripper_closedness_action"]))


# --- Google-collected datasets ------------------------------------------------------------------------------


@register_dataset("fractal20220817_data", control_hz=3)
def fractal20220817_data(steps: Steps) -> Standardized:
    # RT-1 (Octo rt1_dataset_transform): relative gripper command; state = base_pose_tool_reached
    # (xyz + quaternion) + gripper_closed, Octo's POS_QUAT proprio.
    return Standardized(
        image=steps["observation/image"],
        wrist_image=None,
        instruction=steps["observation/natural_language_instruction"],
        action=_google_robot_action(steps),
        state=tf.concat([steps["observation/base_pose_tool_reached"], steps["observation/gripper_closed"]],
                        axis=-1),
    )


@register_dataset("kuka", control_hz=10)
def kuka(steps: Steps) -> Standardized:
    # QT-Opt (Octo kuka_dataset_transform): the RT-1 action layout; state as fractal's, under
    # `clip_function_input/base_pose_tool_reached`. Instructions kept, as OpenVLA does.
    pose = steps["observation/clip_function_input/base_pose_tool_reached"]
    return Standardized(
        image=steps["observation/image"],
        wrist_image=None,
        instruction=steps["observation/natural_language_instruction"],
        action=_google_robot_action(steps),
        state=tf.concat([pose, steps["observation/gripper_closed"]], axis=-1),
    )


@register_dataset("language_table", control_hz=10)
def language_table(steps: Steps) -> Standardized:
    # Octo language_table_dataset_transform: the action is a 2-D planar xy delta of a cylinder end effector;
    # rotations are zero and the gripper (there is none) reads open. State = effector_translation (xy).
    planar = steps["action"]
    return Standardized(
        image=steps["observation/rgb"],
        wrist_image=None,
        instruction=_decode_zero_padded_utf8(steps["observation/instruction"]),
        action=tf.concat([as_float(planar), _filled(planar, 4, 0.0), _filled(planar, 1, 1.0)], axis=-1),
        state=steps["observation/effector_translation"],
    )


# --- Bridge (WidowX) ----------------------------------------------------------------------------------------


@register_dataset("bridge_dataset", control_hz=5)
def bridge_dataset(steps: Steps) -> Standardized:
    # BridgeData V2 as released by its authors, OpenVLA's "bridge_orig" (Octo bridge_dataset_transform):
    # action = [xyz delta, rpy delta, gripper target] with the gripper continuous, 1 = open; image_0 is the
    # fixed over-the-shoulder camera; state = [xyz, rpy, gripper].
    action = steps["action"]
    return Standardized(
        image=steps["observation/image_0"],
        wrist_image=None,
        instruction=steps["language_instruction"],
        action=_eef_action(action[:, :3], action[:, 3:6], gripper_open(action[:, 6])),
        state=steps["observation/state"],
    )


@register_dataset("bridge", control_hz=5)
def bridge(steps: Steps) -> Standardized:
    # Two layouts are published under this name. The OXE copy (gs://gresearch/robotics/bridge/0.1.0, OpenVLA's
    # bridge_oxe_dataset_transform) has a dict action with a boolean open_gripper; the TFDS catalog's current
    # `bridge` is imported from BridgeData V2 and has bridge_dataset's layout.
    if "observation/image_0" in steps:
        return bridge_dataset(steps)
    return Standardized(
        image=steps["observation/image"],
        wrist_image=None,
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                           gripper_open(steps["action/open_gripper"])),
        state=steps["observation/state"],
    )


# --- other robots in the OXE release ------------------------------------------------------------------------


@register_dataset("taco_play", control_hz=15)
def taco_play(steps: Steps) -> Standardized:
    # Octo/OpenVLA taco_play_dataset_transform: rel_actions_world = [xyz, euler xyz, gripper] in CALVIN's
    # normalised units; the gripper is -1/+1 with +1 = open (CALVIN's convention, as Octo reads it; the TFDS
    # description states the opposite). State = robot_obs[:7]: EE position, EE euler angles, gripper width.
    action = steps["action/rel_actions_world"]
    return Standardized(
        image=steps["observation/rgb_static"],
        wrist_image=steps["observation/rgb_gripper"],
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(action[:, :3], action[:, 3:6], gripper_open((as_float(action[:, 6]) + 1.0) / 2.0)),
        state=steps["observation/robot_obs"][:, :7],
    )


@register_dataset("jaco_play", control_hz=10)
def jaco_play(steps: Steps) -> Standardized:
    # Octo jaco_play_dataset_transform: translation-only world_vector (rotation zero), relative gripper
    # command. State = end_effector_cartesian_pos.
    translation = steps["action/world_vector"]
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/image_wrist"],
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(translation, tf.zeros_like(as_float(translation)),
                           gripper_open_from_relative(steps["action/gripper_closedness_action"])),
        state=steps["observation/end_effector_cartesian_pos"],
    )


@register_dataset("berkeley_cable_routing", control_hz=10)
def berkeley_cable_routing(steps: Steps) -> Standardized:
    # Octo berkeley_cable_routing_dataset_transform: no gripper action is recorded; the gripper holds the
    # cable throughout, so it reads closed. wrist45_image is the wrist camera; state = robot_state.
    translation = steps["action/world_vector"]
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/wrist45_image"],
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(translation, steps["action/rotation_delta"], _filled(translation, 1, 0.0)),
        state=steps["observation/robot_state"],
    )


@register_dataset("roboturk", control_hz=10)
def roboturk(steps: Steps) -> Standardized:
    # Octo roboturk_dataset_transform: gripper_closedness_action is absolute closedness (1 = closed), clipped
    # and flipped. No proprioception is recorded.
    return Standardized(
        image=steps["observation/front_rgb"],
        wrist_image=None,
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                           gripper_open_from_closedness(steps["action/gripper_closedness_action"])),
        state=None,
    )


@register_dataset("viola", control_hz=20)
def viola(steps: Steps) -> Standardized:
    # Octo viola_dataset_transform: gripper_closedness_action is closedness (1 = closed), clipped and flipped.
    # State = joint_states (7) + gripper_states (width), Octo's JOINT proprio.
    return Standardized(
        image=steps["observation/agentview_rgb"],
        wrist_image=steps["observation/eye_in_hand_rgb"],
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                           gripper_open_from_closedness(steps["action/gripper_closedness_action"])),
        state=tf.concat([steps["observation/joint_states"], steps["observation/gripper_states"]], axis=-1),
    )


@register_dataset("berkeley_autolab_ur5", control_hz=5)
def berkeley_autolab_ur5(steps: Steps) -> Standardized:
    # Octo berkeley_autolab_ur5_dataset_transform: gripper_closedness_action is relative ("1 if close gripper,
    # -1 if open gripper, 0 if no change"). State = robot_state[6:14]: EE xyz, EE quaternion, gripper closed.
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/hand_image"],
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                           gripper_open_from_relative(steps["action/gripper_closedness_action"])),
        state=steps["observation/robot_state"][:, 6:14],
    )


@register_dataset("toto", control_hz=30)
def toto(steps: Steps) -> Standardized:
    # Octo toto_dataset_transform: boolean open_gripper is already the opening. State = 7 joint angles.
    return Standardized(
        image=steps["observation/image"],
        wrist_image=None,
        instruction=steps["observation/natural_language_instruction"],
        action=_eef_action(steps["action/world_vector"], steps["action/rotation_delta"],
                           gripper_open(steps["action/open_gripper"])),
        state=steps["observation/state"],
    )


# --- datasets converted by their authors with the RLDS dataset builder template -----------------------------


@register_dataset("stanford_hydra_dataset_converted_externally_to_rlds", control_hz=10)
def stanford_hydra_dataset_converted_externally_to_rlds(steps: Steps) -> Standardized:
    # Octo stanford_hydra_dataset_transform: action = [xyz delta, euler delta, close gripper], flipped.
    # State (27) = [xyz, quaternion, euler, 7 joints, 7 joint velocities, 3 gripper]: keep xyz, euler and
    # the first gripper value (Octo's eef_state + gripper_state).
    action, state = steps["action"], steps["observation/state"]
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/wrist_image"],
        instruction=steps["language_instruction"],
        action=_eef_action(action[:, :3], action[:, 3:6], gripper_open_from_closedness(action[:, 6])),
        state=tf.concat([state[:, :3], state[:, 7:10], state[:, 24:25]], axis=-1),
    )


@register_dataset("austin_buds_dataset_converted_externally_to_rlds", control_hz=20)
@register_dataset("utaustin_mutex", control_hz=20)
def ut_austin_franka(steps: Steps) -> Standardized:
    # The UT Austin Franka layout shared by BUDS and MUTEX (Octo austin_buds_dataset_transform,
    # utaustin_mutex_dataset_transform): action = [6-D EE delta, gripper closedness (1 = closed)], the gripper
    # clipped and flipped; state[:8] = 7 joint angles + gripper position (the 4x4 EE matrix after it dropped).
    action = steps["action"]
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/wrist_image"],
        instruction=steps["language_instruction"],
        action=_eef_action(action[:, :3], action[:, 3:6], gripper_open_from_closedness(action[:, 6])),
        state=steps["observation/state"][:, :8],
    )
