"""The VLA learns from demonstrations: a short run drives the training loss well below its start, and
on held-out episodes it beats the same run trained on shuffled labels (which can only learn the action
marginal). Slow: run with `pytest -m slow`."""

import itertools

import pytest
import torch

from agent_stack.data.pipeline import DataConfig
from agent_stack.data.torch_dataset import RLDSWindowDataset
from agent_stack.train.optimization import parameter_groups
from agent_stack.vla import VLAConfig, VLAModel

pytestmark = pytest.mark.slow

STEPS = 150


def data(dataset, split, repeat, statistics=None):
    config = DataConfig(datasets=[str(dataset)], split=split, image_size=64, history=2, repeat=repeat,
                        shuffle_buffer=256 if repeat else 0)
    return RLDSWindowDataset(config, train=repeat, batch_size=16, embed_language=True, statistics=statistics)


def train_and_evaluate(dataset, shuffle_labels: bool) -> tuple[float, float, float]:
    torch.manual_seed(0)
    train = data(dataset, "train[:4]", repeat=True)
    held_out = data(dataset, "train[4:]", repeat=False, statistics=train.statistics)
    model = VLAModel(VLAConfig(image_size=64, vision_depth=2, hidden_dim=64, depth=2, num_heads=2,
                               tokens_per_camera=4, state_dim=14, action_head="continuous", dropout=0.0))
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=1e-3)
    losses = []
    for batch in itertools.islice(train, STEPS):
        batch.pop("instruction")
        if shuffle_labels:  # pair every observation with another sample's action
            permutation = torch.randperm(len(batch["action"]))
            for key in ("action", "action_pad_mask", "terminate"):
                batch[key] = batch[key][permutation]
        loss, metrics = model(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(metrics["action_loss"]))
    model.eval()
    with torch.no_grad():
        held = [float(model({k: v for k, v in b.items() if k != "instruction"})[1]["action_loss"]) for b in held_out]
    return sum(losses[:5]) / 5, sum(losses[-10:]) / 10, sum(held) / len(held)


def test_short_run_learns_and_beats_shuffled_labels(tiny_tabletop_dataset):
    start, end, held_out = train_and_evaluate(tiny_tabletop_dataset, shuffle_labels=False)
    _, shuffled_end, shuffled_held_out = train_and_evaluate(tiny_tabletop_dataset, shuffle_labels=True)
    print(f"L1 start {start:.3f} end {end:.3f} held-out {held_out:.3f} | shuffled end {shuffled_end:.3f} "
          f"held-out {shuffled_held_out:.3f}")
    assert end < 0.5 * start
    assert held_out < 0.8 * shuffled_held_out
