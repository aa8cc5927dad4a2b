"""Timing glue for the official TD-MPC2 (github.com/nicklashansen/tdmpc2), run with the reference venv's python.

Not part of agent_stack and never imported by it: `benchmarks/tdmpc2_speed.py` starts this file as a
subprocess of a throwaway venv that holds the official code's dependencies (torch, tensordict, torchrl,
hydra-core, omegaconf, termcolor). The official code itself stays outside this repository; its `tdmpc2/`
folder (the one with `tdmpc2.py`, `config.yaml` and `common/`) is given with --tdmpc2-dir and imported from
there. This file holds no algorithm code: it builds the official config, agent and replay buffer the way
the official `train.py` / `OnlineTrainer` do, fills the buffer with random episodes and times the official
`TDMPC2.update(buffer)` (which samples its own batch) and `TDMPC2.act(obs, t0, eval_mode=False)` (one MPPI
planning step).

The official code puts everything on `cuda:0`; on a CPU-only machine its copy must be patched first (the
benchmark's docstring has the sed lines). This script refuses to run on an unpatched copy.

Two modes:

* one-shot (default): warm up, time --updates updates and --plans planning steps, print one JSON object
  with p50/mean/min per update and per plan and the parameter counts;
* --serve: print one JSON line describing the built agent, then answer each stdin line
  {"op": "update"|"plan"|"sample", "n": k} with {"op": ..., "times": [seconds, ...]}, until end of input.
  `benchmarks/tdmpc2_speed.py` uses this to interleave blocks of the two implementations.

The timing loop, the summary, the stdout redirection and the --serve loop are `harness.py`'s in this folder,
shared with `sheeprl_dreamer_timing.py`.

Everything the official code prints goes to stderr; stdout carries only this protocol's JSON.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
from pathlib import Path

from harness import protocol_stdout, serve, summary, time_calls

# As the official train.py sets them before importing torch (they change how tensordict behaves).
os.environ.setdefault("LAZY_LEGACY_OP", "0")
os.environ.setdefault("TORCHDYNAMO_INLINE_INBUILT_NN_MODULES", "1")

PATCHED_FILES = ("tdmpc2.py", "common/scale.py", "common/buffer.py")
"""Files of the official code that hard-code CUDA and must be patched to CPU in the throwaway copy."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tdmpc2-dir", required=True, type=Path,
                   help="the official repository's tdmpc2/ folder (or the repository root holding it)")
    p.add_argument("--model-size", type=int, default=5, help="official model size: 1, 5, 19, 48 or 317")
    p.add_argument("--obs-dim", type=int, default=24)
    p.add_argument("--action-dim", type=int, default=6)
    p.add_argument("--episode-length", type=int, default=500, help="agent steps per episode (dm_control: 500)")
    p.add_argument("--episodes", type=int, default=10, help="random episodes put in the buffer")
    p.add_argument("--updates", type=int, default=20)
    p.add_argument("--plans", type=int, default=50)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="the official compile=true (torch.compile)")
    p.add_argument("--serve", action="store_true", help="answer timing requests on stdin (see module doc)")
    return p.parse_args(argv)


def official_dir(path: Path) -> Path:
    for candidate in (path, path / "tdmpc2"):
        if (candidate / "tdmpc2.py").is_file() and (candidate / "config.yaml").is_file():
            return candidate.resolve()
    raise SystemExit(f"no official tdmpc2/ folder (tdmpc2.py + config.yaml) at {path}")


def check_cpu_patch(root: Path) -> None:
    for name in PATCHED_FILES:
        text = (root / name).read_text()
        if "cuda:0" in text or "torch.cuda.mem_get_info" in text:
            raise SystemExit(f"{root / name} still hard-codes CUDA: patch the throwaway copy to CPU first "
                             "(see benchmarks/tdmpc2_speed.py)")


def build(args: argparse.Namespace):
    """The official config, agent and buffer, as train.py + make_env + OnlineTrainer build them."""
    import hydra.utils
    from omegaconf import OmegaConf

    # parse_cfg only uses the Hydra run's original cwd to name a log folder; outside a Hydra run, use ours.
    hydra.utils.get_original_cwd = os.getcwd
    from common.buffer import Buffer
    from common.parser import parse_cfg
    from common.seed import set_seed
    from tdmpc2 import TDMPC2

    cfg = OmegaConf.load(args.tdmpc2_dir / "config.yaml")
    del cfg["defaults"]  # Hydra's launcher override, meaningless outside a Hydra run
    cfg.task, cfg.obs, cfg.model_size, cfg.seed = "walker-walk", "state", args.model_size, args.seed
    cfg.compile, cfg.enable_wandb, cfg.save_video = args.compile, False, False
    cfg = parse_cfg(cfg)
    # What make_env sets from the environment (a dm_control walker by default).
    cfg.obs_shape = {"state": (args.obs_dim,)}
    cfg.action_dim = args.action_dim
    cfg.episode_length = args.episode_length
    cfg.seed_steps = max(1000, 5 * cfg.episode_length)
    set_seed(args.seed)
    agent = TDMPC2(cfg)
    buffer = Buffer(cfg)
    fill(buffer, args)
    return cfg, agent, buffer


def fill(buffer, args: argparse.Namespace) -> None:
    """Random episodes in OnlineTrainer's layout: L + 1 steps, the first with NaN action and reward."""
    import torch
    from tensordict.tensordict import TensorDict

    g = torch.Generator().manual_seed(args.seed)
    steps = args.episode_length + 1
    for _ in range(args.episodes):
        action = torch.rand(steps, args.action_dim, generator=g) * 2 - 1
        reward = torch.rand(steps, generator=g)
        action[0], reward[0] = float("nan"), float("nan")
        buffer.add(TensorDict(obs=torch.randn(steps, args.obs_dim, generator=g), action=action, reward=reward,
                              terminated=torch.zeros(steps), batch_size=(steps,)))


class Timer:
    def __init__(self, args, agent, buffer) -> None:
        import torch

        self.args, self.agent, self.buffer = args, agent, buffer
        g = torch.Generator().manual_seed(args.seed + 1)
        self.observations = torch.randn(64, args.obs_dim, generator=g)
        self.step = 0

    def update(self) -> None:
        self.agent.update(self.buffer)  # samples its own batch, as in OnlineTrainer

    def plan(self) -> None:
        t = self.step % self.args.episode_length
        obs = self.observations[self.step % len(self.observations)]
        self.agent.act(obs, t0=t == 0, eval_mode=False)
        self.step += 1

    def sample(self) -> None:
        self.buffer.sample()

    def times(self, op: str, n: int) -> list[float]:
        return time_calls({"update": self.update, "plan": self.plan, "sample": self.sample}[op], n)


def describe(cfg, agent) -> dict:
    import torch

    model = agent.model
    target = sum(t.numel() for t in model._target_Qs_params.flatten_keys().values())
    modules = {"encoder": model._encoder, "dynamics": model._dynamics, "reward": model._reward,
               "pi": model._pi, "Qs": model._Qs}
    versions = {"torch": torch.__version__}
    for name in ("tensordict", "torchrl", "hydra-core", "omegaconf", "numpy"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "params": model.total_params,  # the official count: learnable parameters of the world model
        "params_target_Qs": target,   # the target Q ensemble, a TensorDict of plain tensors, not counted above
        "params_by_module": {k: sum(p.numel() for p in m.parameters()) for k, m in modules.items()},
        "config": {k: getattr(cfg, k) for k in (
            "model_size", "batch_size", "horizon", "iterations", "num_samples", "num_elites", "num_pi_trajs",
            "enc_dim", "mlp_dim", "latent_dim", "num_enc_layers", "num_q", "num_bins", "compile",
            "episode_length", "action_dim")},
        "torch_threads": torch.get_num_threads(),
        "versions": versions,
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    args.tdmpc2_dir = official_dir(args.tdmpc2_dir)
    check_cpu_patch(args.tdmpc2_dir)
    protocol = protocol_stdout()  # whatever else is printed (the official code prints) goes to stderr
    sys.path.insert(0, str(args.tdmpc2_dir))
    import warnings

    warnings.filterwarnings("ignore")  # as the official train.py
    import torch

    torch.set_num_threads(args.threads)
    cfg, agent, buffer = build(args)
    timer = Timer(args, agent, buffer)
    info = describe(cfg, agent)
    if args.serve:
        serve(protocol, info, timer.times)
        return
    timer.times("update", args.warmup)
    timer.times("plan", args.warmup)
    info["update"] = summary(timer.times("update", args.updates))
    info["plan"] = summary(timer.times("plan", args.plans))
    protocol.write(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
