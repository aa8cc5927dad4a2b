"""The launched graph (sim_node + controller_node + expert_node, real processes over Fast DDS)."""

from __future__ import annotations

import json
import math

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String

from ros_nodes import conversions, qos
from tests.conftest import spin_until

INSTRUCTION = "put the red block on the green pad"


def test_graph_solves_a_task_driven_over_topics(launch_graph, probe_node):
    graph = launch_graph("seed:=1")
    status: dict = {}
    frames: list = []
    probe_node.create_subscription(String, "task_status", lambda m: status.update(json.loads(m.data)), qos.LATCHED)
    probe_node.create_subscription(Image, "camera/front/image_raw", frames.append, qos.SENSOR_DATA)
    task_pub = probe_node.create_publisher(String, "task", qos.COMMANDS)

    graph_ready = spin_until(probe_node, lambda: task_pub.get_subscription_count() >= 2 and frames, 90)
    assert graph_ready, graph.log()

    def acknowledged() -> bool:
        if status.get("instruction") != INSTRUCTION:
            task_pub.publish(String(data=INSTRUCTION))
            spin_until(probe_node, lambda: status.get("instruction") == INSTRUCTION, 1.0)
        return status.get("instruction") == INSTRUCTION

    assert spin_until(probe_node, acknowledged, 20), graph.log()
    assert spin_until(probe_node, lambda: status.get("success") is True, 150), (status, graph.log()[-3000:])
    assert 0 < status["elapsed_s"] < 90
    image = conversions.msg_to_image(frames[-1])
    assert image.shape == (128, 128, 3) and image.std() > 5
    assert graph.stop() == 0


def test_nodes_drop_bad_messages_keep_running_and_honour_estop(launch_graph, probe_node):
    graph = launch_graph("expert:=false", "seed:=2")
    joints: list[JointState] = []
    commands: list[np.ndarray] = []
    probe_node.create_subscription(JointState, "joint_states", joints.append, qos.SENSOR_DATA)
    probe_node.create_subscription(Float64MultiArray, "arm_controller/commands",
                                   lambda m: commands.append(np.array(m.data)), qos.COMMANDS)
    arm_pub = probe_node.create_publisher(Float64MultiArray, "arm_controller/commands", qos.COMMANDS)
    target_pub = probe_node.create_publisher(PoseStamped, "ee_target", qos.COMMANDS)
    joint_pub = probe_node.create_publisher(JointState, "joint_states", qos.SENSOR_DATA)
    gripper_pub = probe_node.create_publisher(Float64, "gripper_command", qos.COMMANDS)
    task_pub = probe_node.create_publisher(String, "task", qos.COMMANDS)
    estop_pub = probe_node.create_publisher(Bool, "estop", qos.LATCHED)
    assert spin_until(probe_node, lambda: joints and commands and target_pub.get_subscription_count() >= 1, 90), \
        graph.log()

    # The controller runs at >= 50 Hz of simulated time (it follows the sim's clock).
    window_start, commands_before = joints[-1].header.stamp, len(commands)
    spin_until(probe_node, lambda: False, 2.0)
    sim_seconds = conversions.seconds_from_stamp(joints[-1].header.stamp) - \
        conversions.seconds_from_stamp(window_start)
    assert sim_seconds > 0.5 and (len(commands) - commands_before) / sim_seconds >= 50

    nan_pose = PoseStamped()
    nan_pose.header.frame_id = "base_link"
    nan_pose.pose.position.x = math.nan
    nan_pose.pose.orientation.w = 1.0
    unknown_joints = JointState(name=["elbow_of_another_robot"], position=[0.0])
    for _ in range(3):
        arm_pub.publish(Float64MultiArray(data=[0.0, 1.0]))
        arm_pub.publish(Float64MultiArray(data=[math.nan] * 6))
        target_pub.publish(nan_pose)
        joint_pub.publish(unknown_joints)
        gripper_pub.publish(Float64(data=math.nan))
        task_pub.publish(String(data="fly to the moon"))
        spin_until(probe_node, lambda: False, 0.3)

    received = len(joints)
    assert spin_until(probe_node, lambda: len(joints) > received + 20, 10), "sim stopped publishing"
    log = graph.log()
    for topic in ("arm_controller/commands", "ee_target", "joint_states", "gripper_command", "task"):
        assert f"dropped {topic}" in log, f"no drop logged for {topic}:\n{log[-3000:]}"

    # A valid target moves the arm; estop then holds it still while targets keep coming.
    names = list(joints[-1].name)
    start = np.array(joints[-1].position[:6])
    tcp_target = conversions.pose_to_msg(np.array([0.45, 0.15, 0.25]), np.array([0.0, 1.0, 0.0, 0.0]),
                                         probe_node.get_clock().now().to_msg(), "base_link")

    def moved() -> bool:
        target_pub.publish(tcp_target)
        return np.abs(np.array(joints[-1].position[:6]) - start).max() > 0.05

    assert spin_until(probe_node, moved, 30), "controller did not move the arm towards a valid target"
    estop_pub.publish(Bool(data=True))
    spin_until(probe_node, lambda: "estop engaged" in graph.log(), 5)
    spin_until(probe_node, lambda: False, 1.0)
    held = np.array(joints[-1].position[:6])
    far_target = conversions.pose_to_msg(np.array([0.40, -0.20, 0.30]), np.array([0.0, 1.0, 0.0, 0.0]),
                                         probe_node.get_clock().now().to_msg(), "base_link")
    for _ in range(20):
        target_pub.publish(far_target)
        spin_until(probe_node, lambda: False, 0.1)
    assert np.abs(np.array(joints[-1].position[:6]) - held).max() < 0.02, "arm moved during estop"
    assert names == list(joints[-1].name)
    assert graph.alive()
    assert graph.stop() == 0


def _set_parameter(node, name: str, value):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    client = node.create_client(SetParameters, "/sim/set_parameters")
    assert client.wait_for_service(timeout_sec=30)
    if isinstance(value, int):
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        parameter_value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=parameter_value)]))
    assert spin_until(node, future.done, 10)
    return future.result().results[0]


def _reset(node) -> str:
    from std_srvs.srv import Trigger

    client = node.create_client(Trigger, "/sim/reset")
    assert client.wait_for_service(timeout_sec=30)
    future = client.call_async(Trigger.Request())
    assert spin_until(node, future.done, 20)
    assert future.result().success
    return future.result().message


def test_reset_service_with_seed_parameter_and_task_parameter(launch_graph, probe_node):
    graph = launch_graph("controller:=false", "expert:=false", "seed:=0")
    scenes: list[dict] = []
    status: dict = {}
    probe_node.create_subscription(String, "scene_state", lambda m: scenes.append(json.loads(m.data)),
                                   qos.SENSOR_DATA)
    probe_node.create_subscription(String, "task_status", lambda m: status.update(json.loads(m.data)), qos.LATCHED)
    assert spin_until(probe_node, lambda: scenes, 90), graph.log()

    def red_block_after_reset(seed: int) -> np.ndarray:
        assert _set_parameter(probe_node, "seed", seed).successful
        assert json.loads(_reset(probe_node))["seed"] == seed
        scenes.clear()
        assert spin_until(probe_node, lambda: len(scenes) >= 2, 10)
        return np.array(scenes[-1]["objects"]["red_block"]["pos"])

    first, other, again = red_block_after_reset(5), red_block_after_reset(6), red_block_after_reset(5)
    assert np.linalg.norm(first[:2] - other[:2]) > 0.01, "a new seed should give a new layout"
    assert np.linalg.norm(first[:2] - again[:2]) < 0.005, "the same seed should give the same layout"

    refused = _set_parameter(probe_node, "task", "juggle the blocks")
    assert not refused.successful and "juggle" in refused.reason
    assert _set_parameter(probe_node, "task", "stack the blue block on the yellow block").successful
    assert spin_until(probe_node, lambda: status.get("instruction") == "stack the blue block on the yellow block", 10)
    assert status["success"] is False
    assert graph.alive()
