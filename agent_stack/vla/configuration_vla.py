"""VLAConfig: the shape of an RT-X-style Vision-Language-Action transformer, saved as JSON beside its weights."""

from __future__ import annotations

import dataclasses

from agent_stack.configs import JSONConfig
from agent_stack.language import EMBEDDING_DIM
from agent_stack.normalization import ACTION_SPACES

ACTION_HEADS = ("discrete", "continuous")
CAMERAS = ("image", "wrist_image")


@dataclasses.dataclass
class VLAConfig(JSONConfig):
    """Model hyper-parameters. The defaults are the CPU-sized model; `vit_base()` gives the RT-X size."""

    image_size: int = 128
    """Square input resolution of every camera (the data pipeline's `image_size`)."""
    cameras: tuple[str, ...] = CAMERAS
    """Observation keys of the cameras, each encoded by the shared ViT; a camera a dataset lacks is masked."""
    history: int = 2
    """Observation timesteps the transformer sees (RT-1 uses 6)."""
    action_chunk: int = 1
    """Actions predicted per step (K)."""
    action_space: str = "delta"
    """'delta': end-effector deltas, as datasets standardise them (DESIGN.md); 'target': the absolute
    end-effector target pose each action commands (x y z, 6-D rotation, gripper), which the policy turns
    into the delta from the controller's current target when it acts. A continuous head cannot regress
    deltas that are mostly 0 and sometimes saturated, as the tabletop experts' are (L1 gives the median);
    targets are smooth. The tabletop's recorded targets are the env's clipped ones, though, 5 cm a step
    ahead of the last, so they too follow the arm (docs/BENCHMARKS.md, "VLA learning bar")."""
    action_head: str = "discrete"
    """'discrete': 256-bin tokens + cross-entropy (RT-1/RT-2/OpenVLA); 'continuous': L1 regression of
    the chunk (OpenVLA-OFT)."""
    num_bins: int = 256

    vision_backbone: str = "vit_tiny_patch16_224"
    """timm model name of the ViT; depth/width overrides below apply on top of it."""
    vision_depth: int | None = 4
    """Blocks of the ViT (None keeps the timm model's own depth)."""
    pretrained: bool = False
    """Load timm weights for the backbone (from `pretrained_file`, since nothing is downloaded here)."""
    pretrained_file: str | None = None
    """Local .safetensors/.pth/.bin of the timm backbone's weights."""
    tokens_per_camera: int | None = 8
    """TokenLearner output tokens per camera and timestep (RT-1: 81 -> 8); None keeps every patch token."""

    film: bool = True
    """FiLM-condition every ViT block on the instruction embedding (RT-1)."""
    language_tokens: int = 1
    """Prefix tokens made from the instruction embedding (Octo); 0 for FiLM only."""
    language_dim: int = EMBEDDING_DIM
    """Size of the sentence embedding (MiniLM: 384)."""
    state_dim: int = 0
    """Proprioception size (0: no state token)."""

    hidden_dim: int = 256
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    terminate_weight: float = 1.0
    """Weight of the terminate loss next to the action loss."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"VLAConfig.action_space must be one of {tuple(ACTION_SPACES)}, "
                             f"got {self.action_space!r}")
        if self.action_head not in ACTION_HEADS:
            raise ValueError(f"VLAConfig.action_head must be one of {ACTION_HEADS}, got {self.action_head!r}")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if not self.cameras or unknown or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"VLAConfig.cameras must be distinct names from {CAMERAS}, got {self.cameras}")
        for name in ("image_size", "history", "action_chunk", "num_bins", "hidden_dim", "depth", "num_heads",
                     "language_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"VLAConfig.{name} must be a positive integer, got {getattr(self, name)!r}")
        if self.num_bins < 2:
            raise ValueError(f"VLAConfig.num_bins must be >= 2, got {self.num_bins}")
        if self.hidden_dim % self.num_heads:
            raise ValueError(f"VLAConfig.hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}")
        if self.tokens_per_camera is not None and self.tokens_per_camera < 1:
            raise ValueError(f"VLAConfig.tokens_per_camera must be >= 1 or None, got {self.tokens_per_camera}")
        if self.vision_depth is not None and self.vision_depth < 1:
            raise ValueError(f"VLAConfig.vision_depth must be >= 1 or None, got {self.vision_depth}")
        if self.state_dim < 0 or self.language_tokens < 0:
            raise ValueError("VLAConfig.state_dim and language_tokens must be >= 0")
        if not self.film and self.language_tokens == 0:
            raise ValueError("VLAConfig needs film=True or language_tokens > 0, else the instruction is ignored")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"VLAConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.pretrained_file is not None and not self.pretrained:
            raise ValueError("VLAConfig.pretrained_file is set but pretrained=False")

    @property
    def action_dim(self) -> int:
        return ACTION_SPACES[self.action_space]

    @classmethod
    def vit_base(cls, **overrides) -> VLAConfig:
        """RT-X-sized: ViT-B/16 image tokens at 224 px, 8 tokens per camera, a 768-wide transformer."""
        return cls(**{"image_size": 224, "vision_backbone": "vit_base_patch16_224", "vision_depth": None,
                      "history": 6, "hidden_dim": 768, "depth": 8, "num_heads": 12, **overrides})
