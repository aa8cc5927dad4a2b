"""`agent-stack eval`: closed-loop evaluation of a trained policy in the tabletop sim.

    agent-stack eval vla --checkpoint runs/vla --tasks pick_up,place_on_pad --episodes 50
    agent-stack eval vla --checkpoint runs/vla/checkpoints/step_00020000 --tasks all --episodes 20 --videos 0
    agent-stack eval control --algo diffusion --checkpoint runs/dp --tasks pick_up,push_left --episodes 50

Each episode resets the env with an evaluation seed, draws the task and its phrasing from that seed exactly
as `agent-stack collect` does, and lets the policy act on every observation (one 7-D end-effector delta
action per env step, at the rate of its training demos) until the task succeeds or --max-steps pass. The
loop (`run_episode`, `run_evaluation`) only needs an object with `reset(instruction)` and
`act(observation) -> (7,) action` (`ClosedLoopPolicy`): `eval vla` adapts `VLAPolicy` to it and
`eval control --algo diffusion` runs `DiffusionPolicy` (which has that shape) with the same loop.

Held-out seeds. Collect's seeds are `crc32(family) * 2**31 + s` with s = --seed + 10 * slot + try below
2**31 (CollectPlan refuses more), hence all below 2**63. Evaluation seeds are
`2**63 + crc32(family) * 2**31 + --seed + episode` with --seed + --episodes at most 2**31: all at or above
2**63, so no evaluation episode replays a training layout whatever arguments either command was given,
and every family keeps a range of its own. The seeds fit in an unsigned 64-bit integer.

Output (--out, default `<checkpoint>/eval/step_<N>-<time>`): `summary.json` (written atomically), and
`videos/<family>-<episode>-seed<seed>-<success|failure>.mp4` for the first --videos episodes of each
family: front camera and wrist camera side by side, one frame per observation (steps + 1 frames).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from agent_stack.data.tabletop import TABLETOP_CONTROL_HZ, TABLETOP_DATASET
from sim.collect import FAMILY_SEED_SHIFT, episode_task, select_families
from sim.reach import REACH_HIGH, REACH_LOW
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import FAMILIES

if TYPE_CHECKING:  # torch and timm load only when a VLA is evaluated
    from agent_stack.vla import VLAPolicy

SUMMARY_FILE = "summary.json"
VIDEOS_DIR = "videos"
EVAL_SEED_OFFSET = 1 << 63
"""Every evaluation seed is at least this; every `agent-stack collect` seed is below it (module docstring)."""
CAMERA_TO_DATASET_KEY = {"front": "image", "wrist": "wrist_image"}
"""Env camera name -> observation key of the RLDS data the policies train on (as sim.collect stores it)."""


class ClosedLoopPolicy(Protocol):
    """What the rollout loop drives: any policy acting on dataset-keyed observations with ee_delta actions."""

    def reset(self, instruction: str) -> None:
        """Start an episode of `instruction`."""

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(7,) action: dx dy dz droll dpitch dyaw (base frame, m and rad) + gripper opening 0 … 1."""


# --- seeds and tasks ---------------------------------------------------------------------------------------

def eval_seed(family: str, base_seed: int, episode: int) -> int:
    """Seed of evaluation episode `episode` of `family`; disjoint from `sim.collect.episode_seed`'s range."""
    return EVAL_SEED_OFFSET + (zlib.crc32(family.encode()) << FAMILY_SEED_SHIFT) + base_seed + episode


@dataclass(frozen=True)
class EvalPlan:
    """Which episodes to run; a bad value is refused here with the flag's name."""

    families: tuple[str, ...]
    episodes: int
    """Episodes per family."""
    seed: int
    max_steps: int
    """Env steps before an episode counts as failed (the env's truncation)."""
    videos: int
    """Episodes recorded per family (the first ones)."""

    def __post_init__(self) -> None:
        for name, low in (("episodes", 1), ("max_steps", 1), ("videos", 0)):
            if getattr(self, name) < low:
                flag = f"--{name.replace('_', '-')}"
                raise ValueError(f"{flag} must be at least {low}, got {getattr(self, name)}")
        if self.seed < 0 or self.seed + self.episodes > 2**FAMILY_SEED_SHIFT:
            raise ValueError(f"--seed must be >= 0 and --seed + --episodes at most 2**{FAMILY_SEED_SHIFT}, "
                             f"got seed {self.seed} and {self.episodes} episodes")

    def seeds(self, family: str) -> list[int]:
        return [eval_seed(family, self.seed, episode) for episode in range(self.episodes)]


# --- the rollout loop --------------------------------------------------------------------------------------

@dataclass
class EpisodeResult:
    family: str
    seed: int
    instruction: str
    success: bool
    steps: int
    """Actions executed."""
    seconds: float
    """Wall time of the episode (simulation, rendering and policy)."""
    policy_seconds: float
    """Wall time spent inside `policy.act`."""
    frames: list[np.ndarray] = field(default_factory=list, repr=False)
    """Video frames, one per observation (steps + 1), when recorded."""
    video: str | None = None
    """Path of the episode's video relative to the output directory, once written."""


def policy_observation(observation: dict) -> dict[str, np.ndarray]:
    """The env observation under the dataset keys the policies were trained on (the rendered cameras), and
    the env's end-effector target (which a policy predicting absolute targets turns into deltas against)."""
    cameras = {key: observation[camera] for camera, key in CAMERA_TO_DATASET_KEY.items()
               if camera in observation}
    return {**cameras, "state": observation["state"], "ee_target": observation["ee_target"]}


def video_frame(observation: dict) -> np.ndarray:
    """The rendered cameras side by side, front first."""
    return np.concatenate([observation[camera] for camera in CAMERA_TO_DATASET_KEY if camera in observation],
                          axis=1)


def run_episode(env: TabletopEnv, policy: ClosedLoopPolicy, family: str, seed: int,
                record: bool = False) -> EpisodeResult:
    """One closed-loop episode: one policy action per env step until success or the env truncates."""
    episode_started = time.perf_counter()
    task, instruction = episode_task(family, seed)
    observation, _ = env.reset(seed=seed, task=task)
    policy.reset(instruction)
    frames = [video_frame(observation)] if record else []
    success = truncated = False
    steps, policy_seconds = 0, 0.0
    while not (success or truncated):
        started = time.perf_counter()
        action = np.asarray(policy.act(policy_observation(observation)), dtype=np.float32)
        policy_seconds += time.perf_counter() - started
        observation, _, success, truncated, _ = env.step(action)
        steps += 1
        if record:
            frames.append(video_frame(observation))
    seconds = time.perf_counter() - episode_started
    return EpisodeResult(family, seed, instruction, bool(success), steps, seconds, policy_seconds, frames)


def run_evaluation(make_env: Callable[[], TabletopEnv], policy: ClosedLoopPolicy, plan: EvalPlan,
                   on_episode: Callable[[EpisodeResult, int], None] | None = None) -> list[EpisodeResult]:
    """Every episode of `plan`, families in order; `on_episode(result, index_in_family)` sees each one (its
    frames are dropped afterwards, so only the recorded episodes in flight are held in memory)."""
    env = make_env()
    if env.config.max_episode_steps != plan.max_steps:
        raise ValueError(f"the env truncates after {env.config.max_episode_steps} steps, the plan after "
                         f"{plan.max_steps}")
    results = []
    try:
        for family in plan.families:
            for index, seed in enumerate(plan.seeds(family)):
                result = run_episode(env, policy, family, seed, record=index < plan.videos)
                if on_episode is not None:
                    on_episode(result, index)
                result.frames = []
                results.append(result)
    finally:
        env.close()
    return results


# --- output ------------------------------------------------------------------------------------------------

def video_name(result: EpisodeResult, index: int) -> str:
    return f"{result.family}-{index:03d}-seed{result.seed}-{'success' if result.success else 'failure'}.mp4"


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> None:
    """H.264 MP4, written under a temporary name first so a killed run leaves no truncated video behind."""
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.partial{path.suffix}")
    with imageio.get_writer(partial, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    os.replace(partial, path)


def write_summary(out: Path, summary: dict) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    partial = out / f".{SUMMARY_FILE}.partial"
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    path = out / SUMMARY_FILE
    os.replace(partial, path)
    return path


def success_statistics(results: list[EpisodeResult]) -> dict:
    """episodes, successes, success_rate, mean_steps (all episodes) and mean_steps_to_success."""
    successes = [r for r in results if r.success]
    mean_steps_to_success = round(float(np.mean([r.steps for r in successes])), 1) if successes else None
    return {"episodes": len(results), "successes": len(successes),
            "success_rate": round(len(successes) / len(results), 4) if results else None,
            "mean_steps": round(float(np.mean([r.steps for r in results])), 1) if results else None,
            "mean_steps_to_success": mean_steps_to_success}


def summarize(results: list[EpisodeResult], plan: EvalPlan, wall_seconds: float) -> dict:
    """The summary.json body minus what the policy kind adds (checkpoint, step, …)."""
    steps = sum(r.steps for r in results)
    rollout_seconds = sum(r.seconds for r in results)
    policy_seconds = sum(r.policy_seconds for r in results)
    families = {}
    for family in plan.families:
        of_family = [r for r in results if r.family == family]
        families[family] = success_statistics(of_family) | {"seeds": [r.seed for r in of_family]}
    return {
        "plan": asdict(plan) | {"families": list(plan.families)},
        "seed_scheme": f"2**63 + crc32(family) * 2**{FAMILY_SEED_SHIFT} + seed + episode (sim/evaluate.py)",
        "families": families,
        "overall": success_statistics(results),
        "episodes": [{"family": r.family, "seed": r.seed, "instruction": r.instruction, "success": r.success,
                      "steps": r.steps, "video": r.video} for r in results],
        "wall_seconds": round(wall_seconds, 2),
        "steps_per_second": round(steps / rollout_seconds, 2) if rollout_seconds > 0 else None,
        "policy_steps_per_second": round(steps / policy_seconds, 2) if policy_seconds > 0 else None,
    }


def print_table(summary: dict, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in ("family", "episodes", "successes", "success rate", "mean steps"):
        table.add_column(column, justify="left" if column == "family" else "right")

    def add(name: str, stats: dict, **style) -> None:
        table.add_row(name, str(stats["episodes"]), str(stats["successes"]), f"{stats['success_rate']:.0%}",
                      f"{stats['mean_steps']:.1f}", **style)

    for family, stats in summary["families"].items():
        add(family, stats)
    add("overall", summary["overall"], style="bold")
    Console().print(table)


def evaluate(make_env: Callable[[], TabletopEnv], policy: ClosedLoopPolicy, plan: EvalPlan, out: Path,
             fps: float, description: dict, title: str) -> dict:
    """Run `plan`, write the videos and summary.json (`description` first: what was evaluated), print the
    table; returns the summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    started = time.perf_counter()
    with Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                  TimeElapsedColumn()) as progress:
        bar = progress.add_task("eval", total=plan.episodes * len(plan.families))

        def on_episode(result: EpisodeResult, index: int) -> None:
            if result.frames:
                result.video = f"{VIDEOS_DIR}/{video_name(result, index)}"
                write_video(result.frames, out / result.video, fps)
            progress.advance(bar)

        results = run_evaluation(make_env, policy, plan, on_episode)
    summary = description | summarize(results, plan, time.perf_counter() - started)
    path = write_summary(out, summary)
    print_table(summary, title)
    videos = sum(r.video is not None for r in results)
    print(f"wrote {path}" + (f" and {videos} videos in {out / VIDEOS_DIR}" if videos else ""))
    return summary


# --- reaching: end-effector targets for a controller ---------------------------------------------------



class TargetTracker(Protocol):
    """What a reach episode drives: a controller that moves the end effector toward a position."""

    def reset(self) -> None: ...

    def set_target(self, position: np.ndarray) -> None: ...

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        """(7,) ee_delta action, as `ClosedLoopPolicy.act`."""


@dataclass
class ReachResult:
    seed: int
    target: list[float]
    success: bool
    """Within `tolerance` of the target at some step."""
    steps: int
    """Steps until success, or the step limit."""
    final_distance: float
    """Metres from the target after the last step."""


def reach_seed(base_seed: int, episode: int) -> int:
    """Reach episodes use the evaluation range too, so no layout is one `collect` recorded."""
    return eval_seed("reach", base_seed, episode)


def run_reach(env: TabletopEnv, policy: TargetTracker, seed: int, max_steps: int = 60,
              tolerance: float = 0.02) -> ReachResult:
    """One episode: a seeded layout and a target drawn in the reach box; the policy acts until the hand is
    within `tolerance` of the target or `max_steps` pass. The block task is irrelevant and ignored."""
    target = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0]).uniform(REACH_LOW, REACH_HIGH)
    observation, _ = env.reset(seed=seed)
    policy.reset()
    policy.set_target(target)
    distance = float(np.linalg.norm(observation["ee_pos"] - target))
    for step in range(1, max_steps + 1):
        observation, *_ = env.step(np.asarray(policy.act({"state": observation["state"]}), np.float32))
        distance = float(np.linalg.norm(observation["ee_pos"] - target))
        if distance < tolerance:
            return ReachResult(seed, target.tolist(), True, step, distance)
    return ReachResult(seed, target.tolist(), False, max_steps, distance)


# --- eval vla ----------------------------------------------------------------------------------------------

class VLAActor:
    """`VLAPolicy` as a `ClosedLoopPolicy`: executes the first action of each predicted chunk."""

    def __init__(self, policy: VLAPolicy) -> None:
        self.policy = policy

    def reset(self, instruction: str) -> None:
        self.policy.reset(instruction)

    def act(self, observation: dict[str, np.ndarray]) -> np.ndarray:
        return self.policy.act(observation).action


def default_out(checkpoint_argument: Path, step: int | None) -> Path:
    """`<checkpoint>/eval/step_<N>-<time>`: says which weights, and never overwrites an earlier evaluation."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return checkpoint_argument / "eval" / (f"step_{step:08d}-{stamp}" if step is not None else stamp)


def check_device(name: str) -> str:
    """`name`, refused as a usage error when torch cannot place a model there (before loading anything)."""
    import torch

    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ValueError(f"--device {name!r} is not a torch device: {error}") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name!r}: CUDA is not available on this machine")
    return name


def load_policy(kind: str, checkpoint: Path, device: str):
    """The checkpoint directory and its policy (`VLAPolicy` or `DiffusionPolicy`), or ValueError naming
    what is wrong (no traceback for the user)."""
    from agent_stack.checkpoint import resolve_checkpoint

    if kind == "vla":
        from agent_stack.vla import VLAPolicy as policy_class
    else:
        from agent_stack.control.diffusion import DiffusionPolicy as policy_class
    try:
        directory = resolve_checkpoint(checkpoint)
        policy = policy_class.from_pretrained(directory, device=device)
    except (FileNotFoundError, ValueError) as error:
        raise ValueError(f"cannot load a {kind} checkpoint from {checkpoint}: {error}") from error
    dataset = policy.metadata.get("dataset")
    if dataset is not None and dataset != TABLETOP_DATASET:
        raise ValueError(f"{directory} acts in the action space of {dataset!r}; the tabletop sim needs a "
                         f"policy trained with {TABLETOP_DATASET!r} as its first dataset")
    return directory, policy


def evaluate_checkpoint(args: argparse.Namespace, plan: EvalPlan) -> int:
    """`eval vla` and `eval control --algo diffusion`: load, build the env at the policy's rate, run."""
    kind = "vla" if args.policy == "vla" else args.algo
    if args.image_size is not None and args.image_size < 1:
        return fail(f"--image-size must be at least 1, got {args.image_size}")
    try:
        directory, policy = load_policy(kind, args.checkpoint.expanduser(), check_device(args.device))
    except ValueError as error:
        return fail(str(error))
    image_size = args.image_size or policy.config.image_size
    policy_hz = float(policy.control_hz or TABLETOP_CONTROL_HZ)
    env_config = TabletopConfig(control_mode="ee_delta", image_size=(image_size, image_size),
                                policy_hz=policy_hz, max_episode_steps=plan.max_steps)
    step = policy.metadata.get("step")
    out = (args.out or default_out(args.checkpoint.expanduser(), step)).expanduser()
    description = {"policy": kind, "checkpoint": str(directory.resolve()), "step": step,
                   "dataset": policy.metadata.get("dataset"), "device": args.device, "image_size": image_size,
                   "policy_hz": policy_hz}
    actor = VLAActor(policy) if kind == "vla" else policy
    evaluate(lambda: TabletopEnv(env_config), actor, plan, out, policy_hz, description,
             title=f"{kind} {directory.name}: success over {plan.episodes} episodes per family")
    return 0


# --- command line ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tasks", required=True,
                        help="task family, comma-separated families, or 'all' (see `agent-stack sim tasks`)")
    common.add_argument("--episodes", type=int, required=True, help="episodes per family")
    common.add_argument("--seed", type=int, default=0,
                        help="base seed; evaluation seeds never overlap collect's (default 0)")
    common.add_argument("--videos", type=int, default=2, help="episodes recorded per family (default 2)")
    common.add_argument("--max-steps", type=int, default=300,
                        help="policy steps before an episode counts as failed (default 300)")
    common.add_argument("--out", type=Path, default=None,
                        help="output directory (default: <checkpoint>/eval/step_<N>-<time>)")

    parser = argparse.ArgumentParser(prog="agent-stack eval",
                                     description="Evaluate a trained policy closed loop in the tabletop sim.")
    common.add_argument("--checkpoint", type=Path, required=True,
                        help="checkpoint directory, or a training run directory (its latest checkpoint)")
    common.add_argument("--device", default="cpu", help="torch device (default cpu)")
    common.add_argument("--image-size", type=int, default=None,
                        help="side of the rendered camera images, pixels (default: the policy's input size)")
    commands = parser.add_subparsers(dest="policy", required=True, metavar="{vla,control}")
    commands.add_parser("vla", parents=[common], help="a VLA checkpoint from `agent-stack train vla`",
                        description="Roll a VLA checkpoint out in the tabletop sim (ee_delta actions).")
    control = commands.add_parser(
        "control", parents=[common], help="a learned controller from `agent-stack train control`",
        description="Roll a learned controller's checkpoint out in the tabletop sim (ee_delta actions).")
    control.add_argument("--algo", choices=("diffusion",), required=True)
    parser.set_defaults(run=evaluate_checkpoint)
    return parser


def fail(message: str) -> int:
    """A usage or checkpoint error: one line on stderr and exit code 2, no traceback."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        plan = EvalPlan(select_families(args.tasks, FAMILIES), args.episodes, args.seed, args.max_steps,
                        args.videos)
    except ValueError as error:
        return fail(str(error))
    # Errors past this point are bugs or broken environments: let them show their traceback.
    return args.run(args, plan)


if __name__ == "__main__":
    sys.exit(main())
