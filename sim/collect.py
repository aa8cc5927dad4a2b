"""`agent-stack collect`: scripted-expert demonstrations in the tabletop sim, written as an RLDS dataset.

    agent-stack collect --task pick_up --episodes 100 --out ~/tensorflow_datasets
    agent-stack collect --task all --episodes 50 --out data/ --workers 2

writes the TFDS builder directory OUT/agent_stack_tabletop/1.2.0/ in the Open-X schema of
`agent_stack.data.tabletop` (front and wrist JPEG images, 14-D state, 7-D end-effector delta action and
the target pose it set, language instruction, per-episode seed / family / task / success / recolouring).
`open_rlds("OUT/agent_stack_tabletop")` reads it through the same standardisation path as an Open-X
download.

Steps. Step t holds the observation the expert saw, the action it took from there, and the reward that
action earned (RLDS's (o_t, a_t, r_t)). An episode of T actions has T steps: the observation after the
last action is not stored, so, as in most Open-X datasets, every step's action is a real one and none has
to be masked out in training. The last step has is_last=True; it also has is_terminal=True and reward 1.0
when its action completed the task. A time-out (kept only with --keep-failures) ends with
is_terminal=False. Actions are rounded to float32 before the env executes them, so the stored actions
replayed open-loop from the stored seed reproduce the episode exactly.

Seeds. Episode slot i (0 … N-1) of a family tries seeds S + 10 i + 0, 1, … until the expert succeeds (at
most 10 tries; with --keep-failures only the first, kept whatever happens). S is --seed plus the family
name's CRC-32 shifted above bit 31: every family has a seed range of its own, the same whichever families
are collected together. The seed drives the env's layout, the task's colours and which of the family's
phrasings the episode's instruction uses.

Colour permutations. With --colour-permutations K, every demonstration is written K + 1 times: as run, then
K copies that show it with the colours renamed (K distinct renamings, drawn from the seed, none the
identity). A copy's images are rendered from the same physics with each block and pad drawn in its new
colour, its instruction names the new colours, and its actions, states and rewards are the demonstration's.
The policy then sees the same motion asked for by different colour words, so it has to read the colour
from the instruction and find it in the image rather than learn which motions each colour word goes with
in a few hundred layouts. A copy's metadata holds the renamed task and the renaming ("red:blue
green:green blue:red yellow:yellow": the red block and pad are drawn blue and called blue); its seed
replays it with the task renamed back.

Shards and resuming. A family's slots fill ceil(N / --episodes-per-shard) shards in order (a slot's
recoloured copies go with it), families one after the other, so the layout follows from the arguments
alone. A shard file is written atomically once all its episodes are in; a re-run with the same
arguments skips the shards that exist and writes only the missing ones, and a re-run with other arguments
into the same directory is refused (collect_summary.json in the builder directory records them).
The TFDS metadata is written last, once every shard exists.

Processes. The simulation and rendering run in spawned worker processes (--workers, default: one per
CPU, at most 8); this process schedules them and writes the shards.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import multiprocessing
import os
import sys
import time
import zlib
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from agent_stack.data.rlds_writer import RLDSWriter
from agent_stack.data.tabletop import TABLETOP_CONTROL_HZ, TABLETOP_DATASET, TABLETOP_VERSION, tabletop_features
from sim.experts import command_to_ee_delta, make_expert
from sim.state import COLORS, colour_renaming
from sim.tabletop_env import TabletopConfig, TabletopEnv
from sim.tasks import FAMILIES, Task, recolour_instruction, sample_task

SUMMARY_FILE = "collect_summary.json"
ATTEMPTS_PER_EPISODE = 10
"""Seeds one episode slot may try; the experts succeed on over 95 % of seeds, so running out is a bug."""
FAMILY_SEED_SHIFT = 31
"""A family's seeds start at its CRC-32 times 2**31; slot seeds (--seed + 10 * slot + try) stay below."""


# --- the plan: which episodes go to which shard ----------------------------------------------------------

@dataclass(frozen=True)
class Shard:
    index: int
    family: str
    slots: tuple[int, ...]
    """The family's episode slots stored in this shard, in order."""


@dataclass(frozen=True)
class CollectPlan:
    """The arguments that decide what is written where; a resumed run must repeat them exactly."""

    families: tuple[str, ...]
    episodes: int
    """Episodes per family: successful ones, unless keep_failures."""
    episodes_per_shard: int
    seed: int
    image_size: int
    keep_failures: bool
    colour_permutations: int = 0
    """Recoloured copies written after every demonstration."""

    def __post_init__(self) -> None:
        for name in ("episodes", "episodes_per_shard", "image_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        renamings = math.factorial(len(COLORS)) - 1
        if not 0 <= self.colour_permutations <= renamings:
            raise ValueError(f"--colour-permutations must be within 0…{renamings} (the renamings of "
                             f"{len(COLORS)} colours other than the identity), "
                             f"got {self.colour_permutations}")
        if self.seed < 0 or self.seed + self.episodes * ATTEMPTS_PER_EPISODE >= 2**FAMILY_SEED_SHIFT:
            raise ValueError(f"--seed must be >= 0 and --seed + {ATTEMPTS_PER_EPISODE} * --episodes below "
                             f"2**{FAMILY_SEED_SHIFT}, got seed {self.seed} and {self.episodes} episodes")

    @property
    def num_shards(self) -> int:
        return len(self.families) * math.ceil(self.episodes / self.episodes_per_shard)

    def shards(self) -> list[Shard]:
        shards = []
        for family in self.families:
            for first in range(0, self.episodes, self.episodes_per_shard):
                count = min(self.episodes_per_shard, self.episodes - first)
                shards.append(Shard(len(shards), family, tuple(range(first, first + count))))
        return shards


def select_families(text: str, known) -> tuple[str, ...]:
    """'all' -> every known family (sorted); 'a,b' -> those, in the given order, without repeats."""
    if text.strip() == "all":
        return tuple(sorted(known))
    families = tuple(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))
    unknown = [f for f in families if f not in known]
    if unknown or not families:
        raise ValueError(f"unknown task family {', '.join(map(repr, unknown)) or repr(text)}; choose 'all' "
                         f"or one or more (comma-separated) of: {', '.join(sorted(known))}")
    return families


def episode_seed(family: str, base_seed: int, slot: int, attempt: int) -> int:
    family_start = zlib.crc32(family.encode()) << FAMILY_SEED_SHIFT
    return family_start + base_seed + slot * ATTEMPTS_PER_EPISODE + attempt


# --- worker processes: simulate and render --------------------------------------------------------------

_ENV = None
"""The worker process's env, built once by `_start_worker`."""


def _start_worker(config) -> None:
    global _ENV
    _ENV = TabletopEnv(config)


def sample_renamings(rng: np.random.Generator, count: int) -> list[dict[str, str]]:
    """`count` distinct colour renamings, none the identity."""
    orders = list(itertools.permutations(COLORS))[1:]  # the first is COLORS in order: the identity
    return [dict(zip(COLORS, orders[i])) for i in rng.choice(len(orders), size=count, replace=False)]


def format_renaming(renaming: dict[str, str]) -> str:
    """{"red": "blue", "blue": "red"} -> "red:blue green:green blue:red yellow:yellow"; {} -> ""."""
    return " ".join(f"{old}:{new}" for old, new in colour_renaming(renaming).items()) if renaming else ""


def _camera_images(env, observation: dict, renaming: dict[str, str]) -> dict[str, np.ndarray]:
    """The step's RLDS images, rendered again with the colours renamed unless `renaming` is empty."""
    if not renaming:
        return {"image": observation["front"], "wrist_image": observation["wrist"]}
    with env.recoloured(renaming):
        return {"image": env.render("front"), "wrist_image": env.render("wrist")}


def episode_task(family: str, seed: int) -> tuple[Task, str]:
    """The task and instruction phrasing of the episode with `seed` (evaluation draws its tasks alike)."""
    # Streams of their own (the task draw first, the colour renamings second): env.reset draws the layout
    # from default_rng(seed).
    task_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    task = sample_task(family, task_rng)
    phrasings = task.phrasings()
    return task, phrasings[task_rng.integers(len(phrasings))]


def record_episode(env, family: str, seed: int, colour_permutations: int = 0) -> list[dict]:
    """One expert episode as RLDS episode dicts: the demonstration as run, then its `colour_permutations`
    recoloured copies (see the module docstring for the step convention and the copies)."""
    task, instruction = episode_task(family, seed)
    renaming_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
    renamings = [{}, *sample_renamings(renaming_rng, colour_permutations)]
    observation, _ = env.reset(seed=seed, task=task)
    expert, config = make_expert(task), env.config
    shown = [(renaming, recolour_instruction(instruction, renaming), []) for renaming in renamings]
    success = truncated = False
    while not (success or truncated):
        state = env.scene_state()
        # Relative to the env's integrated target, as rollout_expert does; float32 first, so the env runs
        # exactly the action the dataset stores.
        action = command_to_ee_delta(state, expert.act(state), config.max_translation, config.max_rotation,
                                     env.ee_target_pose()).astype(np.float32)
        images = [_camera_images(env, observation, renaming) for renaming in renamings]
        next_observation, reward, success, truncated, _ = env.step(action)
        target_pose = np.concatenate(env.ee_target_pose()).astype(np.float32)
        for (_, text, steps), step_images in zip(shown, images):
            steps.append({
                "observation": {**step_images, "state": observation["state"]},
                "action": action, "target_pose": target_pose, "language_instruction": text,
                "reward": reward, "discount": 1.0,
                "is_first": not steps, "is_last": success or truncated, "is_terminal": success,
            })
        observation = next_observation
    return [{"steps": steps,
             "episode_metadata": {"seed": seed, "task_family": family, "success": success,
                                  "task": recolour_instruction(task.instruction, renaming),
                                  "recolouring": format_renaming(renaming)}}
            for renaming, _, steps in shown]


def collect_slot(family: str, slot: int, base_seed: int, keep_failures: bool,
                 colour_permutations: int) -> dict:
    """The episodes of one slot: the demonstration on the first seed the expert solves (or with keep_failures
    the first seed's), then its recoloured copies."""
    started = time.perf_counter()
    tries = 1 if keep_failures else ATTEMPTS_PER_EPISODE
    for attempt in range(tries):
        seed = episode_seed(family, base_seed, slot, attempt)
        try:
            episodes = record_episode(_ENV, family, seed, colour_permutations)
        except Exception as error:
            raise RuntimeError(f"{family} episode slot {slot}, seed {seed}: {error}") from error
        if keep_failures or episodes[0]["episode_metadata"]["success"]:
            return {"episodes": episodes, "attempts": attempt + 1, "seconds": time.perf_counter() - started}
    raise RuntimeError(f"the {family} expert failed on {tries} seeds in a row (slot {slot}, seeds "
                       f"{episode_seed(family, base_seed, slot, 0)}…{seed}); check it with "
                       "benchmarks/expert_success.py")


# --- this process: schedule, write shards, report ---------------------------------------------------------

class SummaryMismatchError(RuntimeError):
    """The output directory holds a collection made with other arguments."""


def load_summary(builder_dir: Path, plan: CollectPlan) -> dict:
    """The summary of earlier runs into `builder_dir` (for resuming), or a fresh one; refuses other plans."""
    path = builder_dir / SUMMARY_FILE
    arguments = asdict(plan) | {"families": list(plan.families)}  # as it reads back from JSON
    if not path.is_file():
        if any(builder_dir.glob("*.tfrecord-*")):
            raise SummaryMismatchError(f"{builder_dir} holds shards but no {SUMMARY_FILE}: they were not "
                                       "written by `agent-stack collect`; choose another --out")
        return {"arguments": arguments, "shards": {}}
    summary = json.loads(path.read_text())
    if summary["arguments"] != arguments:
        earlier = {k: v for k, v in summary["arguments"].items() if arguments.get(k) != v}
        raise SummaryMismatchError(f"{builder_dir} was collected with other arguments {earlier}; re-run with "
                                   "those to resume it, or choose another --out")
    return summary


def save_summary(builder_dir: Path, summary: dict) -> None:
    builder_dir.mkdir(parents=True, exist_ok=True)
    partial = builder_dir / f".{SUMMARY_FILE}.partial"
    partial.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(partial, builder_dir / SUMMARY_FILE)


def family_totals(summary: dict, families: tuple[str, ...]) -> dict[str, dict]:
    totals = {}
    for family in families:
        shards = [s for s in summary["shards"].values() if s["family"] == family]
        episodes, attempts = sum(s["episodes"] for s in shards), sum(s["attempts"] for s in shards)
        successes, steps = sum(s["successes"] for s in shards), sum(s["steps"] for s in shards)
        totals[family] = {"episodes": episodes, "attempts": attempts,
                          "success_rate": round(successes / attempts, 4) if attempts else None,
                          "mean_steps": round(steps / episodes, 1) if episodes else None}
    return totals


def _progress():
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class EpisodesPerMinute(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed * 60:.1f} episodes/min" if speed else "… episodes/min")

    return Progress(TextColumn("collect"), BarColumn(), MofNCompleteColumn(), TextColumn("episodes"),
                    EpisodesPerMinute(), TimeElapsedColumn(), TimeRemainingColumn())


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def collect(plan: CollectPlan, env_config, out: Path, workers: int) -> Path:
    """Write (or complete) the dataset for `plan` under `out`; returns the builder directory."""
    description = (f"Scripted-expert demonstrations in the agent_stack MuJoCo tabletop (Kinova Jaco, "
                   f"{TABLETOP_CONTROL_HZ} Hz), written by `agent-stack collect`.")
    writer = RLDSWriter(out, TABLETOP_DATASET, tabletop_features(plan.image_size), version=TABLETOP_VERSION,
                        description=description)
    summary = load_summary(writer.builder_dir, plan)
    save_summary(writer.builder_dir, summary)  # records the arguments before any shard exists
    shards = plan.shards()
    skipped = [s.index for s in shards if writer.has_shard(s.index, plan.num_shards)]
    pending = [s for s in shards if s.index not in skipped]
    if skipped:
        print(f"skipped {len(skipped)} of {plan.num_shards} shards already written: {_ranges(skipped)}")

    started = time.perf_counter()
    total = sum(len(s.slots) for s in pending)
    with _progress() as progress, ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_worker, initargs=(env_config,)) as pool:
        bar = progress.add_task("collect", total=total)
        futures = {pool.submit(collect_slot, shard.family, slot, plan.seed, plan.keep_failures,
                               plan.colour_permutations):
                   (shard, position) for shard in pending for position, slot in enumerate(shard.slots)}
        results = {shard.index: [None] * len(shard.slots) for shard in pending}
        remaining = set(futures)
        try:
            while remaining:
                done, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                for future in done:
                    # Popped, so the future and the episode it holds are freed once the shard is written.
                    shard, position = futures.pop(future)
                    results[shard.index][position] = future.result()  # re-raises a worker's error
                    progress.advance(bar)
                    if all(r is not None for r in results[shard.index]):
                        _write_shard(writer, plan, shard, results.pop(shard.index), summary)
        except BaseException:
            # Stop at the first error (or Ctrl-C) rather than after every queued episode; the shards written
            # so far stay, and a re-run resumes from them.
            pool.shutdown(cancel_futures=True)
            raise

    builder = writer.finalize(plan.num_shards)
    wall = time.perf_counter() - started
    summary["families"] = family_totals(summary, plan.families)
    summary["episodes"] = builder.info.splits["train"].num_examples
    summary["last_run"] = {"shards_written": len(pending), "shards_skipped": len(skipped), "episodes": total,
                           "workers": workers, "wall_seconds": round(wall, 1),
                           "episodes_per_minute": round(60 * total / wall, 1) if total else None}
    save_summary(writer.builder_dir, summary)
    print(f"wrote {summary['episodes']} episodes in {plan.num_shards} shards to {writer.builder_dir} "
          f"({total} demonstrations collected by this run in {wall:.0f} s); summary in {SUMMARY_FILE}")
    return writer.builder_dir


def _write_shard(writer, plan: CollectPlan, shard: Shard, results: list[dict], summary: dict) -> None:
    writer.write_shard(shard.index, plan.num_shards, [e for r in results for e in r["episodes"]])
    demonstrations = [r["episodes"][0] for r in results]
    summary["shards"][str(shard.index)] = {
        "family": shard.family, "episodes": len(demonstrations),
        "recoloured_copies": sum(len(r["episodes"]) - 1 for r in results),
        "successes": sum(e["episode_metadata"]["success"] for e in demonstrations),
        "attempts": sum(r["attempts"] for r in results),
        "steps": sum(len(e["steps"]) for e in demonstrations),
        "collect_seconds": round(sum(r["seconds"] for r in results), 2),
    }
    save_summary(writer.builder_dir, summary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-stack collect",
        description="Run the scripted experts in the tabletop sim and write an RLDS dataset (Open-X schema).")
    parser.add_argument("--task", required=True,
                        help="task family, comma-separated families, or 'all' (see `agent-stack sim tasks`)")
    parser.add_argument("--episodes", type=int, required=True, help="episodes per family")
    parser.add_argument("--out", type=Path, required=True,
                        help="data directory; the dataset goes to OUT/agent_stack_tabletop/<version>/")
    parser.add_argument("--image-size", type=int, default=128,
                        help="side of the square camera images, pixels (default 128)")
    parser.add_argument("--episodes-per-shard", type=int, default=10,
                        help="episodes per shard file (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--keep-failures", action="store_true",
                        help="keep episodes the expert fails (time-outs) instead of trying another seed")
    parser.add_argument("--colour-permutations", type=int, default=0, metavar="K",
                        help="also write every demonstration K more times with the block and pad colours "
                             "renamed in the images and the instruction (default 0; at most 23)")
    parser.add_argument("--workers", type=int, default=min(os.cpu_count() or 1, 8),
                        help="simulation processes (default: one per CPU, at most 8)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.workers < 1:
            raise ValueError(f"--workers must be at least 1, got {args.workers}")
        plan = CollectPlan(select_families(args.task, FAMILIES), args.episodes, args.episodes_per_shard,
                           args.seed, args.image_size, args.keep_failures, args.colour_permutations)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    env_config = TabletopConfig(image_size=(plan.image_size, plan.image_size), policy_hz=TABLETOP_CONTROL_HZ)
    try:
        collect(plan, env_config, args.out.expanduser(), args.workers)
    except SummaryMismatchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
