"""Slow: a short `agent-stack train control --algo diffusion` run learns. Trained on 40 expert episodes as
the stack's controller (`--goal ee_target`, proprioception only), it ends reach episodes much closer to
their targets than the same network untrained (which drifts away: about 40 cm median)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_stack.checkpoint import latest_checkpoint
from agent_stack.control.diffusion import DiffusionModel, DiffusionPolicy
from sim.evaluate import reach_seed, run_reach
from sim.tabletop_env import TabletopConfig, TabletopEnv
from tests.conftest import run_agent_stack

pytestmark = pytest.mark.slow


def reach(policy, episodes: int) -> tuple[float, float]:
    """(success rate, median final distance) over `episodes` reach targets."""
    env = TabletopEnv(TabletopConfig(control_mode="ee_delta", render=False, max_episode_steps=61))
    try:
        results = [run_reach(env, policy, reach_seed(0, e), max_steps=60) for e in range(episodes)]
    finally:
        env.close()
    return np.mean([r.success for r in results]), float(np.median([r.final_distance for r in results]))


@pytest.mark.timeout(1800)
def test_short_run_reaches_targets_the_untrained_policy_misses(tmp_path):
    data = tmp_path / "data"
    run_agent_stack("collect", "--task", "pick_up,push_left", "--episodes", "20", "--image-size", "32",
                    "--workers", "2", "--out", str(data))
    run = tmp_path / "run"
    run_agent_stack("train", "control", "--algo", "diffusion", "--goal", "ee_target", "--cameras", "",
                    "--data", str(data / "agent_stack_tabletop"), "--out", str(run), "--image-size", "32",
                    "--crop-size", "32", "--steps", "800", "--batch-size", "64", "--lr", "3e-4",
                    "--warmup-steps", "100", "--save-every", "800", "--no-progress")
    trained = DiffusionPolicy.from_pretrained(latest_checkpoint(run))
    torch.manual_seed(0)
    untrained = DiffusionPolicy(DiffusionModel(trained.config), trained.statistics, trained.metadata)

    trained_success, trained_distance = reach(trained, 12)
    untrained_success, untrained_distance = reach(untrained, 12)
    assert trained_distance < 0.5 * untrained_distance, (trained_distance, untrained_distance)
    assert trained_success >= untrained_success, (trained_success, untrained_success)
