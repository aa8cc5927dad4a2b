"""Slow learning tests of the online agents: a short run on dm_control cartpole-balance beats a uniform
random policy clearly. CPU-sized settings (a small model, a shortened planner / smaller batches and replay
ratio) that run in about 15-40 minutes on a 2-core CPU; their measured curves and the paper-sized speed
comparisons are in docs/BENCHMARKS.md (benchmarks/control_learning.py)."""

from __future__ import annotations

import numpy as np
import pytest

from agent_stack.train.online import OnlineRun, episode_seed, make_env, train_online

pytestmark = pytest.mark.slow

CPU_SETTINGS = {
    "tdmpc2": dict(model_size="1", steps=5000, overrides=dict(batch_size=64, num_samples=128, num_elites=16,
                                                               num_pi_trajs=8, iterations=3)),
    "dreamerv3": dict(model_size="XS", steps=5000, overrides=dict(deter=128, units=128, stoch=16, classes=16,
                                                                   batch_size=16, batch_length=32, train_ratio=256,
                                                                   seed_steps=1000)),
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
    first, final = evaluations[0]["return_mean"], evaluations[-1]["return_mean"]
    print(f"{algo}: random {random:.0f}, evaluations {[round(e['return_mean']) for e in evaluations]}")
    assert random < 350
    # Measured for TD-MPC2 with these settings (seed 0): 302 and 387 untrained (seeding lasts 2,500
    # steps), 461, 466, 464 at 3,000-5,000 steps; random 286.
    assert final > 1.4 * random and final > first + 100
