"""Conversions between numpy / Python values and ROS messages, validated at the boundary.

Readers (``msg_to_*``, ``*_from_msg``, ``*_to_array``, ``float_array_command``) raise `MessageRejected`
with the reason when a received message is malformed (NaN, wrong length, unknown joint names, bad
encoding …); nodes log the reason and drop the message. Builders (``*_msg``) raise plain `ValueError`
for bad arguments: that is a bug in our own code, not bad input from the graph.

Quaternions are w x y z on the Python side, as in MuJoCo; ROS messages carry x y z w.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String

RGB8 = "rgb8"
"""The only image encoding the stack publishes and accepts."""


class MessageRejected(ValueError):
    """A received message is malformed; the text says what was wrong."""


def _finite(values: Any, length: int | None, what: str,
            error: type[ValueError] = MessageRejected) -> np.ndarray:
    """`values` as a 1-D float array of `length` (any length if None), all finite, else `error`."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as cause:
        raise error(f"{what} must be numbers, got {values!r}") from cause
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        raise error(f"{what} must be {length} values in a flat sequence, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise error(f"{what} contains NaN or infinity: {array.tolist()}")
    return array


# --- time ----------------------------------------------------------------------------------------------

def stamp_from_seconds(seconds: float) -> Time:
    """A `builtin_interfaces/Time` for a non-negative, finite time in seconds (rounded to the nanosecond)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"a ROS time must be finite and >= 0 seconds, got {seconds}")
    nanoseconds = int(round(seconds * 1e9))
    return Time(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


def seconds_from_stamp(stamp: Time) -> float:
    """Seconds of a `builtin_interfaces/Time`, the inverse of `stamp_from_seconds`."""
    return stamp.sec + stamp.nanosec * 1e-9


def clock_msg(seconds: float) -> Clock:
    """A `rosgraph_msgs/Clock` tick at simulated time `seconds`."""
    return Clock(clock=stamp_from_seconds(seconds))


# --- images --------------------------------------------------------------------------------------------

def image_to_msg(rgb: np.ndarray, stamp: Time, frame_id: str) -> Image:
    """An rgb8 `sensor_msgs/Image` of an HxWx3 uint8 array (rows top to bottom, no padding)."""
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape, dtype = getattr(rgb, "shape", None), getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"expected an HxWx3 uint8 image, got shape {shape} dtype {dtype}")
    height, width, _ = rgb.shape
    if height == 0 or width == 0:
        raise ValueError(f"image must not be empty, got {width}x{height}")
    msg = Image(height=height, width=width, encoding=RGB8, is_bigendian=0, step=3 * width)
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.data = np.ascontiguousarray(rgb).tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """The HxWx3 uint8 array of an rgb8 image; other encodings, row padding or a short buffer are rejected."""
    if msg.encoding != RGB8:
        raise MessageRejected(f"image encoding must be {RGB8}, got {msg.encoding!r}")
    if msg.width == 0 or msg.height == 0:
        raise MessageRejected(f"image is empty: {msg.width}x{msg.height}")
    # Padded rows (step > 3*width) are legal ROS but nothing in the stack emits them; rejecting keeps the
    # reshape below exact instead of silently skewing the picture.
    if msg.step != 3 * msg.width or len(msg.data) != msg.step * msg.height:
        raise MessageRejected(
            f"image of {msg.width}x{msg.height} rgb8 needs step {3 * msg.width} and "
            f"{3 * msg.width * msg.height} bytes, got step {msg.step} and {len(msg.data)} bytes"
        )
    # Copy: the message's buffer is not ours to keep, and consumers may write into the array.
    return np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.width, 3).copy()


def camera_info_msg(intrinsics: np.ndarray, width: int, height: int, stamp: Time,
                    frame_id: str) -> CameraInfo:
    """Pinhole camera without distortion (plumb_bob, five zero coefficients), R = I and P = [K | 0]."""
    if np.shape(intrinsics) != (3, 3):
        raise ValueError(f"camera intrinsics K must be 3x3, got shape {np.shape(intrinsics)}")
    k = _finite(np.ravel(intrinsics), 9, "camera intrinsics K", ValueError).reshape(3, 3)
    if int(width) <= 0 or int(height) <= 0:
        raise ValueError(f"camera width and height must be positive, got {width}x{height}")
    msg = CameraInfo(width=int(width), height=int(height), distortion_model="plumb_bob")
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.d = [0.0] * 5
    msg.k = k.flatten().tolist()
    msg.r = np.eye(3).flatten().tolist()
    msg.p = np.hstack([k, np.zeros((3, 1))]).flatten().tolist()
    return msg


# --- joints and commands -------------------------------------------------------------------------------

def joint_state_msg(names: Sequence[str], position: Sequence[float], velocity: Sequence[float] | None = None,
                    effort: Sequence[float] | None = None, stamp: Time | None = None) -> JointState:
    """A `sensor_msgs/JointState`; velocity and effort may be omitted (empty), as the message allows."""
    names = [str(name) for name in names]
    positions = _finite(position, len(names), "joint positions", ValueError)
    msg = JointState(name=names, position=positions.tolist())
    if velocity is not None:
        msg.velocity = _finite(velocity, len(names), "joint velocities", ValueError).tolist()
    if effort is not None:
        msg.effort = _finite(effort, len(names), "joint efforts", ValueError).tolist()
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def joint_state_to_array(msg: JointState, expected_names: Sequence[str], *,
                         known_names: Collection[str] | None = None) -> np.ndarray:
    """Positions of `expected_names`, in that order, matched by name (never by message order).

    Rejected: a name/position length mismatch, duplicate names, any expected joint missing, non-finite
    positions, and joints that are neither expected nor in `known_names`. With `known_names=None` other
    joints are ignored, because a robot's joint_states usually also carries joints this consumer does not
    drive (gripper fingers); pass the robot's full joint list to reject a foreign robot's message.
    """
    names = list(msg.name)
    if len(names) != len(msg.position):
        raise MessageRejected(f"joint_states has {len(names)} names but {len(msg.position)} positions")
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise MessageRejected(f"joint_states names joints {duplicates} more than once")
    index = {name: i for i, name in enumerate(names)}
    if known_names is not None:
        unknown = [name for name in names if name not in expected_names and name not in known_names]
        if unknown:
            raise MessageRejected(f"joint_states has unknown joints {unknown}")
    missing = [name for name in expected_names if name not in index]
    if missing:
        raise MessageRejected(f"joint_states lacks joints {missing} (it has {names})")
    positions = [msg.position[index[name]] for name in expected_names]
    return _finite(positions, len(expected_names), f"joint_states positions of {list(expected_names)}")


def joint_velocities(msg: JointState, expected_names: Sequence[str]) -> np.ndarray:
    """Velocities of `expected_names`, matched by name; the message must carry one velocity per name.

    Call after `joint_state_to_array` accepted the message (names are checked there)."""
    names = list(msg.name)
    if len(msg.velocity) != len(names):
        raise MessageRejected(f"joint_states has {len(names)} names but {len(msg.velocity)} velocities")
    index = {name: i for i, name in enumerate(names)}
    velocities = [msg.velocity[index[name]] for name in expected_names]
    return _finite(velocities, len(expected_names), f"joint_states velocities of {list(expected_names)}")


def float_array_command(msg: Float64MultiArray, expected_len: int) -> np.ndarray:
    """The `expected_len` finite values of a forward_command_controller-style command (layout ignored)."""
    return _finite(msg.data, expected_len, "command")


def gripper_from_msg(msg: Float64) -> float:
    """Gripper opening, 0 closed … 1 open.

    NaN and infinity are rejected; finite values outside [0, 1] are clipped to it, as a gripper driver
    saturates at its limits (a planner asking for 1.2 means "fully open", not "drop the command").
    """
    value = float(msg.data)
    if not math.isfinite(value):
        raise MessageRejected(f"gripper command must be finite, got {value}")
    return min(max(value, 0.0), 1.0)


# --- poses ---------------------------------------------------------------------------------------------

def pose_to_msg(pos: Sequence[float], quat_wxyz: Sequence[float], stamp: Time, frame_id: str) -> PoseStamped:
    """A `geometry_msgs/PoseStamped` from a position and a w x y z quaternion (written as ROS x y z w)."""
    px, py, pz = _finite(pos, 3, "position", ValueError)
    w, x, y, z = _finite(quat_wxyz, 4, "quaternion (w x y z)", ValueError)
    msg = PoseStamped()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(px), float(py), float(pz)
    orientation = msg.pose.orientation
    orientation.x, orientation.y, orientation.z, orientation.w = float(x), float(y), float(z), float(w)
    return msg


def pose_from_msg(msg: PoseStamped, expected_frame: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(position [3], unit quaternion w x y z [4]) of a pose.

    Rejected: non-finite values, a quaternion of (near) zero norm, and a frame other than `expected_frame`.
    An empty frame_id is accepted as "the expected frame", since `ros2 topic pub` leaves it empty;
    `expected_frame=None` accepts any frame. The quaternion is normalised.
    """
    frame = msg.header.frame_id
    if expected_frame is not None and frame not in (expected_frame, ""):
        raise MessageRejected(f"pose is in frame {frame!r}, expected {expected_frame!r}")
    p, q = msg.pose.position, msg.pose.orientation
    pos = _finite([p.x, p.y, p.z], 3, "pose position")
    quat = _finite([q.w, q.x, q.y, q.z], 4, "pose orientation")
    norm = float(np.linalg.norm(quat))
    if norm < 1e-6:
        raise MessageRejected(f"pose orientation is a zero quaternion (norm {norm:.2g})")
    return pos, quat / norm


# --- JSON over std_msgs/String -------------------------------------------------------------------------

def json_msg(payload: dict[str, Any]) -> String:
    """A `std_msgs/String` holding `payload` as strict JSON (NaN/infinity are not JSON: ValueError)."""
    if not isinstance(payload, dict):
        raise ValueError(f"JSON messages carry an object (dict), got {type(payload).__name__}")
    return String(data=json.dumps(payload, allow_nan=False))


def json_from_msg(msg: String, required_keys: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object in a `std_msgs/String`; not JSON, not an object, or missing keys are rejected."""
    try:
        # Python's parser accepts NaN/Infinity by default; the stack's JSON is strict, so refuse them.
        payload = json.loads(msg.data, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        raise MessageRejected(f"not JSON: {error}") from error
    if not isinstance(payload, dict):
        raise MessageRejected(f"expected a JSON object, got {type(payload).__name__}")
    missing = [key for key in required_keys if key not in payload]
    if missing:
        raise MessageRejected(f"JSON message lacks keys {missing} (it has {sorted(payload)})")
    return payload


def _reject_constant(name: str) -> None:
    raise MessageRejected(f"JSON message contains {name}, which strict JSON does not allow")
