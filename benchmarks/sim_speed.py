"""Speed of the tabletop simulation: physics steps/s, render fps, and real-time factor of a policy loop.

    OMP_NUM_THREADS=1 MUJOCO_GL=egl .venv/bin/python benchmarks/sim_speed.py [--seconds 5] [--out PATH]

Three measurements, each on a freshly reset scene (seed 0):
* physics: bare `mj_step` calls per second, no rendering, no controller;
* render: frames per second rendering the `front` and `wrist` cameras at 128x128 (a frame = one camera);
* policy loop: `TabletopEnv.step` with ee_delta actions at 10 Hz, the DLS loop at control_hz, and both
  cameras rendered at 128x128 every step; real-time factor = simulated seconds / wall seconds.
Prints a table and writes JSON (default benchmarks/results/sim_speed.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from sim.tabletop_env import TabletopConfig, TabletopEnv

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "sim_speed.json"


def physics_steps_per_second(seconds: float) -> float:
    with TabletopEnv(TabletopConfig(render=False)) as env:
        env.reset(seed=0)
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.advance(100 * env.config.physics_dt)  # 100 physics steps, arm holding its pose
            steps += 100
        return steps / (time.perf_counter() - start)


def render_fps(seconds: float, size: tuple[int, int]) -> float:
    with TabletopEnv(TabletopConfig(image_size=size)) as env:
        env.reset(seed=0)
        frames, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for camera in ("front", "wrist"):
                env.render(camera)
            frames += 2
        return frames / (time.perf_counter() - start)


def policy_loop_rtf(seconds: float, size: tuple[int, int], control_hz: float) -> dict:
    config = TabletopConfig(image_size=size, control_hz=control_hz, max_episode_steps=10**9)
    rng = np.random.default_rng(0)
    with TabletopEnv(config) as env:
        env.reset(seed=0)
        sim_start, steps, start = env.sim_time, 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            # Small random deltas around the home pose: the DLS loop and contacts do real work.
            action = np.concatenate([rng.uniform(-0.01, 0.01, 3), rng.uniform(-0.02, 0.02, 3), [1.0]])
            env.step(action)
            steps += 1
        wall = time.perf_counter() - start
        return {"rtf": (env.sim_time - sim_start) / wall, "policy_steps_per_s": steps / wall}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="wall time per measurement")
    parser.add_argument("--control-hz", type=float, default=100.0, help="DLS loop rate in the policy loop")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    size = (128, 128)
    loop = policy_loop_rtf(args.seconds, size, args.control_hz)
    results = {
        "physics_steps_per_s": physics_steps_per_second(args.seconds),
        "render_fps_128x128": render_fps(args.seconds, size),
        "policy_loop_rtf": loop["rtf"],
        "policy_steps_per_s": loop["policy_steps_per_s"],
        "config": {"physics_dt": TabletopConfig.physics_dt, "control_hz": args.control_hz, "policy_hz": 10.0,
                   "cameras": ["front", "wrist"], "image_size": list(size), "seconds": args.seconds},
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version(),
                    "mujoco": version("mujoco")},
    }
    table = Table(title="tabletop sim speed")
    table.add_column("measurement")
    table.add_column("value", justify="right")
    table.add_row("physics steps/s (no render)", f"{results['physics_steps_per_s']:,.0f}")
    table.add_row("render fps, 128x128 (front+wrist frames)", f"{results['render_fps_128x128']:,.1f}")
    table.add_row(f"policy loop RTF (2 cams @10 Hz, DLS @{args.control_hz:g} Hz)",
                  f"{results['policy_loop_rtf']:.2f}")
    table.add_row("policy steps/s", f"{results['policy_steps_per_s']:.1f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
