"""`agent-stack eval vla`: held-out seeds, the closed-loop rollout, summary.json, videos and clear errors.

The rollout loop is proven with the scripted expert as the "policy" (it must solve pick_up through the
loop, so a loop that mis-executed actions would fail); the command end to end with the tiny VLA
checkpoint of tests/conftest.py, which is too short-trained to succeed, so its results are only checked
for consistency.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from sim.collect import (ATTEMPTS_PER_EPISODE, FAMILY_SEED_SHIFT, CollectPlan, episode_seed, episode_task,
                         record_episode)
from sim.evaluate import EVAL_SEED_OFFSET, EvalPlan, default_out, eval_seed, main, run_episode
from sim.experts import command_to_ee_delta, make_expert
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import FAMILIES

EVAL_FAMILIES = ("pick_up", "place_on_pad")


class ScriptedExpertPolicy:
    """The scripted expert behind the `ClosedLoopPolicy` interface, acting as `sim.collect` records it."""

    def __init__(self, env: TabletopEnv) -> None:
        self.env = env
        self.expert = None

    def reset(self, instruction: str) -> None:
        assert instruction in self.env.task.phrasings()
        self.expert = make_expert(self.env.task)

    def act(self, observation: dict) -> np.ndarray:
        state, config = self.env.scene_state(), self.env.config
        return command_to_ee_delta(state, self.expert.act(state), config.max_translation, config.max_rotation,
                                   self.env.ee_target_pose()).astype(np.float32)


class HoldStillPolicy:
    """Keeps the arm where it is with the hand open: never solves a task."""

    def reset(self, instruction: str) -> None:
        pass

    def act(self, observation: dict) -> np.ndarray:
        assert set(observation) == {"image", "wrist_image", "state", "ee_target"}
        return np.array([0, 0, 0, 0, 0, 0, 1], np.float32)


# --- seeds and tasks ---------------------------------------------------------------------------------------

def test_eval_seeds_lie_above_every_seed_collect_accepts():
    highest_collect_base = 2**FAMILY_SEED_SHIFT - 1 - ATTEMPTS_PER_EPISODE  # CollectPlan's limit, 1 episode
    CollectPlan(("pick_up",), 1, 1, highest_collect_base, 64, False)
    with pytest.raises(ValueError):
        CollectPlan(("pick_up",), 1, 1, highest_collect_base + 1, 64, False)
    highest_collect_seed = max(episode_seed(f, highest_collect_base, 0, ATTEMPTS_PER_EPISODE - 1)
                               for f in FAMILIES)
    # Even a family name whose CRC-32 is the largest possible stays below the evaluation range.
    assert ((2**32 - 1) << FAMILY_SEED_SHIFT) + 2**FAMILY_SEED_SHIFT - 1 < EVAL_SEED_OFFSET
    assert highest_collect_seed < EVAL_SEED_OFFSET

    largest_plan = EvalPlan(tuple(FAMILIES), 2**FAMILY_SEED_SHIFT, 0, 1, 0)
    ranges = sorted((eval_seed(f, 0, 0), eval_seed(f, 0, largest_plan.episodes - 1)) for f in FAMILIES)
    assert ranges[0][0] >= EVAL_SEED_OFFSET and ranges[-1][1] < 2**64  # fits an unsigned 64-bit integer
    assert all(high < next_low for (_, high), (next_low, _) in itertools.pairwise(ranges))  # families disjoint


def test_eval_plan_refuses_bad_values():
    for episodes, seed, max_steps, videos in ((0, 0, 10, 0), (1, -1, 10, 0), (1, 2**FAMILY_SEED_SHIFT, 10, 0),
                                              (1, 0, 0, 0), (1, 0, 10, -1)):
        with pytest.raises(ValueError, match="--"):
            EvalPlan(("pick_up",), episodes, seed, max_steps, videos)


def test_episode_task_is_drawn_as_collect_draws_it():
    seed = eval_seed("place_on_pad", 0, 3)
    env = TabletopEnv(TabletopConfig(image_size=(16, 16), max_episode_steps=1))  # collect needs images
    try:
        [recorded] = record_episode(env, "place_on_pad", seed)
    finally:
        env.close()
    task, instruction = episode_task("place_on_pad", seed)
    assert recorded["episode_metadata"]["task"] == task.instruction
    assert recorded["steps"][0]["language_instruction"] == instruction


def test_default_out_names_the_step_under_the_checkpoint():
    out = default_out(Path("runs/vla"), 20)
    assert out.parent == Path("runs/vla/eval") and out.name.startswith("step_00000020-")


# --- the rollout loop --------------------------------------------------------------------------------------

def test_the_loop_executes_a_scripted_expert_to_success_on_pick_up():
    env = TabletopEnv(TabletopConfig(render=False, max_episode_steps=200))
    try:
        result = run_episode(env, ScriptedExpertPolicy(env), "pick_up", eval_seed("pick_up", 0, 0))
    finally:
        env.close()
    assert result.success and 5 < result.steps < 200
    assert result.frames == []


def test_a_policy_that_never_succeeds_stops_at_the_step_limit_with_steps_plus_one_frames():
    env = TabletopEnv(TabletopConfig(image_size=(32, 32), max_episode_steps=4))
    try:
        result = run_episode(env, HoldStillPolicy(), "pick_up", eval_seed("pick_up", 0, 1), record=True)
    finally:
        env.close()
    assert not result.success and result.steps == 4
    assert len(result.frames) == 5 and result.frames[0].shape == (32, 64, 3)  # front | wrist


# --- agent-stack eval vla ----------------------------------------------------------------------------------

def test_eval_vla_writes_summary_and_videos(tiny_vla_checkpoint, tmp_path):
    out = tmp_path / "eval"
    assert main(["vla", "--checkpoint", str(tiny_vla_checkpoint), "--tasks", ",".join(EVAL_FAMILIES),
                 "--episodes", "2", "--max-steps", "10", "--videos", "1", "--seed", "7",
                 "--out", str(out)]) == 0

    summary = json.loads((out / "summary.json").read_text())
    assert summary["checkpoint"] == str(tiny_vla_checkpoint.resolve()) and summary["step"] == 20
    assert summary["policy_hz"] == 10 and summary["image_size"] == 64
    assert list(summary["families"]) == list(EVAL_FAMILIES)
    collect_seeds = {episode_seed(f, 7, slot, attempt) for f in EVAL_FAMILIES for slot in range(2)
                     for attempt in range(ATTEMPTS_PER_EPISODE)}
    for family, stats in summary["families"].items():
        assert stats["episodes"] == 2 and isinstance(stats["successes"], int) and 0 <= stats["successes"] <= 2
        assert stats["success_rate"] == pytest.approx(stats["successes"] / 2)
        assert 1 <= stats["mean_steps"] <= 10
        assert stats["seeds"] == [eval_seed(family, 7, 0), eval_seed(family, 7, 1)]
        assert not collect_seeds & set(stats["seeds"])
    overall = summary["overall"]
    assert overall["episodes"] == 4
    assert overall["successes"] == sum(s["successes"] for s in summary["families"].values())
    assert summary["wall_seconds"] > 0
    assert summary["steps_per_second"] > 0 and summary["policy_steps_per_second"] > 0

    episodes = summary["episodes"]
    assert len(episodes) == 4 and [e["family"] for e in episodes] == ["pick_up"] * 2 + ["place_on_pad"] * 2
    videos = [e for e in episodes if e["video"] is not None]
    assert [e["seed"] for e in videos] == [eval_seed(f, 7, 0) for f in EVAL_FAMILIES]
    for episode in videos:
        assert f"seed{episode['seed']}" in episode["video"]
        assert episode["video"].endswith("-success.mp4" if episode["success"] else "-failure.mp4")
        frames = [frame for frame in imageio.get_reader(out / episode["video"])]  # list() would ask len()
        assert len(frames) == episode["steps"] + 1 and frames[0].shape == (64, 128, 3)
    assert sorted(p.name for p in (out / "videos").iterdir()) == sorted(Path(e["video"]).name for e in videos)


def corrupt_checkpoint(checkpoint: Path, tmp_path: Path) -> Path:
    broken = tmp_path / "broken"
    shutil.copytree(checkpoint, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    return broken


@pytest.mark.parametrize("case", ["unknown family", "no episodes", "missing checkpoint", "corrupt weights"])
def test_bad_invocations_fail_with_one_line_and_exit_code_2(case, tiny_vla_checkpoint, tmp_path, capsys):
    checkpoint, tasks, episodes = tiny_vla_checkpoint, "pick_up", "1"
    if case == "unknown family":
        tasks = "pick_up,juggle"
    elif case == "no episodes":
        episodes = "0"
    elif case == "missing checkpoint":
        checkpoint = tmp_path / "nowhere"
    else:
        checkpoint = corrupt_checkpoint(tiny_vla_checkpoint, tmp_path)
    code = main(["vla", "--checkpoint", str(checkpoint), "--tasks", tasks, "--episodes", episodes,
                 "--out", str(tmp_path / "eval")])
    error = capsys.readouterr().err
    assert code == 2 and error.startswith("error: ") and error.count("\n") == 1
    assert not (tmp_path / "eval").exists()


def test_the_agent_stack_command_reports_a_missing_checkpoint_without_a_traceback(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "agent_stack.cli", "eval", "vla", "--checkpoint",
                             str(tmp_path / "nowhere"), "--tasks", "pick_up", "--episodes", "1"],
                            capture_output=True, text=True, env=env, timeout=300, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "nowhere" in result.stderr and "Traceback" not in result.stderr
