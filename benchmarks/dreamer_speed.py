"""DreamerV3 train-step speed on this CPU: our agent against sheeprl's DreamerV3 (PyPI `sheeprl`), same size.

    .venv/bin/python benchmarks/dreamer_speed.py --reference-python /tmp/sheeprl_venv/bin/python \\
        --size XS --steps 5 --warmup 1 --threads 1 --out benchmarks/results/dreamer_speed.json

Measures one train step — one world-model update on a batch of 16 replay windows of 64 steps, then one actor
and one critic update on the trajectories imagined for H = 15 steps from every posterior state of the batch —
for `agent_stack.control.dreamer.DreamerAgent.update(batch)` (in this process) and for sheeprl's
`sheeprl.algos.dreamer_v3.dreamer_v3.train(...)` preceded by the target-critic EMA update its training loop
does before each call (in a subprocess of a throwaway venv, driven by
`benchmarks/reference/sheeprl_dreamer_timing.py`). On both sides the batch is sampled from the side's own
replay buffer (filled with the same number of random 500-step episodes) just before each timed step and
outside the timed region; sampling alone is timed separately.

Both agents are the 2023 paper's model size `--size` (XS: deter 256, units 256, 1 MLP layer; S: 512, 512, 2;
32 x 32 categorical latents, 255 two-hot bins) for a vector observation of `--obs-dim` and `--action-dim`
continuous actions (default 5 and 1, dm_control cartpole), built from each side's own config: ours
`DreamerConfig.preset(size)`, sheeprl's Hydra config `exp=dreamer_v3 algo=dreamer_v3_<size>` with the
observation keys switched to a vector `state`, on the CPU in float32, eager (sheeprl's default
`algo.compile.enabled=False`), no metric logging (`metric.log_level=0`). Each side keeps its own optimizer
implementation (sheeprl's config asks for `torch.optim.Adam(fused=True)`, ours the default Adam). Both run with
`torch.set_num_threads(--threads)` (and OMP_NUM_THREADS for the subprocess) and the same
`torch.set_float32_matmul_precision(--matmul-precision)` ("highest", PyTorch's default; sheeprl's own default
is "high"). Parameter counts are reported per module on both sides; at XS and S they match module by module.

After `--warmup` steps on each side, the two sides alternate in `--rounds` blocks (default: one train step per
side and block), the order flipped every round, so load from other processes on the machine hits both alike.
Reported: p50, mean and min per step, the ratio ours / sheeprl of each, and the "paired" ratio: the median
over rounds of ours' block mean / sheeprl's block mean, taken seconds apart, which cancels slow swings of a
shared machine's load. Goal: <= 0.8.

The reference side, never part of this repository (a throwaway venv under /tmp):

    python3 -m venv /tmp/sheeprl_venv
    /tmp/sheeprl_venv/bin/pip install torch==2.14.1 sheeprl==0.8.4

(sheeprl 0.8.4 requires torch>=2.6 and lightning>=2.6.1; pip resolved lightning 2.6.6, hydra-core 1.3.8,
gymnasium 1.4.0, torchmetrics 1.9.0; nothing needed patching.)

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

from agent_stack.control.dreamer import DreamerAgent, DreamerConfig
from agent_stack.control.replay import ReplayBuffer

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "dreamer_speed.json"
DEFAULT_REFERENCE_PYTHON = Path("/tmp/sheeprl_venv/bin/python")
HARNESS = HERE / "reference" / "sheeprl_dreamer_timing.py"
GOAL_RATIO = 0.8
"""Goal: ours takes at most 0.8x sheeprl's time per train step."""
OPS = ("update", "sample")
MODULES = ("encoder", "rssm", "decoder", "reward", "continue", "actor", "critic")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference-python", type=Path, default=DEFAULT_REFERENCE_PYTHON,
                   help="python of the throwaway venv with sheeprl installed ('' to measure ours only)")
    p.add_argument("--size", default="XS", choices=("XS", "S", "M", "L", "XL"), help="the paper's model size")
    p.add_argument("--obs-dim", type=int, default=5)
    p.add_argument("--action-dim", type=int, default=1)
    p.add_argument("--episode-length", type=int, default=500)
    p.add_argument("--episodes", type=int, default=10, help="random episodes in each replay buffer")
    p.add_argument("--steps", type=int, default=5, help="timed train steps per side")
    p.add_argument("--samples", type=int, default=20, help="timed batch samplings per side")
    p.add_argument("--warmup", type=int, default=1, help="untimed train steps per side first")
    p.add_argument("--rounds", type=int, help="alternating blocks the timed steps are split into (default: "
                   "--steps, i.e. one train step per side and block)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads on both sides")
    p.add_argument("--matmul-precision", default="highest", choices=("highest", "high", "medium"),
                   help="torch.set_float32_matmul_precision on both sides")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p.parse_args(argv)


# --- ours -------------------------------------------------------------------------------------------------

class Ours:
    """Our agent and replay buffer; each timed step updates on a batch sampled just before, untimed."""

    def __init__(self, args: argparse.Namespace) -> None:
        torch.manual_seed(args.seed)
        self.args = args
        self.config = DreamerConfig.preset(args.size)
        self.agent = DreamerAgent(self.config, observation_shape=(args.obs_dim,), action_dim=args.action_dim)
        self.replay = ReplayBuffer(args.episodes * (args.episode_length + 1), (args.obs_dim,), args.action_dim,
                                   seed=args.seed)
        fill_random_episodes(self.replay, args.episodes, args.episode_length, args.obs_dim, args.action_dim,
                             args.seed)

    def _sample(self) -> dict[str, torch.Tensor]:
        return self.replay.sample(self.config.batch_size, self.config.batch_length)

    def times(self, op: str, n: int) -> list[float]:
        if op == "update":
            return time_calls(self.agent.update, n, prepare=self._sample)
        return time_calls(self._sample, n)

    def describe(self) -> dict:
        a, c = self.agent, self.config
        wm = a.world_model

        def count(module) -> int:
            return sum(p.numel() for p in module.parameters())

        modules = {"encoder": wm.encoder, "rssm": wm.rssm, "decoder": wm.decoder, "reward": wm.reward,
                   "continue": wm.cont, "actor": a.actor, "critic": a.critic}
        learnable = count(wm) + count(a.actor) + count(a.critic)
        return {"params": learnable, "params_target_critic": count(a.slow_critic),
                "params_all": count(a), "params_world_model": count(wm),
                "params_by_module": {k: count(m) for k, m in modules.items()},
                "config": {k: getattr(c, k) for k in ("deter", "units", "mlp_layers", "stoch", "classes", "num_bins",
                                                      "batch_size", "batch_length", "imag_horizon")},
                "versions": {"torch": torch.__version__}, "torch_threads": torch.get_num_threads()}


# --- sheeprl, in its own venv, and reporting -------------------------------------------------------------

def sheeprl(args: argparse.Namespace) -> ReferenceProcess:
    """The sheeprl harness in --serve mode, built at the same size, precision and thread count as ours."""
    command = [str(args.reference_python), str(HARNESS), "--serve", "--size", args.size,
               "--obs-dim", str(args.obs_dim), "--action-dim", str(args.action_dim),
               "--episode-length", str(args.episode_length), "--episodes", str(args.episodes),
               "--threads", str(args.threads), "--matmul-precision", args.matmul_precision,
               "--seed", str(args.seed)]
    return ReferenceProcess(command, "sheeprl", args.threads, close_timeout=120)


def progress(order: list[str], times: dict) -> str:
    """The rest of a progress line: the order of the round, then each side's train-step p50 so far."""
    so_far = "; ".join(f"{name} train step p50 {statistics.median(ops['update']):.2f} s (n={len(ops['update'])})"
                       for name, ops in times.items() if ops["update"])
    return f" (order {' -> '.join(order)}): {so_far}"


def report(result: dict, console: Console) -> None:
    ours, ref = result["ours"], result["sheeprl"]
    spec = result["spec"]
    title = (f"DreamerV3 size {spec['size']}, obs {spec['obs_dim']}, action {spec['action_dim']}, batch "
             f"{ours['config']['batch_size']} x {ours['config']['batch_length']}, {result['threads']} thread(s) "
             f"— per step")
    table = comparison_table(title, "train step: world model + actor + critic update on one batch (sampled "
                             "before, untimed); sampling: one batch from the side's replay buffer", "sheeprl")
    for op, label, unit, scale in (("update", "train step", "s", 1e-3), ("sample", "batch sampling alone", "ms", 1)):
        for key in ("p50_ms", "mean_ms", "min_ms"):
            o = ours[op][key] * scale
            r = ref[op][key] * scale if ref else None
            table.add_row(label if key == "p50_ms" else "", f"{key[:-3]} ({unit})", f"{o:.3f}" if unit == "s" else
                          f"{o:.2f}", ("missing" if r is None else f"{r:.3f}" if unit == "s" else f"{r:.2f}"),
                          f"{o / r:.2f}x" if r else "-")
        if ref and result["paired_ratio_median"][op] is not None:
            table.add_row("", "paired", "", "", f"{result['paired_ratio_median'][op]:.2f}x")
    table.add_section()
    for key, label in (("params", "parameters (world model + actor + critic)"),
                       ("params_target_critic", "target / slow critic parameters")):
        table.add_row(label, "", f"{ours[key]:,}", f"{ref[key]:,}" if ref else "missing", "")
    for module in MODULES:
        o = ours["params_by_module"][module]
        r = ref["params_by_module"].get(module) if ref else None
        table.add_row(f"  {module}", "", f"{o:,}", f"{r:,}" if r is not None else "missing", "")
    console.print(table)
    if ref:
        console.print(f"ours / sheeprl per train step (goal <= {GOAL_RATIO}x): p50 "
                      f"{result['ratios']['update']['p50_ms']:.2f}x, mean {result['ratios']['update']['mean_ms']:.2f}x, "
                      f"paired {result['paired_ratio_median']['update']:.2f}x; meets goal (p50): "
                      f"{result['meets_goal']}")
        if ours["params_by_module"] != ref["params_by_module"]:
            console.print(f"[yellow]parameter counts per module differ: ours {ours['params_by_module']}, "
                          f"sheeprl {ref['params_by_module']}[/yellow]")
    console.print(f"load average before {result['loadavg_before']}, after {result['loadavg_after']}")


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    console = Console()
    args.rounds = args.rounds or args.steps
    if args.rounds < 1 or args.steps < 1 or args.samples < 0 or args.warmup < 0:
        raise SystemExit("--rounds and --steps must be >= 1, --samples and --warmup >= 0")
    torch.set_num_threads(args.threads)
    torch.set_float32_matmul_precision(args.matmul_precision)
    load_before = loadavg()
    started = time.perf_counter()
    sides: dict = {}
    reference_error = None
    if args.reference_python and str(args.reference_python):
        console.print(f"building sheeprl's DreamerV3 {args.size} (subprocess {args.reference_python})...")
        try:
            sides["sheeprl"] = sheeprl(args)
        except (OSError, RuntimeError, json.JSONDecodeError) as error:
            reference_error = str(error)
            console.print(f"[red]sheeprl unavailable:[/red] {error}")
    console.print(f"building our DreamerV3 {args.size}...")
    ours = Ours(args)
    sides = {"ours": ours, **sides}
    try:
        times, paired = measure(sides, "sheeprl", {"update": args.steps, "sample": args.samples}, args.rounds,
                                {"update": args.warmup, "sample": 2}, console, progress,
                                warmup_note=f" ({args.warmup} train steps)")
    finally:
        if "sheeprl" in sides:
            sides["sheeprl"].close()
    ours_result = {**ours.describe(), **{op: stats(times["ours"][op], max_ms=True) for op in OPS
                                         if times["ours"][op]}}
    ref_result = None
    if "sheeprl" in sides:
        ref_result = {**sides["sheeprl"].info, **{op: stats(times["sheeprl"][op], max_ms=True) for op in OPS
                                                  if times["sheeprl"][op]}}
    ratios = {op: ({k: ours_result[op][k] / ref_result[op][k] for k in ("p50_ms", "mean_ms", "min_ms")}
                   if ref_result and op in ref_result and op in ours_result else None) for op in OPS}
    result = {
        "benchmark": "dreamer_speed",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "spec": {k: getattr(args, k) for k in ("size", "obs_dim", "action_dim", "episode_length", "episodes",
                                               "steps", "samples", "warmup", "rounds", "seed")},
        "threads": args.threads,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "torch_versions": {"ours": torch.__version__,
                           "sheeprl": ref_result["versions"]["torch"] if ref_result else None},
        "machine": machine(),
        "loadavg_before": load_before, "loadavg_after": loadavg(),
        "wall_s": round(time.perf_counter() - started, 1),
        "reference": {"package": "sheeprl (PyPI)",
                      "version": ref_result["versions"].get("sheeprl") if ref_result else None,
                      "python": str(args.reference_python) if args.reference_python else None,
                      "train_function": ref_result.get("train_function") if ref_result else None,
                      "error": reference_error},
        "goal_ratio": GOAL_RATIO,
        "ours": ours_result,
        "sheeprl": ref_result,
        "ratios": ratios,
        "paired_ratio_median": {op: statistics.median(v) if v else None for op, v in paired.items()},
        "paired_ratios": paired,
        "times_s": times,
    }
    result["meets_goal"] = ratios["update"]["p50_ms"] <= GOAL_RATIO if ratios["update"] else None
    result["meets_goal_paired"] = (result["paired_ratio_median"]["update"] <= GOAL_RATIO
                                   if result["paired_ratio_median"]["update"] is not None else None)
    report(result, console)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
