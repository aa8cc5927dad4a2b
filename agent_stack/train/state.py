"""What a training checkpoint holds beyond the policy, so `--resume` continues exactly.

`training_state.safetensors`: the raw model weights, the optimiser's tensors and every rank's RNG state;
`training_state.json`: step, batches taken from the loader, optimiser hyper-parameters, scheduler state.
No pickle: tensors go to safetensors and everything else to JSON.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from agent_stack.checkpoint import read_json, save_weights, write_json

STATE_TENSORS = "training_state.safetensors"
STATE_JSON = "training_state.json"


def gather_rng_states(world_size: int) -> list[torch.Tensor]:
    """The torch CPU (and CUDA) generator state of every rank, gathered on all ranks."""
    local = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        local = torch.cat([local, torch.cuda.get_rng_state()])
    if world_size == 1:
        return [local]
    # gloo and NCCL both gather tensors; NCCL needs them on the GPU.
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered = [torch.empty_like(local, device=device) for _ in range(world_size)]
    dist.all_gather(gathered, local.to(device))
    return [tensor.cpu() for tensor in gathered]


def gather_parameter_digests(model: torch.nn.Module, world_size: int) -> list[str]:
    """SHA-256 of every rank's parameters, gathered on all ranks: DDP keeps replicas identical, so
    differing digests mean the ranks diverged (and the checkpoint would hold only rank 0's)."""
    digest = hashlib.sha256()
    for parameter in model.parameters():
        digest.update(parameter.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    local = torch.frombuffer(bytearray(digest.digest()), dtype=torch.uint8)
    if world_size == 1:
        return [digest.hexdigest()]
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered = [torch.empty_like(local, device=device) for _ in range(world_size)]
    dist.all_gather(gathered, local.to(device))
    return [bytes(tensor.cpu().tolist()).hex() for tensor in gathered]


def restore_rng_state(state: torch.Tensor) -> None:
    cpu_size = torch.get_rng_state().numel()
    torch.set_rng_state(state[:cpu_size].clone())
    if state.numel() > cpu_size:
        torch.cuda.set_rng_state(state[cpu_size:].clone())


def optimizer_state(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimiser's state split for safetensors + JSON: (tensors named `prefix.<param>.<key>`, the rest)."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict] = {}
    for index, per_param in state["state"].items():
        for name, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{name}"] = value
            else:
                scalars.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def load_optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict,
                         prefix: str) -> None:
    """Inverse of `optimizer_state`."""
    per_param: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith(prefix + "."):
            index, key = name[len(prefix) + 1:].split(".", 1)
            per_param.setdefault(int(index), {})[key] = value
    for index, values in meta["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": per_param, "param_groups": meta["param_groups"]})


def save_training_state(directory: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, batches_taken: int,
                        rng_states: list[torch.Tensor], parameter_digests: list[str]) -> None:
    tensors = {f"model.{name}": value for name, value in model.state_dict().items()}
    optimizer_tensors, optimizer_json = optimizer_state(optimizer, "optimizer")
    tensors.update(optimizer_tensors)
    for rank, state in enumerate(rng_states):
        tensors[f"rng.{rank}"] = state
    save_weights(tensors, directory / STATE_TENSORS)
    write_json(directory / STATE_JSON, {
        "step": step,
        "batches_taken": batches_taken,
        "world_size": len(rng_states),
        "parameter_digests": parameter_digests,
        "optimizer": optimizer_json,
        "scheduler": scheduler.state_dict(),
    })


def load_training_state(directory: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                        scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int, world_size: int) -> dict:
    """Restore everything in place; returns the JSON part (step, batches_taken)."""
    meta = read_json(directory / STATE_JSON)
    if meta.get("world_size") != world_size:
        raise ValueError(f"checkpoint {directory} was written by {meta.get('world_size')} processes; resuming "
                         f"exactly needs the same number, got {world_size}")
    tensors = load_file(str(directory / STATE_TENSORS))
    model.load_state_dict({name[len("model."):]: value for name, value in tensors.items()
                           if name.startswith("model.")})
    load_optimizer_state(optimizer, tensors, meta["optimizer"], "optimizer")
    scheduler.load_state_dict(meta["scheduler"])
    restore_rng_state(tensors[f"rng.{rank}"])
    return meta
