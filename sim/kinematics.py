"""MuJoCo forward kinematics and site Jacobians behind the `agent_stack.control.osc.Kinematics` protocol.

Every instance owns a private `MjData`, so a controller (in the env, or in the ROS controller node) can
evaluate kinematics at any q without disturbing the simulation's state.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np

from agent_stack.control.osc import DifferentialIKConfig
from sim.scene import ARM_JOINT_NAMES, MJCF_JOINT_NAMES, TCP_SITE, compile_scene, gripper_opening


class MujocoArmKinematics:
    """Pose and (6, n) world-frame Jacobian of one site, as a function of the named hinge joints."""

    def __init__(self, model: mujoco.MjModel, site_name: str, joint_names: Sequence[str]) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self.site_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, site_name)
        if self.site_id < 0:
            raise ValueError(f"model has no site named {site_name!r}")
        joint_ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, name) for name in joint_names]
        missing = [name for name, jid in zip(joint_names, joint_ids) if jid < 0]
        if missing:
            raise ValueError(f"model has no joints named {missing}")
        self.qpos_adr = np.array([model.jnt_qposadr[j] for j in joint_ids])
        self.dof_adr = np.array([model.jnt_dofadr[j] for j in joint_ids])
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    @property
    def n_joints(self) -> int:
        return self.qpos_adr.size

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """TCP position (3,) and quaternion w x y z (4,) at joint positions q."""
        self._set_q(q)
        mujoco.mj_kinematics(self.model, self.data)
        quat = np.empty(4)
        mujoco.mju_mat2Quat(quat, self.data.site_xmat[self.site_id])
        return self.data.site_xpos[self.site_id].copy(), quat

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, n): linear rows then angular rows, world frame, columns in joint_names order."""
        self._set_q(q)
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)  # mj_jacSite needs the com-based frames
        mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
        return np.vstack([self._jacp[:, self.dof_adr], self._jacr[:, self.dof_adr]])

    def _set_q(self, q: np.ndarray) -> None:
        q = np.asarray(q, dtype=float)
        if q.shape != (self.n_joints,):
            raise ValueError(f"q must have shape ({self.n_joints},), got {q.shape}")
        if not np.all(np.isfinite(q)):
            raise ValueError(f"q contains NaN or inf: {q}")
        self.data.qpos[self.qpos_adr] = q


class JacoKinematics(MujocoArmKinematics):
    """The Jaco's tool centre point (`sim.scene.TCP_SITE`) over its six arm joints (`ARM_JOINT_NAMES`).

    Without a model it compiles the tabletop scene itself; the base sits at the world origin in every
    scene, so world frame = robot base frame, as the controller node expects.
    """

    def __init__(self, model: mujoco.MjModel | None = None) -> None:
        model = model if model is not None else compile_scene()
        super().__init__(model, TCP_SITE, [MJCF_JOINT_NAMES[name] for name in ARM_JOINT_NAMES])

    def joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) per arm joint; +-inf for the Jaco's continuous joints."""
        lower, upper = np.full(self.n_joints, -np.inf), np.full(self.n_joints, np.inf)
        for i, adr in enumerate(self.qpos_adr):
            joint = int(np.flatnonzero(self.model.jnt_qposadr == adr)[0])
            if self.model.jnt_limited[joint]:
                lower[i], upper[i] = self.model.jnt_range[joint]
        return lower, upper


JACO_IK_GAIN = 8.0
"""DLS gain (1/s) for the Jaco. With the error clips below the tool moves at most 0.4 m/s and 1.6 rad/s,
what the Jaco's servos follow at their torque limits without leaving the straight path."""
JACO_IK_MAX_POSITION_ERROR = 0.05
JACO_IK_MAX_ORIENTATION_ERROR = 0.2


def jaco_tracking_config(kinematics: JacoKinematics, **overrides) -> DifferentialIKConfig:
    """The tuned end-effector tracking config shared by the env's built-in loop and controller_node."""
    lower, upper = kinematics.joint_limits()
    settings = dict(position_gain=JACO_IK_GAIN, orientation_gain=JACO_IK_GAIN,
                    max_position_error=JACO_IK_MAX_POSITION_ERROR,
                    max_orientation_error=JACO_IK_MAX_ORIENTATION_ERROR,
                    joint_lower=tuple(lower), joint_upper=tuple(upper))
    settings.update(overrides)
    return DifferentialIKConfig(**settings)


def proprioception(kinematics: JacoKinematics, arm: np.ndarray, fingers: np.ndarray) -> np.ndarray:
    """The tabletop data's 14-D state from joint positions, as a robot node computes it: TCP position and
    quaternion w x y z (forward kinematics), gripper opening, arm joints (`TabletopEnv`'s STATE_KEYS)."""
    pos, quat = kinematics.forward(arm)
    return np.concatenate([pos, quat, [gripper_opening(fingers)], arm])
