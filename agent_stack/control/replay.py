"""Episode replay for the online agents: stores steps in a ring and samples windows inside one episode.

Each slot holds one observation with what led to it — the action taken in the previous step, the reward
it earned and whether the episode terminated there — the layout DreamerV3 and TD-MPC2 both use. The first
slot of an episode has ``is_first`` set, a zero action and zero reward. A window of length L therefore
gives L observations and the L - 1 actions and rewards between them (``action[1:]``, ``reward[1:]``).

All arrays live in numpy; `sample` returns float32 torch tensors shaped (L, B, ...), pixels as uint8.
Tensors for `--resume` come from `state_tensors` and go back through `load_state_tensors` (safetensors).
"""

from __future__ import annotations

import numpy as np
import torch

MAX_SAMPLE_TRIES = 1000


class ReplayBuffer:
    def __init__(self, capacity: int, observation_shape: tuple[int, ...], action_dim: int,
                 observation_dtype: type = np.float32, seed: int = 0) -> None:
        if capacity < 2 or action_dim < 1:
            raise ValueError(f"ReplayBuffer needs capacity >= 2 and action_dim >= 1, got {capacity}, {action_dim}")
        self.capacity = int(capacity)
        self.observation = np.zeros((capacity, *observation_shape), dtype=observation_dtype)
        self.action = np.zeros((capacity, action_dim), dtype=np.float32)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=bool)
        self.is_first = np.zeros(capacity, dtype=bool)
        self.episode = np.full(capacity, -1, dtype=np.int64)
        """Episode number of each slot (-1 empty): a window is valid when all its slots share one episode."""
        self.position = 0
        """Total steps ever added; the next one goes to slot position % capacity."""
        self.episodes = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.position, self.capacity)

    def _write(self, observation, action, reward: float, terminated: bool, first: bool) -> None:
        slot = self.position % self.capacity
        self.observation[slot] = observation
        self.action[slot] = action
        self.reward[slot] = reward
        self.terminated[slot] = terminated
        self.is_first[slot] = first
        self.episode[slot] = self.episodes - 1
        self.position += 1

    def start_episode(self, observation) -> None:
        """The reset observation of a new episode."""
        self.episodes += 1
        self._write(observation, 0.0, 0.0, False, True)

    def add(self, action, reward: float, observation, terminated: bool) -> None:
        """One step of the current episode: the action taken, its reward and the observation it led to."""
        if self.episodes == 0:
            raise RuntimeError("ReplayBuffer.add before start_episode")
        self._write(observation, action, reward, terminated, False)

    def sample(self, batch_size: int, length: int) -> dict[str, torch.Tensor]:
        """`batch_size` windows of `length` consecutive steps of one episode each, uniformly over valid starts."""
        for _ in range(MAX_SAMPLE_TRIES):
            oldest = max(0, self.position - self.capacity)
            if self.position - length + 1 <= oldest:
                break
            starts = self.rng.integers(oldest, self.position - length + 1, size=batch_size * 2)
            ok = self.episode[starts % self.capacity] == self.episode[(starts + length - 1) % self.capacity]
            starts = starts[ok]
            if starts.size >= batch_size:
                index = (starts[:batch_size, None] + np.arange(length)).T % self.capacity  # (L, B)
                return {
                    "observation": torch.from_numpy(self.observation[index]),
                    "action": torch.from_numpy(self.action[index]),
                    "reward": torch.from_numpy(self.reward[index]),
                    "terminated": torch.from_numpy(self.terminated[index].astype(np.float32)),
                    "is_first": torch.from_numpy(self.is_first[index].astype(np.float32)),
                }
        raise RuntimeError(f"no window of {length} steps inside one episode among {len(self)} stored steps")

    def state_tensors(self) -> dict[str, torch.Tensor]:
        size = len(self)
        return {
            "replay.observation": torch.from_numpy(self.observation[:size].copy()),
            "replay.action": torch.from_numpy(self.action[:size].copy()),
            "replay.reward": torch.from_numpy(self.reward[:size].copy()),
            "replay.terminated": torch.from_numpy(self.terminated[:size].copy()),
            "replay.is_first": torch.from_numpy(self.is_first[:size].copy()),
            "replay.episode": torch.from_numpy(self.episode[:size].copy()),
            "replay.counters": torch.tensor([self.position, self.episodes], dtype=torch.int64),
        }

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.position, self.episodes = (int(v) for v in tensors["replay.counters"])
        size = len(self)
        for name in ("observation", "action", "reward", "terminated", "is_first", "episode"):
            stored = tensors[f"replay.{name}"].numpy()
            if stored.shape[0] != size or stored.shape[1:] != getattr(self, name).shape[1:]:
                raise ValueError(f"replay.{name} in the checkpoint has shape {stored.shape}, expected "
                                 f"({size}, *{getattr(self, name).shape[1:]})")
            getattr(self, name)[:size] = stored
