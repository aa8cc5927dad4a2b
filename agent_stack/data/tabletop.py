"""Our own simulator demonstrations: the RLDS schema `agent-stack collect` writes, and its standardisation.

The schema is the Open-X-Embodiment one (the keys most OXE datasets use), so the sim data reads through
the same `open_rlds` path as OXE downloads. Step t holds the observation the expert saw and the action it
took from there (see `sim/collect.py` for how episodes end). The writer lives in `sim/` because it needs
MuJoCo; this module only describes the data, so `agent_stack` can read it without MuJoCo installed.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from agent_stack.data.standardize import Standardized, Steps, gripper_open, register_dataset, target_action

TABLETOP_DATASET = "agent_stack_tabletop"
TABLETOP_VERSION = "1.2.0"
"""Version directory of the TFDS builder; bump it when the schema or the step convention changes."""
TABLETOP_CONTROL_HZ = 10
"""Policy rate of the tabletop env (TabletopConfig.policy_hz): one RLDS step per 0.1 s of sim time."""
ACTION_DOC = ("End-effector delta in the robot base frame (x forward, y left, z up): dx dy dz in metres "
              "(each within +-0.05), droll dpitch dyaw in radians (a rotation vector applied on the left of "
              "the previous target orientation, each within +-0.25), then the gripper as an absolute "
              "opening, 1 = open, 0 = closed. The delta moves the controller's previous end-effector target, "
              "not the measured pose.")
TARGET_POSE_DOC = ("The end-effector target the step's action set (the previous target moved by the delta, "
                   "as the env integrates it): position (3, metres, base frame) and orientation quaternion "
                   "w x y z (4). With the action's gripper, the action in absolute form.")
STATE_DOC = ("Proprioception at the step: TCP position (3, metres, base frame), TCP orientation quaternion "
             "w x y z (4), gripper opening (1, 0 closed … 1 open), arm joint positions (6, radians).")


def tabletop_features(image_size: int = 128, state_dim: int = 14) -> tfds.features.FeaturesDict:
    """TFDS features of one tabletop episode, Open-X schema; images are square RGB, stored as JPEG."""
    F = tfds.features

    def camera(doc: str) -> F.Image:
        return F.Image(shape=(image_size, image_size, 3), dtype=np.uint8, encoding_format="jpeg", doc=doc)

    return F.FeaturesDict({
        "steps": F.Dataset({
            "observation": F.FeaturesDict({
                "image": camera("Front (third-person) camera, RGB, before the step's action."),
                "wrist_image": camera("Wrist camera on the hand, RGB, before the step's action."),
                "state": F.Tensor(shape=(state_dim,), dtype=np.float32, doc=STATE_DOC),
            }),
            "action": F.Tensor(shape=(7,), dtype=np.float32, doc=ACTION_DOC),
            "target_pose": F.Tensor(shape=(7,), dtype=np.float32, doc=TARGET_POSE_DOC),
            "language_instruction": F.Text(doc="The task in words; one phrasing for the whole episode."),
            "reward": F.Scalar(dtype=np.float32,
                               doc="1.0 on the step whose action completes the task, else 0."),
            "discount": F.Scalar(dtype=np.float32, doc="Always 1.0."),
            "is_first": F.Scalar(dtype=np.bool_, doc="True on the first step of the episode."),
            "is_last": F.Scalar(dtype=np.bool_, doc="True on the last step of the episode."),
            "is_terminal": F.Scalar(dtype=np.bool_,
                                    doc="True on the last step when the task succeeded (not on a time-out)."),
        }),
        "episode_metadata": F.FeaturesDict({
            "seed": F.Scalar(dtype=np.int64,
                             doc="Seed of the env reset and of the task draw; replays the episode."),
            "task_family": F.Text(doc="Task family from sim.tasks.FAMILIES, e.g. 'stack'."),
            "task": F.Text(doc="Canonical instruction of the task (its first phrasing); parses back into the "
                               "task with sim.tasks.task_from_instruction."),
            "success": F.Scalar(dtype=np.bool_, doc="Whether the expert completed the task."),
            "recolouring": F.Text(doc="Empty for a demonstration as run. For a recoloured copy (`collect "
                                      "--colour-permutations`) the renaming it shows, e.g. 'red:blue "
                                      "green:green blue:red yellow:yellow': the red block and pad are drawn "
                                      "blue and the instruction calls them blue; `task` is the renamed "
                                      "task."),
        }),
    })


@register_dataset(TABLETOP_DATASET, control_hz=TABLETOP_CONTROL_HZ)
def agent_stack_tabletop(steps: Steps) -> Standardized:
    action = steps["action"]  # already the common convention; the clip only guards the gripper's range
    return Standardized(
        image=steps["observation/image"],
        wrist_image=steps["observation/wrist_image"],
        instruction=steps["language_instruction"],
        action=tf.concat([action[:, :6], gripper_open(action[:, 6:])], axis=-1),
        state=steps["observation/state"],
        # Recorded from version 1.2.0 on.
        target=target_action(steps["target_pose"], action[:, 6:]) if "target_pose" in steps else None,
    )
