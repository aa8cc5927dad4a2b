"""An online agent trained on tabletop:reach as the stack's controller: reaching targets in joint space.

    .venv/bin/python benchmarks/reach_controller.py --checkpoint outputs/reach_tdmpc2 --episodes 50 --threads 1

Each episode (`sim.reach.ReachEnv`, held-out evaluation seeds) draws a target in the reach box and a start
near home; the controller acts at 50 Hz for 2 s on the joint position commands. Rows: the trained agent
(deterministic, `act(eval=True)`, the way `controller_node` runs it; for TD-MPC2 also its policy prior
without MPPI, the cheap way to act); the same agent with its weights
re-initialised (what training must beat); the scripted damped-least-squares step
(`sim.reach.scripted_reach_action`, what an IK-based tracker does); zero actions. Reports success (within
2 cm at the end of the episode), the final and mean distance, the return, and the agent's act latency
p50/p99 (a 50 Hz controller has 20 ms). Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from agent_stack.checkpoint import resolve_checkpoint
from agent_stack.control.agent import agent_class, load_agent
from agent_stack.train.online import EVAL_SEED_OFFSET, episode_seed
from sim.reach import ReachEnv, scripted_reach_action

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "reach_controller.json"


def run(name: str, act, episodes: int, seed: int) -> dict:
    env = ReachEnv()
    finals, means, returns, successes, latencies = [], [], [], [], []
    for episode in range(episodes):
        observation, _ = env.reset(seed=episode_seed(seed + EVAL_SEED_OFFSET, episode))
        reset = getattr(act, "reset", None)
        if reset:
            reset()
        total, distances, done, info = 0.0, [], False, {}
        while not done:
            started = time.perf_counter()
            action = act(env, observation)
            latencies.append(time.perf_counter() - started)
            observation, reward, _, done, info = env.step(action)
            total += reward
            distances.append(info["distance"])
        finals.append(info["distance"])
        means.append(float(np.mean(distances)))
        returns.append(total)
        successes.append(float(info["success"]))
    env.close()
    return {"controller": name, "episodes": episodes, "success_rate": float(np.mean(successes)),
            "final_distance_mean_m": float(np.mean(finals)), "final_distance_median_m": float(np.median(finals)),
            "distance_mean_m": float(np.mean(means)), "return_mean": float(np.mean(returns)),
            "act_ms_p50": float(np.percentile(latencies, 50) * 1e3),
            "act_ms_p99": float(np.percentile(latencies, 99) * 1e3)}


class AgentController:
    def __init__(self, agent) -> None:
        self.agent = agent

    def reset(self) -> None:
        self.agent.reset()

    def __call__(self, env: ReachEnv, observation: np.ndarray) -> np.ndarray:
        return self.agent.act(observation, eval=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="agent checkpoint or run directory")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = resolve_checkpoint(args.checkpoint)
    agent = load_agent(checkpoint)
    torch.manual_seed(args.seed)
    untrained = agent_class(agent.algo)(agent.config, agent.observation_shape, agent.action_dim)
    rows = [run(f"{agent.algo} (trained)", AgentController(agent), args.episodes, args.seed)]
    if getattr(agent.config, "mpc", False):
        # TD-MPC2's policy prior alone: what fits a 50 Hz budget on a CPU where MPPI does not.
        prior = load_agent(checkpoint)
        prior.config.mpc = False
        rows.append(run(f"{agent.algo} (trained, policy prior only)", AgentController(prior), args.episodes,
                        args.seed))
    rows += [
        run(f"{agent.algo} (initial weights)", AgentController(untrained), args.episodes, args.seed),
        run("scripted DLS step", lambda env, observation: scripted_reach_action(env), args.episodes, args.seed),
        run("zero actions", lambda env, observation: np.zeros(env.action_dim, np.float32), args.episodes, args.seed),
    ]
    table = Table(title=f"Reaching with {checkpoint} ({args.episodes} held-out episodes, 2 cm, 2 s at 50 Hz)")
    for column in ("controller", "success", "final dist. mean / median (cm)", "mean dist. (cm)", "return",
                   "act ms p50 / p99"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(row["controller"], f"{row['success_rate']:.0%}",
                      f"{100 * row['final_distance_mean_m']:.1f} / {100 * row['final_distance_median_m']:.1f}",
                      f"{100 * row['distance_mean_m']:.1f}", f"{row['return_mean']:.1f}",
                      f"{row['act_ms_p50']:.2f} / {row['act_ms_p99']:.2f}")
    Console().print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"checkpoint": str(checkpoint), "algo": agent.algo, "config": agent.config.to_dict(),
                                    "threads": torch.get_num_threads(), "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
