"""Can the Diffusion Policy's image encoder tell where the named block is, on layouts it has not seen?

    .venv/bin/python benchmarks/diffusion_encoder_probe.py \
        --data outputs/dp_target/data/agent_stack_tabletop --image-size 64 --crop-size 56 \
        --out benchmarks/results/diffusion_encoder_probe.json

A supervised check of the visuomotor policy's first job, without the denoiser. From the first front-camera
frame of a pick_up demonstration and its instruction embedding, the policy's `ImageEncoder` (ResNet with
GroupNorm, spatial softmax, linear) and a small MLP regress the grasp point: the x y of the end-effector
target where the expert first closes the hand, which is the named block's position. Demonstrations
(with their colour-renamed copies, which share the layout) are split into a training and a held-out set.
The held-out error is compared with predicting the mean grasp point. Frames are resized to --image-size
first, so a larger size gives the encoder a finer feature map from the same pixels. --crop-size below it
adds the policy's random-crop augmentation.

--vision-backbone keypoint_gn --vision-widths 32,64 --vision-film probes the encoder that keeps the image's
resolution and lets the instruction pick its features.

The data must be tabletop 1.2.0 or later (it records the targets): `agent-stack collect --task pick_up
--colour-permutations K ...`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import agent_stack.data  # noqa: F401  (loads TensorFlow isolated: see agent_stack/native_libraries.py)
import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from agent_stack.control.diffusion.configuration_diffusion import VISION_BACKBONES, DiffusionConfig
from agent_stack.control.diffusion.modeling_diffusion import ImageEncoder
from agent_stack.data.rlds import iterate_numpy, open_rlds
from agent_stack.language import EMBEDDING_DIM, InstructionEncoder

WITHIN_M = 0.03
"""A grasp point closer than this to the block's is on the block (blocks are 5 cm wide)."""


def first_frames_and_grasp_points(data: str) -> tuple[torch.Tensor, list[str], torch.Tensor, int]:
    """Front frame at step 0, instruction, grasp point (x, y) of every episode that closes the hand, and
    how many episodes each demonstration has (itself and its recoloured copies, stored together)."""
    source = open_rlds(data)
    frames, instructions, points = [], [], []
    for trajectory in iterate_numpy(source.trajectories(), [source]):
        if "target" not in trajectory:
            raise SystemExit(f"{data} records no end-effector targets: collect it again (tabletop 1.2.0)")
        closing = np.flatnonzero(trajectory["action"][:, 6] < 0.5)
        if len(closing):
            frames.append(trajectory["image"][0])
            instructions.append(trajectory["instruction"][0].decode())
            points.append(trajectory["target"][closing[0], :2])
    summary = json.loads((source.builder_dir / "collect_summary.json").read_text())
    copies = 1 + summary["arguments"]["colour_permutations"]
    grasp_points = torch.from_numpy(np.stack(points)).float()
    return torch.from_numpy(np.stack(frames)), instructions, grasp_points, copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="tabletop pick_up dataset (1.2.0 or later)")
    parser.add_argument("--image-size", type=int, default=64, help="frames are resized to this first")
    parser.add_argument("--crop-size", type=int, default=None,
                        help="random crop in training, centre crop held out (default: no crop)")
    parser.add_argument("--vision-backbone", choices=VISION_BACKBONES, default="resnet18_gn")
    parser.add_argument("--vision-widths", default=None,
                        help="comma-separated stage widths (default: the policy's for the backbone)")
    parser.add_argument("--vision-film", action="store_true", help="FiLM the encoder on the instruction")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--held-out", type=float, default=0.125, help="fraction of demonstrations held out")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append the result to this JSON list")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    frames, instructions, points, copies = first_frames_and_grasp_points(args.data)
    if frames.shape[1] != args.image_size:
        resized = F.interpolate(frames.permute(0, 3, 1, 2).float(), size=(args.image_size, args.image_size),
                                mode="bilinear", antialias=True)
        frames = resized.round().clamp(0, 255).byte().permute(0, 2, 3, 1)
    goals = torch.from_numpy(InstructionEncoder()(instructions)).float()
    demonstrations = len(points) // copies
    train = round(demonstrations * (1 - args.held_out)) * copies  # a layout's copies stay on one side
    mean, std = points[:train].mean(0), points[:train].std(0)

    widths = ({"vision_widths": tuple(int(w) for w in args.vision_widths.split(","))}
              if args.vision_widths else {})
    config = DiffusionConfig(image_size=args.image_size, crop_size=args.crop_size or args.image_size,
                             cameras=("image",), state_dim=0, vision_backbone=args.vision_backbone,
                             vision_film=args.vision_film, **widths)
    encoder = ImageEncoder(config)
    head = torch.nn.Sequential(torch.nn.Linear(config.image_feature_dim + EMBEDDING_DIM, 256),
                               torch.nn.ReLU(), torch.nn.Linear(256, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 2))
    optimizer = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=3e-4)

    def predict(index: torch.Tensor) -> torch.Tensor:
        features = encoder(frames[index][:, None], goals[index])[:, 0]
        return head(torch.cat([features, goals[index]], dim=-1)) * std + mean

    def errors(index: torch.Tensor) -> torch.Tensor:
        encoder.eval()
        with torch.no_grad():
            error = (predict(index) - points[index]).norm(dim=-1)
        encoder.train()
        return error

    started = time.perf_counter()
    for _ in range(args.steps):
        index = torch.randint(0, train, (args.batch_size,))
        loss = F.mse_loss((predict(index) - mean) / std, (points[index] - mean) / std)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    held_out = errors(torch.arange(train, len(points)))
    seen = errors(torch.arange(0, train))
    baseline = (points[train:] - mean).norm(dim=-1)
    result = {
        "data": args.data, "image_size": args.image_size, "crop_size": config.crop_size,
        "vision_backbone": config.vision_backbone, "vision_widths": list(config.vision_widths),
        "vision_film": config.vision_film,
        "feature_map_positions": encoder.pool.grid.shape[0], "steps": args.steps,
        "batch_size": args.batch_size,
        "demonstrations": demonstrations, "copies_per_demonstration": copies, "train_episodes": train,
        "held_out_episodes": len(points) - train, "train_seconds": round(time.perf_counter() - started),
        "held_out_median_cm": round(100 * float(held_out.median()), 1),
        "held_out_within_3cm": round(float((held_out < WITHIN_M).float().mean()), 3),
        "training_median_cm": round(100 * float(seen.median()), 1),
        "mean_baseline_median_cm": round(100 * float(baseline.median()), 1),
        "mean_baseline_within_3cm": round(float((baseline < WITHIN_M).float().mean()), 3),
    }
    table = Table(title=f"grasp point from the first frame: {config.vision_backbone}"
                        f"{' with FiLM' if config.vision_film else ''}, {args.image_size} px, "
                        f"crop {config.crop_size}, "
                        f"{result['feature_map_positions']} feature-map positions, {args.steps} steps")
    for column in ("episodes", "median error", f"within {WITHIN_M * 100:.0f} cm"):
        table.add_column(column)
    table.add_row("training", f"{result['training_median_cm']} cm", "")
    table.add_row("held out", f"{result['held_out_median_cm']} cm", f"{result['held_out_within_3cm']:.0%}")
    table.add_row("predict the mean", f"{result['mean_baseline_median_cm']} cm",
                  f"{result['mean_baseline_within_3cm']:.0%}")
    Console().print(table)
    if args.out:
        previous = json.loads(args.out.read_text()) if args.out.is_file() else []
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps([*previous, result], indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
