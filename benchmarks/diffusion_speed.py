"""Diffusion Policy speed on this CPU: our implementation against LeRobot's at the same network size.

    .venv/bin/python benchmarks/diffusion_speed.py --lerobot-python /tmp/lerobot_venv/bin/python \\
        --out benchmarks/results/diffusion_speed.json

Measures, per network size, for `agent_stack.control.diffusion.DiffusionModel` (in this process) and
LeRobot's `DiffusionPolicy` (in a subprocess of the LeRobot venv, the `LEROBOT_WORKER` snippet below):

* inference latency of one action chunk at batch 1: observation encoding (2 cameras x 2 frames, uint8 ->
  float, centre crop, ResNet-18 + spatial softmax) and the full DDIM loop (10 U-Net evaluations), p50/p99;
* one training step: forward (random crop, encoder, DDPM noising, U-Net, MSE), backward, gradient clipping
  (norm 10, as both trainers do) and an AdamW step, on random data.

Both models are built from the same numbers: 2 cameras of 96x96 cropped to 84x84, one ResNet-18 with
GroupNorm (widths 64..512, no pretrained weights) and a 32-keypoint spatial softmax per camera, obs horizon
2, horizon 16, 8 action steps, state 14, action 7, U-Net kernel 5 with 8 groups and FiLM scale+bias, 100
train timesteps, DDIM with 10 steps, no goal (LeRobot's policy has no language input). Sizes: "paper"
(U-Net 256-512-1024, step embedding 256: `DiffusionConfig.paper`) and "small-unet" (our default U-Net
64-128-256, step embedding 128, with the same full-width ResNet-18). The parameter counts are printed.

Inputs are normalised already (LeRobot normalises in a separate processor pipeline, we in the policy
wrapper), so neither side pays for normalisation; both convert uint8 HWC frames to float inside the timed
region. The two sides alternate in small blocks (order flipped every round) so that load from other
processes on the machine hits both alike; absolute times on a shared CPU are still inflated, and the
minimum (least disturbed run) is reported beside p50/p99. Defaults: 50 inference runs after 3 warm-up, 4
training steps after 1 warm-up at batch 32 (batch 64 took 10-20 s a step on the shared 2-core CPU); 5-11
minutes with other jobs on the CPU, `--sizes paper` about halves it.

The throwaway LeRobot venv (never part of this repository). `lerobot` 0.4.4 pins torch < 2.11, so it is
installed without dependencies next to the same torch build as ours, plus what its diffusion policy imports:

    python3 -m venv /tmp/lerobot_venv
    /tmp/lerobot_venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /tmp/lerobot_venv/bin/pip install --no-deps lerobot==0.4.4
    /tmp/lerobot_venv/bin/pip install "diffusers>=0.27.2,<0.36.0" "einops>=0.8.0,<0.9.0" \\
        draccus==0.10.0 "huggingface-hub>=0.34.2,<0.36.0" "packaging>=24.2,<26.0" termcolor safetensors \\
        "pyserial>=3.5,<4.0" "av>=15.0.0,<16.0.0" "datasets>=4.0.0,<5.0.0" "accelerate>=1.10.0,<2.0.0" \\
        "deepdiff>=7.0.1,<9.0.0" "imageio>=2.34.0,<3.0.0"

Without `--lerobot-python` (or when it cannot start) only ours is measured and the reference is reported
missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from speed_comparison import ReferenceProcess

from agent_stack.control.diffusion import DiffusionConfig, DiffusionModel

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "diffusion_speed.json"
GOAL_RATIO = 0.8
"""Goal: ours takes at most 0.8x LeRobot's time, for inference and for a training step."""
SIZES = {
    "paper": {"down_dims": [256, 512, 1024], "diffusion_step_embed_dim": 256},
    "small-unet": {"down_dims": [64, 128, 256], "diffusion_step_embed_dim": 128},
}
SHARED = {"obs_horizon": 2, "horizon": 16, "action_steps": 8, "image_size": 96, "crop_size": 84,
          "state_dim": 14, "action_dim": 7, "keypoints": 32, "kernel_size": 5, "n_groups": 8,
          "train_timesteps": 100, "inference_steps": 10}
"""What both models are built from; a size from SIZES and the run settings complete the spec."""
CAMERAS = ("image", "wrist_image")
GRAD_CLIP = 10.0
OPTIMIZER = {"lr": 1e-4, "betas": (0.95, 0.999), "weight_decay": 1e-6}

# LeRobot's side, run as `python -c LEROBOT_WORKER SPEC_JSON` in the LeRobot venv. Protocol: it prints one
# JSON line {"params", "versions"} once built, then answers each stdin line {"op": "infer"|"train", "n"}
# with {"times": [seconds, ...]}; it exits at end of input.
LEROBOT_WORKER = r'''
import importlib.metadata, json, sys, time
import torch
from lerobot.configs.types import FeatureType, PolicyFeature
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

spec = json.loads(sys.argv[1])
torch.set_num_threads(spec["threads"])
torch.manual_seed(spec["seed"])
size, crop, cameras = spec["image_size"], spec["crop_size"], spec["cameras"]
image = PolicyFeature(FeatureType.VISUAL, (3, size, size))
config = DiffusionConfig(
    input_features={**{f"observation.{c}": image for c in cameras},
                    "observation.state": PolicyFeature(FeatureType.STATE, (spec["state_dim"],))},
    output_features={"action": PolicyFeature(FeatureType.ACTION, (spec["action_dim"],))},
    device="cpu", push_to_hub=False, n_obs_steps=spec["obs_horizon"], horizon=spec["horizon"],
    n_action_steps=spec["action_steps"], crop_shape=(crop, crop), crop_is_random=True,
    vision_backbone="resnet18", pretrained_backbone_weights=None, use_group_norm=True,
    spatial_softmax_num_keypoints=spec["keypoints"], use_separate_rgb_encoder_per_camera=True,
    down_dims=tuple(spec["down_dims"]), kernel_size=spec["kernel_size"], n_groups=spec["n_groups"],
    diffusion_step_embed_dim=spec["diffusion_step_embed_dim"], use_film_scale_modulation=True,
    noise_scheduler_type="DDIM", num_train_timesteps=spec["train_timesteps"],
    num_inference_steps=spec["inference_steps"], beta_schedule="squaredcos_cap_v2",
    prediction_type="epsilon", clip_sample=True)
policy = DiffusionPolicy(config)
optimizer = torch.optim.AdamW(policy.parameters(), lr=spec["lr"], betas=tuple(spec["betas"]),
                              weight_decay=spec["weight_decay"])


def frames(batch):
    g = torch.Generator().manual_seed(spec["seed"])
    shape = (batch, spec["obs_horizon"], size, size, 3)
    return {c: torch.randint(0, 256, shape, dtype=torch.uint8, generator=g) for c in cameras}


def to_float(x):  # (B, T, S, S, 3) uint8 -> (B, T, 3, S, S) in [0, 1], what LeRobot's datasets deliver
    return x.permute(0, 1, 4, 2, 3).float() / 255.0


infer_images = frames(1)
infer_state = torch.randn(1, spec["obs_horizon"], spec["state_dim"])
train_images = frames(spec["train_batch"])
train_state = torch.randn(spec["train_batch"], spec["obs_horizon"], spec["state_dim"])
train_action = torch.rand(spec["train_batch"], spec["horizon"], spec["action_dim"]) * 2 - 1
action_is_pad = torch.zeros(spec["train_batch"], spec["horizon"], dtype=torch.bool)


@torch.no_grad()
def infer():
    policy.eval()
    images = torch.stack([to_float(infer_images[c]) for c in cameras], dim=2)
    policy.diffusion.generate_actions({"observation.state": infer_state, "observation.images": images})


def train():
    policy.train()
    batch = {**{f"observation.{c}": to_float(train_images[c]) for c in cameras},
             "observation.state": train_state, "action": train_action, "action_is_pad": action_is_pad}
    loss, _ = policy.forward(batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(policy.parameters(), spec["grad_clip"])
    optimizer.step()


versions = {p: importlib.metadata.version(p) for p in ("lerobot", "torch", "torchvision", "diffusers")}
print(json.dumps({"params": sum(p.numel() for p in policy.parameters()), "versions": versions}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    step = {"infer": infer, "train": train}[request["op"]]
    times = []
    for _ in range(request["n"]):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    print(json.dumps({"times": times}), flush=True)
'''


class OursRunner:
    """Our DiffusionModel in this process, with the same ops as the LeRobot worker."""

    name = "ours"

    def __init__(self, spec: dict) -> None:
        torch.manual_seed(spec["seed"])
        config = DiffusionConfig(
            obs_horizon=spec["obs_horizon"], pred_horizon=spec["horizon"], action_steps=spec["action_steps"],
            action_dim=spec["action_dim"], cameras=tuple(spec["cameras"]), image_size=spec["image_size"],
            crop_size=spec["crop_size"], vision_backbone="resnet18_gn", vision_widths=(64, 128, 256, 512),
            spatial_keypoints=spec["keypoints"], image_feature_dim=2 * spec["keypoints"],
            state_dim=spec["state_dim"], goal="none", goal_dim=0, down_dims=tuple(spec["down_dims"]),
            kernel_size=spec["kernel_size"], n_groups=spec["n_groups"],
            diffusion_step_embed_dim=spec["diffusion_step_embed_dim"],
            num_train_timesteps=spec["train_timesteps"], num_inference_steps=spec["inference_steps"])
        self.model = DiffusionModel(config)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=spec["lr"], betas=tuple(spec["betas"]),
                                           weight_decay=spec["weight_decay"])
        self.grad_clip = spec["grad_clip"]
        self.params = sum(p.numel() for p in self.model.parameters())
        self.versions = {"torch": torch.__version__}
        self.infer_batch = random_batch(spec, 1)
        self.train_batch = random_batch(spec, spec["train_batch"])

    @torch.no_grad()
    def infer(self) -> None:
        self.model.eval()
        observation = self.infer_batch["observation"]
        images = {camera: observation[camera] for camera in self.model.config.cameras}
        self.model.sample(self.model.global_condition(images, observation["state"], None))

    def train(self) -> None:
        self.model.train()
        loss, _ = self.model(self.train_batch)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()

    def run(self, op: str, n: int) -> list[float]:
        step = {"infer": self.infer, "train": self.train}[op]
        times = []
        for _ in range(n):
            start = time.perf_counter()
            step()
            times.append(time.perf_counter() - start)
        return times

    def close(self) -> None:
        pass


def random_batch(spec: dict, batch: int) -> dict:
    """A data-pipeline batch of random content (the values do not change the compute)."""
    generator = torch.Generator().manual_seed(spec["seed"])
    shape = (batch, spec["obs_horizon"], spec["image_size"], spec["image_size"], 3)
    observation = {camera: torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
                   for camera in spec["cameras"]}
    observation["state"] = torch.randn(batch, spec["obs_horizon"], spec["state_dim"], generator=generator)
    action = torch.rand(batch, spec["horizon"], spec["action_dim"], generator=generator) * 2 - 1
    action[..., -1] = (action[..., -1] + 1) / 2  # the gripper column is an opening in [0, 1]
    return {"observation": observation, "action": action}


class LeRobotRunner:
    """LeRobot's DiffusionPolicy in a worker process of the LeRobot venv (see LEROBOT_WORKER)."""

    name = "lerobot"

    def __init__(self, python: str, spec: dict) -> None:
        self.process = ReferenceProcess([python, "-c", LEROBOT_WORKER, json.dumps(spec)], "LeRobot worker",
                                        spec["threads"], extra_env={"TOKENIZERS_PARALLELISM": "false"})
        self.params, self.versions = self.process.info["params"], self.process.info["versions"]

    def run(self, op: str, n: int) -> list[float]:
        return self.process.times(op, n)

    def close(self) -> None:
        self.process.close()


def interleaved(runners: list, op: str, warmup: int, rounds: int, block: int) -> dict[str, list[float]]:
    """Warm every runner up, then alternate blocks of `block` repetitions, flipping the order each round,
    so that a change in background load lands on both sides alike."""
    for runner in runners:
        runner.run(op, warmup)
    times: dict[str, list[float]] = {runner.name: [] for runner in runners}
    for index in range(rounds):
        for runner in (runners if index % 2 == 0 else runners[::-1]):
            times[runner.name] += runner.run(op, block)
    return times


def summary(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000.0
    return {"n": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "min_ms": float(ms.min()), "times_ms": [round(t, 1) for t in ms]}


def measure_size(name: str, spec: dict, args: argparse.Namespace, console: Console) -> dict:
    runners = [OursRunner(spec)]
    reference_error = None
    if args.lerobot_python:
        try:
            runners.append(LeRobotRunner(args.lerobot_python, spec))
        except (OSError, RuntimeError, json.JSONDecodeError) as error:
            reference_error = str(error)
            console.print(f"[red]LeRobot reference unavailable:[/red] {error}")
    params = ", ".join(f"{runner.name} {runner.params / 1e6:.2f} M" for runner in runners)
    console.print(f"[bold]{name}[/bold]: params {params}")
    try:
        infer = interleaved(runners, "infer", args.warmup, args.infer_rounds, args.infer_block)
        train = interleaved(runners, "train", args.train_warmup, args.train_rounds, 1)
    finally:
        for runner in runners:
            runner.close()
    result = {"spec": spec, "reference_error": reference_error, "models": {}}
    for runner in runners:
        result["models"][runner.name] = {"params": runner.params, "versions": runner.versions,
                                         "inference": summary(infer[runner.name]),
                                         "train_step": summary(train[runner.name])}
    if "lerobot" in result["models"]:
        result["ratio_ours_over_lerobot"] = ratios(result["models"]["ours"], result["models"]["lerobot"])
    return result


def ratios(ours: dict, reference: dict) -> dict:
    """ours / LeRobot; the minimum is the least disturbed run, the steadier figure on a shared CPU."""
    result = {"params": ours["params"] / reference["params"]}
    for metric in ("inference", "train_step"):
        for statistic in ("p50", "p99", "min"):
            key = f"{statistic}_ms"
            result[f"{metric}_{statistic}"] = ours[metric][key] / reference[metric][key]
    return result


def print_table(results: dict, args: argparse.Namespace, console: Console) -> None:
    table = Table(title=f"Diffusion Policy, ours vs LeRobot, {args.threads} threads (ms): inference = one "
                        f"chunk (DDIM 10, batch 1), train = one step (batch {args.train_batch})")
    for column in ("size", "model", "params M", "infer p50", "infer p99", "infer min", "train p50",
                   "train min"):
        table.add_column(column, justify="left" if column in ("size", "model") else "right")
    for name, result in results.items():
        for model, row in result["models"].items():
            infer, train = row["inference"], row["train_step"]
            table.add_row(name, model, f"{row['params'] / 1e6:.2f}", f"{infer['p50_ms']:.0f}",
                          f"{infer['p99_ms']:.0f}", f"{infer['min_ms']:.0f}", f"{train['p50_ms']:.0f}",
                          f"{train['min_ms']:.0f}")
        ratio = result.get("ratio_ours_over_lerobot")
        if ratio:
            table.add_row(name, "ours/lerobot", f"{ratio['params']:.3f}", verdict(ratio["inference_p50"]),
                          f"{ratio['inference_p99']:.2f}", verdict(ratio["inference_min"]),
                          verdict(ratio["train_step_p50"]), verdict(ratio["train_step_min"]))
        else:
            table.add_row(name, "lerobot", "missing", "", "", "", "", "")
        table.add_section()
    console.print(table)


def verdict(ratio: float) -> str:
    colour = "green" if ratio <= GOAL_RATIO else "red"
    return f"[{colour}]{ratio:.2f}[/{colour}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lerobot-python", help="python of the throwaway LeRobot venv (see above)")
    parser.add_argument("--sizes", nargs="+", choices=sorted(SIZES), default=list(SIZES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=3, help="inference warm-up runs per model")
    parser.add_argument("--infer-rounds", type=int, default=5)
    parser.add_argument("--infer-block", type=int, default=10, help="runs per model per round")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--train-warmup", type=int, default=1)
    parser.add_argument("--train-rounds", type=int, default=4, help="one step per model per round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.lerobot_python and not Path(args.lerobot_python).exists():
        print(f"--lerobot-python {args.lerobot_python} does not exist: measuring ours only")
        args.lerobot_python = None

    console = Console()
    console.width = max(console.width, 100)  # a pipe reports 80 columns, which squeezes the table
    run = {"threads": args.threads, "train_batch": args.train_batch, "seed": args.seed,
           "cameras": list(CAMERAS), "grad_clip": GRAD_CLIP, **OPTIMIZER}
    load_before = os.getloadavg()
    start = time.perf_counter()
    results = {name: measure_size(name, {**SHARED, **size, **run}, args, console)
               for name, size in SIZES.items() if name in args.sizes}
    print_table(results, args, console)
    if not args.lerobot_python:
        console.print("[yellow]LeRobot reference missing[/yellow] (give --lerobot-python): ours only")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "diffusion_speed", "goal_ratio": GOAL_RATIO, "threads": args.threads,
        "repetitions": {"infer_warmup": args.warmup, "infer": args.infer_rounds * args.infer_block,
                        "train_warmup": args.train_warmup, "train": args.train_rounds},
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "lerobot_python": args.lerobot_python, "wall_s": time.perf_counter() - start,
        "results": results}, indent=2) + "\n")
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
