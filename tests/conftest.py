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
