"""Conversions between numpy / Python values and ROS messages, validated at the boundary.

Every function that reads a message raises `MessageRejected` with the reason when the message is
malformed (NaN, wrong length, unknown joint names, bad encoding …); nodes log the reason and drop the
message. Quaternions are w x y z on the Python side, as in MuJoCo; ROS messages carry x y z w.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String


class MessageRejected(ValueError):
    """A received message is malformed; the text says what was wrong."""


def stamp_from_seconds(seconds: float) -> Time:
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def clock_msg(seconds: float) -> Clock:
    return Clock(clock=stamp_from_seconds(seconds))


def _finite(values, length: int | None, what: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        raise MessageRejected(f"{what} must have {length} values, got {array.shape[0] if array.ndim else 0}")
    if not np.all(np.isfinite(array)):
        raise MessageRejected(f"{what} contains NaN or infinity: {array.tolist()}")
    return array


# --- images --------------------------------------------------------------------------------------------

def image_to_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    height, width, _ = rgb.shape
    msg = Image(height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    if msg.encoding != "rgb8":
        raise MessageRejected(f"image encoding must be rgb8, got {msg.encoding!r}")
    if msg.step != 3 * msg.width or len(msg.data) != msg.step * msg.height:
        raise MessageRejected(f"image of {msg.width}x{msg.height} has step {msg.step} and {len(msg.data)} bytes")
    return np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(msg.height, msg.width, 3).copy()


def camera_info_msg(intrinsics: np.ndarray, width: int, height: int, stamp: Time, frame_id: str) -> CameraInfo:
    """Pinhole camera with no distortion (plumb_bob, zero coefficients); P = [K | 0]."""
    k = np.asarray(intrinsics, dtype=float)
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {k.shape}")
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = k.flatten().tolist()
    msg.r = np.eye(3).flatten().tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).flatten().tolist()
    return msg


# --- joints and commands -------------------------------------------------------------------------------

def joint_state_msg(names: Sequence[str], position, velocity=None, effort=None, stamp: Time | None = None
                    ) -> JointState:
    msg = JointState(name=list(names), position=[float(v) for v in position])
    if velocity is not None:
        msg.velocity = [float(v) for v in velocity]
    if effort is not None:
        msg.effort = [float(v) for v in effort]
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def joint_state_to_array(msg: JointState, expected_names: Sequence[str]) -> np.ndarray:
    """Positions of `expected_names`, matched by name (never by order); extra known joints are ignored."""
    names = list(msg.name)
    if len(names) != len(msg.position):
        raise MessageRejected(f"joint_states has {len(names)} names but {len(msg.position)} positions")
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted(set(names) - set(expected_names))
    missing = [name for name in expected_names if name not in index]
    if missing:
        detail = f"; unknown joints {unknown}" if unknown else ""
        raise MessageRejected(f"joint_states lacks joints {missing}{detail}")
    return _finite([msg.position[index[name]] for name in expected_names], len(expected_names),
                   "joint_states positions")


def float_array_command(msg: Float64MultiArray, expected_len: int) -> np.ndarray:
    return _finite(msg.data, expected_len, "command")


def gripper_from_msg(msg: Float64) -> float:
    """Gripper opening 0 closed … 1 open. NaN is rejected; values outside [0, 1] are clipped, as a
    gripper driver saturates at its limits."""
    value = float(msg.data)
    if not math.isfinite(value):
        raise MessageRejected(f"gripper command must be finite, got {value}")
    return min(max(value, 0.0), 1.0)


# --- poses ---------------------------------------------------------------------------------------------

def pose_to_msg(pos, quat_wxyz, stamp: Time, frame_id: str) -> PoseStamped:
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
    w, x, y, z = (float(v) for v in quat_wxyz)
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = x, y, z, w
    return msg


def pose_from_msg(msg: PoseStamped, expected_frame: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(position, unit quaternion w x y z); a frame other than `expected_frame` is rejected."""
    if expected_frame is not None and msg.header.frame_id not in (expected_frame, ""):
        raise MessageRejected(f"pose is in frame {msg.header.frame_id!r}, expected {expected_frame!r}")
    p, q = msg.pose.position, msg.pose.orientation
    pos = _finite([p.x, p.y, p.z], 3, "pose position")
    quat = _finite([q.w, q.x, q.y, q.z], 4, "pose orientation")
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        raise MessageRejected("pose orientation is a zero quaternion")
    return pos, quat / norm


# --- JSON over std_msgs/String -------------------------------------------------------------------------

def json_msg(payload: dict) -> String:
    return String(data=json.dumps(payload, allow_nan=False))


def json_from_msg(msg: String, required_keys: Sequence[str] = ()) -> dict:
    try:
        payload = json.loads(msg.data)
    except json.JSONDecodeError as error:
        raise MessageRejected(f"not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise MessageRejected(f"expected a JSON object, got {type(payload).__name__}")
    missing = [key for key in required_keys if key not in payload]
    if missing:
        raise MessageRejected(f"JSON message lacks keys {missing}")
    return payload
