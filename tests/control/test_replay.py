"""ReplayBuffer: the step layout both online agents rely on, windows inside one episode, the ring, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_stack.control.replay import ReplayBuffer


def fill(replay: ReplayBuffer, episodes: list[int], start: int = 0) -> None:
    """Episodes of the given lengths; observation = global step number, action = reward = that number too."""
    value = start
    for length in episodes:
        replay.start_episode(np.full(2, value, np.float32))
        value += 1
        for step in range(length):
            replay.add(np.full(1, value), float(value), np.full(2, value, np.float32), step == length - 1)
            value += 1


def test_layout_of_a_window():
    replay = ReplayBuffer(100, (2,), 1)
    fill(replay, [10])
    batch = replay.sample(16, 4)
    assert batch["observation"].shape == (4, 16, 2) and batch["action"].shape == (4, 16, 1)
    assert batch["reward"].shape == batch["is_first"].shape == batch["terminated"].shape == (4, 16)
    obs = batch["observation"][..., 0]
    assert torch.equal(obs[1:] - obs[:-1], torch.ones(3, 16))       # consecutive steps
    # Slot t holds what led to observation t: the action/reward of step t-1; the first slot has zeros.
    first = batch["is_first"].bool()
    assert torch.equal(batch["action"][..., 0][~first], obs[~first])
    assert torch.equal(batch["reward"][first], torch.zeros(int(first.sum())))
    assert torch.equal(batch["terminated"], (obs == 10).float())


def test_windows_never_cross_episodes():
    replay = ReplayBuffer(200, (2,), 1, seed=3)
    fill(replay, [5, 3, 8, 2, 6])
    for _ in range(20):
        batch = replay.sample(32, 4)
        assert torch.equal(batch["is_first"][1:], torch.zeros(3, 32))   # a reset can only open a window


def test_ring_overwrites_the_oldest_steps():
    replay = ReplayBuffer(30, (2,), 1)
    fill(replay, [9, 9, 9, 9, 9])   # 50 steps into 30 slots
    assert len(replay) == 30
    batch = replay.sample(64, 5)
    assert batch["observation"].min() >= 20   # steps 0..19 are gone
    assert torch.equal(batch["observation"][1:, :, 0] - batch["observation"][:-1, :, 0], torch.ones(4, 64))


def test_no_window_fits_raises():
    replay = ReplayBuffer(50, (2,), 1)
    fill(replay, [2, 2])
    with pytest.raises(RuntimeError, match="no window of 5 steps"):
        replay.sample(4, 5)
    with pytest.raises(RuntimeError, match="start_episode"):
        ReplayBuffer(5, (1,), 1).add(np.zeros(1), 0.0, np.zeros(1), False)


def test_state_round_trip_continues_identically():
    replay = ReplayBuffer(40, (2,), 1, seed=5)
    fill(replay, [12, 12, 12])
    copy = ReplayBuffer(40, (2,), 1, seed=99)
    copy.load_state_tensors(replay.state_tensors())
    copy.rng.bit_generator.state = replay.rng.bit_generator.state
    original, restored = replay.sample(8, 3), copy.sample(8, 3)
    for key, value in original.items():
        assert torch.equal(value, restored[key])
    with pytest.raises(ValueError, match="replay.observation"):
        ReplayBuffer(40, (3,), 1).load_state_tensors(replay.state_tensors())
