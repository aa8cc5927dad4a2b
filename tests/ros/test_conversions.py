"""Round trips and every rejection path of ros_nodes.conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")

from geometry_msgs.msg import PoseStamped  # noqa: E402
from sensor_msgs.msg import Image, JointState  # noqa: E402
from std_msgs.msg import Float64, Float64MultiArray, String  # noqa: E402

from ros_nodes import conversions as cv  # noqa: E402
from ros_nodes.conversions import MessageRejected  # noqa: E402

STAMP = cv.stamp_from_seconds(12.25)
ARM = ["a", "b"]


def test_rejection_is_a_value_error():
    assert issubclass(MessageRejected, ValueError)


# --- time ----------------------------------------------------------------------------------------------

def test_stamp_and_clock_round_trip():
    assert (STAMP.sec, STAMP.nanosec) == (12, 250_000_000)
    assert cv.seconds_from_stamp(STAMP) == 12.25
    tick = cv.clock_msg(1.5)
    assert (tick.clock.sec, tick.clock.nanosec) == (1, 500_000_000)
    assert cv.seconds_from_stamp(cv.clock_msg(3.000000001).clock) == pytest.approx(3.000000001, abs=1e-12)


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_bad_times_raise(seconds):
    with pytest.raises(ValueError, match="ROS time"):
        cv.clock_msg(seconds)


# --- images --------------------------------------------------------------------------------------------

def test_image_round_trip():
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    msg = cv.image_to_msg(rgb, STAMP, "front")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (64, 48, 192, "rgb8")
    assert msg.header.frame_id == "front" and msg.header.stamp == STAMP
    back = cv.msg_to_image(msg)
    assert back.dtype == np.uint8 and np.array_equal(back, rgb)
    back[0, 0] = 0  # the result is a writable copy
    # A non-contiguous view (a crop) is serialised by value.
    crop = rgb[::2, 10:30]
    assert np.array_equal(cv.msg_to_image(cv.image_to_msg(crop, STAMP, "front")), crop)


@pytest.mark.parametrize("bad", [
    np.zeros((4, 4, 3), np.float32), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
    np.zeros((0, 4, 3), np.uint8), [[[0, 0, 0]]],
])
def test_image_to_msg_rejects_bad_arrays(bad):
    with pytest.raises(ValueError, match="image"):
        cv.image_to_msg(bad, STAMP, "front")


def _image(**fields) -> Image:
    msg = cv.image_to_msg(np.zeros((2, 4, 3), np.uint8), STAMP, "front")
    for name, value in fields.items():
        setattr(msg, name, value)
    return msg


@pytest.mark.parametrize("msg, reason", [
    (_image(encoding="bgr8"), "encoding"),
    (_image(encoding="mono8", step=4, data=[0] * 8), "encoding"),
    (_image(width=0, step=0, data=[]), "empty"),
    (_image(step=16, data=[0] * 32), "got step 16"),  # padded rows
    (_image(data=[0] * 21), "and 21 bytes"),  # truncated buffer
    (_image(height=3), "36 bytes, got step 12 and 24 bytes"),  # header promises more rows than the buffer has
])
def test_msg_to_image_rejections(msg, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.msg_to_image(msg)


def test_camera_info():
    k = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    info = cv.camera_info_msg(k, 64, 48, STAMP, "front")
    assert (info.width, info.height, info.distortion_model) == (64, 48, "plumb_bob")
    assert info.header.frame_id == "front" and list(info.d) == [0.0] * 5
    assert np.allclose(np.reshape(info.k, (3, 3)), k) and np.allclose(np.reshape(info.r, (3, 3)), np.eye(3))
    p = np.reshape(info.p, (3, 4))
    assert np.allclose(p[:, :3], k) and np.allclose(p[:, 3], 0.0)


@pytest.mark.parametrize("k, width, reason", [
    (np.eye(4), 64, "3x3"),
    (np.full((3, 3), np.nan), 64, "NaN"),
    (np.eye(3), 0, "positive"),
])
def test_camera_info_rejects_bad_arguments(k, width, reason):
    with pytest.raises(ValueError, match=reason):
        cv.camera_info_msg(k, width, 48, STAMP, "front")


# --- joints and commands -------------------------------------------------------------------------------

def test_joint_state_round_trip_matches_by_name_not_order():
    msg = cv.joint_state_msg(["b", "a", "finger"], [2.0, 1.0, 0.5], [0.1, 0.2, 0.3], [1.0, 2.0, 3.0], STAMP)
    assert list(msg.velocity) == [0.1, 0.2, 0.3] and list(msg.effort) == [1.0, 2.0, 3.0]
    assert msg.header.stamp == STAMP
    assert np.array_equal(cv.joint_state_to_array(msg, ARM), [1.0, 2.0])
    # Joints listed as known (the robot's fingers) are accepted and ignored.
    assert np.array_equal(cv.joint_state_to_array(msg, ARM, known_names=["finger"]), [1.0, 2.0])
    no_extras = cv.joint_state_msg(["a", "b"], [1.0, 2.0])
    assert list(no_extras.velocity) == [] and list(no_extras.effort) == []


@pytest.mark.parametrize("velocity, effort",
                         [([0.0], None), (None, [0.0, 0.0, 0.0]), ([math.nan, 0.0], None)])
def test_joint_state_msg_rejects_bad_arguments(velocity, effort):
    with pytest.raises(ValueError, match="joint"):
        cv.joint_state_msg(ARM, [0.0, 0.0], velocity, effort)


@pytest.mark.parametrize("msg, known, reason", [
    (JointState(name=["a"], position=[1.0, 2.0]), None, "1 names but 2 positions"),
    (JointState(name=["a", "b"], position=[1.0]), None, "2 names but 1 positions"),
    (JointState(name=["a", "a", "b"], position=[0.0, 1.0, 2.0]), None, r"\['a'\] more than once"),
    (JointState(name=["a"], position=[0.0]), None, r"lacks joints \['b'\]"),
    (JointState(name=["elbow_of_another_robot"], position=[0.0]), None, "lacks joints"),
    (JointState(name=["a", "b", "elbow"], position=[0.0] * 3), ["finger"], r"unknown joints \['elbow'\]"),
    (JointState(name=["a", "b"], position=[math.nan, 0.0]), None, "NaN"),
    (JointState(name=["b", "a"], position=[0.0, -math.inf]), None, "infinity"),
])
def test_joint_state_rejections(msg, known, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.joint_state_to_array(msg, ARM, known_names=known)


def test_nan_in_an_ignored_joint_is_not_our_concern():
    msg = JointState(name=["a", "b", "finger"], position=[1.0, 2.0, math.nan])
    assert np.array_equal(cv.joint_state_to_array(msg, ARM), [1.0, 2.0])


def test_float_array_command():
    command = cv.float_array_command(Float64MultiArray(data=[1.0, 2.0]), 2)
    assert command.dtype == np.float64 and np.array_equal(command, [1.0, 2.0])


@pytest.mark.parametrize("data, reason", [
    ([1.0], "2 values"), ([1.0, 2.0, 3.0], "2 values"), ([], "2 values"),
    ([math.inf, 0.0], "infinity"), ([0.0, math.nan], "NaN"),
])
def test_float_array_command_rejections(data, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.float_array_command(Float64MultiArray(data=data), 2)


@pytest.mark.parametrize("value, expected", [(0.3, 0.3), (0.0, 0.0), (1.0, 1.0), (1.7, 1.0), (-0.2, 0.0)])
def test_gripper_clips_to_unit_range(value, expected):
    assert cv.gripper_from_msg(Float64(data=value)) == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_gripper_rejects_non_finite(value):
    with pytest.raises(MessageRejected, match="finite"):
        cv.gripper_from_msg(Float64(data=value))


# --- poses ---------------------------------------------------------------------------------------------

def test_pose_round_trip_converts_quaternion_order_and_normalises():
    quat = np.array([0.5, 0.5, -0.5, 0.5])  # w x y z
    msg = cv.pose_to_msg([0.1, 0.2, 0.3], quat * 2.0, STAMP, "base_link")
    o = msg.pose.orientation
    assert (o.x, o.y, o.z, o.w) == (1.0, -1.0, 1.0, 1.0)  # ROS order x y z w
    assert msg.header.frame_id == "base_link" and msg.header.stamp == STAMP
    pos, back = cv.pose_from_msg(msg, "base_link")
    assert np.allclose(pos, [0.1, 0.2, 0.3]) and np.allclose(back, quat)
    assert cv.pose_from_msg(msg, None)[1] == pytest.approx(quat)
    msg.header.frame_id = ""  # unset frame: taken as the expected one
    assert np.allclose(cv.pose_from_msg(msg, "base_link")[0], pos)


@pytest.mark.parametrize("pos, quat", [([0.0, 0.0], [1.0, 0, 0, 0]), ([0.0] * 3, [1.0, 0, 0]),
                                       ([math.nan, 0, 0], [1.0, 0, 0, 0])])
def test_pose_to_msg_rejects_bad_arguments(pos, quat):
    with pytest.raises(ValueError):
        cv.pose_to_msg(pos, quat, STAMP, "base_link")


def _pose(frame="base_link", position=(0.0, 0.0, 0.0), xyzw=(0.0, 0.0, 0.0, 1.0)) -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = position
    o = msg.pose.orientation
    o.x, o.y, o.z, o.w = xyzw
    return msg


@pytest.mark.parametrize("msg, reason", [
    (_pose(frame="world"), "frame 'world', expected 'base_link'"),
    (_pose(position=(0.0, math.nan, 0.0)), "position contains NaN"),
    (_pose(position=(math.inf, 0.0, 0.0)), "position contains NaN or infinity"),
    (_pose(xyzw=(0.0, 0.0, math.nan, 1.0)), "orientation contains NaN"),
    (_pose(xyzw=(0.0, 0.0, 0.0, 0.0)), "zero quaternion"),
])
def test_pose_rejections(msg, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.pose_from_msg(msg, "base_link")


# --- JSON ----------------------------------------------------------------------------------------------

def test_json_round_trip():
    payload = {"instruction": "stack the red block", "success": True, "elapsed_s": 1.5, "nested": {"k": [1]}}
    assert cv.json_from_msg(cv.json_msg(payload), ["instruction", "success"]) == payload


@pytest.mark.parametrize("data, reason", [
    ("{", "not JSON"), ("[1]", "object"), ('{"a": 1}', r"lacks keys \['b'\]"), ('{"b": NaN}', "NaN"),
])
def test_json_rejections(data, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.json_from_msg(String(data=data), ["b"])


@pytest.mark.parametrize("payload", [{"x": math.nan}, [1, 2], "text"])
def test_json_msg_rejects_bad_payloads(payload):
    with pytest.raises(ValueError):
        cv.json_msg(payload)


# --- QoS profiles of the topic contract ----------------------------------------------------------------

def test_qos_profiles():
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy

    from ros_nodes import qos

    assert qos.SENSOR_DATA.reliability == ReliabilityPolicy.BEST_EFFORT and 1 <= qos.SENSOR_DATA.depth <= 5
    assert qos.SENSOR_DATA.durability == DurabilityPolicy.VOLATILE
    assert (qos.COMMANDS.reliability, qos.COMMANDS.depth) == (ReliabilityPolicy.RELIABLE, 10)
    assert qos.LATCHED.reliability == ReliabilityPolicy.RELIABLE and qos.LATCHED.depth == 1
    assert qos.LATCHED.durability == DurabilityPolicy.TRANSIENT_LOCAL
    assert qos.CLOCK.depth == 1
