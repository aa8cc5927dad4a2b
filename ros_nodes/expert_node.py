"""expert_node: the scripted expert as a policy on live topics, filling the slot the VLA node takes later.

Reads the instruction from `task` and the scene from `scene_state`; publishes `ee_target` and
`gripper_command` at `rate_hz`.
"""

from __future__ import annotations

from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from std_msgs.msg import Float64, String

from ros_nodes import conversions, qos
from ros_nodes.node_main import run_node
from sim.experts import make_expert
from sim.state import scene_state_from_dict
from sim.tasks import task_from_instruction


class ExpertNode(Node):
    def __init__(self) -> None:
        super().__init__("expert")
        self.declare_parameter("rate_hz", 10.0)
        self.declare_parameter("frame_id", "base_link")
        self.frame_id = self.get_parameter("frame_id").value
        self.expert = None
        self.task = None
        self.scene = None

        self.target_pub = self.create_publisher(PoseStamped, "ee_target", qos.COMMANDS)
        self.gripper_pub = self.create_publisher(Float64, "gripper_command", qos.COMMANDS)
        self.create_subscription(String, "task", self.on_task, qos.COMMANDS)
        self.create_subscription(String, "scene_state", self.on_scene_state, qos.SENSOR_DATA)
        self.create_timer(1.0 / float(self.get_parameter("rate_hz").value), self.tick)

    def on_task(self, msg: String) -> None:
        try:
            task = task_from_instruction(msg.data)
        except ValueError as error:
            self.get_logger().warning(f"dropped task: {error}")
            return
        if task == self.task:
            return  # a repeat, in any phrasing, must not restart the expert mid-task
        self.task = task
        self.expert = make_expert(task)
        self.get_logger().info(f"expert for {task.family}: {task.instruction!r}")

    def on_scene_state(self, msg: String) -> None:
        try:
            self.scene = scene_state_from_dict(conversions.json_from_msg(msg, ("objects", "ee_pos")))
        except (conversions.MessageRejected, ValueError) as error:
            self.get_logger().warning(f"dropped scene_state: {error}", throttle_duration_sec=5.0)

    def tick(self) -> None:
        if self.expert is None or self.scene is None:
            return
        try:
            command = self.expert.act(self.scene)
        except RuntimeError as error:  # e.g. no free spot on a crowded table: report, keep serving
            self.get_logger().error(f"expert cannot act: {error}", throttle_duration_sec=5.0)
            return
        stamp = self.get_clock().now().to_msg()
        self.target_pub.publish(conversions.pose_to_msg(command.target_pos, command.target_quat, stamp,
                                                        self.frame_id))
        self.gripper_pub.publish(Float64(data=float(command.gripper)))


def main(args: list[str] | None = None) -> None:
    run_node(ExpertNode, args)


if __name__ == "__main__":
    main()
