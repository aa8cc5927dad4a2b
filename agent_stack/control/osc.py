"""Damped-least-squares differential IK: the operational-space baseline controller.

Each call maps an absolute end-effector target pose to the next absolute joint position target, the
ros2_control forward_command_controller position convention. Pure numpy: the robot's kinematics come
in through the small `Kinematics` protocol, so this module knows nothing of MuJoCo or ROS.

Method (Wampler 1986, "Manipulator inverse kinematic solutions based on vector formulations and
damped least-squares methods"; Buss 2004, "Introduction to inverse kinematics with Jacobian transpose,
pseudoinverse and damped least squares methods"):

    e      = [K_p (p* - p);  K_o log(R* R^T)]          task-space error as a desired twist (1/s gains)
    q_dot  = J^T (J J^T + lambda^2 I)^-1 e             damped least squares (Levenberg-Marquardt step)
    q_next = q + q_dot * min(1, v_max / max|q_dot|) dt     (uniform scaling keeps the direction)

The damping lambda keeps q_dot bounded near singularities and for unreachable targets, where the plain
pseudoinverse explodes; the velocity clamp enforces the joint speed limit of the real hardware.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Kinematics(Protocol):
    """Forward kinematics and geometric Jacobian of one arm's tool centre point, world frame."""

    def forward(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Tool position (3,) and orientation quaternion w x y z (4,) for joint positions q (n,)."""
        ...

    def jacobian(self, q: np.ndarray) -> np.ndarray:
        """(6, n) geometric Jacobian: rows 0-2 linear velocity, rows 3-5 angular velocity, world frame."""
        ...


@dataclass
class DifferentialIKConfig:
    """Gains and limits of the damped-least-squares controller."""

    damping: float = 0.05
    """lambda in J^T (J J^T + lambda^2 I)^-1; larger is smoother and safer near singularities but slower."""
    position_gain: float = 10.0
    """K_p (1/s): desired linear velocity per metre of position error."""
    orientation_gain: float = 10.0
    """K_o (1/s): desired angular velocity per radian of orientation error."""
    max_joint_velocity: float = 1.0
    """Per-joint speed limit (rad/s); each step moves every joint at most this times dt."""
    max_position_error: float = 0.1
    """Position error is clipped to this norm (m) before the gain: a far target gives a straight, bounded
    approach."""
    max_orientation_error: float = 0.5
    """Orientation error is clipped to this angle (rad) before the gain, for the same reason."""
    joint_lower: tuple[float, ...] | None = None
    """Optional lower joint limits (rad); the target is clipped into [joint_lower, joint_upper]. Use -inf for
    free joints."""
    joint_upper: tuple[float, ...] | None = None
    """Optional upper joint limits (rad), same length as joint_lower."""

    def __post_init__(self) -> None:
        for name in ("damping", "position_gain", "orientation_gain", "max_joint_velocity",
                     "max_position_error", "max_orientation_error"):
            value = getattr(self, name)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"DifferentialIKConfig.{name} must be a finite positive number, "
                                 f"got {value!r}")
        if (self.joint_lower is None) != (self.joint_upper is None):
            raise ValueError("DifferentialIKConfig.joint_lower and joint_upper must be given together")
        if self.joint_lower is not None:
            lower, upper = np.asarray(self.joint_lower, float), np.asarray(self.joint_upper, float)
            if lower.shape != upper.shape or lower.ndim != 1:
                raise ValueError("DifferentialIKConfig.joint_lower and joint_upper must be 1-D and of equal "
                                 "length")
            if np.any(lower > upper) or np.any(np.isnan(lower)) or np.any(np.isnan(upper)):
                raise ValueError("DifferentialIKConfig.joint_lower must be <= joint_upper for every joint")


class DifferentialIKController:
    """Tracks an absolute tool pose with one damped-least-squares step per control tick."""

    def __init__(self, kinematics: Kinematics, config: DifferentialIKConfig | None = None) -> None:
        if not isinstance(kinematics, Kinematics):
            raise TypeError("kinematics must provide forward(q) and jacobian(q), "
                            f"got {type(kinematics).__name__}")
        self.kinematics = kinematics
        self.config = config or DifferentialIKConfig()

    def command(self, q: np.ndarray, target_pos: np.ndarray, target_quat_wxyz: np.ndarray,
                dt: float) -> np.ndarray:
        """Next joint position target (n,) from joints q (n,), a target pose and the tick length dt (s).

        q may be the measured joints or, for stiff position servos, the previous command: integrating on
        the command (as TabletopEnv does) removes the servo's tracking lag from the IK loop.
        """
        q = _finite_vector(q, None, "q")
        target_pos = _finite_vector(target_pos, 3, "target_pos")
        target_quat = normalize_quat(_finite_vector(target_quat_wxyz, 4, "target_quat_wxyz"))
        if not np.isfinite(dt) or dt <= 0:
            raise ValueError(f"dt must be a finite positive number of seconds, got {dt!r}")
        pos, quat = self.kinematics.forward(q)
        jac = np.asarray(self.kinematics.jacobian(q), dtype=float)
        if jac.shape != (6, q.size):
            raise ValueError(f"kinematics.jacobian returned shape {jac.shape}, expected (6, {q.size})")
        twist = self.desired_twist(pos, quat, target_pos, target_quat)
        q_dot = damped_least_squares(jac, twist, self.config.damping)
        q_next = q + scale_to_speed_limit(q_dot, self.config.max_joint_velocity) * dt
        return self._clip_to_limits(q_next)

    def desired_twist(self, pos: np.ndarray, quat: np.ndarray, target_pos: np.ndarray,
                      target_quat: np.ndarray) -> np.ndarray:
        """[v; w] (6,) that closes the pose error at the configured gains."""
        cfg = self.config
        pos_error = _clip_norm(target_pos - pos, cfg.max_position_error)
        rot_error = _clip_norm(orientation_error(quat, target_quat), cfg.max_orientation_error)
        return np.concatenate([cfg.position_gain * pos_error, cfg.orientation_gain * rot_error])

    def _clip_to_limits(self, q: np.ndarray) -> np.ndarray:
        if self.config.joint_lower is None:
            return q
        lower, upper = np.asarray(self.config.joint_lower), np.asarray(self.config.joint_upper)
        if lower.shape != q.shape:
            raise ValueError(f"joint limits have {lower.size} entries but q has {q.size}")
        return np.clip(q, lower, upper)


def scale_to_speed_limit(q_dot: np.ndarray, limit: float) -> np.ndarray:
    """Scale the whole joint velocity so the fastest joint moves at `limit`.

    Scaling rather than clipping each joint keeps the direction of q_dot, so the tool still moves along
    the straight line the DLS step asked for, only slower.
    """
    fastest = np.max(np.abs(q_dot)) if q_dot.size else 0.0
    return q_dot if fastest <= limit else q_dot * (limit / fastest)


def damped_least_squares(jac: np.ndarray, error: np.ndarray, damping: float) -> np.ndarray:
    """J^T (J J^T + lambda^2 I)^-1 e, solved rather than inverted (Wampler 1986 / Buss 2004 eq. 11)."""
    jjt = jac @ jac.T
    return jac.T @ np.linalg.solve(jjt + damping**2 * np.eye(jjt.shape[0]), error)


# --- quaternion helpers (w x y z), shared by the env and tests -------------------------------------------

def normalize_quat(quat: np.ndarray) -> np.ndarray:
    """Unit quaternion; raises ValueError for a zero quaternion, which has no orientation."""
    norm = np.linalg.norm(quat)
    if norm < 1e-9:
        raise ValueError("quaternion has zero norm")
    return np.asarray(quat, dtype=float) / norm


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (rotation b first, then a)."""
    aw, ax, ay, az = a
    bw, bx, by, bz = b
    return np.array([aw * bw - ax * bx - ay * by - az * bz,
                     aw * bx + ax * bw + ay * bz - az * by,
                     aw * by - ax * bz + ay * bw + az * bx,
                     aw * bz + ax * by - ay * bx + az * bw])


def quat_conjugate(quat: np.ndarray) -> np.ndarray:
    return np.array([quat[0], -quat[1], -quat[2], -quat[3]])


def quat_to_rotvec(quat: np.ndarray) -> np.ndarray:
    """Axis * angle (3,), angle in [0, pi]; q and -q give the same vector (shortest rotation)."""
    quat = normalize_quat(quat)
    if quat[0] < 0:
        quat = -quat
    sin_half = np.linalg.norm(quat[1:])
    if sin_half < 1e-12:
        return 2.0 * quat[1:]
    angle = 2.0 * np.arctan2(sin_half, quat[0])
    return quat[1:] / sin_half * angle


def rotvec_to_quat(rotvec: np.ndarray) -> np.ndarray:
    """Unit quaternion of the rotation by |rotvec| about rotvec/|rotvec|."""
    rotvec = np.asarray(rotvec, dtype=float)
    angle = np.linalg.norm(rotvec)
    if angle < 1e-12:
        return normalize_quat(np.concatenate([[1.0], 0.5 * rotvec]))
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * rotvec / angle])


def apply_ee_delta(pos: np.ndarray, quat: np.ndarray, delta: np.ndarray, max_translation: float,
                   max_rotation: float, workspace_low, workspace_high) -> tuple[np.ndarray, np.ndarray]:
    """The next end-effector target from the previous one and a 6-D delta (the VLA action convention):
    each translation clipped to +-max_translation and the position kept inside the workspace box; the
    rotation vector, each component clipped to +-max_rotation, applied on the left (base frame).

    The one integration rule of the stack: `TabletopEnv` (ee_delta mode) and `vla_node` both use it, so a
    policy acts on the robot exactly as on the data it learned from. Returns (pos (3,), unit quat w x y z).
    """
    delta = _finite_vector(delta, None, "ee delta")
    if delta.size < 6:
        raise ValueError(f"ee delta needs at least 6 values (dx dy dz droll dpitch dyaw), got {delta.size}")
    pos = np.clip(np.asarray(pos, dtype=float) + np.clip(delta[:3], -max_translation, max_translation),
                  workspace_low, workspace_high)
    turn = rotvec_to_quat(np.clip(delta[3:6], -max_rotation, max_rotation))
    # Renormalised: a target integrated over thousands of steps must not drift off the unit sphere.
    return pos, normalize_quat(quat_multiply(turn, quat))


def orientation_error(quat: np.ndarray, target_quat: np.ndarray) -> np.ndarray:
    """World-frame rotation vector that turns `quat` into `target_quat`: log(q* q^-1)."""
    return quat_to_rotvec(quat_multiply(target_quat, quat_conjugate(normalize_quat(quat))))


def ee_delta_between(pos: np.ndarray, quat: np.ndarray, target_pos: np.ndarray,
                     target_quat: np.ndarray) -> np.ndarray:
    """(6,) delta that moves the pose (pos, quat) onto (target_pos, target_quat) under `apply_ee_delta`'s
    rule (translation added, rotation vector applied on the left): its inverse, before any clipping."""
    return np.concatenate([np.asarray(target_pos, dtype=float) - pos, orientation_error(quat, target_quat)])


def target_to_action(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (7,) ee_delta action (delta, then gripper opening) that moves the controller's current target
    `reference` (x y z, quaternion w x y z) onto `target` (x y z, quaternion, gripper opening): how a policy
    that predicts absolute targets acts through the delta interface (the controller then clips it)."""
    delta = ee_delta_between(reference[:3], reference[3:7], target[:3], target[3:7])
    return np.append(delta, target[7]).astype(np.float32)


def target_actions_to_poses(targets: np.ndarray) -> np.ndarray:
    """(K, 10) target actions (x y z, 6-D rotation, gripper opening) -> (K, 8) x y z, quaternion w x y z,
    gripper opening."""
    quats = np.stack([rot6d_to_quat(row) for row in targets[:, 3:9]])
    return np.concatenate([targets[:, :3], quats, targets[:, 9:]], axis=1).astype(np.float32)


def quat_to_rot6d(quat: np.ndarray) -> np.ndarray:
    """The first two columns of the rotation matrix (6,): Zhou et al.'s continuous rotation representation
    (a quaternion jumps between q and -q, Euler angles wrap; these do neither)."""
    w, x, y, z = normalize_quat(quat)
    return np.array([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y),
                     2 * (x * y - w * z), 1 - 2 * (x * x + z * z), 2 * (y * z + w * x)])


def rot6d_to_quat(rot6d: np.ndarray) -> np.ndarray:
    """Unit quaternion (w x y z, w >= 0) of a 6-D rotation. Gram-Schmidt makes the two columns orthonormal
    first, so a predicted 6-D vector that is only close to a rotation still gives one."""
    rot6d = _finite_vector(rot6d, 6, "6-D rotation")
    first = rot6d[:3] / _nonzero_norm(rot6d[:3])
    second = rot6d[3:] - first @ rot6d[3:] * first
    second = second / _nonzero_norm(second)
    m = np.stack([first, second, np.cross(first, second)], axis=1)
    # Shepperd's method: divide by the largest of the four candidate terms, for precision.
    candidates = [m[0, 0] + m[1, 1] + m[2, 2], m[0, 0], m[1, 1], m[2, 2]]
    largest = int(np.argmax(candidates))
    if largest == 0:
        s = 2.0 * np.sqrt(1.0 + candidates[0])
        quat = [s / 4, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif largest == 1:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        quat = [(m[2, 1] - m[1, 2]) / s, s / 4, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif largest == 2:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        quat = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, s / 4, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        quat = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, s / 4]
    quat = normalize_quat(np.array(quat))
    return -quat if quat[0] < 0 else quat


def _nonzero_norm(vector: np.ndarray) -> float:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-9:
        raise ValueError("6-D rotation has a zero or degenerate column")
    return norm


def _clip_norm(vector: np.ndarray, max_norm: float) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector if norm <= max_norm else vector * (max_norm / norm)


def _finite_vector(values, length: int | None, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or (length is not None and array.size != length):
        expected = f"({length},)" if length is not None else "1-D"
        raise ValueError(f"{name} must have shape {expected}, got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or inf: {array}")
    return array
