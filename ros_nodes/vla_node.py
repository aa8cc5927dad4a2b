"""vla_node: the VLA policy on live topics, in the policy slot of the graph (where expert_node sits in sim).

Subscribes `subgoal` (the language instruction; parameter `subgoal_topic`), `camera/front/image_raw`, `camera/wrist/image_raw` and
`joint_states`; at `rate_hz` it runs `VLAPolicy.act` and publishes the absolute `ee_target` (the previous
target moved by the action's delta, as the tabletop env integrates it) and `gripper_command`. It publishes
`subgoal_status` once per subgoal: "done" when the terminate head fires, "timeout" after `timeout_s`.

Inference runs in a timer of its own callback group on a multi-threaded executor, so subscriptions keep
taking messages while the policy computes. Stale images (older than `max_image_age_s`) and malformed
messages are dropped with a throttled warning.
"""

from __future__ import annotations

import threading

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from agent_stack.control.osc import apply_ee_delta
from agent_stack.vla import VLAPolicy
from ros_nodes import conversions, qos
from ros_nodes.node_main import run_node
from sim.kinematics import JacoKinematics
from sim.scene import ARM_JOINT_NAMES, FINGER_CLOSED, FINGER_JOINT_NAMES, FINGER_OPEN
from sim.state import WORKSPACE_HIGH, WORKSPACE_LOW
from sim.tabletop_env import TabletopConfig

CAMERA_KEYS = {"image": "front", "wrist_image": "wrist"}
"""Policy observation key -> camera name (as `agent-stack collect` recorded them)."""


class VLANode(Node):
    def __init__(self) -> None:
        super().__init__("vla")
        env_defaults = TabletopConfig(render=False)
        self.declare_parameter("checkpoint", "")
        self.declare_parameter("subgoal_topic", "subgoal")
        self.declare_parameter("device", "cpu")
        self.declare_parameter("rate_hz", 0.0)  # 0: the rate of the policy's training data
        self.declare_parameter("max_image_age_s", 0.5)
        self.declare_parameter("timeout_s", 60.0)
        self.declare_parameter("terminate_threshold", 0.5)
        self.declare_parameter("frame_id", "base_link")
        self.declare_parameter("max_translation", env_defaults.max_translation)
        self.declare_parameter("max_rotation", env_defaults.max_rotation)

        checkpoint = str(self.get_parameter("checkpoint").value)
        if not checkpoint:
            raise ValueError("vla_node needs the `checkpoint` parameter (a checkpoint or training run directory)")
        self.policy = VLAPolicy.from_pretrained(checkpoint, device=str(self.get_parameter("device").value))
        rate_hz = float(self.get_parameter("rate_hz").value) or float(self.policy.control_hz or 10.0)
        self.max_image_age = float(self.get_parameter("max_image_age_s").value)
        self.timeout = float(self.get_parameter("timeout_s").value)
        self.threshold = float(self.get_parameter("terminate_threshold").value)
        self.frame_id = str(self.get_parameter("frame_id").value)
        self.max_translation = float(self.get_parameter("max_translation").value)
        self.max_rotation = float(self.get_parameter("max_rotation").value)
        self.kinematics = JacoKinematics()
        self.joint_names = [*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES]

        self._lock = threading.Lock()  # subscriptions write, the policy timer reads
        self.images: dict[str, tuple[np.ndarray, Time]] = {}
        self.joints: np.ndarray | None = None
        self.subgoal: str | None = None
        self.pending_subgoal: str | None = None
        self.started: Time | None = None
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.steps = 0

        self.target_pub = self.create_publisher(PoseStamped, "ee_target", qos.COMMANDS)
        self.gripper_pub = self.create_publisher(Float64, "gripper_command", qos.COMMANDS)
        self.status_pub = self.create_publisher(String, "subgoal_status", qos.COMMANDS)
        self.create_subscription(String, str(self.get_parameter("subgoal_topic").value), self.on_subgoal,
                                 qos.COMMANDS)
        self.create_subscription(JointState, "joint_states", self.on_joint_states, qos.SENSOR_DATA)
        for key in self.policy.config.cameras:
            self.create_subscription(Image, f"camera/{CAMERA_KEYS[key]}/image_raw",
                                     lambda msg, key=key: self.on_image(key, msg), qos.SENSOR_DATA)
        self.create_timer(1.0 / rate_hz, self.tick, callback_group=MutuallyExclusiveCallbackGroup())
        self.get_logger().info(f"VLA policy from {checkpoint} at {rate_hz:g} Hz, cameras {self.policy.config.cameras}")

    # --- inputs --------------------------------------------------------------------------------------------

    def on_subgoal(self, msg: String) -> None:
        text = msg.data.strip()
        if not text:
            self.get_logger().warning("dropped an empty subgoal")
            return
        with self._lock:
            if text != self.subgoal:
                self.pending_subgoal = text

    def on_joint_states(self, msg: JointState) -> None:
        try:
            joints = conversions.joint_state_to_array(msg, self.joint_names)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped joint_states: {error}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self.joints = joints

    def on_image(self, key: str, msg: Image) -> None:
        try:
            image = conversions.msg_to_image(msg)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped {key} image: {error}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self.images[key] = (image, Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type))

    # --- the policy step -----------------------------------------------------------------------------------

    def tick(self) -> None:
        now = self.get_clock().now()
        with self._lock:
            pending, self.pending_subgoal = self.pending_subgoal, None
            joints = None if self.joints is None else self.joints.copy()
            images = dict(self.images)
        if joints is None:
            return
        if pending is not None:
            self._start(pending, joints)
            now = self.get_clock().now()
        if self.subgoal is None or self.started is None:
            return
        elapsed = (now - self.started).nanoseconds * 1e-9
        if elapsed > self.timeout:
            self._finish("timeout", elapsed, None)
            return
        observation = {"state": self._state(joints)}
        for key in self.policy.config.cameras:
            if key not in images:
                return
            image, stamp = images[key]
            age = (now - stamp).nanoseconds * 1e-9
            if age > self.max_image_age:
                self.get_logger().warning(f"{key} image is {age:.2f} s old; waiting for a fresh one",
                                          throttle_duration_sec=5.0)
                return
            observation[key] = image
        out = self.policy.act(observation)
        if not np.all(np.isfinite(out.action)):
            self.get_logger().error("the policy produced a non-finite action; not publishing it",
                                    throttle_duration_sec=5.0)
            return
        self.target = apply_ee_delta(*self.target, out.action[:6], self.max_translation, self.max_rotation,
                                     WORKSPACE_LOW, WORKSPACE_HIGH)
        self.steps += 1
        stamp = now.to_msg()
        self.target_pub.publish(conversions.pose_to_msg(*self.target, stamp, self.frame_id))
        self.gripper_pub.publish(Float64(data=float(np.clip(out.action[6], 0.0, 1.0))))
        if out.terminate > self.threshold:
            self._finish("done", elapsed, out.terminate)

    def _start(self, subgoal: str, joints: np.ndarray) -> None:
        self.policy.reset(subgoal)  # the first one loads the language encoder, which takes seconds
        self.subgoal, self.started, self.steps = subgoal, self.get_clock().now(), 0
        self.target = self.kinematics.forward(joints[:len(ARM_JOINT_NAMES)])  # start from where the hand is
        self.get_logger().info(f"subgoal: {subgoal!r}")

    def _finish(self, status: str, elapsed: float, terminate: float | None) -> None:
        self.status_pub.publish(conversions.json_msg({
            "subgoal": self.subgoal, "status": status, "elapsed_s": round(elapsed, 3), "steps": self.steps,
            "terminate_probability": terminate}))
        self.get_logger().info(f"subgoal {status} after {elapsed:.1f} s, {self.steps} steps: {self.subgoal!r}")
        self.started = None  # idle until a different subgoal arrives

    def _state(self, joints: np.ndarray) -> np.ndarray:
        """The 14-D proprioception of the tabletop data: TCP pose, gripper opening, arm joints."""
        arm = joints[:len(ARM_JOINT_NAMES)]
        pos, quat = self.kinematics.forward(arm)
        closed = (joints[len(ARM_JOINT_NAMES):].mean() - FINGER_OPEN) / (FINGER_CLOSED - FINGER_OPEN)
        return np.concatenate([pos, quat, [np.clip(1.0 - closed, 0.0, 1.0)], arm])


def main(args: list[str] | None = None) -> None:
    run_node(VLANode, args, multithreaded=True)


if __name__ == "__main__":
    main()
