"""vla_sim.launch.xml: sim_node + controller_node + vla_node on a checkpoint a fixture trains, real processes
over Fast DDS, started by the pip-only launcher. The tiny policy is too short-trained to solve the task;
the test checks the wiring: it acts at its rate, its targets move the arm through the controller, it
survives bad input, reports a timeout once, and starts again on a different subgoal."""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import PoseStamped
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from ros_nodes import conversions, qos
from tests.conftest import spin_until

INSTRUCTION = "pick up the red block"
NEXT_INSTRUCTION = "put the red block in the bin"
TIMEOUT_S = 6.0


def test_vla_node_drives_the_sim_and_reports_a_timeout(launch_graph, probe_node, tiny_vla_checkpoint):
    graph = launch_graph(f"checkpoint:={tiny_vla_checkpoint}", f"timeout_s:={TIMEOUT_S}", "seed:=3",
                         launch_file="vla_sim.launch.xml")
    targets: list[PoseStamped] = []
    grippers: list[float] = []
    statuses: list[dict] = []
    joints: list[np.ndarray] = []
    probe_node.create_subscription(PoseStamped, "ee_target", targets.append, qos.COMMANDS)
    probe_node.create_subscription(Float64, "gripper_command", lambda m: grippers.append(m.data),
                                   qos.COMMANDS)
    probe_node.create_subscription(String, "subgoal_status", lambda m: statuses.append(json.loads(m.data)),
                                   qos.COMMANDS)
    probe_node.create_subscription(JointState, "joint_states",  # sim order: the 6 arm joints first
                                   lambda m: joints.append(np.array(m.position[:6])), qos.SENSOR_DATA)
    # The launch file feeds the VLA's subgoal from `task` (no planner here): one message tells sim and VLA.
    task_pub = probe_node.create_publisher(String, "task", qos.COMMANDS)
    image_pub = probe_node.create_publisher(Image, "camera/front/image_raw", qos.SENSOR_DATA)
    # vla_node subscribes once its policy is loaded and warmed up: then the graph is ready.
    def ready() -> bool:
        return task_pub.get_subscription_count() >= 2 and image_pub.get_subscription_count() >= 1 and bool(joints)

    assert spin_until(probe_node, ready, 120), graph.log()

    # Bad input first: an empty instruction and malformed images are dropped, the node keeps running.
    task_pub.publish(String(data=" "))
    bad = Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10))
    for _ in range(5):  # best effort: more than one, so one surely arrives
        image_pub.publish(bad)
        spin_until(probe_node, lambda: False, 0.05)
    assert spin_until(probe_node, lambda: "dropped an image on camera/front/image_raw" in graph.log(), 10), \
        graph.log()[-4000:]
    task_pub.publish(String(data=INSTRUCTION))

    assert spin_until(probe_node, lambda: len(targets) >= 1, 30), graph.log()[-4000:]
    arm_at_start = joints[-1]
    assert spin_until(probe_node, lambda: len(targets) >= 20, 30), graph.log()[-4000:]
    stamps = [conversions.seconds_from_stamp(t.header.stamp) for t in targets[-15:]]
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    assert 5.0 < rate < 12.0, rate  # rate_hz 0: the checkpoint's 10 Hz, of sim time
    assert len(grippers) >= 15 and all(0.0 <= g <= 1.0 for g in grippers)
    assert {t.header.frame_id for t in targets} == {"base_link"}
    assert np.abs(joints[-1] - arm_at_start).max() > 1e-3, "the VLA's targets did not move the arm"

    assert spin_until(probe_node, lambda: statuses, TIMEOUT_S + 30), graph.log()[-4000:]
    (status,) = statuses
    assert status["status"] == "timeout" and status["subgoal"] == INSTRUCTION, status
    assert status["elapsed_s"] >= TIMEOUT_S and status["steps"] >= 20
    # Idle after the status: no more targets, also not for a repeat of the same instruction.
    spin_until(probe_node, lambda: False, 0.5)  # targets published before the status may still be on the way
    count = len(targets)
    task_pub.publish(String(data=INSTRUCTION))
    spin_until(probe_node, lambda: False, 1.5)
    assert len(targets) == count

    task_pub.publish(String(data=NEXT_INSTRUCTION))  # a different subgoal starts the policy again
    assert spin_until(probe_node, lambda: len(targets) >= count + 3, 30), graph.log()[-4000:]
    log = graph.log()
    assert "[vla]: dropped an empty subgoal" in log and "process has died" not in log
    assert graph.alive()
    assert graph.stop() == 0
