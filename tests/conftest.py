"""Fixtures shared by the ROS tests: an isolated DDS domain and a probe node in the test process."""

from __future__ import annotations

import os
import time

import pytest

# Headless rendering for every test, also for modules that import mujoco or dm_control before `sim`.
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture(scope="module")
def ros_domain(tmp_path_factory):
    """A domain of its own per test module, discovery kept on this machine, the project's Fast DDS profile."""
    pytest.importorskip("rclpy")
    from ros_nodes.launcher import ament_environment

    saved = dict(os.environ)
    os.environ["ROS_DOMAIN_ID"] = str(20 + (os.getpid() + id(tmp_path_factory)) % 80)
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.update(ament_environment())
    yield os.environ["ROS_DOMAIN_ID"]
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def probe_node(ros_domain):
    """An rclpy node in the test process, to publish into and listen to other processes."""
    import rclpy

    rclpy.init(args=[])
    node = rclpy.create_node(f"test_probe_{os.getpid()}")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


def spin_until(node, predicate, timeout: float) -> bool:
    """Spin `node` until `predicate()` is true or `timeout` seconds pass; returns the predicate's last value."""
    import rclpy

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if predicate():
            return True
    return False


def run_agent_stack(*args: str, timeout: float = 600) -> None:
    """Run `agent-stack ARGS` in a fresh process (as a user would), failing the test with its output."""
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run([sys.executable, "-m", "agent_stack.cli", *args], capture_output=True, text=True,
                            timeout=timeout, env=env)
    assert result.returncode == 0, f"agent-stack {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="session")
def tiny_tabletop_dataset(tmp_path_factory):
    """Builder directory of 6 expert pick-up episodes at 64 px, written by `agent-stack collect`."""
    out = tmp_path_factory.mktemp("tiny_tabletop")
    run_agent_stack("collect", "--task", "pick_up", "--episodes", "6", "--image-size", "64",
                    "--episodes-per-shard", "3", "--workers", "2", "--out", str(out))
    from agent_stack.data.tabletop import TABLETOP_DATASET, TABLETOP_VERSION

    return out / TABLETOP_DATASET / TABLETOP_VERSION


TINY_VLA_FLAGS = ("--image-size", "64", "--vision-depth", "2", "--hidden-dim", "64", "--depth", "2",
                  "--num-heads", "2", "--tokens-per-camera", "4", "--batch-size", "8", "--shuffle-buffer", "64",
                  "--no-progress")


@pytest.fixture(scope="session")
def tiny_vla_checkpoint(tiny_tabletop_dataset, tmp_path_factory):
    """A small VLA trained for 20 steps by `agent-stack train vla` on `tiny_tabletop_dataset`: a real
    checkpoint of the real format, too short to be a good policy."""
    out = tmp_path_factory.mktemp("tiny_vla")
    run_agent_stack("train", "vla", "--data", str(tiny_tabletop_dataset), "--out", str(out), "--steps", "20",
                    "--save-every", "20", *TINY_VLA_FLAGS)
    from agent_stack.checkpoint import latest_checkpoint

    return latest_checkpoint(out)
