"""Diffusion Policy from privileged object state: does the denoiser learn the tasks when vision is taken out?

    .venv/bin/python benchmarks/diffusion_state_probe.py --families pick_up,push_left,push_right \
        --episodes 200 --steps 6000 --eval-episodes 20 --out benchmarks/results/diffusion_state_probe.json

The visuomotor learning bar fails with the arm descending near the wrong block, which reads like a vision
problem. This benchmark removes vision: the policy observes the proprioception plus every block's pose and
every pad's position read from the simulator (sorted by colour), and the instruction embedding as its goal.
Everything else is the real policy: `DiffusionModel` (cameras=(), the state widened to proprio + objects),
DDPM training with EMA weights, and `DiffusionPolicy` acting closed loop through `sim.evaluate.run_episode`
on the evaluation seeds (DDIM, receding horizon Ta of To = 2, Tp = 16). If this policy fails too, the gap is
in the action learning (training budget, action representation), not in the image encoder.

Demonstrations are the scripted experts' (`sim.collect`'s task and seed draws, no rendering). Normalisation
is the pipeline's (1st / 99th percentile to [-1, 1], gripper unnormalised). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import agent_stack.data  # noqa: F401  first: TensorFlow loads isolated before TensorBoard (train.offline) imports it
from agent_stack.control.diffusion import DiffusionModel, DiffusionPolicy
from agent_stack.control.diffusion.configuration_diffusion import DiffusionConfig
from agent_stack.language import InstructionEncoder
from agent_stack.normalization import DatasetStatistics, Statistics
from agent_stack.train.offline import parameter_groups, warmup_cosine
from sim.collect import ATTEMPTS_PER_EPISODE, episode_seed
from sim.evaluate import EvalPlan, episode_task, run_episode
from sim.experts import command_to_ee_delta, make_expert
from sim.state import COLORS
from sim.tabletop_env import TabletopConfig, TabletopEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "diffusion_state_probe.json"


def object_state(env: TabletopEnv) -> np.ndarray:
    """Every block's position and quaternion, then every pad's position, colours in sorted order."""
    scene = env.scene_state()
    blocks = [np.concatenate([scene.block(c).pos, scene.block(c).quat]) for c in sorted(COLORS)]
    pads = [scene.pad(c).pos for c in sorted(COLORS)]
    return np.concatenate(blocks + pads).astype(np.float32)


def demonstration(job: tuple[str, int]) -> dict:
    """One expert episode (the first of the slot's seeds it solves): states (T, D), actions (T, 7)."""
    family, slot = job
    env = TabletopEnv(TabletopConfig(render=False))
    try:
        for attempt in range(ATTEMPTS_PER_EPISODE):
            seed = episode_seed(family, 0, slot, attempt)
            task, instruction = episode_task(family, seed)
            observation, _ = env.reset(seed=seed, task=task)
            expert, states, actions = make_expert(task), [], []
            success = truncated = False
            while not (success or truncated):
                scene = env.scene_state()
                action = command_to_ee_delta(scene, expert.act(scene), env.config.max_translation,
                                             env.config.max_rotation, env.ee_target_pose()).astype(np.float32)
                states.append(np.concatenate([observation["state"], object_state(env)]))
                actions.append(action)
                observation, _, success, truncated, _ = env.step(action)
            if success:
                return {"instruction": instruction, "state": np.stack(states), "action": np.stack(actions)}
    finally:
        env.close()
    raise RuntimeError(f"the {family} expert failed {ATTEMPTS_PER_EPISODE} seeds in a row at slot {slot}")


def statistics_of(values: np.ndarray) -> Statistics:
    return Statistics(mean=values.mean(0).tolist(), std=values.std(0).tolist(), min=values.min(0).tolist(),
                      max=values.max(0).tolist(), p01=np.percentile(values, 1, 0).tolist(),
                      p99=np.percentile(values, 99, 0).tolist())


def training_windows(episodes: list[dict], statistics: DatasetStatistics, config: DiffusionConfig,
                     encoder: InstructionEncoder) -> dict[str, torch.Tensor]:
    """Every step t: states t-To+1 .. t (the first repeated before the start), actions t .. t+Tp-1 (the last
    repeated past the end), as the data pipeline windows them."""
    instructions = sorted({e["instruction"] for e in episodes})
    embeddings = dict(zip(instructions, encoder(instructions)))
    states, actions, goals = [], [], []
    for episode in episodes:
        state = statistics.state.normalize(episode["state"])
        action = statistics.normalize_action(episode["action"])
        steps = np.arange(len(action))
        history = np.maximum(steps[:, None] + np.arange(1 - config.obs_horizon, 1)[None], 0)
        future = np.minimum(steps[:, None] + np.arange(config.pred_horizon)[None], len(action) - 1)
        states.append(state[history])
        actions.append(action[future])
        goals.append(np.repeat(embeddings[episode["instruction"]][None], len(action), 0))
    return {name: torch.from_numpy(np.concatenate(parts)).float()
            for name, parts in (("state", states), ("action", actions), ("goal", goals))}


class PrivilegedStatePolicy:
    """`DiffusionPolicy` fed the proprioception plus the simulator's object state (a `ClosedLoopPolicy`)."""

    def __init__(self, policy: DiffusionPolicy, env: TabletopEnv) -> None:
        self.policy, self.env = policy, env

    def reset(self, instruction: str) -> None:
        self.policy.reset(instruction)

    def act(self, observation: dict) -> np.ndarray:
        return self.policy.act({"state": np.concatenate([observation["state"], object_state(self.env)])})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default="pick_up,push_left,push_right")
    parser.add_argument("--episodes", type=int, default=200, help="demonstrations per family")
    parser.add_argument("--steps", type=int, default=6000, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--action-steps", type=int, default=DiffusionConfig.action_steps,
                        help="Ta: actions executed per prediction (closed-loop replanning every Ta steps)")
    parser.add_argument("--eval-every", type=int, default=0, help="also evaluate every N steps (0: at the end)")
    parser.add_argument("--eval-episodes", type=int, default=20, help="per family")
    parser.add_argument("--max-steps", type=int, default=120)
    parser.add_argument("--workers", type=int, default=2, help="processes collecting demonstrations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    families = tuple(args.families.split(","))
    plan = EvalPlan(families, args.eval_episodes, args.seed, args.max_steps, videos=0)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    started = time.perf_counter()
    jobs = [(family, slot) for family in families for slot in range(args.episodes)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        episodes = pool.map(demonstration, jobs)
    collect_seconds = time.perf_counter() - started
    states = np.concatenate([e["state"] for e in episodes])
    statistics = DatasetStatistics("privileged_state_probe", "train", "-", len(episodes), len(states),
                                   statistics_of(np.concatenate([e["action"] for e in episodes])),
                                   statistics_of(states))
    config = DiffusionConfig(cameras=(), state_dim=states.shape[1], goal="language", action_steps=args.action_steps)
    encoder = InstructionEncoder()
    windows = training_windows(episodes, statistics, config, encoder)

    model = DiffusionModel(config)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.995))
    optimizer = torch.optim.AdamW(parameter_groups(model, 1e-6), lr=args.lr, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(300, args.steps, 0.0))
    generator = torch.Generator().manual_seed(args.seed)
    evaluations, losses = [], []
    env = TabletopEnv(TabletopConfig(render=False, max_episode_steps=args.max_steps))
    train_started = time.perf_counter()
    for step in range(1, args.steps + 1):
        model.train()
        index = torch.randint(0, len(windows["state"]), (args.batch_size,), generator=generator)
        loss, _ = model({"observation": {"state": windows["state"][index]}, "action": windows["action"][index],
                         "instruction_embedding": windows["goal"][index]})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        losses.append(float(loss.detach()))
        if step == args.steps or (args.eval_every and step % args.eval_every == 0):
            policy = PrivilegedStatePolicy(DiffusionPolicy(ema.module, statistics, seed=args.seed), env)
            results = [run_episode(env, policy, family, seed) for family in families for seed in plan.seeds(family)]
            success = {family: float(np.mean([r.success for r in results if r.family == family]))
                       for family in families}
            evaluations.append({"step": step, "loss": float(np.mean(losses[-100:])), "success": success,
                                "train_seconds": round(time.perf_counter() - train_started, 1)})
            print(json.dumps(evaluations[-1]), flush=True)
    env.close()

    table = Table(title="Diffusion Policy from privileged object state (closed loop, evaluation seeds)")
    for column in ("step", "DDPM loss", *families, "train s"):
        table.add_column(column)
    for row in evaluations:
        table.add_row(str(row["step"]), f"{row['loss']:.4f}",
                      *(f"{100 * row['success'][f]:.0f} %" for f in families), str(row["train_seconds"]))
    Console().print(table)
    summary = {"arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
               "demonstrations": len(episodes), "steps": len(states), "collect_seconds": round(collect_seconds, 1),
               "state_dim": config.state_dim, "parameters": sum(p.numel() for p in model.parameters()),
               "evaluations": evaluations}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
