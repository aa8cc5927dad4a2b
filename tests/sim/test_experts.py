"""Scripted experts: command shapes, the ee_delta helper, one closed-loop episode per family, re-grasping.

Written against the public contract of `sim.experts` (make_expert, Expert.reset / act / done,
ExpertCommand, command_to_ee_delta, rollout_expert). Closed-loop episodes run the real MuJoCo env
without rendering (about a second each). `-m slow` runs many seeds per family and asserts >= 95 %.
"""

from __future__ import annotations

import numpy as np
import pytest

from sim.experts import ExpertCommand, command_to_ee_delta, make_expert, rollout_expert
from sim.state import BLOCK_HALF_SIZE
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import FAMILIES, make_task, sample_task

SMOKE_SEED = 0
SLOW_EPISODES = 20


@pytest.fixture(scope="module")
def env():
    env = TabletopEnv(TabletopConfig(render=False))
    yield env
    env.close()


def task_for(family: str, seed: int):
    return sample_task(family, np.random.default_rng(seed))


def tool_z_axis(quat: np.ndarray) -> np.ndarray:
    w, x, y, z = quat / np.linalg.norm(quat)
    return np.array([2 * (x * z + w * y), 2 * (y * z - w * x), 1 - 2 * (x * x + y * y)])


# --- commands -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_first_command_is_a_valid_top_down_pose(env, family):
    task = task_for(family, 1)
    env.reset(seed=1, task=task)
    expert = make_expert(task)
    command = expert.act(env.scene_state())
    assert isinstance(command, ExpertCommand)
    assert command.target_pos.shape == (3,) and np.all(np.isfinite(command.target_pos))
    assert command.target_quat.shape == (4,)
    assert np.linalg.norm(command.target_quat) == pytest.approx(1.0, abs=1e-6)
    assert tool_z_axis(command.target_quat)[2] < -0.99  # fingers point down
    assert 0.0 <= command.gripper <= 1.0
    assert not expert.done
    expert.reset()
    assert not expert.done


def test_command_to_ee_delta_clips_each_axis_and_passes_the_gripper(env):
    env.reset(seed=0)
    state = env.scene_state()
    far = ExpertCommand(state.ee_pos + [0.3, -0.01, -0.2], state.ee_quat.copy(), 0.3)
    action = command_to_ee_delta(state, far, 0.05, 0.25)
    assert action.shape == (7,)
    np.testing.assert_allclose(action[:3], [0.05, -0.01, -0.05], atol=1e-9)
    np.testing.assert_allclose(action[3:6], 0.0, atol=1e-6)
    assert action[6] == pytest.approx(0.3)
    turn = np.array([np.cos(0.5), 0.0, 0.0, np.sin(0.5)])  # 1 rad about world z, applied on the left
    w1, v1 = turn[0], turn[1:]
    w2, v2 = state.ee_quat[0], state.ee_quat[1:]
    turned = np.concatenate([[w1 * w2 - v1 @ v2], w1 * v2 + w2 * v1 + np.cross(v1, v2)])
    action = command_to_ee_delta(state, ExpertCommand(state.ee_pos.copy(), turned, 1.0), 0.05, 0.25)
    np.testing.assert_allclose(action[:6], [0, 0, 0, 0, 0, 0.25], atol=1e-6)


# --- closed loop ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_expert_solves_one_seeded_episode(env, family):
    result = rollout_expert(env, task_for(family, SMOKE_SEED), SMOKE_SEED, 300)
    assert result["success"], result
    assert 0 < result["steps"] <= 300
    assert result["sim_seconds"] == pytest.approx(result["steps"] / 10, abs=0.05)  # policy at 10 Hz
    assert env.success()


def drive(env, expert, steps: int, *, force_open: bool = False) -> bool:
    """The ROS path: absolute TCP targets tracked by the env's controller, 10 Hz, until the task holds."""
    for _ in range(steps):
        command = expert.act(env.scene_state())
        env.set_ee_target(command.target_pos, command.target_quat)
        env.set_gripper(1.0 if force_open else command.gripper)
        env.advance(0.1)
        if env.success():
            return True
    return False


def test_expert_works_through_absolute_targets_and_regrasps_a_dropped_block(env):
    task = make_task("place_on_pad", color="red", target="blue")
    env.reset(seed=4, task=task)
    expert = make_expert(task)
    for _ in range(150):  # until the block is carried well above the table
        drive(env, expert, 1)
        state = env.scene_state()
        if "red_block" in state.grasped and state.block("red").pos[2] > 0.08:
            break
    else:
        pytest.fail("the expert never lifted the red block")
    drive(env, expert, 6, force_open=True)  # a slip: the hand opens in mid-air
    state = env.scene_state()
    assert "red_block" not in state.grasped and state.block("red").pos[2] < BLOCK_HALF_SIZE + 0.03
    assert drive(env, expert, 250), "the expert did not pick the dropped block up again"
    for _ in range(30):  # done follows the predicate (an expert may first back off the block)
        drive(env, expert, 1)
        if expert.done:
            break
    assert expert.done and env.success()


def test_rollout_refuses_joint_mode():
    with TabletopEnv(TabletopConfig(render=False, control_mode="joint")) as joint_env:
        with pytest.raises(ValueError, match="ee_delta"):
            rollout_expert(joint_env, make_task("pick_up", color="red"), 0, 10)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_expert_success_rate_at_least_95_percent(env, family):
    results = [rollout_expert(env, task_for(family, seed), seed, 300)["success"]
               for seed in range(SLOW_EPISODES)]
    assert np.mean(results) >= 0.95, f"{family}: {np.mean(results):.0%}, failed seeds " \
                                     f"{[s for s, ok in enumerate(results) if not ok]}"
