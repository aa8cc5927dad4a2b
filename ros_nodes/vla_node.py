"""vla_node: the VLA policy on live topics, in the policy slot of the graph (where expert_node sits in sim).

Subscribes `subgoal` (std_msgs/String, the language instruction), the cameras the checkpoint was trained
with (`front_camera_topic`, `wrist_camera_topic`; sensor-data QoS) and `joint_states` (matched by name).
While a subgoal is active it runs `VLAPolicy.act` at `rate_hz` and publishes `ee_target` (absolute pose in
`frame_id`: the previous target moved by the action's delta with `agent_stack.control.osc.apply_ee_delta`,
the rule the tabletop env integrates actions with) and `gripper_command` (0 closed … 1 open). A policy of
the 'target' action space gets that previous target as `ee_target` and returns the delta onto its own.

`subgoal_status` (JSON) is published once per subgoal: "done" when the terminate probability exceeds
`terminate_threshold`, "timeout" after `timeout_s`; the node then stops acting until a different subgoal
arrives. A new subgoal forgets the policy's frame history and restarts the target from the measured pose.

Inference runs in a timer of its own callback group on a multi-threaded executor, so subscriptions keep
taking messages while the policy computes. Malformed messages and images or joint states older than
`max_image_age_s` / `max_state_age_s` (header stamp against the node clock, so `use_sim_time` applies)
are dropped with a throttled warning; the node waits, publishing nothing, until its inputs are fresh.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.time import Time
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64, String

from agent_stack.control.osc import apply_ee_delta
from agent_stack.vla import VLAPolicy
from ros_nodes import conversions, qos
from ros_nodes.node_main import StartupError, run_node
from sim.kinematics import JacoKinematics, proprioception
from sim.scene import ARM_JOINT_NAMES, FINGER_JOINT_NAMES, FINGER_OPEN, HOME_QPOS
from sim.state import WORKSPACE_HIGH, WORKSPACE_LOW
from sim.tabletop_env import TabletopConfig

CAMERA_PARAMETERS = {"image": "front_camera_topic", "wrist_image": "wrist_camera_topic"}
"""Policy observation key ("image" = front camera, as `agent-stack collect` records it) -> topic parameter."""
WARN_EVERY_S = 5.0


class VLANode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("vla", **node_options)
        env_defaults = TabletopConfig(render=False)
        self.declare_parameter("checkpoint", "")
        self.declare_parameter("device", "cpu")
        self.declare_parameter("front_camera_topic", "camera/front/image_raw")
        self.declare_parameter("wrist_camera_topic", "camera/wrist/image_raw")
        self.declare_parameter("joint_names", list(ARM_JOINT_NAMES))
        self.declare_parameter("frame_id", "base_link")
        numbers = {"rate_hz": 0.0,  # 0: the rate of the policy's training data (else 10 Hz)
                   "max_image_age_s": 0.5, "max_state_age_s": 0.5, "timeout_s": 60.0,
                   "terminate_threshold": 0.5, "max_translation": env_defaults.max_translation,
                   "max_rotation": env_defaults.max_rotation,
                   "workspace_low": [float(v) for v in WORKSPACE_LOW],
                   "workspace_high": [float(v) for v in WORKSPACE_HIGH]}
        for name, default in numbers.items():
            # Dynamic typing: `timeout_s:=8` (an integer to YAML) must not stop the node; checked below.
            self.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
        self._read_parameters()
        self.kinematics = JacoKinematics()  # the TCP pose; after __init__ only the policy timer uses it

        self.policy = self._load_policy()
        self.rate_hz = self.rate_hz or float(self.policy.control_hz or 10.0)
        self.cameras = {key: str(self.get_parameter(CAMERA_PARAMETERS[key]).value)
                        for key in self.policy.config.cameras}
        if not any(self.cameras.values()):
            raise StartupError(f"every camera topic of the policy {list(self.cameras)} is empty")
        # The fingers only feed the state's gripper opening; a policy without state needs the arm alone.
        fingers = list(FINGER_JOINT_NAMES) if self.policy.config.state_dim else []
        self.joint_names = self.arm_joints + fingers

        self._lock = threading.Lock()  # subscriptions write these, the policy timer reads them
        self.images: dict[str, tuple[np.ndarray, Time]] = {}
        self.joints: tuple[np.ndarray, Time] | None = None
        self.requested: str | None = None  # the latest subgoal received
        self.pending = False  # `requested` has not been started yet
        # Owned by the policy timer:
        self.subgoal: str | None = None
        self.started: Time | None = None  # None: idle (no subgoal, or its status was published)
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.steps = 0
        self.terminate = None

        self.target_pub = self.create_publisher(PoseStamped, "ee_target", qos.COMMANDS)
        self.gripper_pub = self.create_publisher(Float64, "gripper_command", qos.COMMANDS)
        self.status_pub = self.create_publisher(String, "subgoal_status", qos.COMMANDS)
        self.create_subscription(String, "subgoal", self.on_subgoal, qos.COMMANDS)
        self.create_subscription(JointState, "joint_states", self.on_joint_states, qos.SENSOR_DATA)
        for key, topic in self.cameras.items():
            if topic:
                self.create_subscription(Image, topic, lambda msg, key=key: self.on_image(key, msg),
                                         qos.SENSOR_DATA)
            else:
                self.get_logger().info(f"no {CAMERA_PARAMETERS[key]}: the policy sees {key!r} as missing")
        self.create_timer(1.0 / self.rate_hz, self.tick, callback_group=MutuallyExclusiveCallbackGroup())
        cameras = ", ".join(f"{key}<-{topic or '(none)'}" for key, topic in self.cameras.items())
        self.get_logger().info(f"VLA policy {self.checkpoint} on {self.policy.device} at {self.rate_hz:g} Hz "
                               f"({cameras}); waiting for a subgoal")

    def _read_parameters(self) -> None:
        self.checkpoint = str(self.get_parameter("checkpoint").value)
        self.frame_id = str(self.get_parameter("frame_id").value)
        self.arm_joints = [str(name) for name in self.get_parameter("joint_names").value]
        self.rate_hz = self._number("rate_hz", allow_zero=True)
        self.max_image_age = self._number("max_image_age_s")
        self.max_state_age = self._number("max_state_age_s")
        self.timeout = self._number("timeout_s")
        self.threshold = self._number("terminate_threshold", allow_zero=True)
        self.max_translation = self._number("max_translation")
        self.max_rotation = self._number("max_rotation")
        self.workspace_low = self._number("workspace_low", shape=(3,), allow_zero=True, allow_negative=True)
        self.workspace_high = self._number("workspace_high", shape=(3,), allow_zero=True, allow_negative=True)
        if self.threshold > 1.0:
            raise StartupError(f"parameter terminate_threshold must be in [0, 1], got {self.threshold}")
        if not np.all(self.workspace_low < self.workspace_high):
            raise StartupError(f"parameter workspace_low {self.workspace_low.tolist()} must be below "
                               f"workspace_high {self.workspace_high.tolist()} on every axis")
        if len(self.arm_joints) != len(ARM_JOINT_NAMES):
            raise StartupError(f"parameter joint_names must name the {len(ARM_JOINT_NAMES)} arm joints, "
                               f"got {self.arm_joints}")

    def _number(self, name: str, shape: tuple = (), allow_zero: bool = False, allow_negative: bool = False):
        """A finite float (or float array of `shape`) parameter, else a StartupError naming it."""
        value = self.get_parameter(name).value
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            array = None
        if array is None or array.shape != shape or not np.all(np.isfinite(array)) \
                or (not allow_negative and np.any(array < 0)) or (not allow_zero and np.any(array == 0)):
            what = "a finite number" if not shape else f"{shape[0]} finite numbers"
            bound = "" if allow_negative else (" >= 0" if allow_zero else " > 0")
            raise StartupError(f"parameter {name} must be {what}{bound}, got {value!r}")
        return float(array) if not shape else array

    def _load_policy(self) -> VLAPolicy:
        if not self.checkpoint:
            raise StartupError("parameter checkpoint is required: a VLA checkpoint or training run directory")
        device = str(self.get_parameter("device").value)
        try:
            policy = VLAPolicy.from_pretrained(self.checkpoint, device=device)
            # Warm up now, not on the first subgoal: the first reset loads the language encoder (seconds).
            size = policy.config.image_size
            policy.reset("warm up")
            observation = {key: np.zeros((size, size, 3), np.uint8) for key in policy.config.cameras}
            if policy.config.state_dim:
                home = np.concatenate([HOME_QPOS, [FINGER_OPEN] * len(FINGER_JOINT_NAMES)])
                observation["state"] = self._state(home)
            policy.act(observation)
        except Exception as error:  # whatever makes a checkpoint unusable: one clear line, exit 1
            raise StartupError(f"cannot load VLA checkpoint {self.checkpoint!r} on {device!r}: "
                               f"{type(error).__name__}: {error}") from error
        return policy

    # --- inputs (subscription callbacks: validate, store, never raise) -------------------------------------

    def on_subgoal(self, msg: String) -> None:
        text = " ".join(msg.data.split())
        if not text:
            self.get_logger().warning("dropped an empty subgoal", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            if text != self.requested:  # a repeat must not restart the subgoal (`ros2 topic pub` repeats)
                self.requested, self.pending = text, True

    def on_joint_states(self, msg: JointState) -> None:
        try:
            joints = conversions.joint_state_to_array(msg, self.joint_names)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped joint_states: {error}", throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            self.joints = (joints, self._stamp(msg))

    def on_image(self, key: str, msg: Image) -> None:
        try:
            image = conversions.msg_to_image(msg)
        except conversions.MessageRejected as error:
            self.get_logger().warning(f"dropped an image on {self.cameras[key]}: {error}",
                                      throttle_duration_sec=WARN_EVERY_S)
            return
        with self._lock:
            self.images[key] = (image, self._stamp(msg))

    def _stamp(self, msg) -> Time:
        return Time.from_msg(msg.header.stamp, clock_type=self.get_clock().clock_type)

    # --- the policy step (timer, own callback group) --------------------------------------------------------

    def tick(self) -> None:
        with self._lock:
            start, self.pending = (self.requested if self.pending else None), False
            joints = self.joints
            images = dict(self.images)
        if start is not None:
            self._start(start)
        if self.started is None:
            return
        now = self.get_clock().now()
        elapsed = (now - self.started).nanoseconds * 1e-9
        if elapsed > self.timeout:
            self._finish("timeout", elapsed)
            return
        observation = self._observation(now, joints, images)
        if observation is None:
            return
        arm = joints[0][:len(ARM_JOINT_NAMES)]
        if self.target is None:  # a new subgoal starts from where the hand is
            self.target = self.kinematics.forward(arm)
        observation["ee_target"] = np.concatenate(self.target)  # what a policy of absolute targets moves
        began = time.monotonic()
        try:
            out = self.policy.act(observation)
        except (ValueError, RuntimeError) as error:
            self.get_logger().error(f"policy step failed: {error}", throttle_duration_sec=WARN_EVERY_S)
            return
        if not np.all(np.isfinite(out.action)):
            self.get_logger().error("the policy produced a non-finite action; not publishing it",
                                    throttle_duration_sec=WARN_EVERY_S)
            return
        took, period = time.monotonic() - began, 1.0 / self.rate_hz
        if took > period:
            self.get_logger().warning(f"a policy step took {took:.2f} s, over the {period:.2f} s period",
                                      throttle_duration_sec=WARN_EVERY_S)
        self.target = apply_ee_delta(*self.target, out.action[:6], self.max_translation, self.max_rotation,
                                     self.workspace_low, self.workspace_high)
        self.steps += 1
        self.terminate = out.terminate
        self.target_pub.publish(conversions.pose_to_msg(*self.target, now.to_msg(), self.frame_id))
        self.gripper_pub.publish(Float64(data=float(np.clip(out.action[6], 0.0, 1.0))))
        if out.terminate > self.threshold:
            self._finish("done", elapsed)

    def _observation(self, now: Time, joints, images) -> dict | None:
        """The policy's inputs, or None (with a throttled warning) while one is missing or stale."""
        if joints is None:
            self._waiting("no joint_states yet")
            return None
        age = (now - joints[1]).nanoseconds * 1e-9
        if age > self.max_state_age:
            self._waiting(f"joint_states are {age:.2f} s old (max_state_age_s {self.max_state_age:g})")
            return None
        observation = {"state": self._state(joints[0])} if self.policy.config.state_dim else {}
        for key, topic in self.cameras.items():
            if not topic:
                continue  # no such camera on this robot: the policy masks it
            if key not in images:
                self._waiting(f"no image on {topic} yet")
                return None
            image, stamp = images[key]
            age = (now - stamp).nanoseconds * 1e-9
            if age > self.max_image_age:
                self._waiting(f"the image on {topic} is {age:.2f} s old "
                              f"(max_image_age_s {self.max_image_age:g})")
                return None
            observation[key] = image
        return observation

    def _waiting(self, reason: str) -> None:
        self.get_logger().warning(f"not acting: {reason}", throttle_duration_sec=WARN_EVERY_S)

    def _start(self, subgoal: str) -> None:
        self.policy.reset(subgoal)  # forgets the frame history
        self.subgoal, self.started, self.target, self.steps, self.terminate = (
            subgoal, self.get_clock().now(), None, 0, None)
        self.get_logger().info(f"subgoal: {subgoal!r}")

    def _finish(self, status: str, elapsed: float) -> None:
        terminate = None if self.terminate is None else round(float(self.terminate), 4)
        self.status_pub.publish(conversions.json_msg({
            "subgoal": self.subgoal, "status": status, "elapsed_s": round(elapsed, 3), "steps": self.steps,
            "terminate_probability": terminate}))
        self.get_logger().info(f"subgoal {status} after {elapsed:.1f} s, {self.steps} steps: "
                               f"{self.subgoal!r}")
        self.started = None  # idle until a different subgoal arrives

    def _state(self, joints: np.ndarray) -> np.ndarray:
        """The tabletop data's 14-D proprioception: TCP pos, quat w x y z, gripper opening, arm joints."""
        return proprioception(self.kinematics, joints[:len(ARM_JOINT_NAMES)], joints[len(ARM_JOINT_NAMES):])


def main(args: list[str] | None = None) -> None:
    run_node(VLANode, args, multithreaded=True)


if __name__ == "__main__":
    main()
