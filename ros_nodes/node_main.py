"""One `main` for every node: init, spin, and a clean shutdown on SIGINT/SIGTERM (as demo_nodes_py does)."""

from __future__ import annotations

import sys
import warnings

import rclpy
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor


class StartupError(Exception):
    """A node cannot start (a missing or bad parameter, an unreadable file). Raised from a node's
    constructor, `run_node` logs the message as one error line, without a traceback, and exits with 1."""


def run_node(node_class, args: list[str] | None = None, multithreaded: bool = False) -> None:
    """`multithreaded`: callbacks in different callback groups run in parallel (a slow policy timer does
    not hold up the subscriptions)."""
    # rosidl's type-description code imports lark, which imports modules Python 3.11 deprecates.
    warnings.filterwarnings("ignore", message="module 'sre_", category=DeprecationWarning)
    rclpy.init(args=args if args is not None else sys.argv)
    node = None
    executor = MultiThreadedExecutor() if multithreaded else None
    exit_code = 0
    try:
        node = node_class()
        rclpy.spin(node, executor=executor)
    except StartupError as error:
        rclpy.logging.get_logger(node_class.__module__.rsplit(".", 1)[-1]).error(f"cannot start: {error}")
        exit_code = 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=5.0)  # let running callbacks finish before their node goes away
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    if exit_code:
        sys.exit(exit_code)
