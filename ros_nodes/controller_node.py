"""controller_node: tracks `ee_target` at >= 50 Hz and publishes joint position commands.

This issue's controller is the damped-least-squares operational-space baseline
(`agent_stack.control.osc`); learned controllers plug into the same node later. Holds position while
`estop` is true or when no target arrived within `target_timeout_s`.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from agent_stack.control.osc import DifferentialIKController
from ros_nodes import conversions, qos
from ros_nodes.node_main import run_node
from sim.kinematics import JacoKinematics, jaco_tracking_config
from sim.scene import ARM_JOINT_NAMES


class ControllerNode(Node):
    def __init__(self) -> None:
        super().__init__("controller")
        self.declare_parameter("rate_hz", 100.0)
        self.declare_parameter("target_timeout_s", 1.0)
        self.declare_parameter("joint_names", list(ARM_JOINT_NAMES))
        self.declare_parameter("frame_id", "base_link")
        kinematics = JacoKinematics()
        defaults = jaco_tracking_config(kinematics)
        self.declare_parameter("damping", defaults.damping)
        self.declare_parameter("max_joint_velocity", defaults.max_joint_velocity)

        rate_hz = float(self.get_parameter("rate_hz").value)
        if rate_hz < 50.0:
            raise ValueError(f"rate_hz must be >= 50 for end-effector tracking, got {rate_hz}")
        self.period = 1.0 / rate_hz
        self.target_timeout = float(self.get_parameter("target_timeout_s").value)
        self.joint_names = list(self.get_parameter("joint_names").value)
        self.frame_id = self.get_parameter("frame_id").value
        self.controller = DifferentialIKController(kinematics, jaco_tracking_config(
            kinematics, damping=float(self.get_parameter("damping").value),
            max_joint_velocity=float(self.get_parameter("max_joint_velocity").value)))

        self.q: np.ndarray | None = None
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.target_time = None
        self.hold: np.ndarray | None = None
        self.command: np.ndarray | None = None
        self.estopped = False

        self.command_pub = self.create_publisher(Float64MultiArray, "arm_controller/commands", qos.COMMANDS)
        self.create_subscription(JointState, "joint_states", self.on_joint_states, qos.SENSOR_DATA)
        self.create_subscription(PoseStamped, "ee_target", self.on_ee_target, qos.COMMANDS)
        self.create_subscription(Bool, "estop", self.on_estop, qos.LATCHED)
        self.create_timer(self.period, self.tick)
        self.get_logger().info(f"DLS end-effector controller at {rate_hz:.0f} Hz for {self.joint_names}")

    def on_joint_states(self, msg: JointState) -> None:
        try:
            self.q = conversions.joint_state_to_array(msg, self.joint_names)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped joint_states: {error}", throttle_duration_sec=5.0)

    def on_ee_target(self, msg: PoseStamped) -> None:
        try:
            self.target = conversions.pose_from_msg(msg, self.frame_id)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped ee_target: {error}")
            return
        self.target_time = self.get_clock().now()

    def on_estop(self, msg: Bool) -> None:
        if bool(msg.data) != self.estopped:
            self.estopped = bool(msg.data)
            self.get_logger().warning(f"estop {'engaged: holding position' if self.estopped else 'released'}")

    def tick(self) -> None:
        if self.q is None:
            return
        if self.estopped or not self._target_fresh():
            # Latch the posture once, so holding does not creep with sensor noise.
            if self.hold is None:
                self.hold = self.q.copy()
            self.command = None
            command = self.hold
        else:
            self.hold = None
            # Integrate from the previous command, not the measured joints: position servos lag their
            # command, and restarting from the lagging measurement every tick would slow tracking down.
            start = self.q if self.command is None else self.command
            pos, quat = self.target
            self.command = command = self.controller.command(start, pos, quat, self.period)
        self.command_pub.publish(Float64MultiArray(data=[float(v) for v in command]))

    def _target_fresh(self) -> bool:
        if self.target is None:
            return False
        age = (self.get_clock().now() - self.target_time).nanoseconds * 1e-9
        return age <= self.target_timeout


def main(args: list[str] | None = None) -> None:
    run_node(ControllerNode, args)


if __name__ == "__main__":
    main()
