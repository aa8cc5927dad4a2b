"""Diffusion Policy, CNN variant (Chi et al. 2023, "Diffusion Policy: Visuomotor Policy Learning via Action
Diffusion"), trained on the data pipeline's windows.

    each camera, frames t-To+1 .. t ── ResNet-18 (GroupNorm) ── spatial softmax ── linear  (Sec. 3.2, 4)
        (or `keypoint_gn`: stages at half the image resolution; either optionally FiLM-ed on the goal)
    [image features, normalised state] per frame ++ goal (instruction embedding) = global condition
        (++ the contact point: the demonstration's in training, the position head's when acting)
    noisy chunk (Tp x 7) ── 1-D temporal U-Net, FiLM on (condition, diffusion step) ── epsilon   (Sec. 3.3)

Training is DDPM (Ho et al. 2020): add noise of a random step k to the normalised chunk and regress the
noise (Eq. 5). Inference runs DDIM (Song et al. 2021) with fewer steps from pure noise (Eq. 4). The noise
schedules are diffusers' DDPMScheduler / DDIMScheduler, as in the authors' code.

Actions live in [-1, 1]: the pipeline normalises the six deltas by their 1st/99th percentiles and this
model maps the gripper opening 0..1 to -1..1. The predicted chunk starts at the current step t (the
authors' chunk starts at t-To+1; the first To-1 entries are never executed, so they are left out here).
"""

from __future__ import annotations

import math

import timm
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler
from torch import nn

from agent_stack.control.diffusion.configuration_diffusion import (
    EE_TARGET_DIM,
    VISION_BACKBONES,
    DiffusionConfig,
)

# --- observation encoder ---------------------------------------------------------------------------------


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with 16 channels a group: BatchNorm's running statistics break with EMA weights (Sec. 4)."""
    return nn.GroupNorm(channels // 16, channels)


class BasicBlock(nn.Module):
    """The ResNet basic block (He et al. 2016) with GroupNorm."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.norm1 = group_norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.norm2 = group_norm(out_channels)
        self.shortcut = (nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                       group_norm(out_channels))
                         if stride != 1 or in_channels != out_channels else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.norm1(self.conv1(x)))
        return F.relu(self.norm2(self.conv2(out)) + self.shortcut(x))


class ResNetGN(nn.Module):
    """ResNet basic-block stages (two blocks each) with GroupNorm and configurable widths; the global pooling
    and classifier are left out (the spatial softmax replaces them). `downsample` gives ResNet-18's strides:
    the stem's stride-2 convolution and max pool, then stride 2 in each stage after the first (1/32 of the
    image). Without it only the stem's convolution halves the image (`keypoint_gn`)."""

    def __init__(self, widths: tuple[int, ...], downsample: bool) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 7, 2, 3, bias=False), group_norm(widths[0]),
                                  nn.ReLU(), *([nn.MaxPool2d(3, 2, 1)] if downsample else []))
        stages, channels = [], widths[0]
        for index, width in enumerate(widths):
            stride = 2 if downsample and index else 1
            stages += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
            channels = width
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor, modulations: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> torch.Tensor:
        """modulations: (scale, shift) per stage, each (B, C, 1, 1), applied as x * (1 + scale) + shift."""
        if modulations is None:
            return self.stages(self.stem(x))
        x = self.stem(x)
        for index, block in enumerate(self.stages):
            x = block(x)
            if index % 2:
                scale, shift = modulations[index // 2]
                x = x * (1.0 + scale) + shift
        return x


class SpatialSoftmax(nn.Module):
    """Levine et al. 2016: K learned keypoint maps, each a softmax over positions, read out as the expected
    (x, y) in [-1, 1]: an image becomes K coordinates, which is what a policy needs from it."""

    def __init__(self, channels: int, height: int, width: int, num_keypoints: int) -> None:
        super().__init__()
        self.keypoints = nn.Conv2d(channels, num_keypoints, 1)
        grid_y, grid_x = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                                        indexing="ij")
        grid = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=-1)  # (H*W, 2)
        self.register_buffer("grid", grid, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        attention = self.keypoints(features).flatten(2).softmax(dim=-1)  # (B, K, H*W)
        return (attention @ self.grid).flatten(1)  # (B, 2K)


class ImageEncoder(nn.Module):
    """uint8 images (B, S, S, 3) -> (B, image_feature_dim): crop, backbone (FiLM-ed on the goal if
    `vision_film`), spatial softmax, linear."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.crop_size = config.crop_size
        if config.vision_backbone in VISION_BACKBONES:
            self.backbone = ResNetGN(config.vision_widths, downsample=config.vision_backbone == "resnet18_gn")
        else:
            self.backbone = TimmFeatures(timm.create_model(config.vision_backbone, pretrained=False))
        self.film = None
        if config.vision_film:
            self.film = nn.ModuleList(nn.Linear(config.goal_dim, 2 * width) for width in config.vision_widths)
            for layer in self.film:  # identity at first: training starts from the unconditioned encoder
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)
        with torch.no_grad():
            probe = torch.zeros(1, 3, self.crop_size, self.crop_size)
            channels, height, width = self.backbone(probe).shape[1:]
        self.pool = SpatialSoftmax(channels, height, width, config.spatial_keypoints)
        self.project = nn.Sequential(nn.Linear(2 * config.spatial_keypoints, config.image_feature_dim),
                                     nn.ReLU())

    def crop(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, T, S, S, 3) -> (N, T, C, C, 3): one random crop per sample for all its frames in training,
        the centre crop otherwise."""
        size, crop = images.shape[2], self.crop_size
        if not self.training or size == crop:
            start = (size - crop) // 2
            return images[:, :, start:start + crop, start:start + crop]
        offsets = torch.randint(0, size - crop + 1, (images.shape[0], 2), generator=generator)
        return torch.stack([images[i, :, y:y + crop, x:x + crop]
                            for i, (y, x) in enumerate(offsets.tolist())])

    def forward(self, images: torch.Tensor, goal: torch.Tensor | None = None) -> torch.Tensor:
        """(N, T, S, S, 3) uint8 and the goal (N, G) -> (N, T, image_feature_dim)."""
        cropped = self.crop(images)
        n, t = cropped.shape[:2]
        # contiguous: the permuted view is channels-last, and the whole ResNet would run on that slower layout
        x = cropped.flatten(0, 1).permute(0, 3, 1, 2).contiguous().float() / 255.0
        if self.film is None:
            features = self.backbone(x)
        else:
            if goal is None:
                raise ValueError("this image encoder is FiLM-conditioned on the goal: pass it")
            frame_goal = goal.float().repeat_interleave(t, dim=0)
            modulations = [layer(frame_goal)[:, :, None, None].chunk(2, dim=1) for layer in self.film]
            features = self.backbone(x, modulations)
        return self.project(self.pool(features)).view(n, t, -1)


class TimmFeatures(nn.Module):
    """A timm CNN's last feature map (B, C, H, W), for `vision_backbone` names other than ours."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


# --- denoiser: conditional 1-D temporal U-Net ------------------------------------------------------------


class SinusoidalStepEmbedding(nn.Module):
    """The transformer's sinusoidal position code, of the diffusion step k."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        half = self.dim // 2
        frequencies = torch.exp(-math.log(10000) * torch.arange(half, device=steps.device) / (half - 1))
        angles = steps.float()[:, None] * frequencies[None]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class TemporalConv1d(nn.Conv1d):
    """nn.Conv1d (same parameters, same result) computed as one matrix product of the weight with the
    unfolded input windows. An action chunk is only 2-16 steps long; there PyTorch's CPU convolution is up
    to 2.6x slower than this product at batch 1 (inference), and a paper-size U-Net evaluation takes 0.77x
    the time (docs/BENCHMARKS.md, "Diffusion Policy speed")."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.groups != 1 or self.dilation != (1,) or self.padding_mode != "zeros":
            raise ValueError("TemporalConv1d supports groups=1, dilation=1 and zero padding only")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C_in, L) -> (B, C_out, L_out)."""
        (kernel,), (stride,), (padding,) = self.kernel_size, self.stride, self.padding
        windows = F.pad(x, (padding, padding)).unfold(2, kernel, stride)  # (B, C_in, L_out, kernel)
        out = F.linear(windows.transpose(1, 2).flatten(2), self.weight.flatten(1), self.bias)
        return out.transpose(1, 2)


class Conv1dBlock(nn.Sequential):
    """Conv1d -> GroupNorm -> Mish."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, n_groups: int) -> None:
        super().__init__(TemporalConv1d(in_channels, out_channels, kernel_size, padding=kernel_size // 2),
                         nn.GroupNorm(n_groups, out_channels), nn.Mish())


class ConditionalResidualBlock1D(nn.Module):
    """Two conv blocks; between them FiLM (Perez et al. 2018) from the condition: a per-channel scale and
    bias (Sec. 3.3), so every block sees the observation and the diffusion step."""

    def __init__(self, in_channels: int, out_channels: int, cond_dim: int, kernel_size: int,
                 n_groups: int) -> None:
        super().__init__()
        self.block1 = Conv1dBlock(in_channels, out_channels, kernel_size, n_groups)
        self.block2 = Conv1dBlock(out_channels, out_channels, kernel_size, n_groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * out_channels))
        self.residual = (TemporalConv1d(in_channels, out_channels, 1) if in_channels != out_channels
                         else nn.Identity())

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        out = self.block2(scale * self.block1(x) + bias)
        return out + self.residual(x)


class ConditionalUnet1D(nn.Module):
    """U-Net over the time axis of the chunk: down (2 residual blocks, stride-2 conv) per level, 2 middle
    blocks, up (transposed conv) with skip connections, a final conv to the action size."""

    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        k, groups, step_dim = config.kernel_size, config.n_groups, config.diffusion_step_embed_dim
        self.step_encoder = nn.Sequential(SinusoidalStepEmbedding(step_dim),
                                          nn.Linear(step_dim, 4 * step_dim), nn.Mish(),
                                          nn.Linear(4 * step_dim, step_dim))
        cond_dim = step_dim + config.global_cond_dim
        dims = (config.action_dim, *config.down_dims)
        levels = list(zip(dims[:-1], dims[1:]))

        def block(cin: int, cout: int) -> ConditionalResidualBlock1D:
            return ConditionalResidualBlock1D(cin, cout, cond_dim, k, groups)

        self.down = nn.ModuleList(
            nn.ModuleList([block(cin, cout), block(cout, cout),
                           TemporalConv1d(cout, cout, 3, 2, 1) if i < len(levels) - 1 else nn.Identity()])
            for i, (cin, cout) in enumerate(levels))
        self.middle = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList(
            nn.ModuleList([block(2 * cout, cin), block(cin, cin), nn.ConvTranspose1d(cin, cin, 4, 2, 1)])
            for cin, cout in reversed(levels[1:]))
        self.final = nn.Sequential(Conv1dBlock(dims[1], dims[1], k, groups),
                                   TemporalConv1d(dims[1], config.action_dim, 1))

    def forward(self, chunk: torch.Tensor, steps: torch.Tensor, global_cond: torch.Tensor) -> torch.Tensor:
        """chunk (B, Tp, A), steps (B,), global_cond (B, G) -> (B, Tp, A)."""
        cond = torch.cat([self.step_encoder(steps), global_cond], dim=-1)
        x = chunk.transpose(1, 2)
        skips = []
        for first, second, downsample in self.down:
            x = second(first(x, cond), cond)
            skips.append(x)
            x = downsample(x)
        for layer in self.middle:
            x = layer(x, cond)
        for first, second, upsample in self.up:
            x = upsample(second(first(torch.cat([x, skips.pop()], dim=1), cond), cond))
        return self.final(x).transpose(1, 2)


# --- the policy network ----------------------------------------------------------------------------------


class DiffusionModel(nn.Module):
    def __init__(self, config: DiffusionConfig) -> None:
        super().__init__()
        self.config = config
        self.image_encoders = nn.ModuleDict({camera: ImageEncoder(config) for camera in config.cameras})
        self.unet = ConditionalUnet1D(config)
        self.position_head = None
        if config.position_loss_weight:
            features = config.image_feature_dim + config.goal_dim
            self.position_head = nn.Sequential(nn.Linear(features, 256), nn.Mish(),
                                               nn.Linear(256, EE_TARGET_DIM))
        schedule = {"num_train_timesteps": config.num_train_timesteps, "beta_schedule": config.beta_schedule,
                    "clip_sample": config.clip_sample, "prediction_type": config.prediction_type}
        self.train_scheduler = DDPMScheduler(**schedule)
        self.inference_scheduler = DDIMScheduler(**schedule)
        self.inference_scheduler.set_timesteps(config.num_inference_steps)

    def image_features(self, images: dict[str, torch.Tensor], goal: torch.Tensor | None) -> torch.Tensor:
        """images: camera -> (B, To, S, S, 3) uint8; goal (B, G) -> (B, To, cameras x image_feature_dim)."""
        return torch.cat([self.image_encoders[camera](images[camera], goal) for camera in self.config.cameras],
                         dim=-1)

    def global_condition(self, images: dict[str, torch.Tensor], state: torch.Tensor | None,
                         goal: torch.Tensor | None, contact: torch.Tensor | None = None) -> torch.Tensor:
        """images: camera -> (B, To, S, S, 3) uint8; state (B, To, D) normalised; goal (B, G); contact (B, 3)
        normalised, for `contact_conditioning` -> (B, G')."""
        per_frame = []
        if self.config.cameras:
            per_frame.append(self.image_features(images, goal))
        if self.config.state_dim:
            per_frame.append(state[..., :self.config.state_dim].float())
        parts = [torch.cat(per_frame, dim=-1).flatten(1)]
        if self.config.goal_dim:
            parts.append(goal.float())
        if self.config.contact_conditioning:
            if contact is None:
                raise ValueError("this denoiser is conditioned on the contact point: pass it")
            parts.append(contact.float())
        return torch.cat(parts, dim=-1)

    def predict_contact(self, start_image: torch.Tensor, goal: torch.Tensor | None) -> torch.Tensor:
        """The position head: the episode's first front frame (B, 1, S, S, 3) uint8 and the goal (B, G) ->
        the contact point (B, 3), normalised as the targets are. The first frame, because later frames show
        the arm already at the object, which the encoder would learn to find instead."""
        start = self.image_encoders["image"](start_image, goal)[:, 0]
        return self.position_head(start if goal is None else torch.cat([start, goal.float()], dim=-1))

    def batch_goal(self, batch: dict) -> torch.Tensor | None:
        """The goal of a data-pipeline batch (`instruction_embedding` for a language goal)."""
        if self.config.goal == "language":
            return batch["instruction_embedding"]
        if self.config.goal == "ee_target":  # hindsight relabelling: where the demonstrated chunk went
            return batch["action"][..., :EE_TARGET_DIM].float().mean(dim=1)
        return None

    def batch_condition(self, batch: dict) -> torch.Tensor:
        """The global condition of a data-pipeline batch. Contact conditioning is teacher-forced: the
        demonstration's contact point, not the head's guess."""
        observation = batch["observation"]
        images = {camera: observation[camera] for camera in self.config.cameras}
        return self.global_condition(images, observation.get("state"), self.batch_goal(batch),
                                     batch.get("contact_point"))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """DDPM loss (Eq. 5): || eps - eps_theta(sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, k, obs) ||^2,
        plus `position_loss_weight` x the encoder's regression of the contact point."""
        clean = to_model_actions(batch["action"].float())
        cond = self.batch_condition(batch)
        noise = torch.randn_like(clean)
        steps = torch.randint(0, self.config.num_train_timesteps, (clean.shape[0],), device=clean.device)
        noisy = self.train_scheduler.add_noise(clean, noise, steps)
        predicted = self.unet(noisy, steps, cond)
        target = noise if self.config.prediction_type == "epsilon" else clean
        mse = F.mse_loss(predicted, target)
        if self.position_head is None:
            return mse, {"mse": mse.detach()}
        contact = self.predict_contact(batch["observation"]["start_image"], self.batch_goal(batch))
        position_mse = F.mse_loss(contact, batch["contact_point"].float())
        loss = mse + self.config.position_loss_weight * position_mse
        return loss, {"mse": mse.detach(), "position_mse": position_mse.detach()}

    @torch.no_grad()
    def sample(self, global_cond: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """DDIM from Gaussian noise to a chunk (B, Tp, action_dim) in model space ([-1, 1], Eq. 4)."""
        shape = (global_cond.shape[0], self.config.pred_horizon, self.config.action_dim)
        chunk = torch.randn(shape, generator=generator, device=global_cond.device)
        scheduler = self.inference_scheduler
        for step in scheduler.timesteps:
            steps = torch.full((shape[0],), int(step), device=global_cond.device)
            predicted = self.unet(chunk, steps, global_cond)
            chunk = scheduler.step(predicted, step, chunk, generator=generator).prev_sample
        return chunk


def to_model_actions(actions: torch.Tensor) -> torch.Tensor:
    """Pipeline actions (normalised, then the gripper opening 0..1 last, in either action space) -> all in
    [-1, 1]."""
    return torch.cat([actions[..., :-1], actions[..., -1:] * 2.0 - 1.0], dim=-1)


def from_model_actions(actions: torch.Tensor) -> torch.Tensor:
    """Inverse of `to_model_actions`, with the gripper clipped to 0..1."""
    return torch.cat([actions[..., :-1], ((actions[..., -1:] + 1.0) / 2.0).clamp(0.0, 1.0)], dim=-1)
