"""Diffusion Policy as the stack's controller: reaching end-effector targets in the tabletop sim.

    .venv/bin/python benchmarks/diffusion_reach.py --checkpoint outputs/dp_ctrl --episodes 50 \
        --out benchmarks/results/diffusion_reach.json

The checkpoint is a Diffusion Policy trained with `--goal ee_target` (state only) on `collect`
demonstrations. Each episode draws a target in `sim.evaluate.REACH_LOW/HIGH` on an evaluation seed
(`sim.evaluate.run_reach`); the policy acts at 10 Hz in ee_delta mode until the hand is within 2 cm or 60
steps (6 s) pass. Rows: the trained checkpoint; the same network with its initial random weights (and the
same statistics), which the trained one must beat; a straight-line reference that commands the
displacement clipped to the env's per-step limit (what an ideal tracker does). Prints a table and writes
JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from agent_stack.checkpoint import resolve_checkpoint
from agent_stack.control.diffusion import DiffusionModel, DiffusionPolicy
from sim.evaluate import reach_seed, run_reach
from sim.tabletop_env import TabletopConfig, TabletopEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "diffusion_reach.json"


class StraightLine:
    """Commands the remaining displacement, clipped by the env to its per-step translation limit."""

    def reset(self) -> None:
        self.target = None

    def set_target(self, position) -> None:
        self.target = np.asarray(position, dtype=np.float64)

    def act(self, observation: dict) -> np.ndarray:
        return np.concatenate([self.target - observation["state"][:3], np.zeros(3), [1.0]]).astype(np.float32)


def evaluate(name: str, policy, episodes: int, seed: int, max_steps: int, tolerance: float) -> dict:
    env = TabletopEnv(TabletopConfig(control_mode="ee_delta", render=False, max_episode_steps=max_steps + 1))
    started = time.perf_counter()
    try:
        results = [run_reach(env, policy, reach_seed(seed, episode), max_steps, tolerance)
                   for episode in range(episodes)]
    finally:
        env.close()
    successes = [r for r in results if r.success]
    return {"policy": name, "episodes": episodes, "success_rate": len(successes) / episodes,
            "mean_steps_to_success": float(np.mean([r.steps for r in successes])) if successes else None,
            "median_final_distance_m": float(np.median([r.final_distance for r in results])),
            "seconds": round(time.perf_counter() - started, 1),
            "episodes_detail": [r.__dict__ for r in results]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="Diffusion Policy checkpoint trained with --goal ee_target")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=60)
    parser.add_argument("--tolerance", type=float, default=0.02, help="metres")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    trained = DiffusionPolicy.from_pretrained(args.checkpoint)
    if trained.config.goal != "ee_target":
        parser.error(f"{args.checkpoint} is conditioned on {trained.config.goal!r}, "
                     "not an end-effector target")
    torch.manual_seed(args.seed)
    untrained = DiffusionPolicy(DiffusionModel(trained.config), trained.statistics, trained.metadata)
    rows = [evaluate(name, policy, args.episodes, args.seed, args.max_steps, args.tolerance)
            for name, policy in (("diffusion (trained)", trained), ("diffusion (untrained)", untrained),
                                 ("straight line (reference)", StraightLine()))]

    table = Table(title=f"Reaching {args.episodes} targets within {args.tolerance * 100:.0f} cm, "
                        f"{args.max_steps} steps at 10 Hz")
    for column in ("policy", "success", "mean steps to success", "median final distance", "wall s"):
        table.add_column(column)
    for row in rows:
        steps = row["mean_steps_to_success"]
        table.add_row(row["policy"], f"{row['success_rate']:.0%}", "-" if steps is None else f"{steps:.1f}",
                      f"{row['median_final_distance_m'] * 100:.1f} cm", f"{row['seconds']:.0f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "diffusion_reach", "checkpoint": str(resolve_checkpoint(args.checkpoint)),
        "step": trained.metadata.get("step"), "episodes": args.episodes, "seed": args.seed,
        "max_steps": args.max_steps, "tolerance_m": args.tolerance, "results": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
