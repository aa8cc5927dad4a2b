"""Robot observations as a policy network takes them: images as uint8 tensors at the model's size,
proprioception normalised with the checkpoint's statistics. Shared by every policy that acts one
observation at a time, so they all refuse a malformed observation with the same message."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from agent_stack.normalization import Statistics


def image_tensor(key: str, image, size: int, device: torch.device) -> torch.Tensor:
    """uint8 (H, W, 3) -> uint8 tensor (size, size, 3), resized (antialiased bilinear) when it differs;
    None -> zeros (a camera the robot lacks)."""
    if image is None:
        return torch.zeros(size, size, 3, dtype=torch.uint8, device=device)
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"observation[{key!r}] must be uint8 (H, W, 3), got {array.dtype} {array.shape}")
    tensor = torch.tensor(array, device=device)  # a copy: camera buffers may be read-only
    if array.shape[:2] != (size, size):
        resized = F.interpolate(tensor.permute(2, 0, 1)[None].float(), size=(size, size), mode="bilinear",
                                antialias=True, align_corners=False)
        tensor = resized[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8)
    return tensor


def controller_target(observation: dict) -> np.ndarray:
    """observation["ee_target"], the controller's current end-effector target (x y z, quaternion w x y z):
    what a policy of absolute targets computes its delta action against."""
    reference = np.asarray(observation.get("ee_target", ()), dtype=np.float64).reshape(-1)
    if reference.shape != (7,) or not np.isfinite(reference).all():
        raise ValueError("this policy predicts end-effector targets: act() needs observation['ee_target'], "
                         "the controller's current target (x y z, quaternion w x y z)")
    return reference


def state_tensor(state, statistics: Statistics, dim: int, device: torch.device) -> torch.Tensor:
    """Proprioception as recorded -> (1, dim) normalised, zero-padded to `dim` as the data pipeline pads."""
    if state is None:
        raise ValueError("this policy needs observation['state'] (proprioception)")
    values = np.asarray(state, dtype=np.float64).reshape(-1)
    if values.shape != (statistics.dim,) or not np.isfinite(values).all():
        raise ValueError(f"observation['state'] must be {statistics.dim} finite numbers, got {values.shape}")
    normalized = np.zeros(dim, np.float32)
    normalized[:statistics.dim] = statistics.normalize(values)
    return torch.from_numpy(normalized)[None].to(device)
