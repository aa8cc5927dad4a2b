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

Five switches split that gap further (results: docs/BENCHMARKS.md, "Why pick_up fails"):

* `--objects instructed` feeds only the instructed block's pose (the simulator picks it out), so the policy
  no longer has to learn which of the four blocks the instruction names;
* `--eval-seeds train` evaluates on the first-attempt seeds of the first demonstration slots: a policy that
  succeeds there and fails on held-out seeds has memorised its demonstrations rather than generalised;
* `--colour-permutations` renames the scene's colours at random in every training sample, consistently in
  the state (block and pad slots trade places) and in the instruction (its colour words change with them).
  The motion is the same, so the demonstrated chunk stays the label, and every colour name is seen with
  every block position;
* `--policy mlp` swaps the denoiser for a deterministic baseline (`ChunkRegressor`: an MLP from the same
  condition to the same normalised chunk, MSE), trained and run the same way, to tell what diffusion adds;
* `--actions target` labels every step with the absolute end-effector target the expert's action led to
  (x y z, cos and sin of the top-down yaw, gripper; Chi et al.'s position control) instead of the dataset's
  delta; acting, the predicted target is turned back into the env's delta from its current target.

Demonstrations are the scripted experts' (`sim.collect`'s task and seed draws, no rendering). Normalisation
is the pipeline's (1st / 99th percentile to [-1, 1], gripper unnormalised). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import agent_stack.data  # noqa: F401  first: TensorFlow loads isolated before TensorBoard (train.offline) imports it
from agent_stack.control.diffusion import DiffusionModel, DiffusionPolicy
from agent_stack.control.diffusion.configuration_diffusion import DiffusionConfig
from agent_stack.control.diffusion.modeling_diffusion import to_model_actions
from agent_stack.language import InstructionEncoder
from agent_stack.normalization import DatasetStatistics, Statistics
from agent_stack.train.optimization import parameter_groups, warmup_cosine
from sim.collect import ATTEMPTS_PER_EPISODE, episode_seed, episode_task
from sim.evaluate import EvalPlan, run_episode
from sim.experts import ExpertCommand, command_to_ee_delta, make_expert, top_down_quat
from sim.state import COLORS
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import recolour_instruction, yaw_of

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "diffusion_state_probe.json"


OBJECTS = ("all", "instructed")
POLICIES = ("diffusion", "mlp")
ACTIONS = ("delta", "target")
BLOCK_DIM, PAD_DIM = 7, 3
"""Values per block (position, quaternion) and per pad (position) in an 'all' object state."""


def object_state(env: TabletopEnv, objects: str) -> np.ndarray:
    """'all': every block's position and quaternion, then every pad's position, colours in sorted order;
    'instructed': the position and quaternion of the block the current task names."""
    scene = env.scene_state()
    if objects == "instructed":
        block = scene.block(env.task.color)
        return np.concatenate([block.pos, block.quat]).astype(np.float32)
    blocks = [np.concatenate([scene.block(c).pos, scene.block(c).quat]) for c in sorted(COLORS)]
    pads = [scene.pad(c).pos for c in sorted(COLORS)]
    return np.concatenate(blocks + pads).astype(np.float32)


def target_label(env: TabletopEnv, gripper: float) -> np.ndarray:
    """The env's end-effector target as a 7-D label: x y z, cos yaw, sin yaw, 0, gripper opening."""
    position, quat = env.ee_target_pose()
    yaw = yaw_of(quat)
    return np.array([*position, np.cos(yaw), np.sin(yaw), 0.0, gripper], dtype=np.float32)


def demonstration(job: tuple[str, int, str]) -> dict:
    """One expert episode (the first of the slot's seeds it solves): states (T, D), delta actions (T, 7) and
    the targets they led to (T, 7, see `target_label`)."""
    family, slot, objects = job
    env = TabletopEnv(TabletopConfig(render=False))
    try:
        for attempt in range(ATTEMPTS_PER_EPISODE):
            seed = episode_seed(family, 0, slot, attempt)
            task, instruction = episode_task(family, seed)
            observation, _ = env.reset(seed=seed, task=task)
            expert, states, actions, targets = make_expert(task), [], [], []
            success = truncated = False
            while not (success or truncated):
                scene = env.scene_state()
                action = command_to_ee_delta(scene, expert.act(scene), env.config.max_translation,
                                             env.config.max_rotation, env.ee_target_pose()).astype(np.float32)
                states.append(np.concatenate([observation["state"], object_state(env, objects)]))
                actions.append(action)
                observation, _, success, truncated, _ = env.step(action)
                targets.append(target_label(env, float(action[6])))
            if success:
                return {"instruction": instruction, "state": np.stack(states), "delta": np.stack(actions),
                        "target": np.stack(targets)}
    finally:
        env.close()
    raise RuntimeError(f"the {family} expert failed {ATTEMPTS_PER_EPISODE} seeds in a row at slot {slot}")


def statistics_of(values: np.ndarray) -> Statistics:
    return Statistics(mean=values.mean(0).tolist(), std=values.std(0).tolist(), min=values.min(0).tolist(),
                      max=values.max(0).tolist(), p01=np.percentile(values, 1, 0).tolist(),
                      p99=np.percentile(values, 99, 0).tolist())


def training_windows(episodes: list[dict], statistics: DatasetStatistics, config: DiffusionConfig,
                     instructions: list[str], labels: str) -> dict[str, torch.Tensor]:
    """Every step t: states t-To+1 .. t (the first repeated before the start), actions t .. t+Tp-1 (the last
    repeated past the end), as the data pipeline windows them, and the index of its instruction."""
    states, actions, instruction = [], [], []
    for episode in episodes:
        state = statistics.state.normalize(episode["state"])
        action = statistics.normalize_action(episode[labels])
        steps = np.arange(len(action))
        history = np.maximum(steps[:, None] + np.arange(1 - config.obs_horizon, 1)[None], 0)
        future = np.minimum(steps[:, None] + np.arange(config.pred_horizon)[None], len(action) - 1)
        states.append(state[history])
        actions.append(action[future])
        instruction.append(np.full(len(action), instructions.index(episode["instruction"])))
    return {"state": torch.from_numpy(np.concatenate(states)).float(),
            "action": torch.from_numpy(np.concatenate(actions)).float(),
            "instruction": torch.from_numpy(np.concatenate(instruction))}


class ColourPermutations:
    """Random relabelling of the colours of an `--objects all` state (proprio, 4 block poses, 4 pad
    positions, colours sorted) together with the instruction, one colour order per sample."""

    def __init__(self, proprio_dim: int, instructions: list[str], encoder: InstructionEncoder) -> None:
        colours = sorted(COLORS)
        self.orders = list(itertools.permutations(range(len(colours))))  # colour i is renamed colours[order[i]]
        self.state_index = torch.tensor([self._state_index(proprio_dim, order) for order in self.orders])
        recoloured = [[recolour_instruction(text, {colours[i]: colours[j] for i, j in enumerate(order)})
                       for order in self.orders] for text in instructions]
        texts = sorted({text for row in recoloured for text in row})
        self.embeddings = torch.from_numpy(np.stack(encoder(texts))).float()
        self.instruction_index = torch.tensor([[texts.index(text) for text in row] for row in recoloured])

    @staticmethod
    def _state_index(proprio_dim: int, order: tuple[int, ...]) -> list[int]:
        """Source dimension of every state dimension after renaming: slot order[i] takes colour i's values."""
        source = np.argsort(order)
        index = list(range(proprio_dim))
        for size, start in ((BLOCK_DIM, proprio_dim), (PAD_DIM, proprio_dim + BLOCK_DIM * len(order))):
            for slot in range(len(order)):
                index += range(start + size * source[slot], start + size * (source[slot] + 1))
        return index

    def all_orders(self, states: np.ndarray) -> np.ndarray:
        """Every state under every colour order: statistics of these normalise every slot alike, so that
        renaming commutes with normalisation."""
        return np.concatenate([states[:, index] for index in self.state_index.numpy()])

    def __call__(self, state: torch.Tensor, instruction: torch.Tensor,
                 generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, To, D), instruction indices (B,) -> renamed state, embeddings of renamed instructions."""
        order = torch.randint(len(self.orders), (len(state),), generator=generator)
        index = self.state_index[order][:, None, :].expand_as(state)
        return torch.gather(state, -1, index), self.embeddings[self.instruction_index[instruction, order]]


class ChunkRegressor(nn.Module):
    """The probe's deterministic baseline: an MLP from the denoiser's condition (To states ++ goal) straight to
    the chunk in model space, trained by MSE. It reads batches with `DiffusionModel`'s own condition methods
    and offers its `sample`, so `DiffusionPolicy` runs it unchanged (state-only configs)."""

    global_condition = DiffusionModel.global_condition
    batch_goal = DiffusionModel.batch_goal
    batch_condition = DiffusionModel.batch_condition

    def __init__(self, config: DiffusionConfig, width: int = 512, depth: int = 3) -> None:
        super().__init__()
        if config.cameras:
            raise ValueError("ChunkRegressor reads state only: build its config with cameras=()")
        self.config = config
        self.image_encoders = nn.ModuleDict()
        layers, size = [], config.global_cond_dim
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.GELU()]
            size = width
        self.net = nn.Sequential(*layers, nn.Linear(size, config.pred_horizon * config.action_dim))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = nn.functional.mse_loss(self.sample(self.batch_condition(batch), clamp=False),
                                      to_model_actions(batch["action"].float()))
        return loss, {"mse": loss.detach()}

    def sample(self, global_cond: torch.Tensor, generator: torch.Generator | None = None,
               clamp: bool = True) -> torch.Tensor:
        chunk = self.net(global_cond).view(-1, self.config.pred_horizon, self.config.action_dim)
        return chunk.clamp(-1.0, 1.0) if clamp else chunk  # the denoiser's samples are clipped the same way


class PrivilegedStatePolicy:
    """`DiffusionPolicy` fed the proprioception plus the simulator's object state (a `ClosedLoopPolicy`);
    with actions "target" its output, an absolute target, becomes the env's delta from its current target."""

    def __init__(self, policy: DiffusionPolicy, env: TabletopEnv, objects: str, actions: str) -> None:
        self.policy, self.env, self.objects, self.actions = policy, env, objects, actions

    def reset(self, instruction: str) -> None:
        self.policy.reset(instruction)

    def act(self, observation: dict) -> np.ndarray:
        action = self.policy.act({"state": np.concatenate([observation["state"],
                                                            object_state(self.env, self.objects)])})
        if self.actions == "delta":
            return action
        target = ExpertCommand(action[:3], top_down_quat(np.arctan2(action[4], action[3])), float(action[6]))
        env = self.env
        return command_to_ee_delta(env.scene_state(), target, env.config.max_translation,
                                   env.config.max_rotation, env.ee_target_pose())


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
    parser.add_argument("--eval-seeds", choices=("held-out", "train"), default="held-out",
                        help="evaluation seeds, or the demonstrations' own (memorisation check)")
    parser.add_argument("--colour-permutations", action="store_true",
                        help="rename the colours at random in every training sample (state and instruction)")
    parser.add_argument("--policy", choices=POLICIES, default="diffusion",
                        help="the denoiser, or the deterministic MLP baseline on the same data and budget")
    parser.add_argument("--objects", choices=OBJECTS, default="all",
                        help="object state observed: every block and pad, or the instructed block only")
    parser.add_argument("--actions", choices=ACTIONS, default="delta",
                        help="labels: the dataset's end-effector deltas, or the absolute targets they led to")
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
    if args.colour_permutations and args.objects != "all":
        parser.error("--colour-permutations needs --objects all (the instructed block alone has no colour slots)")
    if args.eval_seeds == "train" and args.eval_episodes > args.episodes:
        parser.error("--eval-seeds train needs --eval-episodes <= --episodes")
    if args.eval_seeds == "train":
        eval_seeds = {family: [episode_seed(family, 0, slot, 0) for slot in range(args.eval_episodes)]
                      for family in families}
    else:
        eval_seeds = {family: plan.seeds(family) for family in families}
    jobs = [(family, slot, args.objects) for family in families for slot in range(args.episodes)]
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        episodes = pool.map(demonstration, jobs)
    collect_seconds = time.perf_counter() - started
    states = np.concatenate([e["state"] for e in episodes])
    encoder = InstructionEncoder()
    instructions = sorted({e["instruction"] for e in episodes})
    permutations = (ColourPermutations(states.shape[1] - (BLOCK_DIM + PAD_DIM) * len(COLORS), instructions, encoder)
                    if args.colour_permutations else None)
    statistics = DatasetStatistics("privileged_state_probe", "train", "-", len(episodes), len(states),
                                   statistics_of(np.concatenate([e[args.actions] for e in episodes])),
                                   statistics_of(permutations.all_orders(states) if permutations else states))
    config = DiffusionConfig(cameras=(), state_dim=states.shape[1], goal="language", action_steps=args.action_steps)
    windows = training_windows(episodes, statistics, config, instructions, args.actions)
    embeddings = torch.from_numpy(np.stack(encoder(instructions))).float()

    model = DiffusionModel(config) if args.policy == "diffusion" else ChunkRegressor(config)
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
        state, goal = windows["state"][index], embeddings[windows["instruction"][index]]
        if permutations:
            state, goal = permutations(state, windows["instruction"][index], generator)
        loss, _ = model({"observation": {"state": state}, "action": windows["action"][index],
                         "instruction_embedding": goal})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        ema.update_parameters(model)
        losses.append(float(loss.detach()))
        if step == args.steps or (args.eval_every and step % args.eval_every == 0):
            policy = PrivilegedStatePolicy(DiffusionPolicy(ema.module, statistics, seed=args.seed), env,
                                           args.objects, args.actions)
            results = [run_episode(env, policy, family, seed) for family in families for seed in eval_seeds[family]]
            success = {family: float(np.mean([r.success for r in results if r.family == family]))
                       for family in families}
            evaluations.append({"step": step, "loss": float(np.mean(losses[-100:])), "success": success,
                                "train_seconds": round(time.perf_counter() - train_started, 1)})
            print(json.dumps(evaluations[-1]), flush=True)
    env.close()

    table = Table(title=f"{args.policy} policy from privileged object state ({args.objects} objects, "
                        f"{args.actions} actions, closed loop, {args.eval_seeds} seeds)")
    for column in ("step", "training loss", *families, "train s"):
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
