"""VLA policy inference rate on this machine: parameters, FLOPs per control step, latency p50/p99.

    .venv/bin/python benchmarks/vla_inference_speed.py --out benchmarks/results/vla_inference_speed.json
    .venv/bin/python benchmarks/vla_inference_speed.py --checkpoint outputs/vla_bench      (a trained model)

Each step is what a deployed `vla_node` does per tick: `VLAPolicy.act` on a new front + wrist frame and
the 14-D state, with the earlier frames' image tokens cached (history H). Configurations: the default
(CPU-sized) model with both heads, the RT-X-sized `VLAConfig.vit_base()` for reference, and a trained
checkpoint when given. FLOPs are counted by torch.utils.flop_counter on one steady-state step (matmuls
and convolutions; 1 multiply-add = 2 FLOPs). The goal on the 2-core CPU: >= 10 Hz for the default.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

import agent_stack  # noqa: F401
from agent_stack.normalization import DatasetStatistics, Statistics
from agent_stack.vla import VLAConfig, VLAModel, VLAPolicy

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "vla_inference_speed.json"
TARGET_HZ = 10.0


def placeholder_statistics(state_dim: int) -> DatasetStatistics:
    """Statistics only shape the output's units; their values do not change the compute."""
    def stats(dim: int) -> Statistics:
        return Statistics(mean=[0.0] * dim, std=[1.0] * dim, min=[-1.0] * dim, max=[1.0] * dim,
                          p01=[-1.0] * dim, p99=[1.0] * dim)
    return DatasetStatistics("benchmark", "train", "-", 1, 1, stats(7), stats(state_dim) if state_dim else None)


def measure(policy: VLAPolicy, steps: int, warmup: int) -> dict:
    size = policy.config.image_size
    rng = np.random.default_rng(0)
    frames = [{"image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
               "wrist_image": rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
               "state": rng.uniform(-1, 1, policy.config.state_dim or 14)} for _ in range(8)]
    policy.reset("put the red block on the green pad")
    for i in range(warmup):
        policy.act(frames[i % len(frames)])
    with FlopCounterMode(display=False) as counter:
        policy.act(frames[0])
    latencies = []
    for i in range(steps):
        start = time.perf_counter()
        policy.act(frames[i % len(frames)])
        latencies.append(time.perf_counter() - start)
    latencies_ms = np.array(latencies) * 1000.0
    return {
        "params_m": sum(p.numel() for p in policy.model.parameters()) / 1e6,
        "gflops_per_step": counter.get_total_flops() / 1e9,
        "latency_ms_p50": float(np.percentile(latencies_ms, 50)),
        "latency_ms_p99": float(np.percentile(latencies_ms, 99)),
        "rate_hz": float(1000.0 / latencies_ms.mean()),
        "image_size": size, "history": policy.config.history, "cameras": list(policy.config.cameras),
        "action_head": policy.config.action_head, "action_chunk": policy.config.action_chunk,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="also measure this trained checkpoint or run directory")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--skip-vit-base", action="store_true", help="leave out the RT-X-sized model")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    configs = {"default (discrete head)": VLAConfig(state_dim=14),
               "default, continuous head K=4": VLAConfig(state_dim=14, action_head="continuous", action_chunk=4)}
    if not args.skip_vit_base:
        configs["vit_base (RT-X size, H=6)"] = VLAConfig.vit_base(state_dim=14)
    policies = {name: VLAPolicy(VLAModel(config), placeholder_statistics(14)) for name, config in configs.items()}
    if args.checkpoint is not None:
        policies[f"trained: {args.checkpoint}"] = VLAPolicy.from_pretrained(args.checkpoint)

    results = {name: measure(policy, args.steps if "vit_base" not in name else max(20, args.steps // 10),
                             args.warmup) for name, policy in policies.items()}
    table = Table(title=f"VLA inference, one step = act() on a new frame, {args.threads} threads")
    for column in ("model", "params (M)", "GFLOPs/step", "p50 ms", "p99 ms", "Hz"):
        table.add_column(column, justify="right" if column != "model" else "left")
    for name, row in results.items():
        table.add_row(name, f"{row['params_m']:.2f}", f"{row['gflops_per_step']:.2f}", f"{row['latency_ms_p50']:.1f}",
                      f"{row['latency_ms_p99']:.1f}", f"{row['rate_hz']:.1f}")
    Console().print(table)
    default = results["default (discrete head)"]["rate_hz"]
    print(f"default model: {default:.1f} Hz ({'meets' if default >= TARGET_HZ else 'MISSES'} the {TARGET_HZ:.0f} Hz goal)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "vla_inference_speed", "target_hz": TARGET_HZ, "threads": args.threads,
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
