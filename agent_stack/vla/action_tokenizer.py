"""ActionTokenizer: normalised actions <-> 256 uniform bins per dimension (RT-1 / RT-2 / OpenVLA).

Every dim arrives normalised to [-1, 1] by the dataset statistics but the gripper, which stays an opening
in [0, 1] (see agent_stack.normalization): the last of the 7 delta dims, or of the 10 target dims. Each
dimension is binned uniformly over its own range and decodes to its bin centre, so decode(encode(x)) is
within half a bin of x and encode(decode(b)) == b.
"""

from __future__ import annotations

import torch

from agent_stack.normalization import ACTION_DIM


class ActionTokenizer:
    def __init__(self, num_bins: int = 256, low: torch.Tensor | None = None, high: torch.Tensor | None = None,
                 action_dim: int = ACTION_DIM) -> None:
        """Bins over [low, high] per dim; by default [-1, 1], and [0, 1] for the gripper (the last dim)."""
        if num_bins < 2:
            raise ValueError(f"num_bins must be >= 2, got {num_bins}")
        self.num_bins = num_bins
        default_low = torch.full((action_dim,), -1.0)
        default_low[-1] = 0.0
        self.low = (default_low if low is None else torch.as_tensor(low, dtype=torch.float32)).double()
        default_high = torch.ones(action_dim)
        self.high = (default_high if high is None else torch.as_tensor(high, dtype=torch.float32)).double()
        if self.low.shape != self.high.shape or not bool((self.high > self.low).all()):
            raise ValueError("ActionTokenizer needs low < high in every dimension")

    def _bounds(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.low.to(like.device), self.high.to(like.device)

    def encode(self, actions: torch.Tensor) -> torch.Tensor:
        """(..., D) actions -> (..., D) int64 bins in [0, num_bins); values outside the range clip."""
        low, high = self._bounds(actions)
        unit = (actions.double() - low) / (high - low)
        return torch.clamp(torch.floor(unit * self.num_bins), 0, self.num_bins - 1).long()

    def decode(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., D) bins -> (..., D) float32 bin centres."""
        if bool(((tokens < 0) | (tokens >= self.num_bins)).any()):
            raise ValueError(f"action tokens must lie in [0, {self.num_bins}), got {tokens.min()}..{tokens.max()}")
        low, high = self._bounds(tokens.double())
        return (low + (tokens.double() + 0.5) * (high - low) / self.num_bins).float()

    def to_unit(self, actions: torch.Tensor) -> torch.Tensor:
        """Every dimension mapped linearly to [-1, 1] (the continuous head's target space)."""
        low, high = self._bounds(actions)
        return (2.0 * (actions.double() - low) / (high - low) - 1.0).float()

    def from_unit(self, values: torch.Tensor) -> torch.Tensor:
        low, high = self._bounds(values)
        return (low + (values.double().clamp(-1.0, 1.0) + 1.0) * (high - low) / 2.0).float()
