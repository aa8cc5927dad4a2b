"""Real-time factor of the ROS sim node as another process sees it over Fast DDS.

Launches `sim.launch.xml` with the sim node alone (no controller, no policy) at `real_time_factor:=0`
(as fast as it can), listens to `clock` and both camera topics from this process, and reports how many
simulated seconds pass per wall second and how many images arrive, in simulated-time Hz and wall fps.

    .venv/bin/python benchmarks/sim_node_speed.py --seconds 20 --out benchmarks/results/sim_node_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

CAMERAS = ("front", "wrist")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="wall seconds to measure")
    parser.add_argument("--image-size", type=int, default=128, help="square camera resolution")
    parser.add_argument("--real-time-factor", type=float, default=0.0, help="0: as fast as possible")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/sim_node_speed.json"))
    return parser.parse_args(argv)


def measure(args: argparse.Namespace) -> dict:
    import rclpy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import Image

    from ros_nodes import qos
    from ros_nodes.conversions import seconds_from_stamp

    launch = subprocess.Popen(
        [sys.executable, "-m", "agent_stack.cli", "launch", "sim.launch.xml", "controller:=false",
         "expert:=false", f"real_time_factor:={args.real_time_factor}", f"image_width:={args.image_size}",
         f"image_height:={args.image_size}"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    rclpy.init(args=[])
    node = rclpy.create_node("sim_node_speed")
    clock: list[float] = []
    images = {camera: 0 for camera in CAMERAS}
    node.create_subscription(Clock, "clock", lambda m: clock.append(seconds_from_stamp(m.clock)), qos.CLOCK)
    for camera in CAMERAS:
        node.create_subscription(Image, f"camera/{camera}/image_raw",
                                 lambda _m, c=camera: images.__setitem__(c, images[c] + 1), qos.SENSOR_DATA)
    try:
        while not clock or min(images.values()) == 0:  # wait for the graph, then start the clock
            rclpy.spin_once(node, timeout_sec=0.1)
            if launch.poll() is not None:
                raise RuntimeError("the sim node exited before publishing")
        sim_start, wall_start = clock[-1], time.monotonic()
        images = {camera: 0 for camera in CAMERAS}
        while time.monotonic() - wall_start < args.seconds:
            rclpy.spin_once(node, timeout_sec=0.05)
        wall, sim = time.monotonic() - wall_start, clock[-1] - sim_start
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        launch.send_signal(signal.SIGINT)
        launch.wait(timeout=30)
    return {
        "real_time_factor": sim / wall,
        "sim_seconds": sim,
        "wall_seconds": wall,
        "images_per_sim_second": {c: n / sim for c, n in images.items()},
        "images_per_wall_second": {c: n / wall for c, n in images.items()},
        "config": {"requested_real_time_factor": args.real_time_factor, "image_size": args.image_size,
                   "camera_rate_hz": 10.0, "state_rate_hz": 100.0},
        "machine": {"cpu": platform.machine(), "cores": os.cpu_count(), "python": platform.python_version()},
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from ros_nodes.launcher import ament_environment

    os.environ.update(ament_environment())
    result = measure(args)
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sim_node over ROS ({args.image_size}x{args.image_size}, two cameras at 10 Hz)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("real-time factor", f"{result['real_time_factor']:.2f}")
    for camera in CAMERAS:
        table.add_row(f"{camera} images / sim s", f"{result['images_per_sim_second'][camera]:.1f}")
        table.add_row(f"{camera} images / wall s", f"{result['images_per_wall_second'][camera]:.1f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
