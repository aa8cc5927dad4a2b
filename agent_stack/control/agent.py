"""One interface for the online agents (TD-MPC2, DreamerV3): `reset`, `act`, `update`, `save`, `load`.

An agent is an `nn.Module` whose parameters and buffers are its whole learned state (networks, target
networks, running scales), plus the optimisers in `optimizers`. A saved agent is a directory with
`model.safetensors`, the algorithm's `config.json` and `metadata.json` naming the algorithm and the
observation/action sizes it was built for, so `load_agent(dir)` needs nothing else.

The online trainer (`agent_stack.train.online`) reads `sequence_length`, `seed_steps` and
`updates_per_step` from the agent and a config field `episode_length`, where the config has one, is set
from the environment before the agent is built.

Goal conditioning: the network input is the observation with the goal appended. An environment can hand
the concatenation over as its observation (the tabletop reach task does), or a caller passes the goal
separately as `act(observation, goal)` (the controller node: proprioception + the `ee_target` position).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from agent_stack.checkpoint import (CONFIG_FILE, METADATA_FILE, WEIGHTS_FILE, load_weights, read_json, save_weights,
                                    write_json)

AGENT_PACKAGES = {
    "tdmpc2": "agent_stack.control.tdmpc2",
    "dreamerv3": "agent_stack.control.dreamer",
}
"""Algorithm name -> package whose `AGENT` attribute is the agent class (imported on first use)."""


class OnlineAgent(nn.Module):
    """Base of the online agents; subclasses set `algo` and `config_class` and implement the four methods."""

    algo: ClassVar[str]
    config_class: ClassVar[type]

    def __init__(self, config, observation_shape: tuple[int, ...], action_dim: int) -> None:
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got {type(config).__name__}")
        if action_dim < 1 or not observation_shape or min(observation_shape) < 1:
            raise ValueError(f"bad sizes: observation_shape={observation_shape}, action_dim={action_dim}")
        self.config = config
        self.observation_shape = tuple(int(v) for v in observation_shape)
        self.action_dim = int(action_dim)
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sequence_length(self) -> int:
        """Steps per replay window that `update` consumes."""
        raise NotImplementedError

    @property
    def seed_steps(self) -> int:
        """Environment steps taken with uniform random actions before the first update (the config's
        `random_steps`)."""
        return self.config.random_steps

    @property
    def updates_per_step(self) -> float:
        """Calls of `update` per environment step once seeding is over (the config's replay ratio)."""
        return self.config.updates_per_step

    @property
    def pretrain_updates(self) -> int:
        """Extra updates right when seeding ends (TD-MPC2 pretrains its model on the seed data)."""
        return 0

    def reset(self) -> None:
        """A new episode starts (recurrent state, planner warm start)."""

    def act(self, observation: np.ndarray, goal: np.ndarray | None = None, eval: bool = False) -> np.ndarray:
        """Action in [-1, 1]^action_dim for one observation; `eval` = deterministic (no exploration)."""
        raise NotImplementedError

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        """One gradient step on a replay batch (see `ReplayBuffer.sample`); returns scalar metrics."""
        raise NotImplementedError

    def network_input(self, observation: np.ndarray, goal: np.ndarray | None) -> torch.Tensor:
        """The observation (with the goal appended) as a float tensor with a batch axis, shape-checked."""
        observation = np.asarray(observation)
        if goal is not None:
            observation = np.concatenate([observation.ravel(), np.asarray(goal, dtype=np.float32).ravel()])
        if observation.shape != self.observation_shape:
            raise ValueError(f"{self.algo} agent expects observations of shape {self.observation_shape}"
                             f"{' (with the goal appended)' if goal is not None else ''}, got {observation.shape}")
        if observation.dtype != np.uint8 and not np.all(np.isfinite(observation)):
            raise ValueError(f"observation contains NaN or inf: {observation}")
        return torch.as_tensor(observation, device=self.device).unsqueeze(0)

    # --- checkpoints -------------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Weights, config and sizes into `directory` (created if needed)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_weights(self.state_dict(), directory / WEIGHTS_FILE)
        self.config.save(directory / CONFIG_FILE)
        write_json(directory / METADATA_FILE, {"algo": self.algo, "observation_shape": list(self.observation_shape),
                                               "action_dim": self.action_dim})

    @classmethod
    def load(cls, directory: str | Path, device: str | torch.device = "cpu") -> OnlineAgent:
        directory = Path(directory)
        for name in (WEIGHTS_FILE, CONFIG_FILE, METADATA_FILE):
            if not (directory / name).is_file():
                raise FileNotFoundError(f"agent checkpoint {directory} has no {name}")
        metadata = read_json(directory / METADATA_FILE)
        if metadata.get("algo") != cls.algo:
            raise ValueError(f"{directory} holds a {metadata.get('algo')!r} agent, not {cls.algo!r}")
        agent = cls(cls.config_class.load(directory / CONFIG_FILE), tuple(metadata["observation_shape"]),
                    int(metadata["action_dim"])).to(device)
        load_weights(agent, directory / WEIGHTS_FILE)
        return agent


def agent_class(algo: str) -> type[OnlineAgent]:
    if algo not in AGENT_PACKAGES:
        raise ValueError(f"unknown agent {algo!r}; choose from {sorted(AGENT_PACKAGES)}")
    return import_module(AGENT_PACKAGES[algo]).AGENT


def load_agent(directory: str | Path, device: str | torch.device = "cpu") -> OnlineAgent:
    """The agent saved in `directory`, whatever its algorithm."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise FileNotFoundError(f"agent checkpoint {directory} has no {METADATA_FILE}")
    return agent_class(str(read_json(path).get("algo"))).load(directory, device)
