"""TabletopEnv contract: observations, cameras, end-effector control, a scripted pick, errors, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from agent_stack.control.osc import quat_multiply
from sim.scene import FINGER_OPEN, HOME_TCP_POS, TOP_DOWN_QUAT
from sim.state import SceneState
from sim.tabletop_env import STATE_KEYS, TabletopConfig, TabletopEnv


class LiftRedTask:
    """Minimal task: squares the red block to yaw 0 in place; success when it is grasped above 8 cm."""

    instruction = "pick up the red block"
    family = "pick"

    def arrange(self, layout, rng):
        layout = dict(layout)
        layout["red_block"] = layout["red_block"] * np.array([1.0, 1.0, 1.0, 0.0])
        return layout

    def success(self, state: SceneState) -> bool:
        return "red_block" in state.grasped and state.block("red").pos[2] > 0.08


@pytest.fixture(scope="module")
def env():
    env = TabletopEnv(TabletopConfig(render=False))
    yield env
    env.close()


def top_down_grasp_quat(block_quat):
    yaw = 2 * np.arctan2(block_quat[3], block_quat[0])
    yaw = (yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4  # a cube looks the same every 90 degrees
    return quat_multiply(np.array([np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]), TOP_DOWN_QUAT)


def scripted_pick(env, color):
    """Above the block, descend to its centre, close, lift 15 cm; returns the block's rise (m)."""
    block = env.scene_state().block(color)
    quat, start = top_down_grasp_quat(block.quat), block.pos.copy()
    for offset, gripper, seconds in [(0.12, 1.0, 1.5), (0.0, 1.0, 1.5), (0.0, 0.0, 0.8), (0.15, 0.0, 1.5)]:
        env.set_gripper(gripper)
        env.set_ee_target(start + [0, 0, offset], quat)
        env.advance(seconds)
    return env.scene_state().block(color).pos[2] - start[2]


def test_reset_obs_home_pose_and_settled_blocks(env):
    obs, info = env.reset(seed=0)
    assert info == {"instruction": "", "family": "", "success": False}
    shapes = {k: v.shape for k, v in obs.items()}
    assert shapes == {"joint_pos": (6,), "joint_vel": (6,), "gripper": (1,), "ee_pos": (3,), "ee_quat": (4,),
                      "state": (14,), "ee_target": (7,)}
    # The target starts on the hand; an ee_delta action moves it.
    assert np.allclose(obs["ee_target"], np.concatenate([obs["ee_pos"], obs["ee_quat"]]), atol=1e-6)
    assert STATE_KEYS == ("ee_pos", "ee_quat", "gripper", "joint_pos")
    assert np.allclose(obs["state"][:3], obs["ee_pos"], atol=1e-6)
    assert np.linalg.norm(obs["ee_pos"] - HOME_TCP_POS) < 0.01
    assert obs["gripper"][0] > 0.95
    assert np.allclose(env.joint_positions()[6:], FINGER_OPEN, atol=0.05)
    assert np.max(np.abs(env.data.qvel)) < 0.05  # blocks settled, arm still
    state = env.scene_state()
    assert all(abs(b.pos[2] - 0.025) < 0.002 for b in state.blocks)
    assert state.grasped == frozenset() and not env.success()
    assert len(env.joint_names) == 9 and env.joint_velocities().shape == (9,)


def test_cameras_render_nontrivial_images():
    with TabletopEnv(TabletopConfig(image_size=(64, 96))) as env:
        obs, _ = env.reset(seed=1)
        for camera in ("front", "wrist"):
            image = obs[camera]
            assert image.shape == (64, 96, 3) and image.dtype == np.uint8
            assert image.std() > 10  # not a blank frame
        assert not np.array_equal(obs["front"], obs["wrist"])
        assert env.render("front", (32, 40)).shape == (32, 40, 3)
        k = env.camera_intrinsics("front", (64, 96))
        assert k[0, 2] == 48 and k[1, 2] == 32 and k[0, 0] == k[1, 1] > 0
        with pytest.raises(ValueError, match="camera"):
            env.render("side")


def test_recoloured_draws_blocks_and_pads_in_the_renamed_colours_then_restores_them():
    def red(image):
        return (image[..., 0] > 140) & (image[..., 1] < 90) & (image[..., 2] < 90)

    def blue(image):
        return (image[..., 2] > 140) & (image[..., 0] < 90)

    def pale_red(image):  # the pads are the blocks' colours faded halfway to white
        reddish = image[..., 0].astype(int) - image[..., 2] > 50
        return (image[..., 0] > 200) & reddish & (image[..., 1] < 190)

    def pale_blue(image):
        return (image[..., 2] > 200) & (image[..., 2].astype(int) - image[..., 0] > 50)

    with TabletopEnv(TabletopConfig(image_size=(128, 128))) as env:
        obs, _ = env.reset(seed=1)
        state = env.scene_state()
        with env.recoloured({"red": "blue", "blue": "red"}):
            swapped = env.render("front")
        front = obs["front"]
        for was, now in ((red, blue), (blue, red), (pale_red, pale_blue), (pale_blue, pale_red)):
            assert was(front).sum() > 20
            assert now(swapped)[was(front)].mean() > 0.8  # edge pixels blend with the table
        np.testing.assert_array_equal(env.render("front"), front)  # drawn as before once the block ends
        for name, item in state.objects.items():  # drawing only: the physics did not move
            np.testing.assert_array_equal(env.scene_state().objects[name].pos, item.pos)
        with pytest.raises(ValueError, match="unknown colour"):
            with env.recoloured({"red": "purple", "purple": "red"}):
                pass
        with pytest.raises(ValueError, match="one-to-one"):
            with env.recoloured({"red": "blue"}):
                pass


def test_positive_x_delta_moves_tcp_forward(env):
    obs, _ = env.reset(seed=2)
    start = obs["ee_pos"].copy()
    for _ in range(10):
        obs, *_ = env.step([0.01, 0, 0, 0, 0, 0, 1])
    obs, *_ = env.step([0, 0, 0, 0, 0, 0, 1])  # let it catch up
    moved = obs["ee_pos"] - start
    assert 0.08 < moved[0] < 0.12
    assert np.all(np.abs(moved[1:]) < 0.01)


def test_yaw_delta_turns_tool_about_world_z(env):
    from agent_stack.control.osc import orientation_error

    obs, _ = env.reset(seed=2)
    start = obs["ee_quat"].copy()
    for _ in range(5):
        obs, *_ = env.step([0, 0, 0, 0, 0, 0.1, 1])
    for _ in range(4):  # the DLS loop closes the last of the error exponentially (gain 8 /s)
        obs, *_ = env.step([0, 0, 0, 0, 0, 0, 1])
    turn = orientation_error(start, obs["ee_quat"])  # world-frame rotation vector start -> now
    assert np.allclose(turn, [0, 0, 0.5], atol=0.03)


def test_joint_mode_tracks_targets():
    with TabletopEnv(TabletopConfig(control_mode="joint", render=False)) as env:
        obs, _ = env.reset(seed=0)
        target = obs["joint_pos"] + np.array([0.2, -0.1, 0.1, 0.2, -0.2, 0.3])
        for _ in range(5):
            obs, *_ = env.step([*target, 0.5])
        assert np.max(np.abs(obs["joint_pos"] - target)) < 0.02


@pytest.mark.parametrize("seed, color", [(0, "red"), (1, "green"), (3, "blue"), (4, "yellow")])
def test_scripted_top_down_pick_lifts_block(env, seed, color):
    env.reset(seed=seed)
    assert scripted_pick(env, color) > 0.05
    assert f"{color}_block" in env.scene_state().grasped
    assert env.scene_state().gripper_opening > 0.2  # closed on the block, not on itself


def test_task_success_reward_and_truncation():
    with TabletopEnv(TabletopConfig(render=False, max_episode_steps=2)) as env:
        _, info = env.reset(seed=5, task=LiftRedTask())
        assert info["instruction"] == "pick up the red block" and info["family"] == "pick"
        assert abs(env.scene_state().block("red").quat[3]) < 0.01  # yaw 0, as arranged
        _, reward, terminated, truncated, _ = env.step(np.zeros(7) + [0, 0, 0, 0, 0, 0, 1])
        assert (reward, terminated, truncated) == (0.0, False, False)
        _, reward, terminated, truncated, _ = env.step([0, 0, 0, 0, 0, 0, 1])
        assert truncated and not terminated
        scripted_pick(env, "red")
        assert env.success()
        _, reward, terminated, _, info = env.step([0, 0, 0, 0, 0, 0, 0])
        assert reward == 1.0 and terminated and info["success"]


@pytest.mark.parametrize("action, message", [(np.zeros(6), "shape"), ([0, 0, np.nan, 0, 0, 0, 1], "NaN"),
                                             ([0, 0, 0, np.inf, 0, 0, 1], "NaN or inf"), ("abc", "action")])
def test_bad_actions_raise(env, action, message):
    env.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        env.step(action)


def test_bad_commands_and_config_raise(env):
    with pytest.raises(ValueError, match="gripper"):
        env.set_gripper(1.5)
    with pytest.raises(ValueError, match="joint targets"):
        env.set_joint_targets([0.0] * 5)
    with pytest.raises(ValueError, match="quaternion"):
        env.set_ee_target([0.4, 0, 0.2], [0, 0, 0, 0])
    with pytest.raises(ValueError, match="seconds"):
        env.advance(-1.0)
    with pytest.raises(ValueError, match="control_mode"):
        TabletopConfig(control_mode="torque")
    with pytest.raises(ValueError, match="control_hz"):
        TabletopConfig(control_hz=20.0)
    with pytest.raises(ValueError, match="cameras"):
        TabletopConfig(cameras=("side",))


def test_advance_carries_sub_step_remainder(env):
    env.reset(seed=0)
    start = env.sim_time
    for _ in range(4):
        env.advance(0.003)
    assert env.sim_time - start == pytest.approx(0.012)
    env.advance(0.0)


def test_same_seed_and_actions_give_same_state():
    actions = np.random.default_rng(0).uniform(-0.02, 0.02, size=(8, 7))
    actions[:, 6] = np.linspace(1, 0, 8)
    finals = []
    for _ in range(2):
        with TabletopEnv(TabletopConfig(render=False)) as env:
            env.reset(seed=11)
            for action in actions:
                env.step(action)
            finals.append(env.data.qpos.copy())
    assert np.array_equal(finals[0], finals[1])


def test_advance_chunking_does_not_change_the_trajectory():
    finals = []
    for chunks in (1, 7):
        with TabletopEnv(TabletopConfig(render=False)) as env:
            env.reset(seed=3)
            env.set_ee_target(env.ee_pose()[0] + [0.05, 0.03, -0.05], env.ee_pose()[1])
            for _ in range(chunks):
                env.advance(0.42 / chunks)
            finals.append(env.data.qpos.copy())
    assert np.array_equal(finals[0], finals[1])


def test_cli_writes_png(tmp_path):
    from sim.cli import main

    out = tmp_path / "scene.png"
    assert main(["view", "--seed", "0", "--camera", "front", "--out", str(out), "--size", "48", "64"]) == 0
    import imageio.v3 as iio

    assert iio.imread(out).shape == (48, 64, 3)
    assert main(["view", "--out", str(tmp_path / "scene.txt")]) == 2
