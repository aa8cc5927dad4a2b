"""controller_node with a Diffusion Policy or an online reach agent, built in-process (the timers never spin;
callbacks and steps are called directly): the chunk moves an intermediate target that the servo tracks,
inference never holds up a step, the agent moves the joint commands by bounded steps, and a missing or
wrong checkpoint or a non-finite action falls back to the DLS baseline."""

from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.parameter import Parameter

from agent_stack.control.diffusion import DiffusionConfig, DiffusionModel, DiffusionPolicy
from agent_stack.control.tdmpc2 import TDMPC2Agent, TDMPC2Config
from agent_stack.normalization import DatasetStatistics, Statistics
from ros_nodes import conversions
from ros_nodes.controller_node import ControllerNode
from ros_nodes.node_main import StartupError
from sim.kinematics import JacoKinematics
from sim.reach import OBSERVATION_DIM, ReachConfig
from sim.scene import ARM_JOINT_NAMES, FINGER_JOINT_NAMES, FINGER_OPEN, HOME_QPOS, TOP_DOWN_QUAT

JOINTS = [*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES]
HOME = np.concatenate([HOME_QPOS, np.full(len(FINGER_JOINT_NAMES), FINGER_OPEN)])


def save_checkpoint(path, goal: str) -> str:
    config = DiffusionConfig(cameras=(), state_dim=14, goal=goal, goal_dim=DiffusionConfig.goal_dim_of(goal),
                             down_dims=(16, 32), diffusion_step_embed_dim=16, pred_horizon=8, action_steps=4)
    action = Statistics(mean=[0.0] * 7, std=[1.0] * 7, min=[-0.05] * 6 + [0.0], max=[0.05] * 6 + [1.0],
                        p01=[-0.02] * 6 + [0.0], p99=[0.02] * 6 + [1.0])
    state = Statistics(mean=[0.0] * 14, std=[1.0] * 14, min=[-2.0] * 14, max=[2.0] * 14, p01=[-2.0] * 14,
                       p99=[2.0] * 14)
    DiffusionPolicy(DiffusionModel(config), DatasetStatistics("agent_stack_tabletop", "train", "x", 1, 10,
                                                              action, state),
                    {"control_hz": 10.0}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight ee_target Diffusion Policy of the real format (state only), 10 Hz."""
    return save_checkpoint(tmp_path_factory.mktemp("diffusion_controller"), "ee_target")


@pytest.fixture
def make_node(ros_domain):
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    nodes = []

    def make(**parameters) -> ControllerNode:
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        node = ControllerNode(context=context, parameter_overrides=overrides)
        nodes.append(node)
        node.sent = []
        node.command_pub = type("Recorder", (), {"publish": staticmethod(node.sent.append)})()
        return node

    yield make
    for node in nodes:
        if node.policy is not None:
            node.chunks.close()
        node.destroy_node()
    rclpy.shutdown(context=context)


def feed(node: ControllerNode, target_pos, q=HOME) -> None:
    node.on_joint_states(conversions.joint_state_msg(JOINTS, q, np.zeros(len(JOINTS)),
                                                     stamp=node.get_clock().now().to_msg()))
    node.on_ee_target(conversions.pose_to_msg(target_pos, TOP_DOWN_QUAT, node.get_clock().now().to_msg(),
                                              "base_link"))


def run_until_chunk(node: ControllerNode, target_pos, timeout: float = 10.0) -> None:
    """Policy steps on fresh inputs until the first chunk has arrived and its first action moved the servo
    target."""
    deadline = time.monotonic() + timeout
    while node.policy is not None and node.chunks.chunks_received == 0 and time.monotonic() < deadline:
        feed(node, target_pos)
        node.policy_step()
        time.sleep(0.005)
    node.policy_step()


def home_position() -> np.ndarray:
    return JacoKinematics().forward(HOME_QPOS)[0]


def test_chunk_actions_move_the_servo_target_and_the_servo_tracks_it(make_node, checkpoint, monkeypatch):
    node = make_node(policy="diffusion", checkpoint=checkpoint)
    assert node.policy is not None and node.policy_hz == 10.0
    chunk = np.zeros((8, 7), np.float32)
    chunk[:, 0] = 0.01  # 1 cm forward per step
    seen = []
    monkeypatch.setattr(node.chunks, "predict", lambda snapshot: seen.append(snapshot) or chunk)
    start = home_position()
    feed(node, start + [0.2, 0.0, 0.0])
    run_until_chunk(node, start + [0.2, 0.0, 0.0])
    for _ in range(2):
        node.policy_step()
    position, quaternion = node.servo_target
    executed = round((position[0] - start[0]) / 0.01)
    assert 1 <= executed <= 4 and np.allclose(position[1:], start[1:], atol=1e-9)
    assert np.allclose(quaternion, TOP_DOWN_QUAT)  # the orientation follows ee_target
    goal = seen[0].goal.numpy()[0]
    assert goal[0] == pytest.approx(1.0) and np.allclose(goal[1:], 0.0, atol=0.1)  # far ahead: full speed +x

    node.tick()
    first = np.array(node.sent[-1].data)
    for _ in range(30):
        node.tick()
    reached = JacoKinematics().forward(np.array(node.sent[-1].data))[0]
    assert not np.allclose(first, HOME_QPOS)
    assert np.linalg.norm(reached - position) < np.linalg.norm(start - position)  # toward the servo target,
    assert np.linalg.norm(reached - position) < 0.5 * np.linalg.norm(reached - (start + [0.2, 0, 0]))  # not ee_target


def test_slow_inference_never_holds_up_a_policy_step(make_node, checkpoint, monkeypatch):
    node = make_node(policy="diffusion", checkpoint=checkpoint)
    predict = node.chunks.predict

    def slow(snapshot):
        time.sleep(0.5)
        return predict(snapshot)

    monkeypatch.setattr(node.chunks, "predict", slow)
    target = home_position() + [0.0, 0.1, 0.0]
    longest = 0.0
    for _ in range(20):
        feed(node, target)
        started = time.perf_counter()
        node.policy_step()
        node.tick()
        longest = max(longest, time.perf_counter() - started)
    assert longest < 0.25, f"a step waited {longest:.3f} s for inference"
    assert len(node.sent) == 20  # every servo tick published a command
    run_until_chunk(node, target)
    assert node.chunks.chunks_received >= 1 and node.policy is not None
    assert np.all(np.isfinite(node.servo_target[0]))


def test_non_finite_action_falls_back_to_the_baseline(make_node, checkpoint, monkeypatch):
    node = make_node(policy="diffusion", checkpoint=checkpoint)
    monkeypatch.setattr(node.chunks, "predict", lambda snapshot: np.full((8, 7), np.nan, np.float32))
    target = home_position() + [0.1, 0.0, 0.0]
    run_until_chunk(node, target)
    assert node.policy is None and node.servo_target is None
    for _ in range(40):
        node.tick()
    reached = JacoKinematics().forward(np.array(node.sent[-1].data))[0]
    assert np.linalg.norm(reached - target) < 0.05  # the DLS baseline servoes straight to ee_target


@pytest.mark.parametrize("parameters", [{"checkpoint": "/nonexistent/checkpoint"}, {}])
def test_missing_checkpoint_falls_back_to_the_baseline(make_node, parameters):
    node = make_node(policy="diffusion", **parameters)
    assert node.policy is None
    feed(node, home_position() + [0.05, 0.0, 0.0])
    node.tick()
    assert len(node.sent) == 1


def test_a_language_checkpoint_is_refused(make_node, tmp_path):
    node = make_node(policy="diffusion", checkpoint=save_checkpoint(tmp_path, "language"))
    assert node.policy is None


def test_real_policy_produces_finite_chunks(make_node, checkpoint):
    node = make_node(policy="diffusion", checkpoint=checkpoint)
    run_until_chunk(node, home_position() + [0.0, 0.0, -0.1])
    assert node.policy is not None and node.chunks.chunks_received == 1
    assert np.all(np.isfinite(node.servo_target[0]))


def test_bad_policy_parameter_is_a_startup_error(make_node):
    with pytest.raises(StartupError, match="policy must be one of"):
        make_node(policy="pid")


# --- online agents trained on tabletop:reach -----------------------------------------------------------------

def save_agent(path, observation_dim: int = OBSERVATION_DIM) -> str:
    config = TDMPC2Config(enc_dim=32, mlp_dim=32, latent_dim=16, num_q=2, num_bins=21, mpc=False)
    TDMPC2Agent(config, (observation_dim,), len(ARM_JOINT_NAMES)).save(path)
    return str(path)


@pytest.fixture(scope="module")
def agent_checkpoint(tmp_path_factory):
    """A random-weight TD-MPC2 agent with the reach task's observation and action sizes."""
    return save_agent(tmp_path_factory.mktemp("reach_agent"))


def test_agent_moves_joint_commands_by_bounded_steps(make_node, agent_checkpoint):
    node = make_node(policy="tdmpc2", checkpoint=agent_checkpoint)
    assert node.agent is not None
    step = ReachConfig().max_joint_step
    q = HOME.copy()
    for _ in range(5):
        feed(node, home_position() + [0.1, 0.0, 0.0], q)
        node.agent_step()
        node.tick()
        command = np.array(node.sent[-1].data)
        assert np.all(np.abs(command - q[:6]) <= step + 1e-9) and np.any(command != q[:6])
        q[:6] = command   # an ideal servo
    assert node.agent_command is not None and np.array_equal(node.agent_command, q[:6])


def test_tdmpc2_planning_can_be_switched_off(make_node, tmp_path):
    config = TDMPC2Config(enc_dim=32, mlp_dim=32, latent_dim=16, num_q=2, num_bins=21)   # plans by default
    TDMPC2Agent(config, (OBSERVATION_DIM,), len(ARM_JOINT_NAMES)).save(tmp_path / "planner")
    assert make_node(policy="tdmpc2", checkpoint=str(tmp_path / "planner")).agent.config.mpc
    node = make_node(policy="tdmpc2", checkpoint=str(tmp_path / "planner"), tdmpc2_planning=False)
    assert not node.agent.config.mpc


def test_agent_non_finite_action_falls_back_to_the_baseline(make_node, agent_checkpoint, monkeypatch):
    node = make_node(policy="tdmpc2", checkpoint=agent_checkpoint)
    monkeypatch.setattr(node.agent, "act", lambda observation, eval: np.full(6, np.nan, np.float32))
    target = home_position() + [0.1, 0.0, 0.0]
    feed(node, target)
    node.agent_step()
    assert node.agent is None
    for _ in range(40):
        node.tick()
    reached = JacoKinematics().forward(np.array(node.sent[-1].data))[0]
    assert np.linalg.norm(reached - target) < 0.05


@pytest.mark.parametrize("case", ["missing", "wrong_algo", "wrong_size"])
def test_unusable_agent_checkpoint_falls_back_to_the_baseline(make_node, agent_checkpoint, tmp_path, case):
    if case == "missing":
        node = make_node(policy="tdmpc2", checkpoint=str(tmp_path / "none"))
    elif case == "wrong_algo":
        node = make_node(policy="dreamerv3", checkpoint=agent_checkpoint)
    else:
        node = make_node(policy="tdmpc2", checkpoint=save_agent(tmp_path / "small", observation_dim=10))
    assert node.agent is None
    feed(node, home_position() + [0.05, 0.0, 0.0])
    node.tick()
    assert len(node.sent) == 1


def test_agent_needs_joint_velocities(make_node, agent_checkpoint):
    node = make_node(policy="tdmpc2", checkpoint=agent_checkpoint)
    node.on_joint_states(conversions.joint_state_msg(JOINTS, HOME))   # positions only
    node.on_ee_target(conversions.pose_to_msg(home_position(), TOP_DOWN_QUAT, node.get_clock().now().to_msg(),
                                              "base_link"))
    node.agent_step()
    assert node.agent_command is None and node.agent is not None   # dropped, still running
