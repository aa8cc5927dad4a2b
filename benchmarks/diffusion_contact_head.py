"""Does a Diffusion Policy's position head find the named block on the evaluation episodes?

    MUJOCO_GL=egl .venv/bin/python benchmarks/diffusion_contact_head.py \
        --checkpoint outputs/dp_contact_cond/run/checkpoints/step_0000{2,5}000 --episodes 20 \
        --out benchmarks/results/diffusion_contact_head.json

A policy trained with `--position-loss-weight` reads the contact point (where the hand will meet the object)
from the first front frame of an episode and the instruction (`DiffusionPolicy.contact_point`); with
`--contact-conditioning` it conditions every chunk on it. This renders the first frame of each held-out
evaluation episode of `eval control` (same seeds, same rendering), asks the policy for its contact point,
and measures the x-y distance to the named block's centre in the simulator, against predicting the mean
block position of those episodes. No closed loop: it checks the "where" before `eval control` checks
the whole policy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from agent_stack.data.tabletop import TABLETOP_CONTROL_HZ
from sim.collect import episode_task
from sim.evaluate import eval_seed, load_policy, policy_observation
from sim.tabletop_env import TabletopConfig, TabletopEnv

WITHIN_M = 0.03
"""A contact point closer than this to the block's centre is on the block (blocks are 5 cm wide)."""
FAMILY = "pick_up"
"""The family whose contact point is the named block (`color`) itself."""


def contact_errors(checkpoint: Path, episodes: int, seed: int) -> tuple[Path, dict, np.ndarray]:
    """The checkpoint's directory and metadata, and per episode the x-y distance from the head's contact point
    to the named block's centre and that block's x-y: (episodes, 3)."""
    directory, policy = load_policy("diffusion", checkpoint.expanduser(), "cpu")
    if policy.model.position_head is None:
        raise ValueError(f"{directory} has no position head: train it with --position-loss-weight")
    size = policy.config.image_size
    env = TabletopEnv(TabletopConfig(control_mode="ee_delta", image_size=(size, size),
                                     policy_hz=float(policy.control_hz or TABLETOP_CONTROL_HZ)))
    rows = []
    for episode in range(episodes):
        episode_seed = eval_seed(FAMILY, seed, episode)
        task, instruction = episode_task(FAMILY, episode_seed)
        observation, _ = env.reset(seed=episode_seed, task=task)
        policy.reset(instruction)
        policy.observe(policy_observation(observation))
        block = env.scene_state().block(task.color).pos[:2]
        rows.append([np.linalg.norm(policy.contact_point[:2] - block), *block])
    env.close()
    return directory, policy.metadata, np.array(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, nargs="+", required=True,
                        help="checkpoint or training run directories, compared on the same episodes")
    parser.add_argument("--episodes", type=int, default=20, help="held-out pick_up episodes (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="base evaluation seed, as `eval control --seed`")
    parser.add_argument("--out", type=Path, help="JSON file to write the results to")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error(f"--episodes must be at least 2 (the baseline is their mean), got {args.episodes}")

    table = Table(title=f"contact point from the first frame: x-y distance to the named block, "
                        f"{args.episodes} held-out {FAMILY} episodes")
    for column in ("contact point from", "step", "median", f"within {WITHIN_M * 100:.0f} cm"):
        table.add_column(column)
    results = []
    for checkpoint in args.checkpoint:
        try:
            directory, metadata, rows = contact_errors(checkpoint, args.episodes, args.seed)
        except ValueError as error:
            parser.error(str(error))
        results.append({"checkpoint": str(directory), "step": metadata.get("step"),
                        "median_error_cm": round(float(np.median(rows[:, 0])) * 100, 1),
                        "within_3cm": round(float(np.mean(rows[:, 0] < WITHIN_M)), 3)})
        table.add_row(str(checkpoint), str(metadata.get("step")),
                      f"{results[-1]['median_error_cm']} cm", f"{results[-1]['within_3cm']:.0%}")
    blocks = rows[:, 1:]  # the same episodes, so the same blocks, for every checkpoint
    baseline = np.linalg.norm(blocks - blocks.mean(axis=0), axis=1)
    mean_baseline = {"median_error_cm": round(float(np.median(baseline)) * 100, 1),
                     "within_3cm": round(float(np.mean(baseline < WITHIN_M)), 3)}
    table.add_row("the mean block position", "", f"{mean_baseline['median_error_cm']} cm",
                  f"{mean_baseline['within_3cm']:.0%}")
    Console().print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"family": FAMILY, "episodes": args.episodes, "seed": args.seed,
                                        "heads": results, "mean_baseline": mean_baseline}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
