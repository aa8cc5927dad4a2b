"""One `main` for every node: init, spin, and a clean shutdown on SIGINT/SIGTERM (as demo_nodes_py does)."""

from __future__ import annotations

import sys
import warnings

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


def run_node(node_class, args: list[str] | None = None, multithreaded: bool = False) -> None:
    """`multithreaded`: callbacks in different callback groups run in parallel (a slow policy timer does
    not hold up the subscriptions)."""
    # rosidl's type-description code imports lark, which imports modules Python 3.11 deprecates.
    warnings.filterwarnings("ignore", message="module 'sre_", category=DeprecationWarning)
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    try:
        node = node_class()
        rclpy.spin(node, executor=MultiThreadedExecutor() if multithreaded else None)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
