"""`agent-stack train control --algo diffusion`: train Diffusion Policy from RLDS demonstrations.

    agent-stack train control --algo diffusion --data outputs/collect/agent_stack_tabletop --out runs/dp
    agent-stack train control --algo diffusion --data ... --out runs/dp --paper-size --device cuda
    agent-stack train control --algo diffusion --data ... --out runs/dp_ctrl --goal ee_target --cameras ""
    agent-stack train control --algo diffusion --data ... --out runs/dp --action-space target \
        --vision-backbone keypoint_gn --vision-widths 16,32 --vision-film --cameras image
    torchrun --nproc_per_node 2 -m agent_stack.train.train_diffusion --data ... --out runs/dp      (DDP)
    agent-stack train control --algo diffusion --out runs/dp --resume                              (continue)

The same RLDS windows as the VLA (`agent_stack.data.pipeline`: To observation frames, Tp future actions)
and the same loop (`agent_stack.train.offline`). The defaults follow Chi et al.: AdamW at 1e-4 with weight
decay 1e-6, 500 warmup steps then cosine, EMA weights for evaluation, random crop as the only image
augmentation. Checkpoints load with `DiffusionPolicy.from_pretrained`.
"""

from __future__ import annotations

import argparse
import sys

import agent_stack.data  # noqa: F401  (loads TensorFlow isolated: see agent_stack/native_libraries.py)
from agent_stack.control.diffusion.configuration_diffusion import GOALS, DiffusionConfig
from agent_stack.control.diffusion.modeling_diffusion import DiffusionModel
from agent_stack.control.diffusion.policy import save_pretrained
from agent_stack.data.pipeline import DataConfig, Mixture
from agent_stack.normalization import ACTION_SPACES
from agent_stack.train.offline import (
    TrainConfig,
    add_run_arguments,
    data_mixture,
    run,
    train_config_from_args,
)

TRAIN_DEFAULTS = {"lr": 1e-4, "weight_decay": 1e-6, "warmup_steps": 500, "min_lr_ratio": 0.0,
                  "ema_decay": 0.995, "batch_size": 64}
"""Chi et al.'s optimiser settings; the EMA decay is lower than their 0.9999 ceiling because CPU runs are
thousands of steps, not hundreds of thousands."""

MODEL_FLAGS = {
    "obs_horizon": int, "pred_horizon": int, "action_steps": int, "image_size": int, "crop_size": int,
    "vision_backbone": str, "spatial_keypoints": int, "image_feature_dim": int, "kernel_size": int,
    "diffusion_step_embed_dim": int, "num_train_timesteps": int, "num_inference_steps": int,
    "position_loss_weight": float,
}
TUPLE_FLAGS = {"cameras": str, "vision_widths": int, "down_dims": int}
"""Comma-separated lists, e.g. --down-dims 256,512,1024 --cameras image."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-stack train control --algo diffusion", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "DiffusionConfig")
    parser.add_argument("--goal", choices=GOALS,
                        help="condition on the instruction (default: the standalone visuomotor policy), on an "
                        "end-effector target position (the stack's controller), or on nothing")
    parser.add_argument("--action-space", choices=tuple(ACTION_SPACES),
                        help="denoise end-effector deltas (default, the dataset actions) or the absolute "
                        "end-effector targets they command (Chi et al.'s position control; needs data that "
                        "records them: tabletop 1.2.0 or later)")
    parser.add_argument("--vision-film", action="store_true", default=None,
                        help="FiLM the image encoder's stages on the goal (the instruction picks features)")
    parser.add_argument("--contact-conditioning", action="store_true", default=None,
                        help="condition the denoiser on the contact point: the demonstration's in training, "
                        "the position head's from the first frame when acting (needs --position-loss-weight)")
    parser.add_argument("--no-state", action="store_true",
                        help="condition on the cameras and goal only: from its own proprioception a policy "
                        "can copy the demonstrated motion instead of looking where the object is (the "
                        "copycat problem, Wen et al. 2020)")
    parser.add_argument("--paper-size", action="store_true",
                        help="Chi et al.'s network sizes (ResNet-18 at full width, U-Net 256-512-1024)")
    for name, kind in MODEL_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)
    for name in TUPLE_FLAGS:
        parser.add_argument("--" + name.replace("_", "-"), dest=name)
    return parser


def model_config_from_args(args: argparse.Namespace, state_dim: int) -> DiffusionConfig:
    fields = DiffusionConfig.load(args.model_config).to_dict() if args.model_config else {}
    fields.update({name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None})
    for name, kind in TUPLE_FLAGS.items():
        text = getattr(args, name)
        if text is not None:
            try:
                fields[name] = tuple(kind(item) for item in text.split(",") if item.strip())
            except ValueError:
                raise ValueError(f"--{name.replace('_', '-')} {text!r}: expected comma-separated "
                                 f"{kind.__name__} values") from None
    if args.vision_film:
        fields["vision_film"] = True
    if args.contact_conditioning:
        fields["contact_conditioning"] = True
    if args.goal is not None:
        fields.update(goal=args.goal, goal_dim=DiffusionConfig.goal_dim_of(args.goal))
    if args.action_space is not None:
        fields.update(action_space=args.action_space, action_dim=ACTION_SPACES[args.action_space])
    fields["state_dim"] = 0 if args.no_state else state_dim
    return DiffusionConfig.paper(**fields) if args.paper_size else DiffusionConfig.from_dict(fields)


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, DiffusionConfig, DataConfig]:
    names, weights = data_mixture(args)
    seed = args.seed if args.seed is not None else 0
    probe = DataConfig(datasets=names, weights=weights, data_dir=args.data_dir, split=args.split)
    model = model_config_from_args(args, state_dim=Mixture(probe).state_dim)
    data = DataConfig(datasets=names, weights=weights, data_dir=args.data_dir, split=args.split,
                      image_size=model.image_size, history=model.obs_horizon, action_chunk=model.pred_horizon,
                      action_space=model.action_space,
                      wrist_image="wrist_image" in model.cameras, augment=False,
                      shuffle_buffer=args.shuffle_buffer, seed=seed)
    return train_config_from_args(args, TRAIN_DEFAULTS), model, data


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(args.out, resume=args.resume, name="diffusion", new_configs=lambda: configs_from_args(args),
               model_config_from_dict=DiffusionConfig.from_dict, make_model=DiffusionModel,
               save_policy=save_pretrained, progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
