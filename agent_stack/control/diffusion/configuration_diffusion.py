"""DiffusionConfig: Diffusion Policy (Chi et al. 2023, CNN variant), saved as JSON beside its weights."""

from __future__ import annotations

import dataclasses

from agent_stack.configs import JSONConfig
from agent_stack.language import EMBEDDING_DIM
from agent_stack.normalization import ACTION_DIM, ACTION_SPACES

GOALS = ("language", "ee_target", "none")
"""What conditions the policy besides the observation: an instruction embedding (the standalone
visuomotor policy), an end-effector target position (the stack's controller: `ee_target` from the VLA),
or nothing (one task per checkpoint)."""
EE_TARGET_DIM = 3
"""An 'ee_target' goal is the chunk's mean normalised translation delta (x y z): hindsight-relabelled from
the demonstration in training, computed from the target and the current end-effector position at run
time (`DiffusionPolicy.set_target`)."""
CAMERAS = ("image", "wrist_image")
VISION_BACKBONES = ("resnet18_gn", "keypoint_gn")
"""Ours, with GroupNorm: 'resnet18_gn' is ResNet-18 (a 1/32 feature map: 2 x 2 from 64 px); 'keypoint_gn'
keeps the stages at half the image's resolution, like the keypoint network the spatial softmax comes from
(Levine et al. 2016), so each keypoint is a detector of something small with a precise image position. Any
other name is a timm model (its `forward_features` feature map)."""


@dataclasses.dataclass
class DiffusionConfig(JSONConfig):
    """Model and diffusion hyper-parameters. The defaults are the CPU-sized model; `paper()` gives the
    sizes of Chi et al. (U-Net 256-512-1024, ResNet-18 at full width)."""

    # --- observation and action horizons (Sec. 3.1: To, Tp, Ta) ---
    obs_horizon: int = 2
    """To: observation frames the denoiser is conditioned on."""
    pred_horizon: int = 16
    """Tp: actions predicted per denoising run (from the current step on)."""
    action_steps: int = 8
    """Ta: actions executed from each prediction before predicting again (receding horizon)."""
    action_space: str = "delta"
    """What the denoised chunk holds: end-effector deltas (the dataset actions, DESIGN.md), or the absolute
    end-effector targets they command (position, 6-D rotation, gripper), Chi et al.'s position control.
    Targets do not accumulate error over a chunk and read straight off where things are in the image; the
    policy turns them back into deltas against the controller's current target (`DiffusionPolicy.act`)."""
    action_dim: int = ACTION_DIM
    """ACTION_SPACES[action_space]."""

    # --- observation encoder (Sec. 3.2 / 4: ResNet-18, GroupNorm, spatial softmax) ---
    cameras: tuple[str, ...] = CAMERAS
    """Observation keys of the cameras, one encoder each; empty for a proprioception-only policy."""
    image_size: int = 96
    """Square resolution of the images as the data pipeline delivers them."""
    crop_size: int = 84
    """Random crop in training, centre crop at inference (the paper's only image augmentation)."""
    vision_backbone: str = "resnet18_gn"
    vision_widths: tuple[int, ...] = (32, 64, 128, 256)
    """Channels of the stages (two basic blocks each): four for 'resnet18_gn', where (64, 128, 256, 512) is
    the standard ResNet-18; one to four for 'keypoint_gn'."""
    vision_film: bool = False
    """FiLM every encoder stage on the goal (Perez et al. 2018; RT-1's FiLM-EfficientNet, Brohan et al.
    2022): the instruction picks which features, so the keypoints can follow the named block wherever it
    is, rather than a layout remembered with its instruction."""
    position_loss_weight: float = 0.0
    """Weight of an auxiliary loss on the front camera's encoder: regress, from the features of the
    episode's first front frame and the goal, the demonstration's contact point (the pipeline's
    `contact_point` and `start_image`: its lowest end-effector target, where the hand meets the object;
    'target' action space only). Levine et al. (2016) pretrained their spatial-softmax encoder on object
    positions; this asks the same in every training window, labelled by the demonstration itself, so the
    keypoints learn to find the object the episode is about, as the first chunk needs, rather than the arm,
    which later frames show at the object. It must outweigh the DDPM loss to win the shared encoder (10
    did on the tabletop pick_up data; 1 did not, docs/BENCHMARKS.md). 0 leaves the paper's loss."""
    contact_conditioning: bool = False
    """Condition the denoiser on the contact point as well: the demonstration's in training, the position
    head's prediction from the episode's first front frame when acting. The policy then splits into where
    (the head: which object the instruction names, and where it is) and how (the denoiser: the motion to
    it), as keypoint-conditioned skills do (KITE, Sundaresan et al. 2023). From object states, told the
    named block's pose an MLP solved 40 of 40 held-out pick-ups, seeing every block 3 of 40
    (docs/BENCHMARKS.md, "Absolute targets in the committed probe"). Needs `position_loss_weight` > 0."""
    spatial_keypoints: int = 32
    """Keypoints of the spatial softmax (each an expected (x, y) image coordinate)."""
    image_feature_dim: int = 64
    """Per-camera feature after the spatial softmax (a linear layer of the keypoint coordinates)."""
    state_dim: int = 14
    """Proprioception size (0: none)."""
    goal: str = "language"
    goal_dim: int = EMBEDDING_DIM
    """Size of the goal vector: 384 (the MiniLM sentence embedding) for 'language', 3 for 'ee_target'."""

    # --- denoiser: 1-D temporal U-Net with FiLM (Sec. 3.3) ---
    down_dims: tuple[int, ...] = (64, 128, 256)
    kernel_size: int = 5
    n_groups: int = 8
    diffusion_step_embed_dim: int = 128

    # --- diffusion (DDPM training, DDIM inference) ---
    num_train_timesteps: int = 100
    num_inference_steps: int = 10
    beta_schedule: str = "squaredcos_cap_v2"
    prediction_type: str = "epsilon"
    clip_sample: bool = True
    """Clip the predicted clean chunk to [-1, 1] (actions are normalised there)."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.vision_widths = tuple(self.vision_widths)
        self.down_dims = tuple(self.down_dims)
        for name in ("obs_horizon", "pred_horizon", "action_steps", "action_dim", "image_size", "crop_size",
                     "spatial_keypoints", "image_feature_dim", "kernel_size", "n_groups",
                     "diffusion_step_embed_dim", "num_train_timesteps", "num_inference_steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"DiffusionConfig.{name} must be a positive integer, got {value!r}")
        if self.action_steps > self.pred_horizon:
            raise ValueError(f"DiffusionConfig.action_steps ({self.action_steps}) must be <= pred_horizon "
                             f"({self.pred_horizon})")
        downsampling = 2 ** (len(self.down_dims) - 1)
        if not self.down_dims or self.pred_horizon % downsampling:
            raise ValueError(f"DiffusionConfig.pred_horizon ({self.pred_horizon}) must be divisible by "
                             f"{downsampling}: the U-Net halves it {len(self.down_dims) - 1} times")
        if any(d < 1 or d % self.n_groups for d in self.down_dims):
            raise ValueError(f"DiffusionConfig.down_dims {self.down_dims} must be positive multiples of "
                             f"n_groups ({self.n_groups})")
        unknown = [c for c in self.cameras if c not in CAMERAS]
        if unknown or len(set(self.cameras)) != len(self.cameras):
            raise ValueError(f"DiffusionConfig.cameras must be distinct names from {CAMERAS}, "
                             f"got {self.cameras}")
        if self.crop_size > self.image_size:
            raise ValueError(f"DiffusionConfig.crop_size ({self.crop_size}) exceeds image_size "
                             f"({self.image_size})")
        stages = (4,) if self.vision_backbone == "resnet18_gn" else (1, 2, 3, 4)
        if len(self.vision_widths) not in stages or any(w < 16 or w % 16 for w in self.vision_widths):
            raise ValueError(f"DiffusionConfig.vision_widths must be {' to '.join(map(str, stages[::3]))} "
                             f"multiples of 16 for {self.vision_backbone!r} (GroupNorm uses 16 channels a "
                             f"group), got {self.vision_widths}")
        if not isinstance(self.vision_film, bool):
            raise ValueError(f"DiffusionConfig.vision_film must be true or false, got {self.vision_film!r}")
        if self.vision_film and (self.vision_backbone not in VISION_BACKBONES or not self.goal_dim
                                 or not self.cameras):
            raise ValueError(f"DiffusionConfig.vision_film needs cameras, a goal (goal_dim > 0) and one of "
                             f"our backbones {VISION_BACKBONES}")
        if (not isinstance(self.position_loss_weight, (int, float)) or isinstance(self.position_loss_weight, bool)
                or not 0.0 <= self.position_loss_weight < float("inf")):
            raise ValueError(f"DiffusionConfig.position_loss_weight must be a number >= 0, "
                             f"got {self.position_loss_weight!r}")
        if self.position_loss_weight and ("image" not in self.cameras or self.action_space != "target"):
            raise ValueError("DiffusionConfig.position_loss_weight trains the front camera's encoder on the "
                             "contact point of the end-effector targets: it needs the 'image' camera and "
                             "action_space 'target'")
        if not isinstance(self.contact_conditioning, bool):
            raise ValueError(f"DiffusionConfig.contact_conditioning must be true or false, "
                             f"got {self.contact_conditioning!r}")
        if self.contact_conditioning and not self.position_loss_weight:
            raise ValueError("DiffusionConfig.contact_conditioning acts on the position head's contact "
                             "point: it needs position_loss_weight > 0")
        if self.action_space not in ACTION_SPACES:
            raise ValueError(f"DiffusionConfig.action_space must be one of {tuple(ACTION_SPACES)}, "
                             f"got {self.action_space!r}")
        if self.action_dim != ACTION_SPACES[self.action_space]:
            raise ValueError(f"DiffusionConfig.action_space {self.action_space!r} needs action_dim "
                             f"{ACTION_SPACES[self.action_space]}, got {self.action_dim}")
        if self.goal not in GOALS:
            raise ValueError(f"DiffusionConfig.goal must be one of {GOALS}, got {self.goal!r}")
        if self.state_dim < 0 or self.goal_dim < 0:
            raise ValueError("DiffusionConfig.state_dim and goal_dim must be >= 0")
        expected_dim = self.goal_dim_of(self.goal)
        if self.goal_dim != expected_dim:
            raise ValueError(f"DiffusionConfig.goal {self.goal!r} needs goal_dim {expected_dim}, "
                             f"got {self.goal_dim}")
        if self.goal == "ee_target" and self.action_space != "delta":
            raise ValueError("DiffusionConfig.goal 'ee_target' is relabelled from the chunk's deltas: it "
                             "needs action_space 'delta'")
        if self.goal == "ee_target" and self.state_dim < 3:
            raise ValueError("DiffusionConfig.goal 'ee_target' needs the state (its first 3 values are the "
                             "end-effector position)")
        if not self.cameras and not self.state_dim:
            raise ValueError("DiffusionConfig observes nothing: give cameras or state_dim > 0")
        if self.num_inference_steps > self.num_train_timesteps:
            raise ValueError("DiffusionConfig.num_inference_steps must be <= num_train_timesteps")
        if self.prediction_type not in ("epsilon", "sample"):
            raise ValueError(f"DiffusionConfig.prediction_type must be 'epsilon' or 'sample', "
                             f"got {self.prediction_type!r}")

    @staticmethod
    def goal_dim_of(goal: str) -> int:
        return {"language": EMBEDDING_DIM, "ee_target": EE_TARGET_DIM, "none": 0}[goal]

    @classmethod
    def paper(cls, **overrides) -> DiffusionConfig:
        """Chi et al.'s CNN-based policy: ResNet-18 at full width, U-Net 256-512-1024, step embedding 256."""
        return cls(**{"vision_widths": (64, 128, 256, 512), "down_dims": (256, 512, 1024),
                      "diffusion_step_embed_dim": 256, **overrides})

    @property
    def global_cond_dim(self) -> int:
        per_frame = len(self.cameras) * self.image_feature_dim + self.state_dim
        contact = EE_TARGET_DIM if self.contact_conditioning else 0
        return self.obs_horizon * per_frame + self.goal_dim + contact
