"""vla_node without a graph: the node is built in-process on a random tiny checkpoint and its callbacks and
policy step are called directly (the timer never spins), so every case is deterministic and fast.

Covers the shared end-effector integration rule (`apply_ee_delta`, the same in TabletopEnv and the node),
the state vector against the sim's, dropping of malformed and stale input, subgoal status and restarts,
and the one-line startup errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from rclpy.duration import Duration
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from agent_stack.control.osc import apply_ee_delta
from agent_stack.normalization import DatasetStatistics, Statistics
from agent_stack.vla import VLAConfig, VLAModel, VLAPolicy
from agent_stack.vla.policy import VLAOutput
from ros_nodes import conversions
from ros_nodes.node_main import StartupError
from ros_nodes.vla_node import VLANode
from sim.scene import ARM_JOINT_NAMES, FINGER_JOINT_NAMES, FINGER_OPEN, HOME_QPOS, gripper_opening
from sim.state import WORKSPACE_HIGH, WORKSPACE_LOW
from sim.tabletop_env import TabletopConfig, TabletopEnv

JOINTS = [*ARM_JOINT_NAMES, *FINGER_JOINT_NAMES]
HOME = np.concatenate([HOME_QPOS, np.full(len(FINGER_JOINT_NAMES), FINGER_OPEN)])
INSTRUCTION = "pick up the red block"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random-weight VLA of the real checkpoint format (32 px, both cameras, 14-D state), 10 Hz."""
    import torch

    torch.manual_seed(0)
    config = VLAConfig(image_size=32, vision_depth=1, hidden_dim=32, depth=2, num_heads=2,
                       tokens_per_camera=2, state_dim=14, dropout=0.0)
    action = Statistics(mean=[0.0] * 7, std=[1.0] * 7, min=[-0.05] * 6 + [0.0], max=[0.05] * 6 + [1.0],
                        p01=[-0.04] * 6 + [0.0], p99=[0.04] * 6 + [1.0])
    state = Statistics(mean=[0.0] * 14, std=[1.0] * 14, min=[-1.0] * 14, max=[1.0] * 14, p01=[-1.0] * 14,
                       p99=[1.0] * 14)
    path = tmp_path_factory.mktemp("vla_checkpoint")
    VLAPolicy(VLAModel(config), DatasetStatistics("test", "train", "x", 1, 10, action, state),
              {"control_hz": 10.0}).save_pretrained(path)
    return path


@pytest.fixture
def make_node(ros_domain, checkpoint):
    """VLANode(**parameters) in a context of its own; publishers replaced by recorders (`node.sent`)."""
    context = rclpy.Context()
    rclpy.init(context=context, args=[])
    nodes = []

    def make(**parameters) -> VLANode:
        parameters.setdefault("checkpoint", str(checkpoint))
        # Inputs count as fresh for a minute unless a test sets the limits (None: the node's default): a
        # loaded CI machine can take over the default 0.5 s between stamping an input and the policy step.
        for name in ("max_image_age_s", "max_state_age_s"):
            if parameters.setdefault(name, 60.0) is None:
                del parameters[name]
        overrides = [Parameter(name, value=value) for name, value in parameters.items()]
        node = VLANode(context=context, parameter_overrides=overrides)
        nodes.append(node)
        node.sent = {"ee_target": [], "gripper_command": [], "subgoal_status": []}
        for name in node.sent:
            recorder = type("Recorder", (), {"publish": staticmethod(node.sent[name].append)})()
            setattr(node, {"ee_target": "target_pub", "gripper_command": "gripper_pub",
                           "subgoal_status": "status_pub"}[name], recorder)
        return node

    yield make
    for node in nodes:
        node.destroy_node()
    rclpy.shutdown(context=context)


def stamp(node: VLANode, age: float = 0.0):
    return (node.get_clock().now() - Duration(seconds=age)).to_msg()


def feed(node: VLANode, joints=HOME, image_age: float = 0.0, state_age: float = 0.0) -> None:
    """Fresh (or aged) inputs, as the subscriptions would deliver them."""
    node.on_joint_states(conversions.joint_state_msg(JOINTS, joints, stamp=stamp(node, state_age)))
    for key in ("image", "wrist_image"):
        image = np.full((48, 64, 3), 100, np.uint8)
        node.on_image(key, conversions.image_to_msg(image, stamp(node, image_age), "camera"))


def fixed_policy(node: VLANode, monkeypatch, action, terminate: float = 0.0) -> list[dict]:
    """Replace the policy's act by a fixed output; returns the observations it was called with."""
    seen = []

    def act(observation):
        seen.append(observation)
        return VLAOutput(action=np.asarray(action, np.float32), chunk=np.asarray([action], np.float32),
                         terminate=terminate)

    monkeypatch.setattr(node.policy, "act", act)
    return seen


def target_of(msg) -> tuple[np.ndarray, np.ndarray]:
    return conversions.pose_from_msg(msg, "base_link")


# --- the shared math -------------------------------------------------------------------------------------

def test_apply_ee_delta_is_how_the_env_integrates_actions():
    env = TabletopEnv(TabletopConfig(render=False))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    pos, quat = env.ee_target_pose()
    for step in range(12):
        # Large enough to hit the per-step clips; the steady +x drift runs into the workspace bound.
        delta = np.concatenate([rng.uniform(-0.08, 0.08, 3) + [0.06, 0, 0], rng.uniform(-0.4, 0.4, 3)])
        env.step(np.concatenate([delta, [1.0]]))
        pos, quat = apply_ee_delta(pos, quat, delta, env.config.max_translation, env.config.max_rotation,
                                   WORKSPACE_LOW, WORKSPACE_HIGH)
        env_pos, env_quat = env.ee_target_pose()
        np.testing.assert_allclose(env_pos, pos, atol=1e-12, err_msg=f"step {step}")
        np.testing.assert_allclose(env_quat, quat, atol=1e-12, err_msg=f"step {step}")
    assert pos[0] == WORKSPACE_HIGH[0]
    assert np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-12)


def test_state_vector_matches_the_sims(make_node):
    node = make_node()
    env = TabletopEnv(TabletopConfig(render=False))
    observation, _ = env.reset(seed=1)
    np.testing.assert_allclose(node._state(env.joint_positions()), observation["state"], atol=1e-5)
    env.set_gripper(0.2)
    env.advance(0.5)
    fingers = env.joint_positions()[len(ARM_JOINT_NAMES):]
    assert gripper_opening(fingers) == pytest.approx(env.gripper_opening())


# --- startup ---------------------------------------------------------------------------------------------

def test_missing_or_broken_checkpoint_and_bad_parameters_are_startup_errors(make_node, tmp_path):
    with pytest.raises(StartupError, match="checkpoint is required"):
        make_node(checkpoint="")
    (tmp_path / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(StartupError, match="cannot load VLA checkpoint"):
        make_node(checkpoint=str(tmp_path))
    with pytest.raises(StartupError, match="timeout_s"):
        make_node(timeout_s=-1.0)
    with pytest.raises(StartupError, match="terminate_threshold"):
        make_node(terminate_threshold=2.0)
    with pytest.raises(StartupError, match="workspace_low"):
        make_node(workspace_low=[0.5, 0.0, 0.0], workspace_high=[0.4, 1.0, 1.0])
    node = make_node(timeout_s=3, rate_hz=5)  # integers (as YAML types `timeout_s:=3`) are fine
    assert (node.timeout, node.rate_hz) == (3.0, 5.0)
    assert make_node().rate_hz == 10.0  # rate_hz 0: the checkpoint's control_hz


def test_the_executable_exits_with_one_error_line(ros_domain, tmp_path):
    result = subprocess.run([sys.executable, "-m", "ros_nodes.vla_node", "--ros-args", "-p",
                             f"checkpoint:={tmp_path / 'missing'}"],
                            check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "cannot start" in result.stderr and "missing" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


# --- input handling --------------------------------------------------------------------------------------

def test_malformed_messages_are_dropped_without_raising(make_node):
    node = make_node()
    node.on_subgoal(String(data=""))
    node.on_subgoal(String(data=" \n\t "))
    bad_images = [Image(height=4, width=4, encoding="rgb8", step=12, data=bytes(10)),  # short buffer
                  Image(height=4, width=4, encoding="bgr8", step=12, data=bytes(48)),  # other encoding
                  Image(height=0, width=0, encoding="rgb8")]
    for msg in bad_images:
        msg.header.stamp = stamp(node)
        node.on_image("image", msg)
    bad_joints = [JointState(name=list(ARM_JOINT_NAMES), position=[0.0] * 6),  # no finger joints
                  JointState(name=JOINTS, position=[float("nan")] * 9),
                  JointState(name=JOINTS[:-1] + [JOINTS[0]], position=[0.0] * 9),
                  JointState(name=JOINTS, position=[0.0] * 8)]
    for msg in bad_joints:
        msg.header.stamp = stamp(node)
        node.on_joint_states(msg)
    assert node.requested is None and node.images == {} and node.joints is None
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()  # a subgoal but no usable input: waits, publishes nothing
    assert node.subgoal == INSTRUCTION and not any(node.sent.values())


def test_joints_are_matched_by_name_not_order(make_node, monkeypatch):
    node = make_node()
    seen = fixed_policy(node, monkeypatch, [0.0] * 7)
    order = np.random.default_rng(0).permutation(len(JOINTS))
    shuffled = conversions.joint_state_msg([JOINTS[i] for i in order], HOME[order], stamp=stamp(node))
    shuffled.name.append("some_other_joint")
    shuffled.position.append(3.0)
    feed(node)
    node.on_joint_states(shuffled)
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()
    np.testing.assert_allclose(seen[0]["state"], node._state(HOME))


def test_stale_images_and_joint_states_hold_the_policy(make_node, monkeypatch):
    node = make_node(max_image_age_s=0.5, max_state_age_s=0.5)
    seen = fixed_policy(node, monkeypatch, [0.0] * 7)
    node.on_subgoal(String(data=INSTRUCTION))
    feed(node, image_age=2.0)
    node.tick()
    feed(node, state_age=2.0)
    node.tick()
    assert not seen and not node.sent["ee_target"]
    feed(node)
    node.tick()
    assert len(seen) == 1 and len(node.sent["ee_target"]) == 1
    assert set(seen[0]) == {"image", "wrist_image", "state", "ee_target"}
    assert seen[0]["image"].shape == (48, 64, 3)
    # The target the action will move (a new subgoal's starts at the measured hand pose), for target policies.
    assert seen[0]["ee_target"].shape == (7,) and np.isclose(np.linalg.norm(seen[0]["ee_target"][3:]), 1.0)


# --- acting ----------------------------------------------------------------------------------------------

def test_actions_move_the_previous_target_like_the_env(make_node, monkeypatch):
    node = make_node()
    action = [0.2, -0.01, 0.02, 0.0, 0.0, 0.5, 1.7]  # dx and dyaw beyond the per-step clips, gripper > 1
    fixed_policy(node, monkeypatch, action)
    feed(node)
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()
    moved = HOME.copy()
    moved[0] += 0.3  # the arm moves; the target goes on from the previous target, not from the arm
    feed(node, joints=moved)
    node.tick()
    expected = node.kinematics.forward(HOME_QPOS)
    for msg in node.sent["ee_target"]:
        expected = apply_ee_delta(*expected, action[:6], 0.05, 0.25, WORKSPACE_LOW, WORKSPACE_HIGH)
        pos, quat = target_of(msg)
        np.testing.assert_allclose(pos, expected[0], atol=1e-9)
        np.testing.assert_allclose(quat, expected[1], atol=1e-9)
        assert msg.header.frame_id == "base_link"
    assert [m.data for m in node.sent["gripper_command"]] == [1.0, 1.0]


def test_the_real_policy_steps_and_publishes_finite_commands(make_node):
    node = make_node(terminate_threshold=1.0)  # random weights: its terminate head must not end the subgoal
    feed(node)
    node.on_subgoal(String(data=INSTRUCTION))
    for _ in range(3):
        node.tick()
    assert len(node.sent["ee_target"]) == 3 and len(node.sent["gripper_command"]) == 3
    assert all(0.0 <= m.data <= 1.0 for m in node.sent["gripper_command"])
    start = node.kinematics.forward(HOME_QPOS)[0]
    assert np.abs(target_of(node.sent["ee_target"][-1])[0] - start).max() <= 3 * 0.05 + 1e-9


def test_a_missing_camera_is_masked(make_node, monkeypatch):
    node = make_node(wrist_camera_topic="")
    seen = fixed_policy(node, monkeypatch, [0.0] * 7)
    feed(node)
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()
    assert set(seen[0]) == {"image", "state", "ee_target"}
    with pytest.raises(StartupError, match="camera"):
        make_node(wrist_camera_topic="", front_camera_topic="")


def test_inference_runs_in_its_own_callback_group(make_node):
    node = make_node()
    (timer,) = node.timers
    assert timer.callback_group is not node.default_callback_group
    assert timer.timer_period_ns == 100_000_000  # 10 Hz, the checkpoint's control_hz


# --- subgoals --------------------------------------------------------------------------------------------

def test_done_once_then_idle_until_a_different_subgoal(make_node, monkeypatch):
    node = make_node(terminate_threshold=0.5)
    fixed_policy(node, monkeypatch, [0.01, 0, 0, 0, 0, 0, 0.0], terminate=0.9)
    feed(node)
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()
    (status,) = [json.loads(m.data) for m in node.sent["subgoal_status"]]
    assert status["status"] == "done" and status["subgoal"] == INSTRUCTION and status["steps"] == 1
    assert status["terminate_probability"] == pytest.approx(0.9)
    node.on_subgoal(String(data=f"  {INSTRUCTION} "))  # a repeat (e.g. `ros2 topic pub` at 1 Hz) is ignored
    feed(node)
    node.tick()
    assert len(node.sent["ee_target"]) == 1 and len(node.sent["subgoal_status"]) == 1

    moved = HOME.copy()
    moved[1] += 0.2
    feed(node, joints=moved)
    node.on_subgoal(String(data="put the red block in the bin"))
    node.tick()  # a new subgoal: history forgotten, the target restarts from the measured hand pose
    assert len(node.sent["ee_target"]) == 2 and len(node.sent["subgoal_status"]) == 2
    expected = apply_ee_delta(*node.kinematics.forward(moved[:6]), [0.01, 0, 0, 0, 0, 0], 0.05, 0.25,
                              WORKSPACE_LOW, WORKSPACE_HIGH)
    np.testing.assert_allclose(target_of(node.sent["ee_target"][-1])[0], expected[0], atol=1e-9)


def test_timeout_is_reported_once(make_node, monkeypatch):
    node = make_node(timeout_s=0.2)
    fixed_policy(node, monkeypatch, [0.0] * 7, terminate=0.1)
    feed(node)
    node.on_subgoal(String(data=INSTRUCTION))
    node.tick()
    time.sleep(0.3)
    feed(node)
    node.tick()
    node.tick()
    assert len(node.sent["ee_target"]) == 1
    (status,) = [json.loads(m.data) for m in node.sent["subgoal_status"]]
    assert status["status"] == "timeout" and status["steps"] == 1 and status["elapsed_s"] >= 0.2
    assert status["terminate_probability"] == pytest.approx(0.1)


# --- launch file and parameter file ----------------------------------------------------------------------

def test_config_file_holds_the_nodes_defaults(make_node):
    import yaml

    config = yaml.safe_load((ROOT / "config" / "vla.yaml").read_text())["/**"]["ros__parameters"]
    node = make_node(max_image_age_s=None, max_state_age_s=None)  # the declared defaults
    for name, value in config.items():
        assert node.has_parameter(name), f"config/vla.yaml sets {name}, which vla_node does not declare"
        default = node.get_parameter(name).value
        if isinstance(value, list):
            assert list(default) == value, name
        else:
            assert default == value, name


def test_launch_file_resolves_with_the_pip_only_launcher(ros_domain):
    launch = [sys.executable, "-m", "ros_nodes.launcher", "vla_sim.launch.xml"]
    result = subprocess.run([*launch, "checkpoint:=/some/run", "timeout_s:=8", "--print"], check=False,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    vla = result.stdout[result.stdout.index("[vla]"):]
    assert "vla_node --ros-args -r __node:=vla" in vla and "config/vla.yaml" in vla
    assert "-r subgoal:=task" in vla and "checkpoint: /some/run" in vla and "timeout_s: 8" in vla
    assert {"[sim]", "[controller]", "[vla]"} <= set(result.stdout.split())
    missing = subprocess.run([*launch, "--print"], check=False, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "checkpoint" in missing.stderr
