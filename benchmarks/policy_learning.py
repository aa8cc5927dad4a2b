"""Learning bars of the policies trained from sim demonstrations: success on held-out seeds per task family.

    .venv/bin/python benchmarks/policy_learning.py --policy vla --work outputs/vla_learning \
        --out benchmarks/results/vla_learning.json
    .venv/bin/python benchmarks/policy_learning.py --policy diffusion --work outputs/diffusion_learning \
        --out benchmarks/results/diffusion_learning.json
    .venv/bin/python benchmarks/policy_learning.py --policy diffusion --colour-permutations 3 \
        --work outputs/dp_target --action-space target          (extra arguments go to training)

Three phases, each the user-facing command (so the benchmark measures what a user runs):
1. `agent-stack collect --task <families> --episodes 200` — scripted-expert demonstrations;
2. `agent-stack train vla` / `agent-stack train control --algo diffusion` on them (the flags below; extra
   arguments are passed on to training);
3. `agent-stack eval vla` / `agent-stack eval control --algo diffusion` on seeds `collect` never uses
   (see sim/evaluate.py).
A phase whose output exists is reused (collect and train resume), so an interrupted benchmark continues.
The goals: VLA >= 80 % on pick_up and place_on_pad; Diffusion Policy >= 85 % on pick_up and the push
families. Prints a table and writes JSON with the data size, training time and the evaluation summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

import agent_stack.data  # noqa: F401  (loads TensorFlow isolated: see agent_stack/native_libraries.py)
from agent_stack.data.tabletop import TABLETOP_VERSION

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Bar:
    train: tuple[str, ...]
    """`agent-stack` arguments that train this policy."""
    evaluate: tuple[str, ...]
    tasks: str
    goal: float
    flags: tuple[str, ...]


BARS = {
    "vla": Bar(("train", "vla"), ("eval", "vla"), "pick_up,place_on_pad", 0.8,
               ("--steps", "3000", "--batch-size", "32", "--image-size", "96", "--action-head", "continuous",
                "--action-chunk", "4", "--no-augment", "--warmup-steps", "200", "--save-every", "500",
                "--log-every", "25", "--lr", "3e-4")),
    "diffusion": Bar(("train", "control", "--algo", "diffusion"), ("eval", "control", "--algo", "diffusion"),
                     "pick_up,push_left,push_right", 0.85,
                     ("--steps", "6000", "--batch-size", "32", "--lr", "2e-4", "--warmup-steps", "300",
                      "--save-every", "1000", "--log-every", "50")),
}


def agent_stack(*args: str) -> float:
    """Run `agent-stack ARGS`, streaming its output; returns wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "agent_stack.cli", *args], check=True,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return time.perf_counter() - start


def directory_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policy", choices=BARS, default="vla")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the dataset, the training run and the evaluation go "
                        "(default outputs/<policy>_learning)")
    parser.add_argument("--tasks", default=None, help="task families (default: the policy's bar)")
    parser.add_argument("--image-size", type=int, default=None, help="collect at this size (default 128)")
    parser.add_argument("--demos", type=int, default=200, help="demonstrations per task family")
    parser.add_argument("--colour-permutations", type=int, default=0,
                        help="colour-renamed copies of each demonstration (`collect --colour-permutations`)")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes per task family")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON result (default benchmarks/results/<policy>_learning.json)")
    args, train_overrides = parser.parse_known_args(argv)
    bar = BARS[args.policy]
    tasks = args.tasks or bar.tasks
    work = args.work or Path(f"outputs/{args.policy}_learning")
    out = args.out or RESULTS / f"{args.policy}_learning.json"
    image_size = ["--image-size", str(args.image_size)] if args.image_size else []

    data_root = work / "data"
    dataset = data_root / "agent_stack_tabletop"
    run = work / "run"
    evaluation = work / "eval"
    timings = {"collect_s": agent_stack("collect", "--task", tasks, "--episodes", str(args.demos),
                                        "--colour-permutations", str(args.colour_permutations), *image_size,
                                        "--out", str(data_root), "--workers", str(args.workers))}
    resume = ["--resume"] if (run / "run_config.json").is_file() else ["--data", str(dataset), *bar.flags,
                                                                         *train_overrides]
    timings["train_s"] = agent_stack(*bar.train, "--out", str(run), "--no-progress", *resume)
    timings["eval_s"] = agent_stack(*bar.evaluate, "--checkpoint", str(run), "--tasks", tasks,
                                    "--episodes", str(args.eval_episodes), "--out", str(evaluation))
    summary = json.loads((evaluation / "summary.json").read_text())
    collected = json.loads((dataset / TABLETOP_VERSION / "collect_summary.json").read_text())
    run_config = json.loads((run / "run_config.json").read_text())
    families = summary["families"]

    table = Table(title=f"{args.policy} trained on {args.demos} demos per family, {args.eval_episodes} held-out "
                        "episodes each")
    for column in ("family", "success", "goal"):
        table.add_column(column)
    for family, row in families.items():
        table.add_row(family, f"{row['success_rate']:.0%} ({row['successes']}/{row['episodes']})",
                      "met" if row["success_rate"] >= bar.goal else "MISSED")
    Console().print(table)
    print(f"collect {timings['collect_s']:.0f} s, train {timings['train_s']:.0f} s, eval {timings['eval_s']:.0f} s "
          "(times of this invocation; reused phases take ~0 s)")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": f"{args.policy}_learning", "goal_success_rate": bar.goal,
        "data": {"colour_permutations": args.colour_permutations,
                 "episodes": sum(s["episodes"] for s in collected["shards"].values()),
                 "steps": sum(s["steps"] for s in collected["shards"].values()),
                 "bytes": directory_bytes(dataset)},
        "train": run_config, "timings_s": timings, "evaluation": summary,
        "met": {family: row["success_rate"] >= bar.goal for family, row in families.items()},
    }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
