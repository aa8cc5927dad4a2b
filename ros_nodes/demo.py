"""`agent-stack demo`: launch the simulated stack, give it an instruction, report the outcome.

Starts `launch/sim.launch.xml` through the pip-only launcher, publishes the instruction on `task`,
records `camera/front/image_raw` to an MP4, and exits 0 only when the sim reports task success.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_INSTRUCTION = "put the red block on the green pad"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="agent-stack demo", description=__doc__.splitlines()[0])
    parser.add_argument("--instruction", default=DEFAULT_INSTRUCTION, help="what the robot should do")
    parser.add_argument("--seed", type=int, default=0, help="layout seed")
    parser.add_argument("--timeout", type=float, default=180.0, help="wall-clock seconds before giving up")
    parser.add_argument("--out", type=Path, default=Path("outputs/demo.mp4"), help="MP4 of the front camera")
    parser.add_argument("--image-size", type=int, nargs=2, default=(320, 240), metavar=("WIDTH", "HEIGHT"),
                        help="camera resolution published by the sim")
    parser.add_argument("--real-time-factor", type=float, default=1.0,
                        help="simulated seconds per wall second (0: as fast as possible)")
    args = parser.parse_args(argv)
    from sim.tasks import task_from_instruction

    try:
        # The sim reports the task in its canonical phrasing; compare against that.
        args.canonical_instruction = task_from_instruction(args.instruction).instruction
    except ValueError as error:
        parser.error(f"unknown instruction {args.instruction!r}: {error}")
    return args


def launch_stack(args: argparse.Namespace) -> subprocess.Popen:
    width, height = args.image_size
    command = [sys.executable, "-m", "agent_stack.cli", "launch", "sim.launch.xml", f"seed:={args.seed}",
               f"real_time_factor:={args.real_time_factor}", f"image_width:={width}",
               f"image_height:={height}"]
    return subprocess.Popen(command)


def stop_stack(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_episode(args: argparse.Namespace, launcher: subprocess.Popen) -> tuple[dict | None, list]:
    """Drive the task over topics; returns the final task status (None on timeout) and the frames."""
    import rclpy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from ros_nodes import conversions, qos

    rclpy.init(args=[])
    node = rclpy.create_node("demo")
    frames: list = []
    status: dict = {}

    def on_image(msg: Image) -> None:
        try:
            frames.append(conversions.msg_to_image(msg))
        except conversions.MessageRejected as error:
            node.get_logger().warning(f"dropped image: {error}")

    def on_status(msg: String) -> None:
        try:
            status.update(conversions.json_from_msg(msg, ("instruction", "success")))
        except conversions.MessageRejected as error:
            node.get_logger().warning(f"dropped task_status: {error}")

    task_pub = node.create_publisher(String, "task", qos.COMMANDS)
    node.create_subscription(Image, "camera/front/image_raw", on_image, qos.SENSOR_DATA)
    node.create_subscription(String, "task_status", on_status, qos.LATCHED)
    deadline = time.monotonic() + args.timeout
    last_sent = 0.0
    try:
        while time.monotonic() < deadline and launcher.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
            acknowledged = status.get("instruction") == args.canonical_instruction
            # Both the sim and the policy must hear the instruction; they ignore repeats.
            ready = task_pub.get_subscription_count() >= 2 and frames
            if ready and not acknowledged and time.monotonic() - last_sent > 1.0:
                task_pub.publish(String(data=args.instruction))
                last_sent = time.monotonic()
            if acknowledged and status.get("success"):
                for _ in range(10):  # a second of the finished scene for the video
                    rclpy.spin_once(node, timeout_sec=0.1)
                return dict(status), frames
        return None, frames
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def write_video(frames: list, path: Path, fps: float = 10.0) -> Path:
    import imageio.v2 as imageio

    path.parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    return path.resolve()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    # Keep discovery on this machine unless the user chose otherwise.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from ros_nodes.launcher import ament_environment

    os.environ.update(ament_environment())
    started = time.monotonic()
    launcher = launch_stack(args)
    try:
        status, frames = run_episode(args, launcher)
    finally:
        stop_stack(launcher)
    wall = time.monotonic() - started
    video = write_video(frames, args.out) if frames else None
    success = bool(status and status.get("success"))
    print(json.dumps({"instruction": args.instruction, "success": success,
                      "sim_time_s": status.get("elapsed_s") if status else None,
                      "wall_time_s": round(wall, 1), "video": str(video) if video else None}))
    print(f"{'SUCCESS' if success else 'FAILED'}: {args.instruction!r} "
          f"in {status['elapsed_s'] if status else '-'} s of sim time ({wall:.1f} s wall); video: {video}")
    return 0 if success else 1


if __name__ == "__main__":
    sys.exit(main())
