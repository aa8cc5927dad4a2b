"""Tests of the dm_control suite adapter on cartpole-swingup (fast: small images, short episodes)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dm_control")

from dm_control import suite  # noqa: E402

from sim.dmc import DMCConfig, DMCEnv, parse_task_name, rescale_action  # noqa: E402


@pytest.fixture
def make_env():
    """Build DMCEnv instances and close them all after the test."""
    envs: list[DMCEnv] = []

    def _make(**kwargs) -> DMCEnv:
        env = DMCEnv(DMCConfig(**kwargs))
        envs.append(env)
        return env

    yield _make
    for env in envs:
        env.close()


def test_state_shape_dtype_and_spaces(make_env):
    env = make_env(name="cartpole-swingup")
    obs, info = env.reset()
    # cartpole: position (3) + velocity (2).
    assert env.observation_shape == (5,) and obs.shape == (5,) and obs.dtype == np.float32
    assert env.action_dim == 1
    assert env.max_episode_steps == 500  # 10 s / 0.01 s control step / action repeat 2
    obs, reward, terminated, truncated, info = env.step(np.zeros(1))
    assert obs.shape == (5,) and obs.dtype == np.float32 and isinstance(reward, float)
    assert not terminated and not truncated


def test_action_bounds(make_env):
    env = make_env(name="walker-walk")
    assert env.action_dim == 6
    assert env.action_low.dtype == np.float32 and np.array_equal(env.action_low, -np.ones(6))
    assert np.array_equal(env.action_high, np.ones(6))
    assert env.spec_low.shape == env.spec_high.shape == (6,) and np.all(env.spec_low < env.spec_high)
    with pytest.raises(ValueError, match="read-only"):
        env.spec_low[0] = 5.0


def test_pixels_larger_than_the_default_offscreen_buffer(make_env):
    raw = suite.load("cartpole", "swingup")
    default_width = int(raw.physics.model.vis.global_.offwidth)
    raw.close()
    big = make_env(name="cartpole-swingup", obs_type="pixels", image_size=default_width + 16)
    assert big.reset()[0].shape == (default_width + 16, default_width + 16, 3)


def test_reset_seed_determinism(make_env):
    env = make_env(name="cartpole-swingup", seed=3)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(5, 1))

    def rollout(seed):
        first, _ = env.reset(seed=seed)
        return [first] + [env.step(a)[0] for a in actions]

    a, b, c = rollout(7), rollout(7), rollout(8)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], c[0])
    # Two environments built from the same config seed start identically.
    other = make_env(name="cartpole-swingup", seed=3)
    fresh = make_env(name="cartpole-swingup", seed=3)
    assert np.array_equal(other.reset()[0], fresh.reset()[0])


def test_pixels_shape_dtype_content(make_env):
    env = make_env(name="cartpole-swingup", obs_type="pixels", image_size=32)
    obs, _ = env.reset()
    assert env.observation_shape == (32, 32, 3)
    assert obs.shape == (32, 32, 3) and obs.dtype == np.uint8
    assert obs.std() > 5.0 and len(np.unique(obs.reshape(-1, 3), axis=0)) > 10  # a real scene, not a blank
    obs2 = env.step(np.ones(1))[0]
    assert obs2.shape == (32, 32, 3) and not np.array_equal(obs, obs2)


def test_both_returns_state_and_pixels(make_env):
    env = make_env(name="cartpole-swingup", obs_type="both", image_size=24)
    obs, _ = env.reset()
    assert env.observation_shape == {"state": (5,), "pixels": (24, 24, 3)}
    assert set(obs) == {"state", "pixels"}
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (5,)
    assert obs["pixels"].dtype == np.uint8 and obs["pixels"].shape == (24, 24, 3)


def test_action_repeat_sums_raw_rewards(make_env):
    env = make_env(name="cartpole-swingup", action_repeat=3, seed=5)
    raw = suite.load("cartpole", "swingup", task_kwargs={"random": 5})
    obs, _ = env.reset()
    raw_step = raw.reset()
    assert np.allclose(obs, np.concatenate([raw_step.observation[k].ravel() for k in raw_step.observation]))
    for action in (0.5, -1.0, 1.0, -0.25):
        _, reward, *_ = env.step(np.array([action]))
        # Cartpole's action spec is [-1, 1], so the rescaled action equals the input.
        expected = sum(raw.step(np.array([action])).reward for _ in range(3))
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-9)
    raw.close()


def test_rescale_action_maps_unit_box_onto_spec():
    low, high = np.array([0.0, -2.0]), np.array([4.0, 2.0])
    assert rescale_action(np.array([-1.0, 1.0]), low, high) == pytest.approx([0.0, 2.0])
    assert rescale_action(np.array([0.5, 0.0]), low, high) == pytest.approx([3.0, 0.0])


def test_unbounded_action_spec_rejected():
    with pytest.raises(ValueError, match="unbounded action spec"):
        DMCEnv(DMCConfig(name="lqr-lqr_2_1", time_limit=1.0))


@pytest.mark.parametrize(
    "action",
    [np.zeros(2), np.zeros((1, 1)), np.array([np.nan]), np.array([np.inf]), np.array([1.5]), ["x"]],
)
def test_bad_action_raises(make_env, action):
    env = make_env(name="cartpole-swingup")
    env.reset()
    with pytest.raises(ValueError):
        env.step(action)


def test_step_before_reset_raises(make_env):
    env = make_env(name="cartpole-swingup")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1))


def test_truncation_at_time_limit(make_env):
    # 0.1 s at 0.01 s per control step = 10 control steps = 4 agent steps with repeat 3 (the last is short).
    env = make_env(name="cartpole-swingup", time_limit=0.1, action_repeat=3)
    assert env.max_episode_steps == 4
    env.reset()
    for _ in range(3):
        _, _, terminated, truncated, info = env.step(np.zeros(1))
        assert not terminated and not truncated and info["steps"] == 3
    _, _, terminated, truncated, info = env.step(np.zeros(1))
    assert truncated and not terminated and info["steps"] == 1
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(1))
    env.reset()
    assert not env.step(np.zeros(1))[3]


def test_unknown_name_lists_benchmarking_tasks():
    with pytest.raises(ValueError, match="walker-walk") as error:
        DMCConfig(name="walker-fly")
    assert "cartpole-swingup" in str(error.value)
    with pytest.raises(ValueError, match="unknown dm_control task"):
        DMCConfig(name="cartpole")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("dmc:walker-walk", ("walker", "walk")),
        ("cartpole-swingup", ("cartpole", "swingup")),
        ("cup-catch", ("ball_in_cup", "catch")),
        ("ball_in_cup-catch", ("ball_in_cup", "catch")),
        ("pointmass-easy", ("point_mass", "easy")),
        ("finger-turn-hard", ("finger", "turn_hard")),
        ("dmc:cartpole-balance_sparse", ("cartpole", "balance_sparse")),
    ],
)
def test_name_parsing(name, expected):
    assert parse_task_name(name) == expected
    config = DMCConfig(name=name)
    assert (config.domain, config.task) == expected


def test_camera_default_and_config_validation():
    assert DMCConfig(name="quadruped-walk").camera_id == 2
    assert DMCConfig(name="walker-walk").camera_id == 0
    assert DMCConfig(name="quadruped-walk", camera_id=1).camera_id == 1
    bad = [
        {"obs_type": "rgb"},
        {"image_size": 0},
        {"image_size": True},
        {"action_repeat": 0},
        {"seed": -1},
        {"seed": 2**32},
        {"time_limit": 0.0},
        {"time_limit": float("inf")},
        {"camera_id": -1},
    ]
    for kwargs in bad:
        with pytest.raises(ValueError):
            DMCConfig(name="cartpole-swingup", **kwargs)
    with pytest.raises(ValueError, match="time_limit"):
        DMCConfig(name="lqr-lqr_2_1")
