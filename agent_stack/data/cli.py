"""`agent-stack data`: inspect RLDS datasets (Open-X downloads or `agent-stack collect` output).

    agent-stack data list
    agent-stack data stats --dataset fractal20220817_data --data-dir ~/tensorflow_datasets
    agent-stack data show --dataset bridge --data-dir ~/tensorflow_datasets --episode 3 --out bridge.mp4
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

ACTION_LABELS = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")
TARGET_LABELS = ("x", "y", "z", "r11", "r21", "r31", "r12", "r22", "r32", "gripper")
"""A target action: position, the first two columns of the rotation matrix, gripper."""


def _add_dataset_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, help="TFDS builder directory, or a dataset name under --data-dir")
    parser.add_argument("--data-dir", default=None, help="where datasets given by name live (~/tensorflow_datasets)")
    parser.add_argument("--split", default="train", help="TFDS split (slices allowed, e.g. 'train[:10%%]')")


def _print_statistics(statistics) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]{statistics.dataset}[/] split {statistics.split}: {statistics.num_episodes} episodes, "
                  f"{statistics.num_steps} steps")
    parts = [("action", statistics.action, ACTION_LABELS)]
    if statistics.state is not None:
        parts.append(("state", statistics.state, [f"s{i}" for i in range(statistics.state.dim)]))
    if statistics.target is not None:
        parts.append(("target action", statistics.target, TARGET_LABELS))
    for name, stats, labels in parts:
        table = Table(title=name)
        for column in ("dim", "mean", "std", "min", "max", "p01", "p99"):
            table.add_column(column, justify="right")
        for i, label in enumerate(labels):
            table.add_row(label, *(f"{getattr(stats, f)[i]:.4g}" for f in ("mean", "std", "min", "max", "p01", "p99")))
        console.print(table)


def stats_main(args: argparse.Namespace) -> int:
    from agent_stack.data.rlds import open_rlds
    from agent_stack.data.statistics import load_or_compute_statistics, statistics_path

    source = open_rlds(args.dataset, args.data_dir)
    statistics = load_or_compute_statistics(source, args.split, recompute=args.recompute)
    if args.json:
        print(json.dumps(statistics.to_json(), indent=1))
    else:
        _print_statistics(statistics)
        print(f"cached in {statistics_path(source, args.split)}")
    return 0


def show_main(args: argparse.Namespace) -> int:
    import imageio.v2 as imageio

    from agent_stack.data.rlds import numpy_trajectory, open_rlds

    source = open_rlds(args.dataset, args.data_dir)
    size = (args.size, args.size)
    trajectory = numpy_trajectory(source, args.episode, args.split, image_size=size)
    frames = trajectory["image"]
    if "wrist_image" in trajectory:
        frames = np.concatenate([frames, trajectory["wrist_image"]], axis=2)
    with imageio.get_writer(args.out, fps=args.fps, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(frame)
    instructions = sorted({text.decode() for text in trajectory["instruction"]})
    action = trajectory["action"]
    print(f"{source.name} episode {args.episode}: {len(action)} steps, instruction {instructions}")
    print("action per step (min / max): " + ", ".join(
        f"{label} {lo:.3g}/{hi:.3g}" for label, lo, hi in zip(ACTION_LABELS, action.min(0), action.max(0))))
    print(f"wrote {args.out} ({'primary | wrist' if 'wrist_image' in trajectory else 'primary'} camera, "
          f"{args.fps} fps)")
    return 0


def list_main(args: argparse.Namespace) -> int:
    from agent_stack.data.standardize import dataset_entry, registered_datasets

    for name in registered_datasets():
        hz = dataset_entry(name).control_hz
        print(f"{name}" + (f"  ({hz:g} Hz)" if hz else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-stack data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="datasets with a registered standardisation")
    listing.set_defaults(run=list_main)
    stats = commands.add_parser("stats", help="normalisation statistics (computed once, then cached)")
    _add_dataset_args(stats)
    stats.add_argument("--recompute", action="store_true", help="ignore the cached statistics")
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON")
    stats.set_defaults(run=stats_main)
    show = commands.add_parser("show", help="write one episode's camera frames as a video")
    _add_dataset_args(show)
    show.add_argument("--episode", type=int, default=0, help="episode index in the split")
    show.add_argument("--out", required=True, help="output video (.mp4) or animation (.gif)")
    show.add_argument("--size", type=int, default=256, help="frames are resized to size x size")
    show.add_argument("--fps", type=float, default=10.0)
    show.set_defaults(run=show_main)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, IndexError, KeyError, RuntimeError) as error:
        print(f"agent-stack data {args.command}: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
