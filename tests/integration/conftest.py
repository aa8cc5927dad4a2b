"""Fixtures that start the real graph: the pip-only launcher, real node processes, Fast DDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")


@pytest.fixture(scope="module")
def ros_domain(tmp_path_factory):
    """A domain of its own per test module, discovery kept on this machine, the project's Fast DDS profile."""
    from ros_nodes.launcher import ament_environment

    saved = dict(os.environ)
    os.environ["ROS_DOMAIN_ID"] = str(20 + (os.getpid() + id(tmp_path_factory)) % 80)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.update(ament_environment())
    yield os.environ["ROS_DOMAIN_ID"]
    os.environ.clear()
    os.environ.update(saved)


class LaunchedGraph:
    def __init__(self, launch_args: list[str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agent_stack.cli", "launch", "sim.launch.xml", *launch_args],
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

    def start(*launch_args: str) -> LaunchedGraph:
        graph = LaunchedGraph(list(launch_args), tmp_path / f"launch{len(graphs)}.log")
        graphs.append(graph)
        return graph

    yield start
    for graph in graphs:
        graph.stop()


@pytest.fixture
def probe_node(ros_domain):
    """An rclpy node in the test process, to publish into and listen to the launched graph."""
    rclpy.init(args=[])
    node = rclpy.create_node(f"test_probe_{os.getpid()}")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def spin_until(node, predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if predicate():
            return True
    return False
