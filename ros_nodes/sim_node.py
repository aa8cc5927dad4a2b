"""sim_node: steps the MuJoCo tabletop in real time (or faster) and speaks the DESIGN.md topic contract.

Publishes `clock`, `joint_states`, `camera/<name>/image_raw` + `camera_info`, `scene_state` and the
latched `task_status`. Subscribes `arm_controller/commands`, `gripper_command`, `estop`, `task` and, when
`accept_ee_target` is true (no controller node in the graph), `ee_target`.
Reset with a seed: set the `seed` parameter, then call `~/reset` (std_srvs/Trigger). Set a task: publish
on `task`, or set the `task` parameter (validated; a bad instruction is refused with the reason).
"""

from __future__ import annotations

import json
import time

import rclpy
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Bool, Float64, Float64MultiArray, String
from std_srvs.srv import Trigger

from ros_nodes import conversions, qos
from ros_nodes.node_main import run_node
from sim.scene import ARM_JOINT_NAMES
from sim.state import scene_state_to_dict
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import Task, task_from_instruction


class SimNode(Node):
    def __init__(self) -> None:
        super().__init__("sim")
        self.declare_parameter("seed", 0)
        self.declare_parameter("task", "")
        for name, default in (("real_time_factor", 1.0), ("state_rate_hz", 100.0), ("camera_rate_hz", 10.0)):
            # Dynamic typing: `real_time_factor:=0` (an integer to YAML) must not stop the node.
            self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self.declare_parameter("cameras", ["front", "wrist"])
        self.declare_parameter("image_width", 128)
        self.declare_parameter("image_height", 128)
        self.declare_parameter("accept_ee_target", False)
        self.declare_parameter("frame_id", "base_link")

        self.real_time_factor = self._positive_param("real_time_factor", allow_zero=True)
        self.state_period = 1.0 / self._positive_param("state_rate_hz")
        self.camera_period = 1.0 / self._positive_param("camera_rate_hz")
        self.cameras = list(self.get_parameter("cameras").value)
        self.image_size = (self.get_parameter("image_height").value, self.get_parameter("image_width").value)
        self.frame_id = self.get_parameter("frame_id").value

        self.env = TabletopEnv(TabletopConfig(cameras=tuple(self.cameras), image_size=self.image_size,
                                              render=bool(self.cameras)))
        self.joint_names = list(self.env.joint_names)
        self.arm_joint_count = len(ARM_JOINT_NAMES)
        self.estopped = False
        self.task = None
        self.task_started_at = 0.0
        self.last_status: dict | None = None
        self.next_camera_time = 0.0

        self.clock_pub = self.create_publisher(Clock, "clock", qos.CLOCK)
        self.joint_pub = self.create_publisher(JointState, "joint_states", qos.SENSOR_DATA)
        self.scene_pub = self.create_publisher(String, "scene_state", qos.SENSOR_DATA)
        self.status_pub = self.create_publisher(String, "task_status", qos.LATCHED)
        self.image_pubs = {c: self.create_publisher(Image, f"camera/{c}/image_raw", qos.SENSOR_DATA)
                           for c in self.cameras}
        self.info_pubs = {c: self.create_publisher(CameraInfo, f"camera/{c}/camera_info", qos.SENSOR_DATA)
                          for c in self.cameras}

        self.create_subscription(Float64MultiArray, "arm_controller/commands", self.on_joint_command,
                                 qos.COMMANDS)
        self.create_subscription(Float64, "gripper_command", self.on_gripper_command, qos.COMMANDS)
        self.create_subscription(Bool, "estop", self.on_estop, qos.LATCHED)
        self.create_subscription(String, "task", self.on_task, qos.COMMANDS)
        if self.get_parameter("accept_ee_target").value:
            self.create_subscription(PoseStamped, "ee_target", self.on_ee_target, qos.COMMANDS)
        self.create_service(Trigger, "~/reset", self.on_reset)
        self.add_on_set_parameters_callback(self.on_set_parameters)

        self.reset_scene(self.get_parameter("seed").value)
        initial_task = self.get_parameter("task").value
        if initial_task:
            self.set_task(task_from_instruction(initial_task))
        self.wall_start = time.monotonic()
        self.sim_start = self.env.sim_time
        # Wall-clock timer: this node *is* the clock, so it must not follow use_sim_time. One tick per
        # state period of simulated time; with real_time_factor 0 the timer fires back to back.
        wall_period = self.state_period / self.real_time_factor if self.real_time_factor else 1e-4
        self.create_timer(wall_period, self.tick, clock=rclpy.clock.Clock())
        self.get_logger().info(
            f"tabletop sim running: seed={self.get_parameter('seed').value} rtf={self.real_time_factor} "
            f"cameras={self.cameras} {self.image_size[1]}x{self.image_size[0]}")

    def close(self) -> None:
        self.env.close()

    # --- parameters and services -------------------------------------------------------------------

    def _positive_param(self, name: str, allow_zero: bool = False) -> float:
        raw = self.get_parameter(name).value
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"parameter {name} must be a number, got {raw!r}") from None
        if value < 0 or (value == 0 and not allow_zero):
            raise ValueError(f"parameter {name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
        return value

    def on_set_parameters(self, params) -> SetParametersResult:
        for param in params:
            if param.name == "task" and param.value:
                try:
                    self.set_task(task_from_instruction(param.value))
                except ValueError as error:
                    return SetParametersResult(successful=False, reason=str(error))
            elif param.name == "seed" and (not isinstance(param.value, int) or param.value < 0):
                return SetParametersResult(successful=False, reason="seed must be a non-negative integer")
        return SetParametersResult(successful=True)

    def on_reset(self, request, response):
        seed = self.get_parameter("seed").value
        self.reset_scene(seed)
        response.success = True
        response.message = json.dumps({"seed": seed, "instruction": self._instruction()})
        return response

    def reset_scene(self, seed: int) -> None:
        self.env.reset(seed=seed, task=self.task)
        self.task_started_at = self.env.sim_time
        self.next_camera_time = self.env.sim_time
        self.last_status = None
        self.get_logger().info(f"scene reset with seed {seed}")

    # --- subscriptions -------------------------------------------------------------------------------

    def on_joint_command(self, msg: Float64MultiArray) -> None:
        try:
            targets = conversions.float_array_command(msg, self.arm_joint_count)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped arm_controller/commands: {error}")
            return
        if not self.estopped:
            self.env.set_joint_targets(targets)

    def on_gripper_command(self, msg: Float64) -> None:
        try:
            opening = conversions.gripper_from_msg(msg)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped gripper_command: {error}")
            return
        if not self.estopped:
            self.env.set_gripper(opening)

    def on_ee_target(self, msg: PoseStamped) -> None:
        try:
            pos, quat = conversions.pose_from_msg(msg, self.frame_id)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped ee_target: {error}")
            return
        if not self.estopped:
            self.env.set_ee_target(pos, quat)

    def on_estop(self, msg: Bool) -> None:
        if bool(msg.data) == self.estopped:
            return
        self.estopped = bool(msg.data)
        if self.estopped:
            self.env.set_joint_targets(self.env.joint_positions()[: self.arm_joint_count])
        self.get_logger().warning(f"estop {'engaged: holding position' if self.estopped else 'released'}")

    def on_task(self, msg: String) -> None:
        try:
            task = task_from_instruction(msg.data)
        except ValueError as error:
            self.get_logger().warning(f"dropped task: {error}")
            return
        if task != self.task:  # a repeat, in any phrasing, is the same task, not a restart
            self.set_task(task)

    def set_task(self, task: Task) -> None:
        self.task = task
        self.env.set_task(task)
        self.task_started_at = self.env.sim_time
        self.last_status = None
        self.get_logger().info(f"task set: {task.instruction!r} ({task.family})")

    # --- the real-time loop --------------------------------------------------------------------------

    def tick(self) -> None:
        self.env.advance(self._sim_seconds_due())
        clock = conversions.clock_msg(self.env.sim_time)
        stamp = clock.clock
        self.clock_pub.publish(clock)
        self.joint_pub.publish(conversions.joint_state_msg(
            self.joint_names, self.env.joint_positions(), self.env.joint_velocities(), None, stamp))
        if self.env.sim_time + 1e-9 >= self.next_camera_time:
            # After a stall, skip the missed frames rather than render them all at once.
            self.next_camera_time = max(self.next_camera_time + self.camera_period, self.env.sim_time)
            self.publish_cameras(stamp)
            self.scene_pub.publish(conversions.json_msg(scene_state_to_dict(self.env.scene_state())))
        self.publish_task_status()

    def _sim_seconds_due(self) -> float:
        if self.real_time_factor == 0:  # as fast as possible: one state period per tick
            return self.state_period
        wall_elapsed = time.monotonic() - self.wall_start
        due = self.sim_start + wall_elapsed * self.real_time_factor - self.env.sim_time
        # Never try to catch up more than a few periods at once: a stalled machine slows the sim down
        # instead of making it jump.
        return min(max(due, 0.0), 5 * self.state_period)

    def publish_cameras(self, stamp) -> None:
        height, width = self.image_size
        for camera in self.cameras:
            frame_id = f"{camera}_camera_optical_frame"
            self.image_pubs[camera].publish(conversions.image_to_msg(self.env.render(camera), stamp, frame_id))
            self.info_pubs[camera].publish(conversions.camera_info_msg(
                self.env.camera_intrinsics(camera, self.image_size), width, height, stamp, frame_id))

    def _instruction(self) -> str:
        return self.task.instruction if self.task is not None else ""

    def publish_task_status(self) -> None:
        instruction = self._instruction()
        if not instruction:
            return
        success = self.env.success()
        status = {"instruction": instruction, "success": success}
        if status != self.last_status:
            self.last_status = status
            message = dict(status, elapsed_s=round(self.env.sim_time - self.task_started_at, 3))
            self.status_pub.publish(conversions.json_msg(message))


def main(args: list[str] | None = None) -> None:
    run_node(SimNode, args)


if __name__ == "__main__":
    main()
