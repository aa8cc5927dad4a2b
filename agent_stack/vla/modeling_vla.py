"""The VLA transformer: RT-1's image pipeline on a timm ViT, Octo's token layout, RT-1/OFT action heads.

    instruction ── MiniLM (384) ──┬── FiLM on every ViT block (RT-1 §3.2)
                                  └── prefix tokens (Octo)
    each camera, each timestep ── ViT patch tokens ── TokenLearner (RT-1: 81 -> 8) ── + camera/time embedding
    [language | obs t-H+1 (+ state) | ... | obs t (+ state) | readout] ── block-causal transformer
    readout ── discrete head: K x D x 256 logits, cross-entropy   or   continuous head: K x D, L1
            └─ terminate logit per chunk step, binary cross-entropy

Observation tokens attend to the language prefix and to observation tokens of their own and earlier
timesteps; the readout token attends to everything and nothing attends to it (Octo §2.2), so the image
tokens of a frame do not depend on later frames and the policy can cache them between steps.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.data import resolve_data_config
from timm.layers import Mlp
from timm.models.vision_transformer import Block
from torch import nn

from agent_stack.vla.action_tokenizer import ActionTokenizer
from agent_stack.vla.configuration_vla import VLAConfig


class FiLM(nn.Module):
    """x * (1 + gamma(c)) + beta(c), initialised to the identity so a pretrained ViT starts unchanged."""

    def __init__(self, condition_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.project = nn.Linear(condition_dim, 2 * feature_dim)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.project(condition).unsqueeze(1).chunk(2, dim=-1)
        return x * (1.0 + gamma) + beta


class TokenLearner(nn.Module):
    """Ryoo et al. 2021 (as used by RT-1): S learned attention maps over the N patch tokens pool them into S."""

    def __init__(self, dim: int, num_tokens: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.attention = Mlp(dim, hidden_features=dim, out_features=num_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        weights = self.attention(self.norm(tokens)).softmax(dim=1)  # (B, N, S): a distribution over patches
        return torch.einsum("bns,bnd->bsd", weights, tokens)


class ImageTokenizer(nn.Module):
    """uint8 images (B, S, S, 3) + instruction embedding -> (B, tokens_per_image, hidden_dim)."""

    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        overrides = {} if config.vision_depth is None else {"depth": config.vision_depth}
        if config.pretrained_file is not None:
            overrides["pretrained_cfg_overlay"] = {"file": config.pretrained_file}
        self.vit = timm.create_model(config.vision_backbone, pretrained=config.pretrained, img_size=config.image_size,
                                     num_classes=0, global_pool="", **overrides)
        data_config = resolve_data_config({}, model=self.vit)
        self.register_buffer("pixel_mean", torch.tensor(data_config["mean"]).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer("pixel_std", torch.tensor(data_config["std"]).view(1, 3, 1, 1) * 255.0, persistent=False)
        width = self.vit.embed_dim
        self.film = (nn.ModuleList(FiLM(config.language_dim, width) for _ in self.vit.blocks)
                     if config.film else None)
        self.token_learner = (TokenLearner(width, config.tokens_per_camera)
                              if config.tokens_per_camera is not None else None)
        self.project = nn.Linear(width, config.hidden_dim)
        self.num_tokens = config.tokens_per_camera or self.vit.patch_embed.num_patches

    def forward(self, images: torch.Tensor, language: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() - self.pixel_mean) / self.pixel_std
        vit = self.vit
        x = vit.norm_pre(vit.patch_drop(vit._pos_embed(vit.patch_embed(x))))
        for index, block in enumerate(vit.blocks):
            x = block(x)
            if self.film is not None:
                x = self.film[index](x, language)
        x = vit.norm(x)[:, vit.num_prefix_tokens:]
        if self.token_learner is not None:
            x = self.token_learner(x)
        return self.project(x)


class VLAModel(nn.Module):
    def __init__(self, config: VLAConfig) -> None:
        super().__init__()
        self.config = config
        width, chunk = config.hidden_dim, config.action_chunk
        self.image_tokenizer = ImageTokenizer(config)
        self.camera_embedding = nn.Parameter(torch.zeros(len(config.cameras), 1, width))
        self.time_embedding = nn.Parameter(torch.zeros(config.history, 1, width))
        self.language_projection = (nn.Linear(config.language_dim, config.language_tokens * width)
                                    if config.language_tokens else None)
        self.state_projection = nn.Linear(config.state_dim, width) if config.state_dim else None
        self.readout = nn.Parameter(torch.zeros(1, 1, width))
        self.blocks = nn.ModuleList(
            Block(width, config.num_heads, mlp_ratio=config.mlp_ratio, proj_drop=config.dropout,
                  attn_drop=config.dropout) for _ in range(config.depth))
        self.norm = nn.LayerNorm(width)
        if config.action_head == "discrete":
            self.action_head = nn.Linear(width, chunk * config.action_dim * config.num_bins)
        else:
            self.action_head = Mlp(width, hidden_features=width, out_features=chunk * config.action_dim)
        self.terminate_head = nn.Linear(width, chunk)
        self.tokenizer = ActionTokenizer(config.num_bins, action_dim=config.action_dim)
        for parameter in (self.camera_embedding, self.time_embedding, self.readout):
            nn.init.trunc_normal_(parameter, std=0.02)

    @property
    def tokens_per_frame(self) -> int:
        return len(self.config.cameras) * self.image_tokenizer.num_tokens

    # --- observation tokens --------------------------------------------------------------------------------

    def encode_frames(self, images: dict[str, torch.Tensor], language: torch.Tensor) -> torch.Tensor:
        """Camera images {key: uint8 (B, T, S, S, 3)} + language (B, 384) -> (B, T, tokens_per_frame, width).
        Depends on one frame only, so a policy can cache it per frame."""
        first = images[self.config.cameras[0]]
        batch, steps = first.shape[:2]
        stacked = torch.stack([images[key] for key in self.config.cameras], dim=2)  # (B, T, C, S, S, 3)
        conditions = language[:, None, None].expand(-1, steps, len(self.config.cameras), -1)
        tokens = self.image_tokenizer(stacked.flatten(0, 2), conditions.flatten(0, 2))
        tokens = tokens.view(batch, steps, len(self.config.cameras), -1, tokens.shape[-1]) + self.camera_embedding
        return tokens.flatten(2, 3)

    def camera_mask(self, has_camera: dict[str, torch.Tensor]) -> torch.Tensor:
        """{key: bool (B,)} -> bool (B, tokens_per_frame): which frame tokens come from a real camera."""
        per_camera = torch.stack([has_camera[key] for key in self.config.cameras], dim=1)  # (B, C)
        return per_camera.repeat_interleave(self.image_tokenizer.num_tokens, dim=1)

    # --- transformer ---------------------------------------------------------------------------------------

    def readout_embedding(self, frame_tokens: torch.Tensor, frame_valid: torch.Tensor, language: torch.Tensor,
                          state: torch.Tensor | None = None) -> torch.Tensor:
        """frame_tokens (B, T, M, W), frame_valid bool (B, T, M), language (B, 384), state (B, T, D) ->
        the readout token's output (B, W)."""
        batch, steps, _, width = frame_tokens.shape
        if steps > self.config.history:
            raise ValueError(f"got {steps} timesteps, the model was built for history {self.config.history}")
        observation = frame_tokens
        valid = frame_valid
        if self.state_projection is not None:
            if state is None:
                raise ValueError("this model expects a state (proprioception) input")
            observation = torch.cat([observation, self.state_projection(state).unsqueeze(2)], dim=2)
            valid = torch.cat([valid, valid.any(dim=2, keepdim=True)], dim=2)
        observation = observation + self.time_embedding[-steps:].unsqueeze(0)
        per_step = observation.shape[2]
        parts, groups, keys = [], [], []
        if self.language_projection is not None:
            prefix = self.language_projection(language).view(batch, self.config.language_tokens, width)
            parts.append(prefix)
            groups.append(torch.full((self.config.language_tokens,), -1))
            keys.append(torch.ones(batch, self.config.language_tokens, dtype=torch.bool, device=valid.device))
        parts.append(observation.flatten(1, 2))
        groups.append(torch.arange(steps).repeat_interleave(per_step))
        keys.append(valid.flatten(1, 2))
        parts.append(self.readout.expand(batch, -1, -1))
        groups.append(torch.tensor([steps]))
        keys.append(torch.ones(batch, 1, dtype=torch.bool, device=valid.device))
        tokens = torch.cat(parts, dim=1)
        group = torch.cat(groups).to(tokens.device)
        # Block-causal: a token sees tokens of its own and earlier groups that exist; always itself, so a
        # padded timestep's tokens never face an empty row (softmax of nothing is NaN).
        mask = (group[None, :] <= group[:, None])[None] & torch.cat(keys, dim=1)[:, None, :]
        mask = (mask | torch.eye(len(group), dtype=torch.bool, device=tokens.device)).unsqueeze(1)
        for block in self.blocks:
            tokens = block(tokens, attn_mask=mask)
        return self.norm(tokens[:, -1])

    def heads(self, readout: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(action output, terminate logits (B, K)); the action output is logits (B, K, D, bins) for the
        discrete head and unit-range actions (B, K, D) for the continuous one (D: 7 deltas or 10 targets)."""
        config = self.config
        shape = (readout.shape[0], config.action_chunk, config.action_dim)
        if config.action_head == "discrete":
            shape = (*shape, config.num_bins)
        return self.action_head(readout).view(shape), self.terminate_head(readout)

    # --- training and inference ----------------------------------------------------------------------------

    def outputs(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """A pipeline batch (agent_stack.data.pipeline keys + instruction_embedding) -> heads' outputs."""
        observation = batch["observation"]
        language = batch["instruction_embedding"]
        frame_tokens = self.encode_frames({key: observation[key] for key in self.config.cameras}, language)
        has_camera = {"image": torch.ones_like(observation["pad_mask"][:, 0]),
                      "wrist_image": observation.get("has_wrist_image", torch.ones_like(observation["pad_mask"][:, 0]))}
        valid = self.camera_mask(has_camera)[:, None, :] & observation["pad_mask"][:, :, None]
        state = observation["state"][..., :self.config.state_dim] if self.config.state_dim else None
        return self.heads(self.readout_embedding(frame_tokens, valid, language, state))

    def forward(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss (LeRobot's convention, so DistributedDataParallel wraps it): action loss
        (cross-entropy over bins, or L1) on the real chunk steps + weighted terminate BCE."""
        action_output, terminate_logits = self.outputs(batch)
        target = batch["action"].float()
        mask = batch["action_pad_mask"].float()  # (B, K)
        metrics = {}
        if self.config.action_head == "discrete":
            tokens = self.tokenizer.encode(target)
            per_dim = F.cross_entropy(action_output.flatten(0, 2), tokens.flatten(), reduction="none").view_as(tokens)
            metrics["token_accuracy"] = _masked_mean((action_output.argmax(-1) == tokens).float().mean(-1), mask)
        else:
            per_dim = (action_output - self.tokenizer.to_unit(target)).abs()
        action_loss = _masked_mean(per_dim.mean(-1), mask)
        terminate_loss = F.binary_cross_entropy_with_logits(terminate_logits, batch["terminate"].float())
        loss = action_loss + self.config.terminate_weight * terminate_loss
        metrics.update(action_loss=action_loss.detach(), terminate_loss=terminate_loss.detach())
        return loss, metrics

    def decode_actions(self, action_output: torch.Tensor) -> torch.Tensor:
        """Heads' action output -> normalised actions (B, K, D) (gripper as opening 0..1)."""
        if self.config.action_head == "discrete":
            return self.tokenizer.decode(action_output.argmax(-1))
        return self.tokenizer.from_unit(action_output)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
