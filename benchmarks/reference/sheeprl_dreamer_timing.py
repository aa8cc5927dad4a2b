"""Timing glue for sheeprl's DreamerV3 (PyPI `sheeprl`), run with the throwaway sheeprl venv's python.

Not part of agent_stack and never imported by it: `benchmarks/dreamer_speed.py` starts this file as a
subprocess of a venv outside the repository that holds `sheeprl` and its dependencies (torch, lightning,
hydra-core, gymnasium, ...). This file holds no algorithm code. It composes sheeprl's own Hydra config
(`exp=dreamer_v3 algo=dreamer_v3_<size>`) for a vector-observation task on the CPU, builds the agent with
`sheeprl.algos.dreamer_v3.agent.build_agent`, the optimizers and the return normaliser (`Moments`) the way
`sheeprl.algos.dreamer_v3.dreamer_v3.main` does, fills sheeprl's own replay buffer with random episodes and
times one training step the way `main` runs it: the target-critic EMA update followed by
`sheeprl.algos.dreamer_v3.dreamer_v3.train(...)` (world model, then actor and critic in imagination) on a
batch sampled beforehand with sheeprl's `sample_batches`. Batch sampling is timed separately.

What is changed from sheeprl's defaults, all through its config:

* `algo.cnn_keys.{encoder,decoder}=[]`, `algo.mlp_keys.{encoder,decoder}=[state]`: a vector observation (like the dm_control
  cartpole's 5 numbers; sheeprl's dmc experiments use pixels by default);
* `fabric.accelerator=cpu`, `fabric.precision=32-true` (its default, made explicit), one device;
* `metric.log_level=0`: no metric aggregator and no timers (the aggregator would also compute the
  posterior and prior entropies at every step, which `main` only does for logging);
* `float32_matmul_precision` is set to --matmul-precision (sheeprl's default is "high"; the benchmark
  uses the same value on both sides, "highest" by default, PyTorch's and ours);
* `algo.compile.enabled` stays False (sheeprl's default).

Two modes:

* one-shot (default): warm up, time --steps train steps, print one JSON object with p50/mean/min per
  train step and per batch sampling and the parameter counts;
* --serve: print one JSON line describing the built agent, then answer each stdin line
  {"op": "update"|"sample", "n": k} with {"op": ..., "times": [seconds, ...]}, until end of input.
  `benchmarks/dreamer_speed.py` uses this to interleave blocks of the two implementations.

The timing loop, the summary, the stdout redirection and the --serve loop are `harness.py`'s in this folder,
shared with `tdmpc2_official_timing.py`.

Everything sheeprl prints goes to stderr; stdout carries only this protocol's JSON.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform

from harness import protocol_stdout, serve, summary, time_calls


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="XS", choices=("XS", "S", "M", "L", "XL"), help="sheeprl's algo=dreamer_v3_<size>")
    p.add_argument("--obs-dim", type=int, default=5)
    p.add_argument("--action-dim", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--sequence-length", type=int, default=64)
    p.add_argument("--episode-length", type=int, default=500)
    p.add_argument("--episodes", type=int, default=10, help="random episodes put in the buffer")
    p.add_argument("--steps", type=int, default=5, help="timed train steps (one-shot mode)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--matmul-precision", default="highest", choices=("highest", "high", "medium"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--serve", action="store_true", help="answer timing requests on stdin (see module doc)")
    return p.parse_args(argv)


def compose_config(args: argparse.Namespace):
    """sheeprl's config as its CLI builds it (`sheeprl.cli.run`): composed by Hydra, resolved to a dotdict."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf
    from sheeprl.utils.utils import dotdict

    overrides = [
        "exp=dreamer_v3", f"algo=dreamer_v3_{args.size}", "env=dmc",
        "env.wrapper.domain_name=cartpole", "env.wrapper.task_name=swingup", "env.num_envs=1",
        "algo.cnn_keys.encoder=[]", "algo.cnn_keys.decoder=[]", "algo.mlp_keys.encoder=[state]",
        "algo.mlp_keys.decoder=[state]",
        f"algo.per_rank_batch_size={args.batch_size}", f"algo.per_rank_sequence_length={args.sequence_length}",
        "fabric.accelerator=cpu", "fabric.devices=1", "fabric.precision=32-true", "metric.log_level=0",
        "buffer.memmap=False", f"num_threads={args.threads}", f"float32_matmul_precision={args.matmul_precision}",
        f"seed={args.seed}",
    ]
    with initialize_config_module(config_module="sheeprl.configs", version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    return dotdict(OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)), overrides


class Reference:
    """sheeprl's agent, optimizers, Moments and replay buffer, built as `dreamer_v3.main` builds them."""

    def __init__(self, args: argparse.Namespace) -> None:
        import gymnasium as gym
        import hydra
        import numpy as np
        import torch
        from sheeprl.algos.dreamer_v2.utils import sample_batches
        from sheeprl.algos.dreamer_v3 import dreamer_v3
        from sheeprl.algos.dreamer_v3.agent import build_agent
        from sheeprl.algos.dreamer_v3.utils import Moments
        from sheeprl.data.buffers import EnvIndependentReplayBuffer, SequentialReplayBuffer
        from sheeprl.utils.metric import MetricAggregator
        from sheeprl.utils.timer import timer
        from torch.distributions import Distribution

        self.args, self.torch = args, torch
        cfg, self.overrides = compose_config(args)
        self.cfg = cfg
        # What sheeprl.cli.run_algorithm does before launching the algorithm.
        os.environ["OMP_NUM_THREADS"] = str(cfg.num_threads)
        torch.set_float32_matmul_precision(cfg.float32_matmul_precision)
        Distribution.set_default_validate_args(cfg.distribution.validate_args)
        timer.disabled = True  # metric.log_level == 0
        MetricAggregator.disabled = True
        self.fabric = hydra.utils.instantiate(cfg.fabric, strategy="auto", _convert_="all")
        self.fabric.seed_everything(cfg.seed)
        torch.set_num_threads(args.threads)

        # The spaces sheeprl's DMC wrapper gives for a vector observation and a continuous action.
        obs_space = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (args.obs_dim,), np.float32)})
        self.actions_dim = (args.action_dim,)
        self.is_continuous = True
        self.world_model, self.actor, self.critic, self.target_critic, _player = build_agent(
            self.fabric, self.actions_dim, self.is_continuous, cfg, obs_space)
        world_opt = hydra.utils.instantiate(cfg.algo.world_model.optimizer, params=self.world_model.parameters(),
                                            _convert_="all")
        actor_opt = hydra.utils.instantiate(cfg.algo.actor.optimizer, params=self.actor.parameters(), _convert_="all")
        critic_opt = hydra.utils.instantiate(cfg.algo.critic.optimizer, params=self.critic.parameters(),
                                             _convert_="all")
        self.optimizers = self.fabric.setup_optimizers(world_opt, actor_opt, critic_opt)
        m = cfg.algo.actor.moments
        self.moments = Moments(m.decay, m.max, m.percentile.low, m.percentile.high)
        self.train_fn = dreamer_v3.train
        self.sample_batches = sample_batches

        self.rb = EnvIndependentReplayBuffer(args.episodes * (args.episode_length + 1), n_envs=1, memmap=False,
                                             buffer_cls=SequentialReplayBuffer, seed=cfg.seed)
        self.fill(np.random.default_rng(args.seed))
        self.gradient_steps = 0

    def fill(self, rng) -> None:
        """Random episodes in `main`'s layout: (T, n_envs, ...) arrays, the first step of each with is_first."""
        import numpy as np

        a = self.args
        steps = a.episode_length + 1
        for _ in range(a.episodes):
            is_first = np.zeros((steps, 1, 1), np.float32)
            is_first[0] = 1
            terminated = np.zeros((steps, 1, 1), np.float32)
            self.rb.add({
                "state": rng.standard_normal((steps, 1, a.obs_dim)).astype(np.float32),
                "actions": rng.uniform(-1, 1, (steps, 1, a.action_dim)).astype(np.float32),
                "rewards": rng.uniform(0, 1, (steps, 1, 1)).astype(np.float32),
                "terminated": terminated, "truncated": terminated.copy(), "is_first": is_first,
            })

    def sample(self) -> dict:
        return next(iter(self.sample_batches(self.fabric, self.cfg, self.rb, 1)))

    def update(self, batch: dict) -> None:
        """One gradient step of `main`'s training loop: the target critic's EMA, then `train`."""
        cfg = self.cfg
        if self.gradient_steps % cfg.algo.critic.per_rank_target_network_update_freq == 0:
            tau = 1 if self.gradient_steps == 0 else cfg.algo.critic.tau
            for cp, tcp in zip(self.critic.module.parameters(), self.target_critic.parameters()):
                tcp.data.copy_(tau * cp.data + (1 - tau) * tcp.data)
        world_opt, actor_opt, critic_opt = self.optimizers
        self.train_fn(self.fabric, self.world_model, self.actor, self.critic, self.target_critic, world_opt,
                      actor_opt, critic_opt, batch, None, cfg, self.is_continuous, self.actions_dim, self.moments)
        self.gradient_steps += 1

    def times(self, op: str, n: int) -> list[float]:
        if op == "update":
            return time_calls(self.update, n, prepare=self.sample)  # sampled outside the timed region, as ours
        if op == "sample":
            return time_calls(self.sample, n)
        raise ValueError(f"unknown op {op!r}")

    def describe(self) -> dict:
        torch = self.torch
        wm = self.world_model

        def count(module) -> int:
            return sum(p.numel() for p in module.parameters())

        rssm = wm.rssm
        rssm_total = count(rssm)
        by_module = {
            "encoder": count(wm.encoder), "rssm": rssm_total, "decoder": count(wm.observation_model),
            "reward": count(wm.reward_model), "continue": count(wm.continue_model),
            "actor": count(self.actor), "critic": count(self.critic),
        }
        versions = {"torch": torch.__version__}
        for name in ("sheeprl", "lightning", "hydra-core", "omegaconf", "gymnasium", "numpy", "torchmetrics"):
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        a = self.cfg.algo
        learnable = count(wm) + count(self.actor) + count(self.critic)
        return {
            "params": learnable,  # world model + actor + critic
            "params_target_critic": count(self.target_critic),
            "params_all": learnable + count(self.target_critic),
            "params_world_model": count(wm),
            "params_by_module": by_module,
            "params_rssm_parts": {"recurrent_model": count(rssm.recurrent_model),
                                  "representation_model": count(rssm.representation_model),
                                  "transition_model": count(rssm.transition_model),
                                  "initial_state": rssm_total - count(rssm.recurrent_model)
                                  - count(rssm.representation_model) - count(rssm.transition_model)},
            "config": {
                "algo": f"dreamer_v3_{self.args.size}", "dense_units": a.dense_units, "mlp_layers": a.mlp_layers,
                "recurrent_state_size": a.world_model.recurrent_model.recurrent_state_size,
                "stochastic_size": a.world_model.stochastic_size, "discrete_size": a.world_model.discrete_size,
                "reward_bins": a.world_model.reward_model.bins, "critic_bins": a.critic.bins, "horizon": a.horizon,
                "batch_size": a.per_rank_batch_size, "sequence_length": a.per_rank_sequence_length,
                "decoupled_rssm": a.world_model.decoupled_rssm, "compile": a.compile.enabled,
                "optimizer_fused": a.world_model.optimizer.get("fused"), "precision": self.cfg.fabric.precision,
                "float32_matmul_precision": torch.get_float32_matmul_precision(),
                "objective_mix": a.actor.objective_mix, "obs_dim": self.args.obs_dim,
                "action_dim": self.args.action_dim,
            },
            "overrides": self.overrides,
            "train_function": "sheeprl.algos.dreamer_v3.dreamer_v3.train (after main's target-critic EMA update)",
            "torch_threads": torch.get_num_threads(),
            "versions": versions,
            "python": platform.python_version(),
        }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    protocol = protocol_stdout()  # whatever else is printed (sheeprl, lightning) goes to stderr
    import warnings

    warnings.filterwarnings("ignore")
    ref = Reference(args)
    info = ref.describe()
    if args.serve:
        serve(protocol, info, ref.times)
        return
    ref.times("update", args.warmup)
    info["update"] = summary(ref.times("update", args.steps))
    info["sample"] = summary(ref.times("sample", max(args.steps, 10)))
    protocol.write(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
