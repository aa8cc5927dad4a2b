"""VLAPolicy: a trained VLA with its normalisation statistics, acting one observation at a time.

It keeps the last `history` frames' image tokens (a frame's tokens depend only on that frame and the
instruction), so each step runs the ViT on the new frame only. Inputs and outputs are in robot units:
images uint8, state as recorded, actions as the dataset's end-effector deltas with the gripper opening. A
policy of the 'target' action space predicts target poses and acts with the delta that moves the
controller's current target (`observation["ee_target"]`) onto the first of them.
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
from agent_stack.control.osc import target_actions_to_poses, target_to_action
from agent_stack.language import InstructionEncoder
from agent_stack.normalization import DatasetStatistics
from agent_stack.observation import controller_target, image_tensor, state_tensor
from agent_stack.vla.configuration_vla import VLAConfig
from agent_stack.vla.modeling_vla import VLAModel


@dataclass
class VLAOutput:
    action: np.ndarray
    """(7,) the action to execute now: dx dy dz droll dpitch dyaw (base frame, m and rad) + gripper opening."""
    chunk: np.ndarray
    """The whole predicted chunk: (K, 7) deltas, `action` first; for the 'target' action space (K, 8)
    target poses (x y z, quaternion w x y z, gripper opening), `action` reaching the first."""
    terminate: float
    """Probability that the instruction is done."""


class VLAPolicy:
    def __init__(self, model: VLAModel, statistics: DatasetStatistics, metadata: dict | None = None,
                 device: str | torch.device = "cpu") -> None:
        if model.config.state_dim and statistics.state is None:
            raise ValueError("the model takes a state input but the statistics have no state statistics")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.config = model.config
        self.statistics = statistics
        self.metadata = dict(metadata or {})
        self._encoder = InstructionEncoder()
        self._language: torch.Tensor | None = None
        self._frames: deque = deque(maxlen=self.config.history)

    @property
    def control_hz(self) -> float | None:
        """Rate of the demonstrations the policy learned from (act at this rate), when known."""
        return self.metadata.get("control_hz")

    # --- checkpoints ---------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str | torch.device = "cpu") -> VLAPolicy:
        """Load a checkpoint directory, or the latest checkpoint of a training run directory."""
        directory = resolve_checkpoint(path)
        config, statistics, metadata = read_policy_files(directory, VLAConfig)
        model = VLAModel(config)
        load_weights(model, directory / WEIGHTS_FILE)
        return cls(model, statistics, metadata, device)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights, config, statistics and metadata into `directory` (which must exist)."""
        save_pretrained(Path(directory), self.model, self.statistics, self.metadata)

    # --- acting --------------------------------------------------------------------------------------------

    def reset(self, instruction: str) -> None:
        """Start a new instruction: forget the frame history."""
        if not isinstance(instruction, str) or not instruction.strip():
            raise ValueError(f"instruction must be a non-empty string, got {instruction!r}")
        self._language = torch.from_numpy(self._encoder([instruction.strip()])).to(self.device)
        self._frames.clear()

    @torch.inference_mode()
    def act(self, observation: dict) -> VLAOutput:
        """observation: camera keys of the config ("image", optional "wrist_image") as uint8 (H, W, 3),
        "state" when the model uses proprioception, and "ee_target" (the controller's current target, x y z
        and quaternion w x y z) for the 'target' action space. Returns the next action in robot units."""
        if self._language is None:
            raise RuntimeError("call reset(instruction) before act()")
        reference = controller_target(observation) if self.config.action_space == "target" else None
        images, has_camera = {}, {}
        for key in self.config.cameras:
            image = observation.get(key)
            has_camera[key] = torch.tensor([image is not None], device=self.device)
            images[key] = self._image(key, image)[None, None]
        tokens = self.model.encode_frames(images, self._language)[:, 0]  # (1, M, W)
        valid = self.model.camera_mask(has_camera)  # (1, M)
        self._frames.append((tokens, valid, self._state(observation.get("state"))))
        while len(self._frames) < self.config.history:  # as the data pipeline pads: the first frame, masked
            first_tokens, first_valid, first_state = self._frames[0]
            self._frames.appendleft((first_tokens, torch.zeros_like(first_valid), first_state))
        frame_tokens = torch.stack([f[0] for f in self._frames], dim=1)
        frame_valid = torch.stack([f[1] for f in self._frames], dim=1)
        state = torch.stack([f[2] for f in self._frames], dim=1) if self.config.state_dim else None
        action_output, terminate_logits = self.model.heads(
            self.model.readout_embedding(frame_tokens, frame_valid, self._language, state))
        normalized = self.model.decode_actions(action_output)[0].cpu().numpy()
        terminate = float(torch.sigmoid(terminate_logits[0, 0]))
        if reference is None:
            chunk = self.statistics.denormalize_action(normalized).astype(np.float32)
            return VLAOutput(action=chunk[0], chunk=chunk, terminate=terminate)
        poses = target_actions_to_poses(self.statistics.denormalize_target(normalized))
        return VLAOutput(action=target_to_action(reference, poses[0]), chunk=poses, terminate=terminate)

    def _image(self, key: str, image) -> torch.Tensor:
        return image_tensor(key, image, self.config.image_size, self.device)

    def _state(self, state) -> torch.Tensor:
        if not self.config.state_dim:
            return torch.zeros(1, 0, device=self.device)
        return state_tensor(state, self.statistics.state, self.config.state_dim, self.device)


def save_pretrained(directory: Path, model: VLAModel, statistics: DatasetStatistics, metadata: dict) -> None:
    """The files `VLAPolicy.from_pretrained` reads."""
    save_policy_files(directory, model, statistics, metadata)
