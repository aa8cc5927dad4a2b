"""What the ours-against-a-reference speed benchmarks share (`tdmpc2_speed.py`, `dreamer_speed.py`,
`diffusion_speed.py`).

Each of them times our implementation in its own process (`time_calls`, the very loop the reference
harnesses time with, from `reference/harness.py`) and a reference implementation in a subprocess of a
throwaway venv, driven by a harness from `reference/` in --serve mode (`ReferenceProcess`); it alternates
blocks of the two (`measure`) and reports per-step statistics (`stats`) with the machine and its load
(`machine`, `loadavg`) in a table of ours against the reference (`comparison_table`). Our side's replay
buffer is filled with random episodes (`fill_random_episodes`).

The benchmarks run as `python benchmarks/<name>.py`, so this folder is on their sys.path and they import
this file as `speed_comparison`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from reference.harness import time_calls
from rich.console import Console
from rich.table import Table

__all__ = ["ReferenceProcess", "comparison_table", "fill_random_episodes", "loadavg", "machine", "measure",
           "stats", "time_calls"]


class ReferenceProcess:
    """A reference harness in --serve mode: one JSON line describing the agent (`info`), then one answer
    per request (`times`).

    `command` starts it (the reference venv's python, the harness, its arguments; `--serve` included). It runs
    in the temp directory, without our PYTHONPATH, with OMP_NUM_THREADS and MKL_NUM_THREADS set to `threads`;
    its stderr goes to a temporary file. If it exits before answering, the RuntimeError raised names it by
    `name` and carries the end of that stderr. `close` waits up to `close_timeout` seconds for it to exit.
    `extra_env` adds environment variables.
    """

    def __init__(self, command: list[str], name: str, threads: int, close_timeout: float = 60,
                 extra_env: dict[str, str] | None = None) -> None:
        self.name, self.close_timeout = name, close_timeout
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the subprocess
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads), **(extra_env or {})}
        env.pop("PYTHONPATH", None)
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
                                     text=True, bufsize=1, env=env, cwd=tempfile.gettempdir())
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            tail = self.stderr.read()[-3000:]
            raise RuntimeError(f"the {self.name} harness exited with {self.proc.returncode}:\n{tail}")
        return json.loads(line)

    def times(self, op: str, n: int) -> list[float]:
        self.proc.stdin.write(json.dumps({"op": op, "n": n}) + "\n")
        self.proc.stdin.flush()
        return self._read()["times"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=self.close_timeout)
        self.stderr.close()


def fill_random_episodes(replay, episodes: int, episode_length: int, obs_dim: int, action_dim: int,
                         seed: int) -> None:
    """Fills our `ReplayBuffer` with `episodes` episodes of `episode_length` random steps (seeded by `seed`):
    normal observations, uniform actions in [-1, 1] and rewards in [0, 1], never terminated."""
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        replay.start_episode(rng.standard_normal(obs_dim, dtype=np.float32))
        for _ in range(episode_length):
            replay.add(rng.uniform(-1, 1, action_dim).astype(np.float32), float(rng.uniform()),
                       rng.standard_normal(obs_dim, dtype=np.float32), False)


def stats(times: list[float], *, max_ms: bool = False) -> dict:
    """n, p50, mean, min, with `max_ms` the max, and p90 of `times` (seconds), in milliseconds."""
    ms = sorted(1e3 * t for t in times)
    out = {"n": len(ms), "p50_ms": statistics.median(ms), "mean_ms": statistics.fmean(ms), "min_ms": ms[0]}
    if max_ms:
        out["max_ms"] = ms[-1]
    out["p90_ms"] = ms[min(len(ms) - 1, math.ceil(0.9 * len(ms)) - 1)]
    return out


def measure(sides: dict, reference: str, totals: dict[str, int], rounds: int, warmup: dict[str, int],
            console: Console, progress: Callable[[list[str], dict], str], progress_every: int = 1,
            warmup_note: str = "") -> tuple[dict, dict]:
    """Warm-up on each side, then `rounds` alternating blocks of each op, the order flipped every round.

    `sides` maps "ours" and, if it runs, `reference` to an object with `times(op, n) -> [seconds]`. Each side
    first runs `warmup` (op -> untimed steps, in that order; the console line names the side, then
    `warmup_note`). `totals` gives each op, in the order they are timed within a round, its number of timed
    steps per side, spread as evenly as the rounds allow (a round with none of an op skips it). Every
    `progress_every` rounds and after the last, the console gets "round r/rounds" followed by
    `progress(order, times so far)`.

    Returns (name -> op -> seconds, op -> [per-round ratio of ours' block mean to the reference's]). The
    per-round ratios pair steps taken seconds apart, so slow swings of the machine's load cancel out.
    """
    for name, side in sides.items():
        console.print(f"warm-up: {name}{warmup_note}")
        for op, n in warmup.items():
            side.times(op, n)
    times = {name: {op: [] for op in totals} for name in sides}
    paired: dict[str, list[float]] = {op: [] for op in totals}
    names = list(sides)
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for op, total in totals.items():
            n = total // rounds + (1 if r < total % rounds else 0)
            if not n:
                continue
            block = {name: sides[name].times(op, n) for name in order}
            for name in order:
                times[name][op] += block[name]
            if reference in block:
                paired[op].append(statistics.fmean(block["ours"]) / statistics.fmean(block[reference]))
        if (r + 1) % progress_every == 0 or r + 1 == rounds:
            console.print(f"round {r + 1}/{rounds}{progress(order, times)}", soft_wrap=True)
    return times, paired


def comparison_table(title: str, caption: str, reference: str) -> Table:
    """The report's table: measurement, stat, ours, `reference`, ours / `reference`."""
    table = Table(title=title, caption=caption)
    for column in ("measurement", "stat", "ours", reference, f"ours / {reference}"):
        table.add_column(column, justify="left" if column in ("measurement", "stat") else "right")
    return table


def machine() -> dict:
    cpu = None
    if Path("/proc/cpuinfo").exists():
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), None)
    return {"platform": platform.platform(), "cpu": cpu or platform.processor(), "cpu_count": os.cpu_count(),
            "python": platform.python_version()}


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None
