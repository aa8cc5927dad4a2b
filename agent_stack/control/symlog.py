"""Symlog squashing and two-hot discrete regression, shared by DreamerV3 and TD-MPC2.

Both agents predict rewards and values as a categorical distribution over fixed bins instead of a scalar
(DreamerV3 §"Robust predictions"; TD-MPC2 §3.3 "discrete regression"): the target is symlog-transformed,
spread over its two nearest bins ("two-hot"), and learned with cross-entropy, so the loss scale does not
depend on the reward scale of the task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def symlog(x: torch.Tensor) -> torch.Tensor:
    """sign(x) * ln(|x| + 1) (DreamerV3 eq. 1)."""
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    """Inverse of `symlog`: sign(x) * (exp(|x|) - 1)."""
    return torch.sign(x) * torch.expm1(x.abs())


class TwoHot:
    """Bins spaced uniformly in symlog space over [low, high]; encode scalars, decode logits."""

    def __init__(self, num_bins: int, low: float, high: float) -> None:
        if num_bins < 2 or not low < high:
            raise ValueError(f"TwoHot needs num_bins >= 2 and low < high, got {num_bins}, {low}, {high}")
        self.num_bins, self.low, self.high = int(num_bins), float(low), float(high)
        self.bin_size = (self.high - self.low) / (self.num_bins - 1)

    def bins(self, device: torch.device | str = "cpu") -> torch.Tensor:
        return torch.linspace(self.low, self.high, self.num_bins, device=device)

    def encode(self, value: torch.Tensor) -> torch.Tensor:
        """(...,) real values -> (..., num_bins) two-hot probabilities of symlog(value)."""
        x = symlog(value).clamp(self.low, self.high)
        position = (x - self.low) / self.bin_size
        lower = position.floor().clamp(max=self.num_bins - 2)
        upper_weight = (position - lower).unsqueeze(-1)
        lower_index = lower.long().unsqueeze(-1)
        probs = torch.zeros(*x.shape, self.num_bins, device=x.device, dtype=x.dtype)
        probs.scatter_(-1, lower_index, 1.0 - upper_weight)
        probs.scatter_add_(-1, lower_index + 1, upper_weight)
        return probs

    def decode(self, logits: torch.Tensor) -> torch.Tensor:
        """(..., num_bins) logits -> (...,) expected value, mapped back with symexp."""
        return symexp((F.softmax(logits, dim=-1) * self.bins(logits.device)).sum(-1))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of `logits` against the two-hot encoding of `target`, per element (no reduction)."""
        return -(self.encode(target) * F.log_softmax(logits, dim=-1)).sum(-1)
