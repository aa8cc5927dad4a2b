"""TD-MPC2 speed on this CPU: our agent against the official implementation (nicklashansen/tdmpc2), same size.

    .venv/bin/python benchmarks/tdmpc2_speed.py --reference-python /tmp/tdmpc2_ref_venv/bin/python \\
        --reference-dir /tmp/tdmpc2_ref --updates 50 --plans 100 --out benchmarks/results/tdmpc2_speed.json

Measures, for `agent_stack.control.tdmpc2.TDMPC2Agent` (in this process) and the official `TDMPC2` agent (in
a subprocess of a throwaway venv, driven by `benchmarks/reference/tdmpc2_official_timing.py`):

* one update step: sampling a batch of 256 windows of horizon + 1 = 4 steps from the replay buffer and one
  gradient update (world model by eq. 3, policy prior by eq. 4, target-Q Polyak update) — the official
  `update(buffer)` samples inside, so both sides time sampling + update; sampling alone is timed too;
* one planning step: `act` on one observation, i.e. encoding plus MPPI with 6 iterations of 512 samples,
  64 elites and 24 policy-prior trajectories over horizon 3, exploration noise on (not eval mode).

Both agents are built from the official config at the same model size (`--model-size`, default 5: the
official default, ~5M learnable parameters) for a state observation of `--obs-dim` and `--action-dim`
(default 24 and 6, a dm_control walker), episode length 500, and each replay buffer holds the same number
of random episodes. Both run eagerly (the official `compile=false`; its default `compile=true` is a
torch.compile "reduce-overhead" mode meant for CUDA graphs) with `torch.set_num_threads(--threads)` and the
default float32 matmul precision. After `--warmup` steps on each side, the two sides alternate in
`--rounds` blocks (default: one update and plans/updates planning steps per side and block), the order
flipped every round, so load from other processes on the machine hits both alike. Reported: p50, mean and
min per step, the ratio ours / official of each, and the "paired" ratio: the median over rounds of ours'
block mean / the official's block mean, taken seconds apart, which cancels slow swings of a shared
machine's load. Goal: <= 1.0.

Parameter counts: "learnable" is what the official code prints as its model's parameters
(`WorldModel.total_params`: encoder, dynamics, reward, policy prior and Q ensemble); the target Q ensemble
(a copy of the Q ensemble's weights) is counted separately. Our `sum(p.numel() for p in agent.parameters())`
includes the target Qs, so it is learnable + target.

The reference side, never part of this repository (a throwaway venv and work tree under /tmp). tensordict
0.14+ breaks the official WorldModel (`.to()` of its meta-device Q-module copies); 0.13.0 is the newest that
builds it, with torchrl 0.13.3:

    python3 -m venv /tmp/tdmpc2_ref_venv
    /tmp/tdmpc2_ref_venv/bin/pip install torch==2.14.1
    /tmp/tdmpc2_ref_venv/bin/pip install tensordict==0.13.0 torchrl==0.13.3 hydra-core omegaconf termcolor numpy
    # the official code: a work tree of github.com/nicklashansen/tdmpc2 (measured at commit e9f5932)
    mkdir -p /tmp/tdmpc2_ref && git --git-dir=<clone>/.git archive HEAD | tar -x -C /tmp/tdmpc2_ref

The official code hard-codes CUDA; its throwaway copy is patched to CPU (REFERENCE_PATCHES below):

    cd /tmp/tdmpc2_ref/tdmpc2
    sed -i "s/torch.device('cuda:0')/torch.device('cpu')/g; s/device='cuda:0'/device='cpu'/g" \\
        tdmpc2.py common/scale.py common/buffer.py
    sed -i "s/mem_free, _ = torch.cuda.mem_get_info()/mem_free = 0/; \\
        s/storage_device = 'cuda:0' if/storage_device = 'cpu' if/" common/buffer.py
    sed -i "s/capturable=True/capturable=False/g" tdmpc2.py

Without `--reference-python` (or when the reference cannot start) only ours is measured and the reference
is reported missing.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from speed_comparison import (
    ReferenceProcess,
    comparison_table,
    fill_random_episodes,
    loadavg,
    machine,
    measure,
    stats,
    time_calls,
)

from agent_stack.control.replay import ReplayBuffer
from agent_stack.control.tdmpc2 import TDMPC2Agent, TDMPC2Config

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "tdmpc2_speed.json"
HARNESS = HERE / "reference" / "tdmpc2_official_timing.py"
GOAL_RATIO = 1.0
"""Goal: ours takes at most 1.0x the official implementation's time per update and per planning step."""
OPS = ("update", "plan", "sample")
REFERENCE_PATCHES = [
    "tdmpc2.py, common/scale.py, common/buffer.py: torch.device('cuda:0') and device='cuda:0' -> 'cpu'",
    "common/buffer.py: torch.cuda.mem_get_info() -> mem_free = 0; storage device 'cuda:0' -> 'cpu'",
    "tdmpc2.py: Adam(..., capturable=True) -> capturable=False (capturable Adam refuses CPU tensors)",
]
"""What the throwaway copy of the official code was changed in; nothing else is touched."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference-python", type=Path, help="python of the throwaway venv with the official deps")
    p.add_argument("--reference-dir", type=Path, default=Path("/tmp/tdmpc2_ref"),
                   help="work tree of the official repository (or its tdmpc2/ folder), patched to CPU")
    p.add_argument("--reference-commit", default="e9f59321933cbc8e11a002b842adc7d4ffae8ff1",
                   help="commit of the official code in --reference-dir, recorded in the JSON")
    p.add_argument("--model-size", type=int, default=5, choices=(1, 5, 19, 48, 317))
    p.add_argument("--obs-dim", type=int, default=24)
    p.add_argument("--action-dim", type=int, default=6)
    p.add_argument("--episode-length", type=int, default=500)
    p.add_argument("--episodes", type=int, default=10, help="random episodes in each replay buffer")
    p.add_argument("--updates", type=int, default=20, help="timed update steps per side")
    p.add_argument("--plans", type=int, default=40, help="timed planning steps per side")
    p.add_argument("--samples", type=int, default=50, help="timed batch samplings per side")
    p.add_argument("--warmup", type=int, default=3, help="untimed update and planning steps per side first")
    p.add_argument("--rounds", type=int, help="alternating blocks the timed steps are split into (default: "
                   "--updates, i.e. one update and plans/updates planning steps per side and block)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


# --- ours -------------------------------------------------------------------------------------------------

class Ours:
    """Our agent and replay buffer, timed the same way as the official harness times its own."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.manual_seed(args.seed)
        self.args = args
        self.config = TDMPC2Config.preset(args.model_size, episode_length=args.episode_length)
        self.agent = TDMPC2Agent(self.config, observation_shape=(args.obs_dim,), action_dim=args.action_dim)
        self.replay = ReplayBuffer(1_000_000, (args.obs_dim,), args.action_dim, seed=args.seed)  # official capacity
        fill_random_episodes(self.replay, args.episodes, args.episode_length, args.obs_dim, args.action_dim,
                             args.seed)
        self.observations = np.random.default_rng(args.seed + 1).standard_normal((64, args.obs_dim), dtype=np.float32)
        self.step = 0

    def describe(self) -> dict:
        m = self.agent.model
        modules = {"encoder": m.encoder, "dynamics": m.dynamics, "reward": m.reward, "pi": m.pi, "Qs": m.Qs}
        every = sum(p.numel() for p in self.agent.parameters())
        learnable = sum(p.numel() for p in self.agent.parameters() if p.requires_grad)
        return {"params": learnable, "params_target_Qs": sum(p.numel() for p in m.target_Qs.parameters()),
                "params_all": every, "params_by_module": {k: sum(p.numel() for p in v.parameters())
                                                          for k, v in modules.items()},
                "config": {k: getattr(self.config, k) for k in (
                    "batch_size", "horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs", "enc_dim",
                    "mlp_dim", "latent_dim", "num_enc_layers", "num_q", "num_bins", "episode_length")},
                "versions": {"torch": torch.__version__}, "torch_threads": torch.get_num_threads()}

    def _sample(self) -> dict[str, torch.Tensor]:
        return self.replay.sample(self.config.batch_size, self.config.horizon + 1)

    def _update(self) -> None:
        self.agent.update(self._sample())

    def _plan(self) -> None:
        if self.step % self.args.episode_length == 0:
            self.agent.reset()
        self.agent.act(self.observations[self.step % len(self.observations)], eval=False)
        self.step += 1

    def times(self, op: str, n: int) -> list[float]:
        return time_calls({"update": self._update, "plan": self._plan, "sample": self._sample}[op], n)


# --- the official implementation, in its own venv, and reporting ----------------------------------------

def official(args: argparse.Namespace) -> ReferenceProcess:
    """The official harness in --serve mode, built at the same size and thread count as ours."""
    command = [str(args.reference_python), str(HARNESS), "--serve", "--tdmpc2-dir", str(args.reference_dir),
               "--model-size", str(args.model_size), "--obs-dim", str(args.obs_dim),
               "--action-dim", str(args.action_dim), "--episode-length", str(args.episode_length),
               "--episodes", str(args.episodes), "--threads", str(args.threads), "--seed", str(args.seed)]
    return ReferenceProcess(command, "official", args.threads, close_timeout=60)


def progress(order: list[str], times: dict) -> str:
    """The rest of a progress line: each side's p50 so far per op, in milliseconds."""
    return ": " + "; ".join(f"{name} " + ", ".join(f"{op} p50 {1e3 * statistics.median(v):.0f} ms (n={len(v)})"
                                                   for op, v in ops.items() if v)
                            for name, ops in times.items())


def ratio(ours: dict, official: dict | None, key: str) -> float | None:
    return ours[key] / official[key] if official else None


def report(result: dict, console: Console) -> None:
    ours, official = result["ours"], result["official"]
    title = (f"TD-MPC2 model size {result['spec']['model_size']}, obs {result['spec']['obs_dim']}, "
             f"action {result['spec']['action_dim']}, {result['threads']} threads — ms per step")
    table = comparison_table(title, "update: sample 256 windows of 4 steps + one gradient update; plan: one "
                             "act() = MPPI 6 x 512 samples, 64 elites, 24 policy trajectories, horizon 3", "official")
    labels = {"update": "update step", "plan": "planning step", "sample": "batch sampling alone"}
    for op in OPS:
        for key in ("p50_ms", "mean_ms", "min_ms"):
            o = ours[op][key]
            r = official[op][key] if official else None
            table.add_row(labels[op] if key == "p50_ms" else "", key[:-3], f"{o:.1f}",
                          f"{r:.1f}" if r is not None else "missing", f"{o / r:.2f}x" if r else "-")
        if official:
            table.add_row("", "paired", "", "", f"{result['paired_ratio_median'][op]:.2f}x")
    for key, label in (("params", "learnable parameters"), ("params_target_Qs", "target Q parameters")):
        table.add_row(label, "", f"{ours[key]:,}", f"{official[key]:,}" if official else "missing", "")
    console.print(table)
    if official:
        verdict = "; ".join(f"{op}: p50 {result['ratios'][op]['p50_ms']:.2f}x, paired "
                            f"{result['paired_ratio_median'][op]:.2f}x" for op in ("update", "plan"))
        console.print(f"ours / official (goal <= {GOAL_RATIO}x): {verdict}")
        if ours["params_by_module"] != official["params_by_module"]:
            console.print(f"[yellow]parameter counts per module differ: ours {ours['params_by_module']}, "
                          f"official {official['params_by_module']}[/yellow]")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console()
    args.rounds = args.rounds or args.updates
    if args.rounds < 1 or min(args.updates, args.plans) < 1:
        raise SystemExit("--rounds, --updates and --plans must be >= 1")
    torch.set_num_threads(args.threads)
    load_before = loadavg()
    started = time.perf_counter()
    sides: dict = {}
    official_error = None
    if args.reference_python:
        console.print("building the official agent (subprocess)...")
        try:
            sides["official"] = official(args)
        except (OSError, RuntimeError, json.JSONDecodeError) as error:
            official_error = str(error)
            console.print(f"[red]official implementation unavailable:[/red] {error}")
    console.print("building our agent...")
    ours = Ours(args)
    sides = {"ours": ours, **sides}
    try:
        times, paired = measure(
            sides, "official", {"update": args.updates, "plan": args.plans, "sample": args.samples}, args.rounds,
            {"update": args.warmup, "plan": args.warmup, "sample": min(args.warmup, 3)}, console, progress,
            progress_every=max(1, args.rounds // 10))
    finally:
        if "official" in sides:
            sides["official"].close()
    ours_result = {**ours.describe(), **{op: stats(times["ours"][op]) for op in OPS}}
    official_result = None
    if "official" in sides:
        official_result = {**sides["official"].info, **{op: stats(times["official"][op]) for op in OPS}}
    result = {
        "benchmark": "tdmpc2_speed",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "spec": {k: getattr(args, k) for k in ("model_size", "obs_dim", "action_dim", "episode_length", "episodes",
                                               "updates", "plans", "samples", "warmup", "rounds", "seed")},
        "threads": args.threads,
        "torch_versions": {"ours": torch.__version__,
                           "official": official_result["versions"]["torch"] if official_result else None},
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "machine": machine(),
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "wall_s": round(time.perf_counter() - started, 1),
        "reference": {"repository": "github.com/nicklashansen/tdmpc2", "commit": args.reference_commit,
                      "dir": str(args.reference_dir), "python": str(args.reference_python) if args.reference_python
                      else None, "compile": False, "patches": REFERENCE_PATCHES, "error": official_error},
        "goal_ratio": GOAL_RATIO,
        "ours": ours_result,
        "official": official_result,
        "ratios": {op: {k: ratio(ours_result[op], official_result[op] if official_result else None, k)
                        for k in ("p50_ms", "mean_ms", "min_ms")} for op in OPS},
        "times_s": times,
    }
    result["paired_ratio_median"] = {op: statistics.median(v) if v else None for op, v in paired.items()}
    result["paired_ratios"] = paired
    result["meets_goal"] = {op: (result["ratios"][op]["p50_ms"] <= GOAL_RATIO if official_result else None)
                            for op in ("update", "plan")}
    result["meets_goal_paired"] = {op: (result["paired_ratio_median"][op] <= GOAL_RATIO if official_result
                                        else None) for op in ("update", "plan")}
    report(result, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
