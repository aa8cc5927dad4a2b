"""What the reference timing harnesses in this folder share: timing loop, summary, stdout and --serve loop.

`tdmpc2_official_timing.py` and `sheeprl_dreamer_timing.py` run as scripts under the reference venvs'
pythons, so this folder is on their sys.path and they import this file as `harness`. It uses the standard
library only, so it imports under any of those pythons. The in-repo benchmarks time their own side with the
same `time_calls` (through `benchmarks/speed_comparison.py`), so both sides of a comparison share one loop.

The --serve protocol: the harness prints one JSON line describing the built agent, then answers each stdin
line {"op": ..., "n": k} with {"op": ..., "times": [seconds, ...]}, until end of input. Everything else the
reference code prints goes to stderr (`protocol_stdout`); stdout carries only this protocol's JSON.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import TextIO


def time_calls(fn: Callable, n: int, prepare: Callable | None = None) -> list[float]:
    """Seconds each of `n` calls of `fn()` takes; with `prepare`, of `fn(prepare())`, `prepare()` untimed."""
    out = []
    for _ in range(n):
        arguments = () if prepare is None else (prepare(),)
        start = time.perf_counter()
        fn(*arguments)
        out.append(time.perf_counter() - start)
    return out


def summary(times: list[float]) -> dict:
    """n, p50, mean and min of `times` (seconds), in milliseconds: the one-shot mode's figures for an op."""
    return {"n": len(times), "p50_ms": 1e3 * statistics.median(times), "mean_ms": 1e3 * statistics.fmean(times),
            "min_ms": 1e3 * min(times)}


def protocol_stdout() -> TextIO:
    """Our protocol owns stdout: returns a stream on the real stdout, and sends whatever else is printed
    (by the reference code, at the Python or the file-descriptor level) to stderr."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


def serve(protocol: TextIO, info: dict, times: Callable[[str, int], list[float]]) -> None:
    """The --serve loop: `info` as one JSON line, then `times(op, n)` for each request, until end of input."""
    protocol.write(json.dumps(info) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        answer = {"op": request["op"], "times": times(request["op"], int(request["n"]))}
        protocol.write(json.dumps(answer) + "\n")
