"""Fixtures that start the real graph: the pip-only launcher, real node processes, Fast DDS."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")


class LaunchedGraph:
    def __init__(self, launch_args: list[str], log_path: Path, launch_file: str = "sim.launch.xml") -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_stack.cli", "launch", launch_file, *launch_args],
            stdout=self._log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def launch_graph(ros_domain, tmp_path):
    graphs: list[LaunchedGraph] = []

    def start(*launch_args: str, launch_file: str = "sim.launch.xml") -> LaunchedGraph:
        graph = LaunchedGraph(list(launch_args), tmp_path / f"launch{len(graphs)}.log", launch_file)
        graphs.append(graph)
        return graph

    yield start
    for graph in graphs:
        graph.stop()


