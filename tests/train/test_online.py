"""The online trainer: a run learns a toy task, checkpoints at episode ends and `--resume` continues it
exactly; the CLI builds dm_control environments through the `agent_stack.envs` entry points."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from agent_stack.checkpoint import checkpoint_steps
from agent_stack.control.agent import load_agent
from agent_stack.train.online import OnlineRun, make_env, train_online
from agent_stack.train.train_control import main as train_control_main

TINY_TDMPC2 = dict(batch_size=16, enc_dim=32, mlp_dim=32, latent_dim=16, num_q=2, num_bins=21, num_samples=32,
                   num_elites=8, num_pi_trajs=4, iterations=2, seed_steps=40, lr=3e-3)


class PointEnv:
    """Move a point on a line to the origin: reward -|x| per step, 20 steps per episode."""

    observation_shape = (1,)
    action_dim = 1
    max_episode_steps = 20

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def reset(self, seed=None):
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x, self.t = self.rng.uniform(-1, 1), 0
        return np.array([self.x], np.float32), {}

    def step(self, action):
        self.x = float(np.clip(self.x + 0.2 * float(action[0]), -2, 2))
        self.t += 1
        return np.array([self.x], np.float32), -abs(self.x), False, self.t >= 20, {"success": abs(self.x) < 0.1}

    def close(self):
        pass


def run_config(**overrides) -> OnlineRun:
    settings = dict(algo="tdmpc2", env="toy:point", steps=400, seed=3, overrides=TINY_TDMPC2, eval_every=200,
                    eval_episodes=4, checkpoint_every=100, keep_checkpoints=10, threads=1)
    return OnlineRun(**settings | overrides)


def test_tdmpc2_learns_the_point_task(tmp_path):
    evaluations = train_online(run_config(), tmp_path, make_environment=PointEnv, log=lambda _: None)
    assert [e["step"] for e in evaluations] == [200, 400]
    # A policy that does nothing scores about -10 (mean |x| of 0.5 over 20 steps); a good one about -2.
    assert evaluations[-1]["return_mean"] > -4.0
    assert "success_rate" in evaluations[-1]
    saved = json.loads((tmp_path / "eval.json").read_text())
    assert saved["evaluations"] == evaluations and saved["run"]["algo"] == "tdmpc2"
    agent = load_agent(checkpoint_steps(tmp_path)[400])
    assert agent.act(np.array([0.5], np.float32), eval=True).shape == (1,)


def test_resume_continues_exactly(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    run = run_config(steps=160, eval_every=80)
    train_online(run, straight, make_environment=PointEnv, log=lambda _: None)
    train_online(run, resumed, make_environment=PointEnv, log=lambda _: None)
    # Throw away everything after the step-100 checkpoint, as if the process had been killed there.
    for step, directory in checkpoint_steps(resumed).items():
        if step > 100:
            for child in directory.iterdir():
                child.unlink()
            directory.rmdir()
    assert list(checkpoint_steps(resumed)) == [100]
    train_online(None, resumed, resume=True, make_environment=PointEnv, log=lambda _: None)
    final_straight = load_agent(checkpoint_steps(straight)[160]).state_dict()
    final_resumed = load_agent(checkpoint_steps(resumed)[160]).state_dict()
    for name, value in final_straight.items():
        assert torch.equal(value, final_resumed[name]), name
    # A finished run can be extended; nothing but the step count may change on resume.
    train_online(dataclasses.replace(run, steps=200), resumed, resume=True, make_environment=PointEnv,
                 log=lambda _: None)
    assert max(checkpoint_steps(resumed)) == 200
    with pytest.raises(ValueError, match="only --steps"):
        train_online(dataclasses.replace(run, seed=4), resumed, resume=True, make_environment=PointEnv)


def test_a_second_run_into_the_same_directory_is_refused(tmp_path):
    train_online(run_config(steps=20, eval_every=20), tmp_path, make_environment=PointEnv, log=lambda _: None)
    with pytest.raises(FileExistsError, match="--resume"):
        train_online(run_config(steps=20), tmp_path, make_environment=PointEnv, log=lambda _: None)


def test_run_config_and_env_names_are_validated():
    with pytest.raises(ValueError, match="algo"):
        run_config(algo="ppo")
    with pytest.raises(ValueError, match="steps"):
        run_config(steps=0)
    with pytest.raises(ValueError, match="PREFIX:NAME"):
        make_env("walker-walk")
    with pytest.raises(ValueError, match="unknown dm_control task"):
        make_env("dmc:walker-sprint")


def test_cli_trains_on_dm_control(tmp_path, capsys):
    overrides = [arg for name, value in TINY_TDMPC2.items() for arg in ("--set", f"{name}={value}")]
    code = train_control_main(["--algo", "tdmpc2", "--env", "dmc:cartpole-balance", "--steps", "60",
                               "--out", str(tmp_path), "--eval-episodes", "1", "--action-repeat", "8", "--threads", "1",
                               *overrides])
    assert code == 0
    assert "final eval return" in capsys.readouterr().out
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["env_options"] == {"action_repeat": 8} and run["overrides"]["num_q"] == 2
    assert load_agent(checkpoint_steps(tmp_path)[60]).observation_shape == (5,)
    assert train_control_main(["--algo", "tdmpc2", "--out", str(tmp_path / "new")]) == 2   # no --env
