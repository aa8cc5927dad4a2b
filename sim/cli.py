"""`agent-stack sim`: look at the tabletop scene without ROS.

    agent-stack sim view --seed 0 --camera front --out scene.png
    agent-stack sim view --seed 0 --camera wrist --out scene.mp4 --seconds 3
    agent-stack sim tasks [--family stack]

A video shows the arm holding its home pose while the scene runs (the arm sways slightly in a
circle above the table, so the video proves the physics and the DLS loop are running).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from sim.scene import CAMERA_NAMES

VIDEO_SUFFIXES = (".mp4", ".gif")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-stack sim", description="Tabletop simulation tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    view = sub.add_parser("view", help="render the scene to an image or a video")
    view.add_argument("--seed", type=int, default=0, help="layout seed (default 0)")
    view.add_argument("--camera", choices=CAMERA_NAMES, default="front", help="camera to render")
    view.add_argument("--out", type=Path, default=Path("scene.png"), help="output .png/.jpg or .mp4/.gif")
    view.add_argument("--size", type=int, nargs=2, default=(480, 640), metavar=("HEIGHT", "WIDTH"),
                      help="image size in pixels (default 480 640)")
    view.add_argument("--seconds", type=float, default=3.0, help="video length in simulated seconds")
    view.add_argument("--fps", type=int, default=20, help="video frame rate")
    tasks = sub.add_parser("tasks", help="list the language task families and their phrasings")
    tasks.add_argument("--family", default=None, help="list every task of this family instead")
    return parser


def list_task_suite(family: str | None) -> int:
    from sim.tasks import FAMILIES, list_tasks

    try:
        tasks = list_tasks(family)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if family is not None:
        for task in tasks:
            print(f"{task.family:14s} {task.instruction}")
        return 0
    for name in sorted(FAMILIES):
        print(f"{name} ({len(list_tasks(name))} tasks)")
        for template in FAMILIES[name].phrasings:
            print(f"    {template}")
    print(f"{len(FAMILIES)} families, {len(tasks)} tasks")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.command == "tasks":
        return list_task_suite(args.family)
    suffix = args.out.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        print(f"error: --out must end in one of {IMAGE_SUFFIXES + VIDEO_SUFFIXES}, got {args.out}",
              file=sys.stderr)
        return 2
    if args.seconds <= 0 or args.fps <= 0 or min(args.size) < 1:
        print("error: --seconds, --fps and --size must be positive", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if suffix in IMAGE_SUFFIXES:
        write_image(args)
    else:
        write_video(args)
    print(f"wrote {args.out}")
    return 0


def _make_env(seed: int):
    from sim.tabletop_env import TabletopConfig, TabletopEnv  # import late: `--help` stays fast

    env = TabletopEnv(TabletopConfig(render=False))
    env.reset(seed=seed)
    return env


def write_image(args) -> None:
    import imageio.v3 as iio

    env = _make_env(args.seed)
    try:
        iio.imwrite(args.out, env.render(args.camera, tuple(args.size)))
    finally:
        env.close()


def write_video(args) -> None:
    import imageio.v2 as imageio

    env = _make_env(args.seed)
    home_pos, home_quat = env.ee_pose()
    frames = max(1, round(args.seconds * args.fps))
    try:
        with imageio.get_writer(args.out, fps=args.fps) as writer:
            for i in range(frames):
                phase = 2 * np.pi * i / frames
                offset = 0.05 * np.array([np.cos(phase) - 1, np.sin(phase), 0.0])
                env.set_ee_target(home_pos + offset, home_quat)
                env.advance(1.0 / args.fps)
                writer.append_data(env.render(args.camera, tuple(args.size)))
    finally:
        env.close()


if __name__ == "__main__":
    sys.exit(main())
