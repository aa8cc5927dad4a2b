"""controller_node: tracks `ee_target` at >= 50 Hz and publishes joint position commands.

`policy:=osc` (default): the damped-least-squares operational-space baseline (`agent_stack.control.osc`)
servoes straight to the target. `policy:=diffusion checkpoint:=DIR`: a Diffusion Policy trained with
`--goal ee_target` moves an intermediate end-effector target the way the demonstrations moved, one action
of its chunk per policy step (the checkpoint's rate), and the same DLS servo tracks that intermediate
target at `rate_hz`. The next chunk is denoised on a worker thread while the current one runs
(`agent_stack.control.diffusion.chunking`), so the control loop never waits for inference. The node falls
back to the baseline, with an error in the log, when the checkpoint is missing or unusable or the policy
outputs a non-finite action.

`policy:=tdmpc2` or `policy:=dreamerv3` with `checkpoint:=DIR`: a goal-conditioned agent trained online on
`tabletop:reach` (`agent-stack train control --algo tdmpc2 --env tabletop:reach`) replaces the IK: at
`agent_rate_hz` (>= 50, the rate it was trained at) it observes the joints, the forward-kinematics tool
position and the `ee_target` position (`sim.reach.reach_observation`) and moves the six joint position
commands by at most `max_joint_step`; the orientation of `ee_target` is not tracked in this mode. The
same fallback rules apply (missing or mismatched checkpoint, non-finite action). `tdmpc2_planning:=false`
acts with TD-MPC2's policy prior instead of MPPI, which fits the 20 ms budget on a CPU.

Holds position while `estop` is true or when no target arrived within `target_timeout_s`.
"""

from __future__ import annotations

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray

from agent_stack.control.osc import DifferentialIKController, apply_ee_delta
from ros_nodes import conversions, qos
from ros_nodes.node_main import StartupError, run_node
from sim.kinematics import JacoKinematics, jaco_tracking_config, proprioception
from sim.reach import OBSERVATION_DIM, ReachConfig, reach_observation
from sim.scene import ARM_JOINT_NAMES, FINGER_JOINT_NAMES
from sim.state import WORKSPACE_HIGH, WORKSPACE_LOW
from sim.tabletop_env import TabletopConfig

AGENTS = ("tdmpc2", "dreamerv3")
"""Online agents trained on tabletop:reach that can serve as the controller (`agent_stack.control.agent`)."""
POLICIES = ("osc", "diffusion", *AGENTS)


class ControllerNode(Node):
    def __init__(self, **node_options) -> None:
        super().__init__("controller", **node_options)
        self.declare_parameter("rate_hz", 100.0)
        self.declare_parameter("target_timeout_s", 1.0)
        self.declare_parameter("joint_names", list(ARM_JOINT_NAMES))
        self.declare_parameter("finger_joint_names", list(FINGER_JOINT_NAMES))
        self.declare_parameter("frame_id", "base_link")
        self.declare_parameter("policy", "osc")
        self.declare_parameter("checkpoint", "")
        self.declare_parameter("lookahead", 3)
        reach = ReachConfig()
        self.declare_parameter("agent_rate_hz", reach.control_hz)
        self.declare_parameter("max_joint_step", reach.max_joint_step)
        self.declare_parameter("tdmpc2_planning", True)
        kinematics = JacoKinematics()
        defaults = jaco_tracking_config(kinematics)
        self.declare_parameter("damping", defaults.damping)
        self.declare_parameter("max_joint_velocity", defaults.max_joint_velocity)

        rate_hz = float(self.get_parameter("rate_hz").value)
        if rate_hz < 50.0:
            raise StartupError(f"parameter rate_hz must be >= 50 for end-effector tracking, got {rate_hz}")
        self.period = 1.0 / rate_hz
        self.target_timeout = float(self.get_parameter("target_timeout_s").value)
        self.joint_names = list(self.get_parameter("joint_names").value)
        self.finger_joint_names = list(self.get_parameter("finger_joint_names").value)
        self.frame_id = self.get_parameter("frame_id").value
        self.kinematics = kinematics
        self.controller = DifferentialIKController(kinematics, jaco_tracking_config(
            kinematics, damping=float(self.get_parameter("damping").value),
            max_joint_velocity=float(self.get_parameter("max_joint_velocity").value)))

        self.q: np.ndarray | None = None
        self.dq: np.ndarray | None = None
        self.fingers: np.ndarray | None = None
        self.target: tuple[np.ndarray, np.ndarray] | None = None
        self.target_time = None
        self.hold: np.ndarray | None = None
        self.command: np.ndarray | None = None
        self.estopped = False
        self.policy = None
        self.servo_target: tuple[np.ndarray, np.ndarray] | None = None
        """Diffusion mode: the intermediate end-effector target the policy's actions move."""
        self.agent = None
        self.agent_command: np.ndarray | None = None
        """Agent mode: the joint position command the agent's actions move."""

        self.command_pub = self.create_publisher(Float64MultiArray, "arm_controller/commands", qos.COMMANDS)
        self.create_subscription(JointState, "joint_states", self.on_joint_states, qos.SENSOR_DATA)
        self.create_subscription(PoseStamped, "ee_target", self.on_ee_target, qos.COMMANDS)
        self.create_subscription(Bool, "estop", self.on_estop, qos.LATCHED)
        self.create_timer(self.period, self.tick)
        description = f"DLS end-effector controller at {rate_hz:.0f} Hz"
        policy = self.get_parameter("policy").value
        if policy not in POLICIES:
            raise StartupError(f"parameter policy must be one of {POLICIES}, got {policy!r}")
        if policy == "diffusion" and self._load_diffusion():
            description = f"diffusion policy at {self.policy_hz:.0f} Hz over the " + description
        elif policy in AGENTS and self._load_agent(policy):
            description = (f"{policy} joint-space agent at {self.agent_hz:.0f} Hz (falls back to the "
                           f"{description})")
        self.get_logger().info(f"{description} for {self.joint_names}")

    # --- diffusion policy ----------------------------------------------------------------------------------

    def _load_diffusion(self) -> bool:
        """Load the checkpoint and start the policy-rate timer; on any problem log it and stay on the
        baseline (a robot must not be left without a controller because a file is missing)."""
        from agent_stack.control.diffusion import DiffusionPolicy
        from agent_stack.control.diffusion.chunking import ChunkExecutor

        checkpoint = self.get_parameter("checkpoint").value
        try:
            if not checkpoint:
                raise FileNotFoundError("no checkpoint parameter given")
            policy = DiffusionPolicy.from_pretrained(checkpoint)
            if policy.config.goal != "ee_target":
                raise ValueError(f"its goal is {policy.config.goal!r}; the controller needs a policy trained "
                                 "with --goal ee_target")
            chunks = ChunkExecutor(policy.predict, policy.config.action_steps,
                                     int(self.get_parameter("lookahead").value))
        except (FileNotFoundError, ValueError, RuntimeError) as error:
            self.get_logger().error(f"diffusion controller unavailable ({error}); falling back to the DLS "
                                    "operational-space controller")
            return False
        self.policy, self.chunks = policy, chunks
        self.policy_hz = float(policy.control_hz or 10.0)
        env = TabletopConfig()
        self.max_translation, self.max_rotation = env.max_translation, env.max_rotation
        # A policy step only observes, snapshots and takes the next action (about a millisecond); the
        # denoising itself runs on the ChunkExecutor's worker thread, so the servo ticks stay on time.
        self.create_timer(1.0 / self.policy_hz, self.policy_step)
        return True

    def policy_step(self) -> None:
        if self.policy is None:
            return
        if self.q is None or self.fingers is None or self.estopped or not self._target_fresh():
            self.chunks.reset()
            self.servo_target = None
            return
        if self.servo_target is None:  # a new episode of tracking starts from where the hand is
            self.policy.reset()
            self.servo_target = (self.kinematics.forward(self.q)[0], self.target[1])
        state = proprioception(self.kinematics, self.q, self.fingers)
        try:
            self.policy.observe({"state": state})
            self.policy.set_target(self.target[0])
            action = self.chunks.step(self.policy.snapshot)
        except (ValueError, RuntimeError, FloatingPointError) as error:
            self._fall_back(f"the diffusion policy failed: {error}")
            return
        if action is None:
            return
        if not np.all(np.isfinite(action)):
            self._fall_back(f"the diffusion policy output a non-finite action {action.tolist()}")
            return
        translation = np.concatenate([action[:3], np.zeros(3)])  # the orientation follows ee_target
        self.servo_target = apply_ee_delta(self.servo_target[0], self.target[1], translation, self.max_translation,
                                           self.max_rotation, WORKSPACE_LOW, WORKSPACE_HIGH)

    def _fall_back(self, reason: str) -> None:
        self.get_logger().error(f"{reason}; falling back to the DLS operational-space controller")
        if self.policy is not None:
            self.chunks.close()
        self.policy, self.servo_target = None, None
        self.agent, self.agent_command = None, None

    # --- online agent (TD-MPC2, DreamerV3) trained on tabletop:reach -----------------------------------------

    def _load_agent(self, algo: str) -> bool:
        from agent_stack.control.agent import load_agent

        checkpoint = self.get_parameter("checkpoint").value
        self.agent_hz = float(self.get_parameter("agent_rate_hz").value)
        self.max_joint_step = float(self.get_parameter("max_joint_step").value)
        if self.agent_hz < 50.0 or not self.max_joint_step > 0:
            raise StartupError("parameters agent_rate_hz must be >= 50 and max_joint_step > 0, got "
                               f"{self.agent_hz}, {self.max_joint_step}")
        try:
            if not checkpoint:
                raise FileNotFoundError("no checkpoint parameter given")
            agent = load_agent(checkpoint)
            if agent.algo != algo:
                raise ValueError(f"{checkpoint} holds a {agent.algo} agent, not {algo}")
            if agent.observation_shape != (OBSERVATION_DIM,) or agent.action_dim != len(self.joint_names):
                raise ValueError(f"it was trained on observations {agent.observation_shape} and "
                                 f"{agent.action_dim} actions; tabletop:reach has ({OBSERVATION_DIM},) and "
                                 f"{len(self.joint_names)}")
        except (FileNotFoundError, ValueError, RuntimeError, KeyError) as error:
            self.get_logger().error(f"{algo} controller unavailable ({error}); falling back to the DLS "
                                    "operational-space controller")
            return False
        if algo == "tdmpc2" and not self.get_parameter("tdmpc2_planning").value:
            agent.config.mpc = False  # act with the policy prior: a millisecond instead of an MPPI solve
        self.agent = agent
        self.create_timer(1.0 / self.agent_hz, self.agent_step)
        return True

    def agent_step(self) -> None:
        if self.agent is None:
            return
        if self.q is None or self.dq is None or self.estopped or not self._target_fresh():
            self.agent_command = None
            return
        if self.agent_command is None:  # a new episode of tracking starts from the measured joints
            self.agent.reset()
            self.agent_command = self.q.copy()
        observation = reach_observation(self.q, self.dq, self.kinematics.forward(self.q)[0], self.target[0])
        try:
            action = self.agent.act(observation, eval=True)
        except (ValueError, RuntimeError, FloatingPointError) as error:
            self._fall_back(f"the {self.agent.algo} agent failed: {error}")
            return
        if action.shape != (len(self.joint_names),) or not np.all(np.isfinite(action)):
            self._fall_back(f"the {self.agent.algo} agent output an unusable action {action.tolist()}")
            return
        lower, upper = self.kinematics.joint_limits()
        self.agent_command = np.clip(self.agent_command + np.clip(action, -1.0, 1.0) * self.max_joint_step,
                                     lower, upper)

    # --- servo loop ----------------------------------------------------------------------------------------

    def on_joint_states(self, msg: JointState) -> None:
        try:
            self.q = conversions.joint_state_to_array(msg, self.joint_names)
            if self.agent is not None:
                self.dq = conversions.joint_velocities(msg, self.joint_names)
            if self.policy is not None:
                self.fingers = conversions.joint_state_to_array(msg, self.finger_joint_names)
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
            pos, quat = self.servo_target if self.policy is not None and self.servo_target else self.target
            if self.agent is not None and self.agent_command is not None:
                self.command = command = self.agent_command
            else:
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
