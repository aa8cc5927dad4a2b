"""Under real torch.distributed (gloo, 2 processes), each rank reads its own share of the episodes."""

from __future__ import annotations

import json
import os

import torch.multiprocessing as mp

from tests.data.conftest import write_dataset

LENGTHS = [5, 7, 4, 6, 5, 8]


def _read_on_rank(rank: int, world_size: int, builder_dir: str, out_dir: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import torch.distributed as dist

    from agent_stack.data.pipeline import DataConfig
    from agent_stack.data.torch_dataset import RLDSWindowDataset

    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank, world_size=world_size)
    try:
        dataset = RLDSWindowDataset(DataConfig(datasets=[builder_dir], image_size=16, repeat=False,
                                               shuffle_buffer=0), train=False)
        seen = [[int(s["observation"]["image"][-1, 0, 0, 1]), int(s["observation"]["image"][-1, 0, 0, 0])]
                for s in dataset]
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"rank": dataset.rank, "world_size": dataset.world_size, "seen": seen}, f)
    finally:
        dist.destroy_process_group()


def test_ranks_read_disjoint_episodes_that_cover_the_dataset(tmp_path):
    builder_dir = write_dataset(tmp_path / "data", LENGTHS)
    mp.start_processes(_read_on_rank, args=(2, str(builder_dir), str(tmp_path)), nprocs=2, start_method="spawn")
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    assert [(r["rank"], r["world_size"]) for r in results] == [(0, 2), (1, 2)]
    seen = [tuple(item) for r in results for item in r["seen"]]
    assert len(seen) == sum(LENGTHS) == len(set(seen))
    assert all(r["seen"] for r in results)
