"""vla_sim.launch.xml: sim_node + controller_node + vla_node (a checkpoint a fixture trains), real processes
over Fast DDS. The tiny policy is too short-trained to solve the task; the test checks the wiring: it acts
at its rate, its targets move the arm, it survives bad input and reports a timeout."""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from ros_nodes import qos
from tests.conftest import spin_until

INSTRUCTION = "pick up the red block"


def test_vla_node_drives_the_sim_and_reports_a_timeout(launch_graph, probe_node, tiny_vla_checkpoint):
    graph = launch_graph(f"checkpoint:={tiny_vla_checkpoint}", "timeout_s:=8.0", "seed:=3",
                         launch_file="vla_sim.launch.xml")
    targets: list[PoseStamped] = []
    grippers: list[float] = []
    statuses: list[dict] = []
    joints: list[np.ndarray] = []
    probe_node.create_subscription(PoseStamped, "ee_target", targets.append, qos.COMMANDS)
    probe_node.create_subscription(Float64, "gripper_command", lambda m: grippers.append(m.data), qos.COMMANDS)
    probe_node.create_subscription(String, "subgoal_status", lambda m: statuses.append(json.loads(m.data)),
                                   qos.COMMANDS)
    probe_node.create_subscription(JointState, "joint_states", lambda m: joints.append(np.array(m.position[:6])),
                                   qos.SENSOR_DATA)
    task_pub = probe_node.create_publisher(String, "task", qos.COMMANDS)
    image_pub = probe_node.create_publisher(Image, "camera/front/image_raw", qos.SENSOR_DATA)
    assert spin_until(probe_node, lambda: task_pub.get_subscription_count() >= 2 and joints, 120), graph.log()

    # Bad input first: an empty instruction and a malformed image are dropped, the node keeps running.
    task_pub.publish(String(data=""))
    image_pub.publish(Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10)))
    task_pub.publish(String(data=INSTRUCTION))
    assert spin_until(probe_node, lambda: len(targets) >= 10, 90), graph.log()[-4000:]
    stamps = [t.header.stamp.sec + t.header.stamp.nanosec * 1e-9 for t in targets[-10:]]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 3.0 < rate < 12.0, rate  # 10 Hz of sim time, less when the 2-core machine cannot keep up
    assert grippers and all(0.0 <= g <= 1.0 for g in grippers)
    assert targets[-1].header.frame_id == "base_link"
    assert np.abs(joints[-1] - joints[0]).max() > 1e-3, "the VLA's targets did not move the arm"

    assert spin_until(probe_node, lambda: statuses, 60), graph.log()[-4000:]
    assert statuses[0]["status"] in ("timeout", "done") and statuses[0]["subgoal"] == INSTRUCTION
    assert "dropped" in graph.log()
    assert graph.alive()
    assert graph.stop() == 0
