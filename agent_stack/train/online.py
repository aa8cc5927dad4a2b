"""Online training of an `OnlineAgent` (TD-MPC2, DreamerV3) in an environment, and its evaluation.

    agent-stack train control --algo tdmpc2 --env dmc:cartpole-swingup --steps 100000 --out runs/tdmpc2
    agent-stack train control --algo dreamerv3 --env tabletop:reach --steps 50000 --out runs/reach
    agent-stack train control --algo tdmpc2 --out runs/tdmpc2 --resume        (continues the run)

The loop (DreamerV3 `embodied/run/train.py`, TD-MPC2 `trainer/online_trainer.py`): uniform random
actions for the agent's seed steps, then act, store, and update `updates_per_step` times per environment
step on replay windows; evaluate deterministic episodes every `--eval-every` steps (learning curve in
`<out>/eval.json` and TensorBoard) and checkpoint, each at the first episode end after every
`--eval-every` / `--checkpoint-every` steps and at the end. Checkpoints fall on episode boundaries and every episode starts from a seed derived from the run's
seed, so `--resume` continues exactly: agent, optimisers, replay, counters and every RNG are restored.

Environments come from factories registered as entry points in the `agent_stack.envs` group (`dmc`,
`tabletop` in this package): `--env PREFIX:NAME` calls the `PREFIX` factory with NAME. This keeps the
library free of MuJoCo imports and lets a plugin add an environment (a real robot, another simulator).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors.torch import load_file

from agent_stack.checkpoint import (CHECKPOINTS_DIR, WEIGHTS_FILE, checkpoint_steps, latest_checkpoint, load_weights,
                                    read_json, save_weights, step_dir_name, write_directory_atomically, write_json)
from agent_stack.control.agent import AGENT_PACKAGES, OnlineAgent, agent_class
from agent_stack.control.replay import ReplayBuffer
from agent_stack.native_libraries import import_tensorflow
from agent_stack.train.state import load_optimizer_state, optimizer_state, restore_rng_state

# TensorBoard's writer imports TensorFlow when it is installed; loaded plainly, TensorFlow and MuJoCo's
# native libraries crash the process (at the latest on exit), so load it the isolated way first.
import_tensorflow()
from torch.utils.tensorboard import SummaryWriter  # noqa: E402

ENV_GROUP = "agent_stack.envs"
STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"
RUN_FILE = "run.json"
EVAL_FILE = "eval.json"
EVAL_SEED_OFFSET = 1_000_000
"""Evaluation episodes use seeds from here on, never a training episode's."""


class Env(Protocol):
    observation_shape: tuple[int, ...]
    action_dim: int
    max_episode_steps: int

    def reset(self, seed: int | None = None) -> tuple[Any, dict]: ...

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict]: ...

    def close(self) -> None: ...


def env_factories() -> dict[str, Callable[..., Env]]:
    return {ep.name: ep for ep in entry_points(group=ENV_GROUP)}


def make_env(name: str, seed: int = 0, **options) -> Env:
    """`PREFIX:NAME` -> the registered PREFIX factory called with NAME, the seed and options that are set."""
    prefix, sep, task = name.partition(":")
    factories = env_factories()
    if not sep or prefix not in factories:
        raise ValueError(f"--env must be PREFIX:NAME with PREFIX one of {sorted(factories)}, got {name!r}")
    return factories[prefix].load()(task, seed=seed, **{k: v for k, v in options.items() if v is not None})


def episode_seed(run_seed: int, episode: int) -> int:
    return (run_seed * 100_003 + episode) % (2**31 - 1)


# --- evaluation ------------------------------------------------------------------------------------------

def evaluate(agent: OnlineAgent, env: Env, episodes: int, seed: int) -> dict[str, float]:
    """Deterministic episodes (`act(eval=True)`): mean/std return, and success rate where `info` has it."""
    returns, successes = [], []
    for episode in range(episodes):
        observation, _ = env.reset(seed=episode_seed(seed + EVAL_SEED_OFFSET, episode))
        agent.reset()
        total, done, info = 0.0, False, {}
        while not done:
            observation, reward, terminated, truncated, info = env.step(agent.act(observation, eval=True))
            total += reward
            done = terminated or truncated
        returns.append(total)
        if "success" in info:
            successes.append(float(info["success"]))
    result = {"return_mean": float(np.mean(returns)), "return_std": float(np.std(returns)), "episodes": episodes}
    if successes:
        result["success_rate"] = float(np.mean(successes))
    return result


# --- the run ----------------------------------------------------------------------------------------------

@dataclasses.dataclass
class OnlineRun:
    """What a run was started with; saved as run.json so `--resume` needs only `--out`."""

    algo: str
    env: str
    steps: int
    seed: int = 0
    model_size: str | None = None
    """A preset of the algorithm (TD-MPC2: 1, 5, 19, 48, 317; DreamerV3: XS, S, M, L, XL); None: defaults."""
    overrides: dict = dataclasses.field(default_factory=dict)
    """Config fields set on top of the preset (`--set name=value`)."""
    env_options: dict = dataclasses.field(default_factory=dict)
    eval_every: int = 10_000
    eval_episodes: int = 10
    checkpoint_every: int = 50_000
    keep_checkpoints: int = 2
    buffer_size: int = 1_000_000
    device: str = "cpu"
    threads: int | None = None
    """torch intra-op threads; None keeps torch's default. Small models on a busy CPU run far faster on 1."""

    def __post_init__(self) -> None:
        if self.algo not in AGENT_PACKAGES:
            raise ValueError(f"algo must be one of {sorted(AGENT_PACKAGES)}, got {self.algo!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ValueError(f"threads must be a positive integer or None, got {self.threads!r}")
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "keep_checkpoints", "buffer_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")


def build_config(run: OnlineRun, episode_length: int):
    config_class = agent_class(run.algo).config_class
    overrides = dict(run.overrides)
    if "episode_length" in {f.name for f in dataclasses.fields(config_class)}:
        overrides.setdefault("episode_length", episode_length)
    if run.model_size is None:
        return config_class.from_dict(overrides)
    size = int(run.model_size) if run.model_size.isdigit() else run.model_size
    return config_class.preset(size, **overrides)


class OnlineTrainer:
    def __init__(self, run: OnlineRun, out: Path, make_environment: Callable[[int], Env] | None = None,
                 log: Callable[[str], None] = print) -> None:
        self.run, self.out, self.log = run, Path(out), log
        if run.threads is not None:
            torch.set_num_threads(run.threads)
        self.make_environment = make_environment or (lambda seed: make_env(run.env, seed, **run.env_options))
        self.env = self.make_environment(run.seed)
        self.eval_env = self.make_environment(run.seed + EVAL_SEED_OFFSET)
        torch.manual_seed(run.seed)
        config = build_config(run, self.env.max_episode_steps)
        self.agent = agent_class(run.algo)(config, tuple(self.env.observation_shape), self.env.action_dim)
        self.agent.to(run.device)
        pixels = len(self.env.observation_shape) == 3
        self.replay = ReplayBuffer(min(run.buffer_size, run.steps + run.steps // 10 + 1000),
                                   tuple(self.env.observation_shape), self.env.action_dim,
                                   np.uint8 if pixels else np.float32, seed=run.seed)
        self.rng = np.random.default_rng(run.seed)
        self.step, self.episode, self.updates, self.update_debt = 0, 0, 0, 0.0
        self.evaluations: list[dict] = []
        self.next_eval = run.eval_every
        self.next_checkpoint = run.checkpoint_every

    # --- checkpoints ---

    def save(self) -> Path:
        def write(tmp: Path) -> None:
            self.agent.save(tmp)
            tensors = dict(self.replay.state_tensors())
            optimizers = {}
            for name, optimizer in self.agent.optimizers.items():
                optimizer_tensors, optimizers[name] = optimizer_state(optimizer, f"optimizer.{name}")
                tensors.update(optimizer_tensors)
            tensors["rng.torch"] = torch.get_rng_state()
            save_weights(tensors, tmp / STATE_TENSORS)
            write_json(tmp / STATE_JSON, {
                "step": self.step, "episode": self.episode, "updates": self.updates,
                "update_debt": self.update_debt, "next_eval": self.next_eval,
                "next_checkpoint": self.next_checkpoint, "optimizers": optimizers,
                "rng_numpy": self.rng.bit_generator.state, "rng_replay": self.replay.rng.bit_generator.state,
                "evaluations": self.evaluations,
            })
        path = write_directory_atomically(self.out / CHECKPOINTS_DIR / step_dir_name(self.step), write)
        for old in list(checkpoint_steps(self.out).values())[:-self.run.keep_checkpoints]:
            shutil.rmtree(old)
        return path

    def restore(self, directory: Path) -> None:
        meta = read_json(directory / STATE_JSON)
        tensors = load_file(str(directory / STATE_TENSORS))
        load_weights(self.agent, directory / WEIGHTS_FILE)
        for name, optimizer in self.agent.optimizers.items():
            load_optimizer_state(optimizer, tensors, meta["optimizers"][name], f"optimizer.{name}")
        self.replay.load_state_tensors(tensors)
        restore_rng_state(tensors["rng.torch"])
        self.rng.bit_generator.state = meta["rng_numpy"]
        self.replay.rng.bit_generator.state = meta["rng_replay"]
        self.step, self.episode, self.updates = meta["step"], meta["episode"], meta["updates"]
        self.update_debt, self.next_eval = meta["update_debt"], meta["next_eval"]
        self.next_checkpoint, self.evaluations = meta["next_checkpoint"], meta["evaluations"]

    # --- the loop ---

    def train(self, writer: SummaryWriter | None = None) -> list[dict]:
        agent, run = self.agent, self.run
        started = time.perf_counter()
        while self.step < run.steps:
            observation, _ = self.env.reset(seed=episode_seed(run.seed, self.episode))
            agent.reset()
            self.replay.start_episode(observation)
            episode_return, done = 0.0, False
            while not done and self.step < run.steps:
                if self.step < agent.seed_steps:
                    action = self.rng.uniform(-1.0, 1.0, self.env.action_dim).astype(np.float32)
                else:
                    action = agent.act(observation)
                observation, reward, terminated, truncated, _ = self.env.step(action)
                self.replay.add(action, reward, observation, terminated)
                episode_return += reward
                done = terminated or truncated
                self.step += 1
                metrics = self._learn()
                if metrics and writer is not None and self.updates % 100 == 0:
                    for name, value in metrics.items():
                        writer.add_scalar(f"train/{name}", value, self.step)
            self.episode += 1
            if writer is not None:
                writer.add_scalar("train/episode_return", episode_return, self.step)
            if self.step >= self.next_eval or self.step >= run.steps:
                self._evaluate(writer, started)
            if self.step >= self.next_checkpoint or self.step >= run.steps:
                self.next_checkpoint = (self.step // run.checkpoint_every + 1) * run.checkpoint_every
                self.log(f"checkpoint {self.save()}")
        return self.evaluations

    def _learn(self) -> dict[str, float] | None:
        agent = self.agent
        if self.step < agent.seed_steps:
            return None
        self.update_debt += agent.updates_per_step
        if self.step == agent.seed_steps:
            # TD-MPC2 pretrains on the seed data with as many updates as seed steps; other agents give 0.
            self.update_debt += agent.pretrain_updates
        metrics = None
        while self.update_debt >= 1.0:
            metrics = agent.update(self.replay.sample(agent.config.batch_size, agent.sequence_length))
            self.update_debt -= 1.0
            self.updates += 1
        return metrics

    def _evaluate(self, writer: SummaryWriter | None, started: float) -> None:
        result = evaluate(self.agent, self.eval_env, self.run.eval_episodes, self.run.seed)
        result |= {"step": self.step, "updates": self.updates, "wall_seconds": time.perf_counter() - started}
        self.evaluations.append(result)
        write_json(self.out / EVAL_FILE, {"run": dataclasses.asdict(self.run), "evaluations": self.evaluations})
        if writer is not None:
            for name in ("return_mean", "success_rate"):
                if name in result:
                    writer.add_scalar(f"eval/{name}", result[name], self.step)
        success = f", success {result['success_rate']:.0%}" if "success_rate" in result else ""
        self.log(f"step {self.step}: eval return {result['return_mean']:.1f} ± {result['return_std']:.1f}"
                 f"{success} ({result['wall_seconds']:.0f} s)")
        self.next_eval = (self.step // self.run.eval_every + 1) * self.run.eval_every

    def close(self) -> None:
        self.env.close()
        self.eval_env.close()


def train_online(run: OnlineRun, out: Path, resume: bool = False,
                 make_environment: Callable[[int], Env] | None = None, log: Callable[[str], None] = print) -> list[dict]:
    """Train (or continue) the run in `out`; returns the evaluation history."""
    out = Path(out)
    if resume:
        started_as = read_json(out / RUN_FILE)
        run = OnlineRun(**started_as) if run is None else run
        if started_as | {"steps": run.steps} != dataclasses.asdict(run):
            raise ValueError(f"--resume continues the run in {out} as it was started; only --steps may change")
    elif (out / RUN_FILE).exists():
        raise FileExistsError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / RUN_FILE, dataclasses.asdict(run))
    trainer = OnlineTrainer(run, out, make_environment, log)
    try:
        checkpoint = latest_checkpoint(out) if resume else None
        if checkpoint is not None:
            trainer.restore(checkpoint)
            log(f"resumed from {checkpoint} at step {trainer.step}")
        with SummaryWriter(str(out / "tensorboard")) as writer:
            return trainer.train(writer)
    finally:
        trainer.close()


# --- command line ------------------------------------------------------------------------------------------

def parse_override(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"--set takes NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def build_parser(algo: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"agent-stack train control --algo {algo}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=sorted(AGENT_PACKAGES), default=algo, help=argparse.SUPPRESS)
    parser.add_argument("--env", help="PREFIX:NAME, e.g. dmc:walker-walk or tabletop:reach (required unless --resume)")
    parser.add_argument("--out", type=Path, required=True, help="run directory")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its latest checkpoint")
    parser.add_argument("--steps", type=int, default=None,
                        help="environment steps (agent steps) to train (default 100000); with --resume, extends "
                             "the run to this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-size", default=None, help="preset: TD-MPC2 1/5/19/48/317, DreamerV3 XS/S/M/L/XL")
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="NAME=VALUE",
                        help="override a config field (JSON value), repeatable")
    parser.add_argument("--obs-type", choices=("state", "pixels"), default=None, help="dm_control observations")
    parser.add_argument("--action-repeat", type=int, default=None, help="dm_control action repeat (default 2)")
    parser.add_argument("--image-size", type=int, default=None, help="pixel observation size (default 64)")
    parser.add_argument("--eval-every", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--checkpoint-every", type=int, default=50_000)
    parser.add_argument("--buffer-size", type=int, default=1_000_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def main(argv: list[str] | None = None, algo: str = "tdmpc2") -> int:
    args = build_parser(algo).parse_args(sys.argv[1:] if argv is None else argv)
    run = None
    try:
        if args.resume and args.steps is not None:
            run = dataclasses.replace(OnlineRun(**read_json(args.out / RUN_FILE)), steps=args.steps)
        elif not args.resume:
            if not args.env:
                raise ValueError("--env is required for a new run")
            env_options = {"obs_type": args.obs_type, "action_repeat": args.action_repeat,
                           "image_size": args.image_size}
            run = OnlineRun(algo=args.algo, env=args.env, steps=args.steps or 100_000, seed=args.seed,
                            model_size=args.model_size, overrides=dict(args.set),
                            env_options={k: v for k, v in env_options.items() if v is not None},
                            eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                            checkpoint_every=args.checkpoint_every, buffer_size=args.buffer_size,
                            device=args.device, threads=args.threads)
        evaluations = train_online(run, args.out, resume=args.resume)
    except (ValueError, TypeError, FileExistsError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if evaluations:
        print(f"final eval return {evaluations[-1]['return_mean']:.1f} at step {evaluations[-1]['step']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
