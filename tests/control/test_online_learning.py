"""Slow learning tests of the online agents: a short run on dm_control cartpole-balance beats a uniform
random policy by a wide margin. CPU-sized settings (a small model, a shortened planner / batch); the
paper-sized runs and their curves are in benchmarks/control_learning.py and docs/BENCHMARKS.md."""

from __future__ import annotations

import numpy as np
import pytest

from agent_stack.train.online import OnlineRun, episode_seed, make_env, train_online

pytestmark = pytest.mark.slow

CPU_SETTINGS = {
    "tdmpc2": dict(model_size="1", steps=5000, overrides=dict(batch_size=64, num_samples=128, num_elites=16,
                                                               num_pi_trajs=8, iterations=3)),
    "dreamerv3": dict(model_size="XS", steps=5000, overrides=dict(batch_size=16, batch_length=16,
                                                                   train_ratio=64, seed_steps=1000)),
}


def random_policy_return(episodes: int = 5) -> float:
    env = make_env("dmc:cartpole-balance", seed=0)
    rng = np.random.default_rng(0)
    returns = []
    for episode in range(episodes):
        env.reset(seed=episode_seed(7, episode))
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_dim))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


@pytest.mark.timeout(3600)
@pytest.mark.parametrize("algo", sorted(CPU_SETTINGS))
def test_short_run_on_cartpole_balance_beats_random(algo, tmp_path):
    settings = CPU_SETTINGS[algo]
    run = OnlineRun(algo=algo, env="dmc:cartpole-balance", seed=1, eval_every=1000, eval_episodes=3,
                    checkpoint_every=settings["steps"], threads=1, **settings)
    evaluations = train_online(run, tmp_path, log=print)
    random = random_policy_return()
    best = max(e["return_mean"] for e in evaluations)
    print(f"{algo}: random {random:.0f}, evaluations {[round(e['return_mean']) for e in evaluations]}")
    assert random < 350
    assert evaluations[-1]["return_mean"] > 1.8 * random and best > 2 * random
