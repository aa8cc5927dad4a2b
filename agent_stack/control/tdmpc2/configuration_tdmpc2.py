"""TDMPC2Config: TD-MPC2 (Hansen, Su and Wang, ICLR 2024), saved as JSON beside the agent's weights.

Defaults are the paper's (its Table 7 / the official `config.yaml`); `preset(size)` applies one of the
paper's model sizes (1, 5, 19, 48, 317 million parameters).
"""

from __future__ import annotations

import dataclasses

from agent_stack.configs import JSONConfig

MODEL_SIZES: dict[int, dict[str, int]] = {
    1: {"enc_dim": 256, "mlp_dim": 384, "latent_dim": 128, "num_enc_layers": 2, "num_q": 2},
    5: {"enc_dim": 256, "mlp_dim": 512, "latent_dim": 512, "num_enc_layers": 2},
    19: {"enc_dim": 1024, "mlp_dim": 1024, "latent_dim": 768, "num_enc_layers": 3},
    48: {"enc_dim": 1792, "mlp_dim": 1792, "latent_dim": 768, "num_enc_layers": 4},
    317: {"enc_dim": 4096, "mlp_dim": 4096, "latent_dim": 1376, "num_enc_layers": 5, "num_q": 8},
}
"""Architecture of each model size (millions of parameters, single-task), as in the paper's Table 8."""


@dataclasses.dataclass
class TDMPC2Config(JSONConfig):
    """Hyper-parameters of the agent; every default is the paper's."""

    # --- training (Sec. 3.2, eq. 3 and 4) ---
    batch_size: int = 256
    lr: float = 3e-4
    enc_lr_scale: float = 0.3
    """The encoder learns at lr * enc_lr_scale."""
    grad_clip_norm: float = 20.0
    tau: float = 0.01
    """Polyak rate of the target Q-networks and of the running Q scale."""
    rho: float = 0.5
    """Temporal weighting of the losses over the horizon (rho^t)."""
    consistency_coef: float = 20.0
    reward_coef: float = 0.1
    value_coef: float = 0.1
    entropy_coef: float = 1e-4
    """beta of the max-entropy policy objective (eq. 4)."""
    episode_length: int = 500
    """Agent steps per episode; the trainer sets it from the environment. Sets the discount and seeding."""
    discount: float | None = None
    """Fixed discount; None uses the paper's heuristic from `episode_length` (see `gamma`)."""
    discount_denom: float = 5.0
    discount_min: float = 0.95
    discount_max: float = 0.995
    updates_per_step: float = 1.0
    """Gradient updates per environment step (the paper's UTD ratio of 1)."""
    seed_steps: int | None = None
    """Random-action steps before learning; None: max(1000, 5 episodes) as in the paper."""

    # --- planning: MPPI in latent space (Sec. 3.3, Algorithm 1) ---
    mpc: bool = True
    """False acts with the policy prior alone (faster, weaker)."""
    horizon: int = 3
    iterations: int = 6
    num_samples: int = 512
    num_elites: int = 64
    num_pi_trajs: int = 24
    min_std: float = 0.05
    max_std: float = 2.0
    temperature: float = 0.5

    # --- actor ---
    log_std_min: float = -10.0
    log_std_max: float = 2.0

    # --- discrete regression of reward and value (two-hot over symlog bins) ---
    num_bins: int = 101
    vmin: float = -10.0
    vmax: float = 10.0

    # --- architecture (model size 5 by default) ---
    num_enc_layers: int = 2
    enc_dim: int = 256
    num_channels: int = 32
    """Channels of the pixel encoder's convolutions."""
    mlp_dim: int = 512
    latent_dim: int = 512
    num_q: int = 5
    dropout: float = 0.01
    """Dropout in the first layer of each Q-function."""
    simnorm_dim: int = 8
    """Size of the simplices SimNorm projects the latent onto."""

    @classmethod
    def preset(cls, model_size: int, **overrides) -> TDMPC2Config:
        if model_size not in MODEL_SIZES:
            raise ValueError(f"TDMPC2Config model_size must be one of {sorted(MODEL_SIZES)}, got {model_size!r}")
        return cls(**{**MODEL_SIZES[model_size], **overrides})

    def __post_init__(self) -> None:
        positive_ints = ("episode_length", "batch_size", "horizon", "iterations", "num_samples", "num_elites", "num_bins",
                         "num_enc_layers", "enc_dim", "num_channels", "mlp_dim", "latent_dim", "simnorm_dim")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TDMPC2Config.{name} must be a positive integer, got {value!r}")
        for name in ("lr", "enc_lr_scale", "grad_clip_norm", "tau", "rho", "temperature", "min_std", "max_std",
                     "discount_denom", "updates_per_step"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"TDMPC2Config.{name} must be a positive number, got {value!r}")
        if self.num_q < 2:
            raise ValueError(f"TDMPC2Config.num_q must be >= 2 (targets take the min of two), got {self.num_q}")
        if not 0 <= self.num_pi_trajs < self.num_samples or not 0 < self.num_elites <= self.num_samples:
            raise ValueError("TDMPC2Config needs 0 <= num_pi_trajs < num_samples and 0 < num_elites <= "
                             f"num_samples, got {self.num_pi_trajs}, {self.num_elites}, {self.num_samples}")
        if self.latent_dim % self.simnorm_dim:
            raise ValueError(f"TDMPC2Config.latent_dim ({self.latent_dim}) must be a multiple of simnorm_dim "
                             f"({self.simnorm_dim})")
        if not self.min_std <= self.max_std or not self.vmin < self.vmax or not self.log_std_min < self.log_std_max:
            raise ValueError("TDMPC2Config needs min_std <= max_std, vmin < vmax and log_std_min < log_std_max")
        if self.discount is not None and not 0 < self.discount < 1:
            raise ValueError(f"TDMPC2Config.discount must be in (0, 1) or None, got {self.discount!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"TDMPC2Config.dropout must be in [0, 1), got {self.dropout!r}")
        if self.seed_steps is not None and (isinstance(self.seed_steps, bool) or self.seed_steps < 0):
            raise ValueError(f"TDMPC2Config.seed_steps must be >= 0 or None, got {self.seed_steps!r}")

    @property
    def gamma(self) -> float:
        """`discount`, or the paper's heuristic: (L/5 - 1) / (L/5) for episode length L, clipped to [0.95, 0.995]."""
        if self.discount is not None:
            return self.discount
        frac = self.episode_length / self.discount_denom
        return min(max((frac - 1) / frac, self.discount_min), self.discount_max)

    @property
    def random_steps(self) -> int:
        """`seed_steps`, or the paper's max(1000, 5 episodes)."""
        return self.seed_steps if self.seed_steps is not None else max(1000, 5 * self.episode_length)
