"""VLA learning bar: trained only on sim demonstrations, success on held-out seeds per task family.

    .venv/bin/python benchmarks/vla_learning.py --work outputs/vla_learning \
        --out benchmarks/results/vla_learning.json

Three phases, each the user-facing command (so the benchmark measures what a user runs):
1. `agent-stack collect --task pick_up,place_on_pad --episodes 200` — scripted-expert demonstrations;
2. `agent-stack train vla` on them (the flags below);
3. `agent-stack eval vla` on seeds `collect` never uses (see sim/evaluate.py).
A phase whose output exists is reused (collect and train resume), so an interrupted benchmark continues.
The goal: >= 80 % success on pick_up and place_on_pad. Prints a table and writes JSON with the data size,
training time and the evaluation summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "vla_learning.json"
GOAL = 0.8
TRAIN_FLAGS = ["--steps", "3000", "--batch-size", "32", "--image-size", "96", "--action-head", "continuous",
               "--action-chunk", "4", "--no-augment", "--warmup-steps", "200", "--save-every", "500",
               "--log-every", "25", "--lr", "3e-4"]


def agent_stack(*args: str) -> float:
    """Run `agent-stack ARGS`, streaming its output; returns wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent_stack.cli", *args], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("outputs/vla_learning"),
                        help="where the dataset, the training run and the evaluation go")
    parser.add_argument("--tasks", default="pick_up,place_on_pad")
    parser.add_argument("--demos", type=int, default=200, help="demonstrations per task family")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes per task family")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args, train_overrides = parser.parse_known_args(argv)

    data_root = args.work / "data"
    dataset = data_root / "agent_stack_tabletop" / "1.0.0"
    run = args.work / "run"
    evaluation = args.work / "eval"
    timings = {"collect_s": agent_stack("collect", "--task", args.tasks, "--episodes", str(args.demos),
                                        "--out", str(data_root), "--workers", str(args.workers))}
    resume = ["--resume"] if (run / "run_config.json").is_file() else ["--data", str(dataset), *TRAIN_FLAGS,
                                                                         *train_overrides]
    timings["train_s"] = agent_stack("train", "vla", "--out", str(run), "--no-progress", *resume)
    timings["eval_s"] = agent_stack("eval", "vla", "--checkpoint", str(run), "--tasks", args.tasks,
                                    "--episodes", str(args.eval_episodes), "--out", str(evaluation))
    summary = json.loads((evaluation / "summary.json").read_text())
    collected = json.loads((dataset / "collect_summary.json").read_text())
    run_config = json.loads((run / "run_config.json").read_text())
    families = summary["families"]

    table = Table(title=f"VLA trained on {args.demos} demos per family, {args.eval_episodes} held-out episodes each")
    for column in ("family", "success", "goal"):
        table.add_column(column)
    for family, row in families.items():
        table.add_row(family, f"{row['success_rate']:.0%} ({row['successes']}/{row['episodes']})",
                      "met" if row["success_rate"] >= GOAL else "MISSED")
    Console().print(table)
    print(f"collect {timings['collect_s']:.0f} s, train {timings['train_s']:.0f} s, eval {timings['eval_s']:.0f} s "
          "(times of this invocation; reused phases take ~0 s)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "vla_learning", "goal_success_rate": GOAL,
        "data": {"episodes": sum(s["episodes"] for s in collected["shards"].values()),
                 "steps": sum(s["steps"] for s in collected["shards"].values()),
                 "bytes": directory_bytes(dataset)},
        "train": run_config, "timings_s": timings, "evaluation": summary,
        "met": {family: row["success_rate"] >= GOAL for family, row in families.items()},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
