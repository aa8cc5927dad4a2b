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


def test_stamp_and_clock():
    assert (STAMP.sec, STAMP.nanosec) == (12, 250_000_000)
    assert cv.clock_msg(1.5).clock.nanosec == 500_000_000


def test_image_round_trip_and_rejections():
    rgb = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    msg = cv.image_to_msg(rgb, STAMP, "front")
    assert (msg.width, msg.height, msg.step, msg.encoding) == (64, 48, 192, "rgb8")
    assert np.array_equal(cv.msg_to_image(msg), rgb)
    with pytest.raises(ValueError):
        cv.image_to_msg(rgb.astype(np.float32), STAMP, "front")
    with pytest.raises(MessageRejected, match="encoding"):
        cv.msg_to_image(Image(encoding="bgr8", width=1, height=1, step=3, data=[0, 0, 0]))
    truncated = cv.image_to_msg(rgb, STAMP, "front")
    truncated.data = truncated.data[:-3]
    with pytest.raises(MessageRejected, match="bytes"):
        cv.msg_to_image(truncated)


def test_camera_info_projection():
    k = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    info = cv.camera_info_msg(k, 64, 48, STAMP, "front")
    assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], k) and list(info.d) == [0.0] * 5


def test_joint_states_match_by_name_not_order():
    msg = cv.joint_state_msg(["b", "a", "finger"], [2.0, 1.0, 0.5], [0.0] * 3, None, STAMP)
    assert np.array_equal(cv.joint_state_to_array(msg, ["a", "b"]), [1.0, 2.0])


@pytest.mark.parametrize("msg, reason", [
    (JointState(name=["a"], position=[1.0, 2.0]), "names but"),
    (JointState(name=["elbow_of_another_robot"], position=[0.0]), "unknown joints"),
    (JointState(name=["a", "b"], position=[math.nan, 0.0]), "NaN"),
])
def test_joint_state_rejections(msg, reason):
    with pytest.raises(MessageRejected, match=reason):
        cv.joint_state_to_array(msg, ["a", "b"])


def test_commands():
    assert np.array_equal(cv.float_array_command(Float64MultiArray(data=[1.0, 2.0]), 2), [1.0, 2.0])
    with pytest.raises(MessageRejected, match="2 values"):
        cv.float_array_command(Float64MultiArray(data=[1.0]), 2)
    with pytest.raises(MessageRejected, match="NaN"):
        cv.float_array_command(Float64MultiArray(data=[math.inf, 0.0]), 2)


def test_gripper_clips_range_and_rejects_nan():
    assert cv.gripper_from_msg(Float64(data=1.7)) == 1.0
    assert cv.gripper_from_msg(Float64(data=0.3)) == 0.3
    with pytest.raises(MessageRejected):
        cv.gripper_from_msg(Float64(data=math.nan))


def test_pose_round_trip_normalises_and_rejects():
    quat = np.array([0.0, 1.0, 0.0, 0.0])
    msg = cv.pose_to_msg([0.1, 0.2, 0.3], quat * 2.0, STAMP, "base_link")
    assert msg.pose.orientation.x == 2.0  # ROS order x y z w
    pos, back = cv.pose_from_msg(msg, "base_link")
    assert np.allclose(pos, [0.1, 0.2, 0.3]) and np.allclose(back, quat)
    with pytest.raises(MessageRejected, match="frame"):
        cv.pose_from_msg(msg, "world")
    zero = PoseStamped()
    zero.pose.orientation.w = 0.0  # geometry_msgs defaults to the identity
    with pytest.raises(MessageRejected, match="zero quaternion"):
        cv.pose_from_msg(zero, None)
    msg.pose.position.y = math.nan
    with pytest.raises(MessageRejected, match="NaN"):
        cv.pose_from_msg(msg, None)


def test_json_messages():
    assert cv.json_from_msg(cv.json_msg({"a": 1}), ["a"]) == {"a": 1}
    with pytest.raises(MessageRejected, match="not JSON"):
        cv.json_from_msg(String(data="{"))
    with pytest.raises(MessageRejected, match="object"):
        cv.json_from_msg(String(data="[1]"))
    with pytest.raises(MessageRejected, match="lacks keys"):
        cv.json_from_msg(String(data='{"a": 1}'), ["b"])
    with pytest.raises(ValueError):
        cv.json_msg({"x": math.nan})
