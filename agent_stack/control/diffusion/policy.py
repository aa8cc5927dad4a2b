"""DiffusionPolicy: a trained Diffusion Policy with its normalisation statistics, acting in robot units.

Receding horizon (Chi et al. Sec. 3.1): keep the last To observations; when the queue of actions to execute
is empty, denoise a chunk of Tp actions from the current history and queue its first Ta. `act` does that
one observation at a time (the simulator's evaluation loop); a controller that must not wait on inference
takes `snapshot()` of the history and runs `predict(snapshot)` on another thread while it executes the
previous chunk (`agent_stack.control.diffusion.chunking`).

A policy of the 'target' action space denoises absolute end-effector targets; `act` turns each into the
delta that moves the controller's current target (`observation["ee_target"]`) onto it, so it drives the
same ee_delta interface as every other policy. A policy with the position head reads the contact point
from the first observation after `reset` (`contact_point`); a `contact_conditioning` one conditions every
chunk of the episode on it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from agent_stack.checkpoint import (
    WEIGHTS_FILE,
    load_weights,
    read_policy_files,
    resolve_checkpoint,
    save_policy_files,
)
from agent_stack.control.diffusion.configuration_diffusion import EE_TARGET_DIM, DiffusionConfig
from agent_stack.control.diffusion.modeling_diffusion import DiffusionModel, from_model_actions
from agent_stack.control.osc import target_actions_to_poses, target_to_action
from agent_stack.language import InstructionEncoder
from agent_stack.normalization import DatasetStatistics
from agent_stack.observation import controller_target, image_tensor, state_tensor


@dataclass(frozen=True)
class Snapshot:
    """The policy's inputs at one moment, detached from its history: safe to denoise on another thread."""

    images: dict[str, torch.Tensor]
    """camera -> (1, To, S, S, 3) uint8"""
    state: torch.Tensor | None
    """(1, To, D) normalised"""
    goal: torch.Tensor | None
    """(1, G)"""
    contact: torch.Tensor | None
    """(1, 3) normalised: the position head's contact point for this episode (None without the head)"""


class DiffusionPolicy:
    def __init__(self, model: DiffusionModel, statistics: DatasetStatistics, metadata: dict | None = None,
                 device: str | torch.device = "cpu", seed: int = 0) -> None:
        if model.config.state_dim and statistics.state is None:
            raise ValueError("the model takes a state input but the statistics have no state statistics")
        if model.config.action_space == "target" and statistics.target is None:
            raise ValueError("the model predicts target actions but the statistics have no target statistics")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config: DiffusionConfig = model.config
        self.statistics = statistics
        self.metadata = dict(metadata or {})
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self._encoder = InstructionEncoder() if self.config.goal == "language" else None
        self._goal: torch.Tensor | None = None
        self._target: np.ndarray | None = None
        self._position: np.ndarray | None = None
        self._contact: torch.Tensor | None = None
        self._history: deque[tuple[dict[str, torch.Tensor], torch.Tensor | None]] = deque(
            maxlen=self.config.obs_horizon)
        self._queue: deque[np.ndarray] = deque()

    @property
    def control_hz(self) -> float | None:
        """Rate of the demonstrations the policy learned from (act at this rate), when known."""
        return self.metadata.get("control_hz")

    @property
    def contact_point(self) -> np.ndarray | None:
        """Where the position head (`position_loss_weight` > 0) expects the hand to meet the object in this
        episode (x y z, metres, base frame), read from the first observation after `reset`; None before it
        and for a policy without the head. A `contact_conditioning` policy acts on it."""
        if self._contact is None:
            return None
        normalized = np.zeros(self.config.action_dim, np.float32)
        normalized[:EE_TARGET_DIM] = self._contact[0].cpu().numpy()
        return self.statistics.denormalize_target(normalized)[:EE_TARGET_DIM]

    # --- checkpoints ---------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu",
                        seed: int = 0) -> DiffusionPolicy:
        """Load a checkpoint directory, or the latest checkpoint of a training run directory."""
        directory = resolve_checkpoint(path)
        config, statistics, metadata = read_policy_files(directory, DiffusionConfig)
        if metadata.get("policy", "diffusion") != "diffusion":
            raise ValueError(f"{directory} holds a {metadata['policy']!r} policy, not a diffusion policy")
        model = DiffusionModel(config)
        load_weights(model, directory / WEIGHTS_FILE)
        return cls(model, statistics, metadata, device, seed)

    def save_pretrained(self, directory: str | Path) -> None:
        save_pretrained(Path(directory), self.model, self.statistics, self.metadata)

    # --- acting --------------------------------------------------------------------------------------------

    def reset(self, instruction: str | None = None) -> None:
        """Start an episode: forget the history and the queued actions; a language-goal policy needs the
        instruction."""
        if self.config.goal == "language":
            if not isinstance(instruction, str) or not instruction.strip():
                raise ValueError("this policy is conditioned on language: reset(instruction) needs a "
                                 f"non-empty string, got {instruction!r}")
            self._goal = torch.from_numpy(self._encoder([instruction.strip()])).to(self.device)
        self._history.clear()
        self._queue.clear()
        self._target = None
        self._contact = None

    def set_target(self, position) -> None:
        """The end-effector position (base frame, metres) an 'ee_target' policy moves toward; takes effect
        at the next denoised chunk."""
        if self.config.goal != "ee_target":
            raise RuntimeError(f"this policy's goal is {self.config.goal!r}, not an end-effector target")
        target = np.asarray(position, dtype=np.float64).reshape(-1)
        if target.shape != (3,) or not np.isfinite(target).all():
            raise ValueError(f"target position must be 3 finite numbers, got {position!r}")
        self._target = target

    def observe(self, observation: dict) -> None:
        """Add an observation (camera keys of the config as uint8 (H, W, 3), "state" as recorded)."""
        if self.config.goal == "language" and self._goal is None:
            raise RuntimeError("call reset(instruction) before observing")
        if self.config.goal == "ee_target":
            self._position = np.asarray(observation["state"], dtype=np.float64)[:3]
        images = {key: image_tensor(key, observation.get(key), self.config.image_size, self.device)
                  for key in self.config.cameras}
        state = (state_tensor(observation.get("state"), self.statistics.state, self.config.state_dim,
                              self.device)[0] if self.config.state_dim else None)
        if self.model.position_head is not None and not self._history:  # the episode's first frame
            with torch.inference_mode():
                self._contact = self.model.predict_contact(images["image"][None, None], self._goal)
        self._history.append((images, state))
        while len(self._history) < self.config.obs_horizon:  # as the data pipeline pads an episode's start
            self._history.appendleft(self._history[0])

    def snapshot(self) -> Snapshot:
        if not self._history:
            raise RuntimeError("no observation yet: call observe() first")
        frames = list(self._history)
        images = {key: torch.stack([f[0][key] for f in frames])[None] for key in self.config.cameras}
        state = torch.stack([f[1] for f in frames])[None] if self.config.state_dim else None
        goal = self._target_goal() if self.config.goal == "ee_target" else self._goal
        return Snapshot(images, state, goal, self._contact)

    def _target_goal(self) -> torch.Tensor:
        """The mean per-step translation that reaches the target within the chunk, normalised as the
        actions are (so far targets saturate at the fastest demonstrated motion)."""
        if self._target is None:
            raise RuntimeError("call set_target(position) before acting")
        per_step = np.zeros(self.config.action_dim)
        per_step[:EE_TARGET_DIM] = (self._target - self._position) / self.config.pred_horizon
        goal = self.statistics.normalize_action(per_step)[:EE_TARGET_DIM]
        return torch.from_numpy(goal.astype(np.float32))[None].to(self.device)

    @torch.inference_mode()
    def predict(self, snapshot: Snapshot) -> np.ndarray:
        """The denoised chunk in robot units, then the gripper opening 0..1: (Tp, 7) deltas (m, rad), or
        for the 'target' action space (Tp, 8) target poses (x y z in m, unit quaternion w x y z)."""
        cond = self.model.global_condition(snapshot.images, snapshot.state, snapshot.goal, snapshot.contact)
        normalized = from_model_actions(self.model.sample(cond, self.generator))[0].cpu().numpy()
        if self.config.action_space == "delta":
            return self.statistics.denormalize_action(normalized).astype(np.float32)
        return target_actions_to_poses(self.statistics.denormalize_target(normalized))

    def act(self, observation: dict) -> np.ndarray:
        """Observe, and return the next (7,) ee_delta action, denoising a new chunk when the last Ta ran out.
        A 'target' policy needs `observation["ee_target"]`: the pose (x y z, quaternion w x y z) the
        returned delta will move, i.e. the controller's current end-effector target."""
        reference = controller_target(observation) if self.config.action_space == "target" else None
        self.observe(observation)
        if not self._queue:
            self._queue.extend(self.predict(self.snapshot())[:self.config.action_steps])
        action = self._queue.popleft()
        if reference is None:
            return action
        return target_to_action(reference, action)


def save_pretrained(directory: Path, model: DiffusionModel, statistics: DatasetStatistics,
                    metadata: dict) -> None:
    """The files `DiffusionPolicy.from_pretrained` reads."""
    save_policy_files(directory, model, statistics, {"policy": "diffusion", **metadata})
