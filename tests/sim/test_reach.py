"""ReachEnv contract: seeding, observation layout, action checks, joint-target steps, reward, time limit,
solvability by a scripted controller, and the `tabletop:` factory."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from sim.reach import (GOAL_DIM, JOINT_VEL_SCALE, OBSERVATION_DIM, OBSERVATION_LAYOUT, PROPRIO_DIM,
                       REACH_HIGH, REACH_LOW, ReachConfig, ReachEnv, make_env, reach_observation,
                       scripted_reach_action)
from sim.scene import HOME_QPOS


@pytest.fixture(scope="module")
def env():
    env = ReachEnv(ReachConfig())
    yield env
    env.close()


@pytest.fixture(scope="module")
def short_env():
    """0.6 s episodes (30 steps): long enough for the scripted controller, cheap for the tests."""
    env = ReachEnv(ReachConfig(episode_seconds=0.6, seed=7))
    yield env
    env.close()


def layout(env: ReachEnv) -> dict[str, np.ndarray]:
    return {name: obj.pos for name, obj in env.tabletop.scene_state().objects.items()}


# --- config -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field, value", [
    ("control_hz", 0.0), ("control_hz", 1000.0), ("control_hz", float("nan")), ("episode_seconds", -1.0),
    ("episode_seconds", 0.001), ("max_joint_step", 0.0), ("tolerance", float("inf")),
    ("success_bonus", -1.0), ("init_noise", -0.1), ("seed", -1), ("seed", 1.5), ("seed", True)])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        ReachConfig(**{field: value})


def test_defaults(env):
    assert env.max_episode_steps == 100  # 2 s at 50 Hz
    assert env.observation_shape == (OBSERVATION_DIM,) == (PROPRIO_DIM + GOAL_DIM,)
    assert env.action_dim == 6
    assert env.tabletop.config.control_mode == "joint" and not env.tabletop.config.render
    assert env.tabletop.config.policy_hz == 50.0


# --- reset --------------------------------------------------------------------------------------------------

def test_reset_is_seeded(env):
    obs_a, info_a = env.reset(seed=3)
    layout_a, start_a = layout(env), env.joint_targets.copy()
    obs_b, info_b = env.reset(seed=3)
    np.testing.assert_array_equal(obs_a, obs_b)
    np.testing.assert_array_equal(info_a["target"], info_b["target"])
    np.testing.assert_array_equal(start_a, env.joint_targets)
    for name, pos in layout(env).items():
        np.testing.assert_array_equal(pos, layout_a[name])
    assert info_a["seed"] == 3
    assert np.all(info_a["target"] >= REACH_LOW) and np.all(info_a["target"] <= REACH_HIGH)

    _, info_c = env.reset(seed=4)
    assert not np.allclose(info_c["target"], info_a["target"])
    assert not np.allclose(env.joint_targets, start_a)


def test_reset_without_seed_follows_config_seed():
    envs = [ReachEnv(ReachConfig(episode_seconds=0.1, seed=11)) for _ in range(2)]
    try:
        with pytest.raises(RuntimeError, match="reset"):
            envs[0].step(np.zeros(6))
        drawn = [[env.reset()[1]["seed"] for _ in range(3)] for env in envs]
        assert drawn[0] == drawn[1] and len(set(drawn[0])) == 3
        np.testing.assert_array_equal(envs[0].target, envs[1].target)
        with pytest.raises(ValueError, match="seed"):
            envs[0].reset(seed=-3)
    finally:
        for env in envs:
            env.close()


def test_start_is_near_home_and_settled(env):
    for seed in range(3):
        env.reset(seed=seed)
        noise = env.config.init_noise
        assert np.all(np.abs(env.joint_targets - HOME_QPOS) <= noise + 1e-12)
        assert np.allclose(env.tabletop.joint_positions()[:6], env.joint_targets, atol=0.02)
        assert np.allclose(env.tabletop.data.ctrl[env.tabletop._arm_act], env.joint_targets)


# --- observation --------------------------------------------------------------------------------------------

def test_observation_layout(env):
    env.reset(seed=1)
    obs, *_ = env.step(np.full(6, 0.5))  # moving, so the velocity slice is not zero
    q, qd = env.tabletop.joint_positions()[:6], env.tabletop.joint_velocities()[:6]
    ee_pos, _ = env.tabletop.ee_pose()
    assert obs.dtype == np.float32 and obs.shape == env.observation_shape
    np.testing.assert_allclose(obs[OBSERVATION_LAYOUT["sin_joint_pos"]], np.sin(q), atol=1e-6)
    np.testing.assert_allclose(obs[OBSERVATION_LAYOUT["cos_joint_pos"]], np.cos(q), atol=1e-6)
    np.testing.assert_allclose(obs[OBSERVATION_LAYOUT["joint_vel"]], JOINT_VEL_SCALE * qd, atol=1e-5)
    assert np.abs(qd).max() > 0.1
    np.testing.assert_allclose(obs[OBSERVATION_LAYOUT["ee_pos"]], ee_pos, atol=1e-6)
    np.testing.assert_allclose(obs[OBSERVATION_LAYOUT["target"]], env.target, atol=1e-6)
    np.testing.assert_array_equal(obs, reach_observation(q, qd, ee_pos, env.target))
    # The ROS controller node computes ee_pos by forward kinematics: same vector.
    np.testing.assert_allclose(obs[18:21], env.kinematics.forward(q)[0], atol=1e-6)
    # Slices tile the vector; proprio first, then a goal that is the target alone.
    covered = sorted((s.start, s.stop) for s in OBSERVATION_LAYOUT.values())
    assert covered[0][0] == 0 and covered[-1][1] == OBSERVATION_DIM
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    assert OBSERVATION_LAYOUT["target"] == slice(PROPRIO_DIM, PROPRIO_DIM + GOAL_DIM)


def test_proprio_does_not_depend_on_the_target():
    q, qd, ee = HOME_QPOS, np.arange(6.0), np.array([0.4, 0.0, 0.2])
    a = reach_observation(q, qd, ee, [0.5, 0.1, 0.1])
    b = reach_observation(q, qd, ee, [0.6, -0.1, 0.3])
    np.testing.assert_array_equal(a[:PROPRIO_DIM], b[:PROPRIO_DIM])
    np.testing.assert_array_equal(b[PROPRIO_DIM:], np.float32([0.6, -0.1, 0.3]))
    # Wrapped and unwrapped readings of a continuous joint give the same observation.
    np.testing.assert_allclose(reach_observation(q - 2 * np.pi, qd, ee, [0.5, 0.1, 0.1]), a, atol=1e-6)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(5), np.zeros(6), np.zeros(3), np.zeros(3)), "joint_pos"),
    ((np.zeros(6), np.full(6, np.nan), np.zeros(3), np.zeros(3)), "joint_vel"),
    ((np.zeros(6), np.zeros(6), np.zeros(4), np.zeros(3)), "ee_pos"),
    ((np.zeros(6), np.zeros(6), np.zeros(3), [0.1, np.inf, 0.0]), "target")])
def test_reach_observation_rejects_bad_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        reach_observation(*args)


# --- actions ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", [np.zeros(5), np.zeros(7), np.zeros((1, 6)), [0, 0, 0, np.nan, 0, 0],
                                    [0, 0, 1.01, 0, 0, 0], [-2, 0, 0, 0, 0, 0], "forward", None])
def test_step_rejects_bad_actions(env, action):
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


def test_joint_targets_move_at_most_max_joint_step_and_respect_limits(env):
    env.reset(seed=2)
    rng = np.random.default_rng(0)
    step = env.config.max_joint_step
    for _ in range(10):
        before = env.joint_targets.copy()
        env.step(rng.uniform(-1, 1, 6).astype(np.float32))
        assert np.all(np.abs(env.joint_targets - before) <= step + 1e-12)
        np.testing.assert_allclose(env.tabletop.data.ctrl[env.tabletop._arm_act], env.joint_targets)
    # Joint 2 is limited: pushing it up for longer than the range allows stops at its upper limit.
    env.reset(seed=2)
    upper = env.joint_upper[1]
    n_steps = int(np.ceil((upper - env.joint_targets[1]) / step)) + 3
    assert n_steps < env.max_episode_steps
    for _ in range(n_steps):
        env.step([0, 1, 0, 0, 0, 0])
    assert env.joint_targets[1] == upper
    assert np.all(env.joint_targets >= env.joint_lower) and np.all(env.joint_targets <= env.joint_upper)
    assert env.tabletop.gripper_opening() > 0.9  # the gripper stays open


# --- reward and episodes ------------------------------------------------------------------------------------

def test_reward_is_minus_distance_plus_bonus_within_tolerance(env):
    env.reset(seed=5)
    _, reward, terminated, truncated, info = env.step(np.zeros(6))
    ee_pos = env.tabletop.ee_pose()[0]
    assert info["distance"] == pytest.approx(np.linalg.norm(ee_pos - env.target))
    assert not info["success"] and info["distance"] > env.config.tolerance
    assert reward == pytest.approx(-info["distance"])
    assert terminated is False and truncated is False
    # Put the target next to the hand: success, and the bonus is paid.
    env.target = ee_pos + np.array([0.0, 0.005, 0.0])
    _, reward, terminated, _, info = env.step(np.zeros(6))
    assert info["success"] and info["distance"] < env.config.tolerance
    assert reward == pytest.approx(env.config.success_bonus - info["distance"])
    assert terminated is False


def test_episode_truncates_at_max_episode_steps(short_env):
    assert short_env.max_episode_steps == 30
    short_env.reset(seed=0)
    for t in range(1, 31):
        *_, terminated, truncated, _ = short_env.step(np.zeros(6))
        assert truncated == (t == 30) and terminated is False
    with pytest.raises(RuntimeError, match="reset"):
        short_env.step(np.zeros(6))


def test_scripted_controller_solves_the_task_and_doing_nothing_does_not(short_env):
    scripted, idle = [], []
    for seed in range(8):
        for actor, results in ((scripted_reach_action, scripted), (lambda e: np.zeros(6), idle)):
            short_env.reset(seed=seed)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, info = short_env.step(actor(short_env))
                total += reward
                done = terminated or truncated
            results.append((info["success"], total))
    assert sum(s for s, _ in scripted) >= 7
    assert sum(s for s, _ in idle) <= 1
    assert all(a > b for (_, a), (_, b) in zip(scripted, idle))
    assert all(abs(a) <= 1 for a in scripted_reach_action(short_env))


# --- factory ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, options, match", [
    ("push", {}, "unknown tabletop environment"), ("", {}, "unknown tabletop environment"),
    ("reach", {"obs_type": "pixels"}, "state"), ("reach", {"action_repeat": 2}, "action_repeat"),
    ("reach", {"image_size": 64}, "image_size")])
def test_make_env_rejects_unknown_names_and_options(name, options, match):
    with pytest.raises(ValueError, match=match):
        make_env(name, **options)


def test_make_env_builds_the_reach_env():
    env = make_env("reach", seed=3, episode_seconds=0.5)
    try:
        assert isinstance(env, ReachEnv)
        assert env.config.seed == 3 and env.max_episode_steps == 25
    finally:
        env.close()
