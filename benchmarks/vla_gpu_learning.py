"""The VLA learning bar with GPU compute: the pipeline's samples exported here, trained on a GPU machine.

The CPU benchmark (docs/BENCHMARKS.md, "VLA learning bar") trains 3,000 steps of 32 samples and names
"many more steps on a GPU" first among what should close its gap. The lent GPU machine has PyTorch and
timm but neither TensorFlow nor MuJoCo, and takes a working tree of 64 MiB, so the run is split in three:

    # 1. here (TensorFlow): the RLDS data through agent_stack.data.pipeline -> one safetensors file of
    #    JPEG frames, normalised states and actions, episode ids and instruction embeddings (the front
    #    camera of 400 episodes at 96 px is 43 MiB at JPEG quality 90; both cameras do not fit in 64 MiB)
    python benchmarks/vla_gpu_learning.py export --data outputs/collect_vla/agent_stack_tabletop \
        --image-size 96 --cameras image --jpeg-quality 90 --out gpu_data/vla_samples.safetensors
    # 2. on the GPU machine (torch + timm): several configurations train side by side on one GPU for a
    #    wall-clock budget; each writes one file (fp16 weights, with config, statistics and metadata)
    python benchmarks/vla_gpu_learning.py train --samples gpu_data/vla_samples.safetensors \
        --out $OUT --seconds 420 --run continuous:action_head=continuous,action_chunk=4 --run discrete:
    # 3. here: each file back into a checkpoint directory, then the closed-loop evaluation
    python benchmarks/vla_gpu_learning.py unpack --file RUN.safetensors --out outputs/vla_gpu/RUN
    agent-stack eval vla --checkpoint outputs/vla_gpu/RUN --tasks pick_up,place_on_pad --episodes 25

The training windows are the pipeline's (agent_stack.data.pipeline): frames t-H+1..t (the first frame
repeated before the episode start, with pad_mask), actions t..t+K-1 (the last one repeated past the end,
with action_pad_mask) and terminate at and after the last step. They are gathered on the GPU, and so is
the augmentation: the pipeline's random resized crop (scale 0.8-1, one box per sample and camera) and a
brightness/contrast jitter. The loss is `VLAModel.forward`; the optimiser is the offline trainers'
(AdamW, warmup + cosine, clipping, EMA) from agent_stack.train.optimization; the cosine runs on wall-clock
time, so every configuration ends its budget at the low learning rate whatever its speed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

SAMPLE_KEYS = ("state", "action", "terminate", "episode", "instruction")
CAMERAS = ("image", "wrist_image")


# --- 1. export (here, with TensorFlow) ---------------------------------------------------------------------

def export(args: argparse.Namespace) -> None:
    import agent_stack.data  # noqa: F401  (TensorFlow, isolated)
    import tensorflow as tf
    from safetensors.numpy import save_file

    from agent_stack.data.pipeline import DataConfig, Mixture, parse_mixture
    from agent_stack.data.rlds import iterate_numpy
    from agent_stack.data.standardize import dataset_entry
    from agent_stack.language import InstructionEncoder

    names, _ = parse_mixture(args.data)
    if len(names) != 1:
        raise SystemExit("export takes one dataset")
    # History 2 marks each episode's first step (pad_mask[0] False); samples come in episode order.
    config = DataConfig(datasets=names, image_size=args.image_size, history=2, action_chunk=1, repeat=False,
                        shuffle_buffer=0, action_space=args.action_space)
    mixture = Mixture(config)
    source = mixture.sources[0]
    cameras = args.cameras.split(",")
    unknown = set(cameras) - set(CAMERAS)
    if unknown:
        raise SystemExit(f"--cameras: unknown {sorted(unknown)}; choose from {CAMERAS}")
    jpegs = {camera: [] for camera in cameras}
    columns = {key: [] for key in SAMPLE_KEYS}
    instructions: dict[str, int] = {}
    episode = -1
    for sample in iterate_numpy(mixture.dataset(train=False), mixture.sources):
        observation = sample["observation"]
        if not observation["pad_mask"][0]:
            episode += 1
        for camera in cameras:
            frame = observation[camera][-1]
            jpegs[camera].append(tf.io.encode_jpeg(frame, quality=args.jpeg_quality).numpy())
        text = sample["instruction"]
        text = text.decode() if isinstance(text, bytes) else text
        columns["state"].append(observation["state"][-1])
        columns["action"].append(sample["action"][0])
        columns["terminate"].append(sample["terminate"][0])
        columns["episode"].append(episode)
        columns["instruction"].append(instructions.setdefault(text, len(instructions)))
    texts = list(instructions)
    tensors = {
        "state": np.stack(columns["state"]).astype(np.float32),
        "action": np.stack(columns["action"]).astype(np.float32),
        "terminate": np.asarray(columns["terminate"], np.uint8),
        "episode": np.asarray(columns["episode"], np.int32),
        "instruction": np.asarray(columns["instruction"], np.int32),
        "instruction_embedding": InstructionEncoder()(texts).astype(np.float32),
    }
    for camera, encoded in jpegs.items():
        tensors[f"{camera}_jpeg"] = np.frombuffer(b"".join(encoded), np.uint8)
        tensors[f"{camera}_offsets"] = np.cumsum([0] + [len(e) for e in encoded]).astype(np.int64)
    metadata = {"statistics": json.dumps(mixture.statistics[source.name].to_json()),
                "dataset": source.name, "control_hz": json.dumps(dataset_entry(source.name).control_hz),
                "data": json.dumps(dataclasses.asdict(config)), "image_size": str(args.image_size),
                "instructions": json.dumps(texts)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out), metadata=metadata)
    megabytes = args.out.stat().st_size / 2**20
    print(f"{len(columns['episode'])} steps, {episode + 1} episodes, {len(texts)} instructions -> {args.out} "
          f"({megabytes:.1f} MiB)")


# --- 2. train (on the GPU machine: torch and timm only) ----------------------------------------------------

@dataclasses.dataclass
class Samples:
    """The exported steps on the device, and the pipeline's windows over them."""

    frames: dict[str, torch.Tensor]  # camera -> uint8 (N, S, S, 3), the cameras exported
    state: torch.Tensor
    action: torch.Tensor
    terminate: torch.Tensor
    instruction: torch.Tensor
    instruction_embedding: torch.Tensor
    episode_start: torch.Tensor  # (N,) index of each step's episode's first step
    episode_end: torch.Tensor  # (N,) index of each step's episode's last step
    metadata: dict

    @classmethod
    def load(cls, path: Path, device: torch.device) -> Samples:
        from safetensors import safe_open
        from torchvision.io import decode_jpeg

        with safe_open(str(path), framework="pt") as file:
            tensors = {key: file.get_tensor(key) for key in file.keys()}
            metadata = file.metadata()
        frames = {}
        for camera in (camera for camera in CAMERAS if f"{camera}_jpeg" in tensors):
            data, offsets = tensors[f"{camera}_jpeg"], tensors[f"{camera}_offsets"].tolist()
            encoded = [data[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            frames[camera] = torch.stack(decode_jpeg(encoded)).permute(0, 2, 3, 1).contiguous().to(device)
        episode = tensors["episode"].long()
        steps = torch.arange(len(episode))
        first = torch.ones_like(episode, dtype=torch.bool)
        first[1:] = episode[1:] != episode[:-1]
        last = torch.ones_like(first)
        last[:-1] = first[1:]
        start = torch.cummax(torch.where(first, steps, 0), 0).values
        end = torch.flip(torch.cummin(torch.flip(torch.where(last, steps, len(steps)), [0]), 0).values, [0])
        return cls(frames=frames, state=tensors["state"].to(device), action=tensors["action"].to(device),
                   terminate=tensors["terminate"].bool().to(device),
                   instruction=tensors["instruction"].long().to(device),
                   instruction_embedding=tensors["instruction_embedding"].to(device),
                   episode_start=start.to(device), episode_end=end.to(device), metadata=metadata)

    def __len__(self) -> int:
        return len(self.action)

    def batch(self, index: torch.Tensor, history: int, chunk: int) -> dict:
        """The pipeline's sample of step `index` (B,) with H frames and K actions."""
        start, end = self.episode_start[index, None], self.episode_end[index, None]
        frames = index[:, None] + torch.arange(1 - history, 1, device=index.device)
        futures = index[:, None] + torch.arange(chunk, device=index.device)
        frame_index = torch.maximum(frames, start)
        future_index = torch.minimum(futures, end)
        observation = {camera: images[frame_index] for camera, images in self.frames.items()}
        observation.update(state=self.state[frame_index], pad_mask=frames >= start,
                           has_wrist_image=torch.full_like(index, "wrist_image" in self.frames,
                                                           dtype=torch.bool))
        return {"observation": observation, "action": self.action[future_index],
                "action_pad_mask": futures <= end,
                "terminate": self.terminate[future_index] | (futures > end),
                "instruction_embedding": self.instruction_embedding[self.instruction[index]]}


def augment(frames: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """uint8 (B, H, S, S, 3) -> float (B, H, S, S, 3) in 0..255: the pipeline's random resized crop (area
    0.8-1, one box per sample for all its frames) and brightness/contrast jitter."""
    import torch.nn.functional as F

    batch, history, size = frames.shape[:3]
    device = frames.device

    def uniform(low, high, *shape):
        return torch.rand(batch, *shape, device=device, generator=generator) * (high - low) + low

    scale = uniform(0.8, 1.0).sqrt()
    offset = uniform(0.0, 1.0, 2) * (1.0 - scale[:, None])
    theta = torch.zeros(batch, 2, 3, device=device)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = 2.0 * offset + scale[:, None] - 1.0  # box [o, o + s] of [0, 1] onto [-1, 1]
    images = frames.permute(0, 1, 4, 2, 3).flatten(0, 1).float()
    theta = theta.repeat_interleave(history, 0)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    images = images.view(batch, history, 3, size, size)
    brightness = uniform(-25.5, 25.5)[:, None, None, None, None]
    contrast = uniform(0.9, 1.1)[:, None, None, None, None]
    mean = images.mean(dim=(2, 3, 4), keepdim=True)
    images = ((images - mean) * contrast + mean + brightness).clamp(0.0, 255.0)
    return images.permute(0, 1, 3, 4, 2)


def parse_run(text: str) -> tuple[str, dict]:
    """'name:field=value,field=value' -> (name, VLAConfig overrides); values are JSON or plain strings."""
    name, _, fields = text.partition(":")
    overrides = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def train(args: argparse.Namespace) -> None:
    """One configuration per --run, each in its own process (the GPU runs them side by side)."""
    import subprocess

    processes = []
    for run in args.run:
        name, _ = parse_run(run)
        options = {key: value for key, value in vars(args).items() if key not in ("command", "run")}
        command = [sys.executable, __file__, "train-one", "--run", run]
        for key, value in options.items():
            command += ["--" + key.replace("_", "-"), str(value)]
        log = open(Path(args.out) / f"{name}.log", "w")
        processes.append((name, subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), log))
    failed = []
    for name, process, log in processes:
        if process.wait() != 0:
            failed.append(name)
        log.close()
        print(f"--- {name} ---")
        print((Path(args.out) / f"{name}.log").read_text()[-3000:])
    if failed:
        raise SystemExit(f"runs failed: {failed}")


def train_one(args: argparse.Namespace) -> None:
    from safetensors.torch import save_file
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from agent_stack.train.optimization import parameter_groups
    from agent_stack.vla.configuration_vla import VLAConfig
    from agent_stack.vla.modeling_vla import VLAModel

    name, overrides = parse_run(args.run[0])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    samples = Samples.load(args.samples, device)
    image_size = int(samples.metadata["image_size"])
    action_space = json.loads(samples.metadata["data"])["action_space"]
    config = VLAConfig(**{"image_size": image_size, "state_dim": samples.state.shape[1],
                          "cameras": tuple(samples.frames), "action_space": action_space, **overrides})
    model = VLAModel(config).to(device)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(args.ema_decay))
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.05), lr=args.lr, betas=(0.9, 0.95))
    generator = torch.Generator(device=device).manual_seed(args.seed)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"{name}: {parameters / 1e6:.2f} M parameters, {len(samples)} steps of data, device {device}, "
          f"config {overrides}", flush=True)

    started = time.monotonic()
    step, losses = 0, []
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= args.seconds or (args.max_steps and step >= args.max_steps):
            break
        # Warmup over the first steps, then a cosine over the wall-clock budget (down to 10 %).
        progress = elapsed / args.seconds
        cosine = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))
        multiplier = min(1.0, (step + 1) / args.warmup_steps) * cosine
        for group in optimizer.param_groups:
            group["lr"] = args.lr * multiplier
        index = torch.randint(len(samples), (args.batch_size,), device=device, generator=generator)
        batch = samples.batch(index, config.history, config.action_chunk)
        for camera in samples.frames:
            batch["observation"][camera] = augment(batch["observation"][camera], generator)
        model.train()
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss, metrics = model(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.update_parameters(model)
        step += 1
        if step % args.log_every == 0:
            losses.append({"step": step, "seconds": round(time.monotonic() - started, 1),
                           **{k: round(float(v.detach()), 5) for k, v in {"loss": loss, **metrics}.items()}})
            print(json.dumps(losses[-1]), flush=True)
    seconds = time.monotonic() - started
    print(f"{name}: {step} steps x {args.batch_size} in {seconds:.0f} s ({step / seconds:.1f} steps/s)",
          flush=True)

    weights = {key: value.detach().to(torch.float16).cpu().contiguous()
               for key, value in ema.module.state_dict().items()}
    metadata = {"dataset": samples.metadata["dataset"],
                "control_hz": json.loads(samples.metadata["control_hz"]),
                "data": json.loads(samples.metadata["data"]), "step": step,
                "train": {"batch_size": args.batch_size, "lr": args.lr, "ema_decay": args.ema_decay,
                          "seconds": round(seconds),
                          "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                          "augment": True, "script": "benchmarks/vla_gpu_learning.py"},
                "losses": losses}
    save_file(weights, str(Path(args.out) / f"{name}.safetensors"),
              metadata={"config": json.dumps(config.to_dict()), "statistics": samples.metadata["statistics"],
                        "metadata": json.dumps(metadata)})


# --- 3. unpack and diagnose (here) -------------------------------------------------------------------------

def unpack(args: argparse.Namespace) -> None:
    from safetensors import safe_open

    from agent_stack.normalization import DatasetStatistics
    from agent_stack.vla.configuration_vla import VLAConfig
    from agent_stack.vla.modeling_vla import VLAModel
    from agent_stack.vla.policy import save_pretrained

    with safe_open(str(args.file), framework="pt") as file:
        weights = {key: file.get_tensor(key).float() for key in file.keys()}
        header = file.metadata()
    model = VLAModel(VLAConfig.from_dict(json.loads(header["config"])))
    model.load_state_dict(weights)
    args.out.mkdir(parents=True, exist_ok=True)
    save_pretrained(args.out, model, DatasetStatistics.from_json(json.loads(header["statistics"])),
                    json.loads(header["metadata"]))
    print(f"checkpoint: {args.out}")


def diagnose(args: argparse.Namespace) -> None:
    """Open loop: each checkpoint's first predicted action on every exported step against the recorded one,
    per action dim, next to the error of always predicting the mean (normalised units, the checkpoint's
    statistics; held-out data exported with its own are renormalised). Over all steps and over each
    episode's first `--first-steps`, where the arm is still at home and only the image says where to go."""
    from agent_stack.normalization import TARGET_GRIPPER_INDEX, DatasetStatistics
    from agent_stack.vla.policy import VLAPolicy

    samples = Samples.load(args.samples, torch.device("cpu"))
    own = DatasetStatistics.from_json(json.loads(samples.metadata["statistics"]))
    action_space = json.loads(samples.metadata["data"])["action_space"]
    first = (torch.arange(len(samples)) - samples.episode_start) < args.first_steps
    results = {}
    for checkpoint in args.checkpoint:
        policy = VLAPolicy.from_pretrained(checkpoint)
        model, statistics = policy.model, policy.statistics
        if model.config.action_space != action_space:
            raise SystemExit(f"{checkpoint} learns {model.config.action_space} actions; "
                             f"the samples hold {action_space}")
        if action_space == "target":
            label = statistics.target.normalize(own.denormalize_target(samples.action.numpy()),
                                                skip=(TARGET_GRIPPER_INDEX,))
        else:
            label = statistics.normalize_action(own.denormalize_action(samples.action.numpy()))
        state = statistics.state.normalize(own.state.denormalize(samples.state.numpy()))
        renormalised = dataclasses.replace(samples, action=torch.from_numpy(label).float(),
                                           state=torch.from_numpy(state).float())
        predictions = []
        with torch.inference_mode():
            for index in torch.arange(len(samples)).split(256):
                batch = renormalised.batch(index, model.config.history, model.config.action_chunk)
                predictions.append(model.decode_actions(model.outputs(batch)[0])[:, 0])
        prediction, label = torch.cat(predictions), renormalised.action
        row = {}
        for name, mask in (("all steps", torch.ones_like(first)), (f"first {args.first_steps}", first)):
            error = (prediction[mask] - label[mask]).abs().mean(0)
            baseline = (label[mask] - label[mask].mean(0)).abs().mean(0)
            row[name] = {"error": [round(float(v), 4) for v in error],
                         "mean_baseline": [round(float(v), 4) for v in baseline]}
            print(f"{checkpoint} ({name}): error {row[name]['error']}\n"
                  f"    predicting the mean {row[name]['mean_baseline']}")
        results[str(checkpoint)] = row
    if args.json:
        args.json.write_text(json.dumps({"samples": str(args.samples), "action_space": action_space,
                                         "checkpoints": results}, indent=1))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export")
    export_parser.add_argument("--data", required=True)
    export_parser.add_argument("--image-size", type=int, default=96)
    export_parser.add_argument("--jpeg-quality", type=int, default=95)
    export_parser.add_argument("--cameras", default=",".join(CAMERAS), help="comma-separated camera keys")
    export_parser.add_argument("--action-space", default="delta", choices=("delta", "target"),
                               help="the actions the policy learns (VLAConfig.action_space)")
    export_parser.add_argument("--out", type=Path, required=True)
    for command in ("train", "train-one"):
        train_parser = commands.add_parser(command)
        train_parser.add_argument("--samples", type=Path, required=True)
        train_parser.add_argument("--out", type=Path, required=True)
        train_parser.add_argument("--run", action="append", required=True,
                                  help="name:VLAConfig overrides, "
                                       "e.g. 'continuous:action_head=continuous,action_chunk=4'")
        train_parser.add_argument("--seconds", type=float, default=420.0, help="wall-clock budget per run")
        train_parser.add_argument("--max-steps", type=int, default=0, help="stop earlier (0: budget only)")
        train_parser.add_argument("--batch-size", type=int, default=256)
        train_parser.add_argument("--lr", type=float, default=3e-4)
        train_parser.add_argument("--warmup-steps", type=int, default=500)
        train_parser.add_argument("--ema-decay", type=float, default=0.999)
        train_parser.add_argument("--log-every", type=int, default=250)
        train_parser.add_argument("--seed", type=int, default=0)
    unpack_parser = commands.add_parser("unpack")
    unpack_parser.add_argument("--file", type=Path, required=True)
    unpack_parser.add_argument("--out", type=Path, required=True)
    diagnose_parser = commands.add_parser("diagnose")
    diagnose_parser.add_argument("--samples", type=Path, required=True)
    diagnose_parser.add_argument("--checkpoint", type=Path, action="append", required=True)
    diagnose_parser.add_argument("--first-steps", type=int, default=8)
    diagnose_parser.add_argument("--json", type=Path, help="also write the errors here")
    args = parser.parse_args(argv)
    handlers = {"export": export, "train": train, "train-one": train_one, "unpack": unpack,
                "diagnose": diagnose}
    handlers[args.command](args)


if __name__ == "__main__":
    main()
