"""DreamerConfig: DreamerV3 (Hafner et al., "Mastering Diverse Domains through World Models", arXiv:2301.04104
v1, January 2023), saved as JSON beside the agent's weights.

Defaults are the 2023 paper's hyper-parameters (its hyper-parameter table, as in the official code release
of that version) with the "S" model size the paper uses for the DeepMind Control Suite; `preset(size)`
applies one of the paper's model sizes XS, S, M, L, XL (its model-size table), or the tiny "test" size,
which is not from the paper and only exists to keep unit tests fast.
"""

from __future__ import annotations

import dataclasses

from agent_stack.configs import JSONConfig

MODEL_SIZES: dict[str, dict[str, int]] = {
    # GRU recurrent units (deter), dense hidden units (units, also the RSSM's hidden layers),
    # MLP layers, CNN multiplier (cnn_depth): the 2023 paper's model sizes (8M to 200M parameters).
    "XS": {"deter": 256, "units": 256, "mlp_layers": 1, "cnn_depth": 24},
    "S": {"deter": 512, "units": 512, "mlp_layers": 2, "cnn_depth": 32},
    "M": {"deter": 1024, "units": 640, "mlp_layers": 3, "cnn_depth": 48},
    "L": {"deter": 2048, "units": 768, "mlp_layers": 4, "cnn_depth": 64},
    "XL": {"deter": 4096, "units": 1024, "mlp_layers": 5, "cnn_depth": 96},
    # Not a paper size: a tiny model (and small batches) for unit tests.
    "test": {"deter": 32, "units": 32, "mlp_layers": 1, "cnn_depth": 4, "stoch": 8, "classes": 8,
             "batch_size": 4, "batch_length": 16},
}
"""Architecture of each model size (2023 paper, model-size table); "test" is a tiny size for tests only."""


@dataclasses.dataclass
class DreamerConfig(JSONConfig):
    """Hyper-parameters of the agent; every default is the 2023 paper's (model size S)."""

    # --- replay and training schedule -------------------------------------------------------------------
    batch_size: int = 16
    """Replay windows per update (B)."""
    batch_length: int = 64
    """Steps per replay window (T); the agent's `sequence_length`."""
    train_ratio: float = 512.0
    """Replayed steps per environment step (the paper's replay ratio, 512 for the Control Suite); updates per
    environment step = train_ratio / (batch_size * batch_length)."""
    seed_steps: int | None = None
    """Random-action environment steps before the first update; None: one batch, batch_size * batch_length,
    the amount the official code fills the replay with before it trains."""

    # --- world model: RSSM (section "World Model Learning") -------------------------------------------
    deter: int = 512
    """Units of the GRU's deterministic recurrent state h_t."""
    units: int = 512
    """Hidden units of every MLP layer (encoder, decoder, heads, actor, critic, the RSSM's hidden layers)."""
    mlp_layers: int = 2
    """Hidden layers of the MLPs (encoder, decoder, reward, continue, actor, critic)."""
    cnn_depth: int = 32
    """Channels of the first convolution of the image encoder; each further stride-2 stage doubles them."""
    stoch: int = 32
    """Categorical latent variables of the stochastic state z_t."""
    classes: int = 32
    """Classes of each categorical latent variable."""
    unimix: float = 0.01
    """Fraction of the uniform distribution mixed into the categorical latents (1 % "unimix")."""
    free_nats: float = 1.0
    """Free bits: the dynamics and representation losses are clipped below this many nats."""
    dyn_scale: float = 0.5
    """beta_dyn: weight of the dynamics loss KL(sg(posterior) || prior)."""
    rep_scale: float = 0.1
    """beta_rep: weight of the representation loss KL(posterior || sg(prior))."""
    rec_scale: float = 1.0
    """Weight of the observation (decoder) loss."""
    reward_scale: float = 1.0
    """Weight of the reward predictor's loss."""
    cont_scale: float = 1.0
    """Weight of the continue predictor's loss."""
    num_bins: int = 255
    """Bins of the two-hot reward and critic distributions (uniform in symlog space)."""
    bins_low: float = -20.0
    """Lowest bin (symlog space)."""
    bins_high: float = 20.0
    """Highest bin (symlog space)."""
    model_lr: float = 1e-4
    """Adam learning rate of the world model."""
    model_eps: float = 1e-8
    """Adam epsilon of the world model."""
    model_grad_clip: float = 1000.0
    """Global gradient-norm clip of the world model."""

    # --- actor-critic in imagination (section "Actor Critic Learning") -------------------------------
    imag_horizon: int = 15
    """Imagination horizon H."""
    discount_horizon: float = 333.0
    """Discount horizon: gamma = 1 - 1 / discount_horizon (0.997)."""
    return_lambda: float = 0.95
    """lambda of the lambda-returns."""
    actor_lr: float = 3e-5
    """Adam learning rate of the actor."""
    critic_lr: float = 3e-5
    """Adam learning rate of the critic."""
    ac_eps: float = 1e-5
    """Adam epsilon of the actor and the critic."""
    ac_grad_clip: float = 100.0
    """Global gradient-norm clip of the actor and of the critic."""
    actor_entropy: float = 3e-4
    """eta: scale of the actor's entropy regulariser."""
    actor_min_std: float = 0.1
    """Smallest standard deviation of the continuous (Normal) actor."""
    actor_max_std: float = 1.0
    """Largest standard deviation of the continuous (Normal) actor."""
    slow_critic_fraction: float = 0.02
    """Update fraction of the slow critic, an EMA of the critic (critic EMA decay 0.98)."""
    slowreg_scale: float = 1.0
    """Weight of the critic's regulariser towards the slow critic's predictions."""
    retnorm_decay: float = 0.99
    """EMA decay of the return percentiles."""
    retnorm_limit: float = 1.0
    """Returns are divided by max(retnorm_limit, S): large returns are scaled down, small ones not up."""
    retnorm_low: float = 5.0
    """Lower percentile of the return range S."""
    retnorm_high: float = 95.0
    """Upper percentile of the return range S."""

    @classmethod
    def preset(cls, size: str, **overrides) -> DreamerConfig:
        """The config of model size `size` ("XS", "S", "M", "L", "XL" or "test"), with `overrides` applied."""
        if size not in MODEL_SIZES:
            raise ValueError(f"DreamerConfig size must be one of {list(MODEL_SIZES)}, got {size!r}")
        return cls(**{**MODEL_SIZES[size], **overrides})

    def __post_init__(self) -> None:
        for name in ("batch_size", "batch_length", "deter", "units", "mlp_layers", "cnn_depth", "stoch", "classes",
                     "num_bins", "imag_horizon"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DreamerConfig.{name} must be a positive integer, got {value!r}")
        for name in ("train_ratio", "model_lr", "model_eps", "model_grad_clip", "actor_lr", "critic_lr", "ac_eps",
                     "ac_grad_clip", "actor_min_std", "retnorm_limit"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"DreamerConfig.{name} must be a positive number, got {value!r}")
        for name in ("free_nats", "dyn_scale", "rep_scale", "rec_scale", "reward_scale", "cont_scale",
                     "actor_entropy", "slowreg_scale"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"DreamerConfig.{name} must be a number >= 0, got {value!r}")
        for name, low, high in (("unimix", 0.0, 1.0), ("retnorm_decay", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value < high:
                raise ValueError(f"DreamerConfig.{name} must be in [{low}, {high}), got {value!r}")
        if not 0 <= self.return_lambda <= 1:
            raise ValueError(f"DreamerConfig.return_lambda must be in [0, 1], got {self.return_lambda!r}")
        if not 0 < self.slow_critic_fraction <= 1:
            raise ValueError(f"DreamerConfig.slow_critic_fraction must be in (0, 1], got {self.slow_critic_fraction!r}")
        if not self.discount_horizon > 1:
            raise ValueError(f"DreamerConfig.discount_horizon must be > 1, got {self.discount_horizon!r}")
        if not self.actor_min_std <= self.actor_max_std:
            raise ValueError(f"DreamerConfig.actor_max_std ({self.actor_max_std}) must be >= actor_min_std "
                             f"({self.actor_min_std})")
        if self.num_bins < 2 or not self.bins_low < self.bins_high:
            raise ValueError(f"DreamerConfig.num_bins must be >= 2 and bins_low < bins_high, got {self.num_bins}, "
                             f"{self.bins_low}, {self.bins_high}")
        if not 0 <= self.retnorm_low < self.retnorm_high <= 100:
            raise ValueError(f"DreamerConfig.retnorm_low and retnorm_high must satisfy 0 <= low < high <= 100, got "
                             f"{self.retnorm_low}, {self.retnorm_high}")
        if self.seed_steps is not None and (isinstance(self.seed_steps, bool) or not isinstance(self.seed_steps, int)
                                            or self.seed_steps < 0):
            raise ValueError(f"DreamerConfig.seed_steps must be an integer >= 0 or None, got {self.seed_steps!r}")

    @property
    def gamma(self) -> float:
        """The discount 1 - 1 / discount_horizon."""
        return 1.0 - 1.0 / self.discount_horizon

    @property
    def updates_per_step(self) -> float:
        """Updates per environment step that replay train_ratio steps per environment step."""
        return self.train_ratio / (self.batch_size * self.batch_length)

    @property
    def random_steps(self) -> int:
        """`seed_steps`, or one batch worth of steps (batch_size * batch_length)."""
        return self.seed_steps if self.seed_steps is not None else self.batch_size * self.batch_length
