"""`agent-stack train vla`: train the VLA from RLDS data (our sim demonstrations or an Open-X mixture).

    agent-stack train vla --data outputs/collect/agent_stack_tabletop --out runs/vla --steps 20000
    agent-stack train vla --data fractal20220817_data:2,bridge:1 --data-dir ~/tensorflow_datasets --out runs/oxe
    torchrun --nproc_per_node 2 -m agent_stack.train.train_vla --data ... --out runs/vla      (DDP)
    agent-stack train vla --out runs/vla --resume                                              (continue)

The loop is `agent_stack.train.offline` (AdamW, warmup + cosine, clipping, accumulation, EMA, bf16 on
GPU, DDP, exact `--resume`). Checkpoints (`<out>/checkpoints/step_N/`) hold the policy (loadable with
`VLAPolicy.from_pretrained`) and the training state.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import agent_stack.data  # noqa: F401  (loads TensorFlow isolated: see agent_stack/native_libraries.py)
from agent_stack.data.pipeline import DataConfig, Mixture
from agent_stack.train.distributed import DistributedContext
from agent_stack.train.offline import (
    TrainConfig,
    add_run_arguments,
    data_mixture,
    run,
    train_config_from_args,
    train_offline,
)
from agent_stack.vla.configuration_vla import VLAConfig
from agent_stack.vla.modeling_vla import VLAModel
from agent_stack.vla.policy import save_pretrained


def train_vla(train: TrainConfig, model_config: VLAConfig, data: DataConfig, out: Path, *,
              context: DistributedContext, resume: bool = False, progress: bool = True) -> Path:
    """Train; returns the directory of the last checkpoint."""
    return train_offline(train, data, out, make_model=lambda: VLAModel(model_config),
                         save_policy=save_pretrained, context=context, name="vla", resume=resume,
                         progress=progress)


# --- command line ----------------------------------------------------------------------------------------

MODEL_FLAGS = {
    "image_size": int, "history": int, "action_chunk": int, "action_space": str, "action_head": str,
    "vision_backbone": str, "vision_depth": int, "tokens_per_camera": int, "hidden_dim": int, "depth": int,
    "num_heads": int, "dropout": float, "language_tokens": int,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-stack train vla", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, "VLAConfig")
    parser.add_argument("--use-state", action=argparse.BooleanOptionalAction, default=True,
                        help="feed proprioception as a token (default: yes, when the data has it)")
    parser.add_argument("--film", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--augment", action=argparse.BooleanOptionalAction, default=True,
                        help="random crop and colour jitter (default: on)")
    for name, kind in MODEL_FLAGS.items():
        parser.add_argument("--" + name.replace("_", "-"), type=kind, dest=name)
    return parser


def configs_from_args(args: argparse.Namespace) -> tuple[TrainConfig, VLAConfig, DataConfig]:
    names, weights = data_mixture(args)
    model_fields = VLAConfig.load(args.model_config).to_dict() if args.model_config else {}
    model_fields.update({name: getattr(args, name) for name in MODEL_FLAGS if getattr(args, name) is not None})
    if args.film is not None:
        model_fields["film"] = args.film
    model = VLAConfig.from_dict(model_fields)
    data = DataConfig(datasets=names, weights=weights, data_dir=args.data_dir, split=args.split,
                      image_size=model.image_size, history=model.history, action_chunk=model.action_chunk,
                      action_space=model.action_space,
                      wrist_image="wrist_image" in model.cameras, augment=args.augment,
                      shuffle_buffer=args.shuffle_buffer, seed=args.seed if args.seed is not None else 0)
    return train_config_from_args(args), model, data


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def new_configs() -> tuple[TrainConfig, VLAConfig, DataConfig]:
        train, model_config, data = configs_from_args(args)
        if args.use_state:
            model_config = dataclasses.replace(model_config, state_dim=Mixture(data).state_dim)
        return train, model_config, data

    return run(args.out, resume=args.resume, name="vla", new_configs=new_configs,
               model_config_from_dict=VLAConfig.from_dict, make_model=VLAModel, save_policy=save_pretrained,
               progress=not args.no_progress)


if __name__ == "__main__":
    sys.exit(main())
