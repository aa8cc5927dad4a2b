"""Learning curves of the online agents (TD-MPC2, DreamerV3) on dm_control and tabletop tasks.

    .venv/bin/python benchmarks/control_learning.py --algo tdmpc2 --env dmc:cartpole-balance --steps 5000 \
        --seeds 0 --model-size 1 --set batch_size=64 --set num_samples=128 --eval-every 1000 --threads 1

Trains one run per seed with `agent_stack.train.online` (the code behind `agent-stack train control`),
collects the deterministic evaluation returns, and compares them with a uniform-random policy measured
here and, where the published curve has a point at a step this run reached, with the published mean
(TD-MPC2's results CSVs in nicklashansen/tdmpc2, which also hold its DreamerV3 baseline curves). Prints a
table, writes JSON (`docs/learning_curves/control_learning_<algo>_<task>.json`) and a PNG learning curve
beside it (matplotlib, `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from agent_stack.train.online import OnlineRun, episode_seed, make_env, parse_override, train_online

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "learning_curves"
PUBLISHED: dict[tuple[str, str], dict[int, float]] = {
    # Mean episode return over the 3 seeds of the CSVs in nicklashansen/tdmpc2 `results/` (step: return).
    ("tdmpc2", "cartpole-balance"): {100_000: 997.8},
    ("dreamerv3", "cartpole-balance"): {100_000: 912.6},
    ("tdmpc2", "reacher-easy"): {100_000: 937.0},
}


def random_return(env_name: str, env_options: dict, episodes: int, seed: int) -> float:
    env = make_env(env_name, seed, **env_options)
    rng = np.random.default_rng(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=episode_seed(seed + 77, episode))
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_dim))
            total, done = total + reward, terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def plot(curves: dict[int, list[dict]], random: float, published: dict[int, float], title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for seed, evaluations in curves.items():
        axis.plot([e["step"] for e in evaluations], [e["return_mean"] for e in evaluations], marker="o",
                  label=f"ours, seed {seed}")
    axis.axhline(random, color="grey", linestyle="--", label="uniform random")
    for step, value in published.items():
        axis.plot([step], [value], marker="*", markersize=12, color="black", linestyle="none",
                  label=f"published mean at {step // 1000}k")
    axis.set_xlabel("environment steps (agent steps)")
    axis.set_ylabel("evaluation return")
    axis.set_title(title)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=("tdmpc2", "dreamerv3"), required=True)
    parser.add_argument("--env", required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--model-size", default=None)
    parser.add_argument("--set", type=parse_override, action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--eval-every", type=int, default=1000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=None, help="JSON path (default docs/learning_curves/...)")
    parser.add_argument("--runs", type=Path, default=None, help="keep the run directories here")
    parser.add_argument("--existing", type=Path, nargs="+", default=None,
                        help="summarise these finished run directories (their eval.json) instead of training")
    args = parser.parse_args()

    task = args.env.partition(":")[2]
    out = args.out or RESULTS / f"control_learning_{args.algo}_{task}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    curves: dict[int, list[dict]] = {}
    started = time.perf_counter()
    runs_root = args.runs or Path(tempfile.mkdtemp(prefix="control_learning_"))
    for run_dir in args.existing or []:
        saved = json.loads((run_dir / "eval.json").read_text())
        if saved["run"]["algo"] != args.algo or saved["run"]["env"] != args.env:
            parser.error(f"{run_dir} is a {saved['run']['algo']} run on {saved['run']['env']}")
        curves[saved["run"]["seed"]] = saved["evaluations"]
    for seed in [] if args.existing else args.seeds:
        run = OnlineRun(algo=args.algo, env=args.env, steps=args.steps, seed=seed, model_size=args.model_size,
                        overrides=dict(args.set), eval_every=args.eval_every, eval_episodes=args.eval_episodes,
                        checkpoint_every=args.steps, threads=args.threads)
        curves[seed] = train_online(run, runs_root / f"{args.algo}_{task}_seed{seed}")
    wall = time.perf_counter() - started if not args.existing else max(
        e["wall_seconds"] for evaluations in curves.values() for e in evaluations)
    random = random_return(args.env, {}, args.eval_episodes, 0)
    published = PUBLISHED.get((args.algo, task), {})

    table = Table(title=f"{args.algo} on {args.env}: evaluation return ({len(args.seeds)} seed(s))")
    for column in ("step", "mean return", "min / max over seeds", "wall s"):
        table.add_column(column, justify="right")
    steps = sorted({e["step"] for evaluations in curves.values() for e in evaluations})
    rows = []
    for step in steps:
        values = [e["return_mean"] for evaluations in curves.values() for e in evaluations if e["step"] == step]
        walls = [e["wall_seconds"] for evaluations in curves.values() for e in evaluations if e["step"] == step]
        rows.append({"step": step, "mean": float(np.mean(values)), "min": float(min(values)),
                     "max": float(max(values)), "wall_seconds": float(np.mean(walls))})
        table.add_row(str(step), f"{np.mean(values):.1f}", f"{min(values):.1f} / {max(values):.1f}",
                      f"{np.mean(walls):.0f}")
    table.add_row("random", f"{random:.1f}", "", "")
    for step, value in published.items():
        table.add_row(f"published @ {step}", f"{value:.1f}", "", "")
    Console().print(table)

    result = {
        "algo": args.algo, "env": args.env, "steps": args.steps, "seeds": sorted(curves),
        "model_size": args.model_size, "overrides": dict(args.set), "threads": args.threads,
        "torch": torch.__version__, "wall_seconds": wall, "random_return": random,
        "published": {str(k): v for k, v in published.items()}, "curve": rows,
        "per_seed": {str(seed): evaluations for seed, evaluations in curves.items()},
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    png = out.with_suffix(".png")
    plot(curves, random, published, f"{args.algo} on {args.env}", png)
    print(f"wrote {out} and {png}")


if __name__ == "__main__":
    main()
