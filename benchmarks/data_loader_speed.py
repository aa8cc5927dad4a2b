"""Training loader throughput vs plain TFDS iteration over the same RLDS data.

    .venv/bin/python benchmarks/data_loader_speed.py --dataset outputs/collect/agent_stack_tabletop \
        --out benchmarks/results/data_loader_speed.json

* plain TFDS: `builder.as_dataset("train")`, every episode's steps flattened, images decoded by TFDS,
  iterated as numpy — the least work that yields each step's images;
* agent_stack: `RLDSWindowDataset` with batch 64, 128x128 images, history 2 (front + wrist cameras,
  state, normalised actions, pad masks), shuffled, as torch tensors; with `num_workers=0` (tf.data's
  own threads) and with 2 spawned DataLoader workers.

Both read the data repeatedly (the dataset is cycled) for `--seconds` each after a warm-up; the ratio is
samples/s of the loader over steps/s of plain TFDS. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import agent_stack.data  # noqa: E402,F401  (before TensorFlow, see agent_stack/data/__init__.py)
import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

from agent_stack.data.pipeline import DataConfig  # noqa: E402
from agent_stack.data.rlds import find_builder_dir  # noqa: E402
from agent_stack.data.torch_dataset import RLDSWindowDataset, make_dataloader  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "data_loader_speed.json"


def timed_rate(iterator, items_of, seconds: float, warmup: int) -> float:
    """Items per second over `seconds`, after `warmup` elements."""
    for _ in range(warmup):
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += items_of(next(iterator))
    return count / (time.perf_counter() - start)


def plain_tfds_rate(builder_dir: Path, seconds: float) -> float:
    builder = tfds.builder_from_directory(builder_dir)
    steps = (builder.as_dataset(split="train").repeat()
             .flat_map(lambda episode: episode["steps"]).prefetch(tf.data.AUTOTUNE))
    return timed_rate(steps.as_numpy_iterator(), lambda _: 1, seconds, warmup=200)


def loader_rate(builder_dir: Path, seconds: float, batch_size: int, image_size: int, history: int,
                num_workers: int) -> float:
    config = DataConfig(datasets=[str(builder_dir)], image_size=image_size, history=history)
    dataset = RLDSWindowDataset(config, batch_size=batch_size)
    batches = iter(make_dataloader(dataset, num_workers=num_workers))
    return timed_rate(batches, lambda batch: len(batch["action"]), seconds, warmup=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="RLDS builder directory (e.g. written by agent-stack collect)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measuring time per loader")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--history", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    builder_dir = find_builder_dir(args.dataset)
    info = tfds.builder_from_directory(builder_dir).info

    plain = plain_tfds_rate(builder_dir, args.seconds)
    rows = {"plain TFDS (steps/s)": plain}
    for workers in (0, 2):
        rows[f"RLDSWindowDataset, {workers} workers (samples/s)"] = loader_rate(
            builder_dir, args.seconds, args.batch_size, args.image_size, args.history, workers)

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{info.name}: {info.splits['train'].num_examples} episodes, batch {args.batch_size}, "
                        f"{args.image_size}² images, history {args.history}")
    table.add_column("loader")
    table.add_column("items/s", justify="right")
    table.add_column("vs plain TFDS", justify="right")
    for name, rate in rows.items():
        table.add_row(name, f"{rate:,.0f}", f"{rate / plain:.2f}x")
    Console().print(table)

    results = {
        "dataset": str(builder_dir), "episodes": info.splits["train"].num_examples,
        "batch_size": args.batch_size, "image_size": args.image_size, "history": args.history,
        "seconds_per_loader": args.seconds, "rates": rows,
        "ratios": {name: rate / plain for name, rate in rows.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
