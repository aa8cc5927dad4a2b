"""Success rate of the scripted experts, per task family, in the tabletop env (ee_delta mode, no rendering).

    OMP_NUM_THREADS=1 MUJOCO_GL=egl .venv/bin/python benchmarks/expert_success.py \
        --episodes 100 --families all --workers 2 --out benchmarks/results/expert_success.json

Episode i of family f resets the env with seed i and samples the task (colours, phrasing) from a
generator seeded by (i, f), so every run of the same arguments replays the same episodes. Each worker
process builds its own env once. Prints a table (success rate, mean steps, mean simulated seconds per
family), writes JSON, and exits 1 when a family is below --threshold (an episode that raises counts
as a failure and its error is kept in the JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "expert_success.json"

_ENV = None
"""The worker process's own env, built by `_init_worker`."""


def _init_worker(max_steps: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MUJOCO_GL", "egl")
    global _ENV
    from sim.tabletop_env import TabletopConfig, TabletopEnv
    _ENV = TabletopEnv(TabletopConfig(render=False, max_episode_steps=max_steps))


def run_episode(family: str, seed: int, max_steps: int) -> dict:
    """One seeded expert episode; never raises, so one bad episode cannot sink the whole benchmark."""
    import numpy as np

    from sim.experts import rollout_expert
    from sim.tasks import sample_task

    if _ENV is None:
        _init_worker(max_steps)
    task = sample_task(family, np.random.default_rng([seed, zlib.crc32(family.encode())]))
    try:
        result = rollout_expert(_ENV, task, seed, max_steps)
    except Exception as error:  # noqa: BLE001 - reported per episode in the JSON
        result = {"success": False, "steps": max_steps, "sim_seconds": None, "error": repr(error)}
    return {"family": family, "seed": seed, "instruction": task.instruction, **result}


def summarize(episodes: list[dict], families: list[str]) -> dict[str, dict]:
    summary = {}
    for family in families:
        runs = [e for e in episodes if e["family"] == family]
        finished = [e for e in runs if e["success"]]
        summary[family] = {
            "episodes": len(runs),
            "success_rate": len(finished) / len(runs) if runs else 0.0,
            "mean_steps": _mean([e["steps"] for e in runs]),
            "mean_sim_seconds": _mean([e["sim_seconds"] for e in runs if e["sim_seconds"] is not None]),
            "failed_seeds": [e["seed"] for e in runs if not e["success"]],
        }
    return summary


def _mean(values: list[float]) -> float | None:
    return float(sum(values) / len(values)) if values else None  # None, not NaN: the JSON stays strict


def print_table(summary: dict[str, dict], threshold: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"scripted expert success (threshold {threshold:.0%})")
    for column in ("family", "episodes", "success", "mean steps", "mean sim s", "failed seeds"):
        table.add_column(column, justify="left" if column in ("family", "failed seeds") else "right")
    for family, row in summary.items():
        style = None if row["success_rate"] >= threshold else "bold red"
        seeds = row["failed_seeds"]
        failed = ", ".join(map(str, seeds[:8])) + (" …" if len(seeds) > 8 else "")
        table.add_row(family, str(row["episodes"]), f"{row['success_rate']:.0%}", _fmt(row["mean_steps"]),
                      _fmt(row["mean_sim_seconds"]), failed, style=style)
    Console().print(table)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes (seeds 0..N-1) per family")
    parser.add_argument("--families", default="all", help="'all' or a comma-separated list of family names")
    parser.add_argument("--workers", type=int, default=2, help="spawned worker processes, one env each")
    parser.add_argument("--max-steps", type=int, default=300, help="env steps (10 Hz) before a failure")
    parser.add_argument("--threshold", type=float, default=0.95, help="lowest acceptable success rate")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.workers < 1 or args.max_steps < 1:
        parser.error("--episodes, --workers and --max-steps must be positive integers")
    if not 0.0 <= args.threshold <= 1.0:
        parser.error("--threshold must be in [0, 1]")
    return args


def select_families(spec: str) -> list[str]:
    from sim.tasks import FAMILIES

    if spec == "all":
        return list(FAMILIES)
    families = [name.strip() for name in spec.split(",") if name.strip()]
    unknown = [name for name in families if name not in FAMILIES]
    if unknown or not families:
        raise SystemExit(f"unknown task families {unknown}; known: {sorted(FAMILIES)}")
    return families


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    families = select_families(args.families)
    jobs = [(family, seed, args.max_steps) for family in families for seed in range(args.episodes)]
    start = time.perf_counter()
    if args.workers == 1:
        episodes = [run_episode(*job) for job in jobs]
    else:
        # spawn: a fresh interpreter per worker, no forked MuJoCo / EGL state.
        with ProcessPoolExecutor(args.workers, mp_context=get_context("spawn"), initializer=_init_worker,
                                 initargs=(args.max_steps,)) as pool:
            chunk = max(1, len(jobs) // (8 * args.workers))
            episodes = list(pool.map(run_episode, *zip(*jobs), chunksize=chunk))
    wall = time.perf_counter() - start
    summary = summarize(episodes, families)
    print_table(summary, args.threshold)
    below = [family for family, row in summary.items() if row["success_rate"] < args.threshold]
    results = {"summary": summary, "episodes": episodes, "below_threshold": below,
               "config": {"episodes": args.episodes, "families": families, "workers": args.workers,
                          "max_steps": args.max_steps, "threshold": args.threshold, "policy_hz": 10.0},
               "wall_seconds": wall, "machine": {"cpu": platform.processor() or platform.machine(),
                                                 "python": platform.python_version()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} ({len(episodes)} episodes in {wall:.0f} s)")
    if below:
        print(f"below {args.threshold:.0%}: {', '.join(below)}")
    return 1 if below else 0


if __name__ == "__main__":
    raise SystemExit(main())
