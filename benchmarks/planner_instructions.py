"""The planner on held-out instructions: plan validity, task success, LLM calls and latency per strategy.

    .venv/bin/python benchmarks/planner_instructions.py --out benchmarks/results/planner_instructions.json
    .venv/bin/python benchmarks/planner_instructions.py --backend openai:http://localhost:8000/v1#llama3

Instructions come from the planner-LM corpus generator's held-out split: phrasings and connectives that
never appear in the embedded LM's training corpus, on random symbolic scenes (stacks, pads, bin, a held
block; replanning prompts with execution feedback). Per strategy and instruction:
- valid: the plan passes the symbolic verifier (every step's preconditions hold) and the safety rules;
- success: the plan, executed symbolically from the scene, leaves every block where the reference plan
  leaves it (the instruction's goal is reached, whatever the route);
- calls, generated tokens and wall-clock latency of planning.
`--sim-episodes N` also runs N instructions end to end in MuJoCo, closed loop: the planner node's
`Executive` hands out the subgoals, the scripted expert carries each out on the sim's own layout, a failed
subgoal is re-planned from the scene it left (at most `--max-replans` times). Success: the executive
reports the instruction done and the sim's final block locations match the reference plan's.
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from agent_stack.cognition.executive import EXECUTING, PLANNING, SUCCEEDED, Executive, ExecutiveConfig
from agent_stack.cognition.llm.factory import make_llm
from agent_stack.cognition.planner import Planner, PlannerConfig
from agent_stack.cognition.planner_lm.corpus import GENERATORS, make_corpus, run
from agent_stack.cognition.scene import SymbolicScene, scene_from_state
from agent_stack.cognition.verifier import verify_plan

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "planner_instructions.json"
STRATEGIES = {
    "chain_of_thought": {},
    "self_consistency": {"samples": 5},
    "tree_of_thought": {"beam": 2, "branching": 3},
    "graph_of_thought": {"beam": 2, "branching": 3},
    "value_guided": {"branching": 3},
}


def reached_goal(scene: SymbolicScene, steps, reference) -> bool:
    """Same block locations after the plan as after the reference plan."""
    verdict = verify_plan(steps, scene)
    goal = run(scene, list(reference))
    return verdict.valid and goal is not None and verdict.final_state.blocks == goal.blocks


def symbolic(planner: Planner, examples) -> dict:
    rows = []
    for example in examples:
        result = planner.plan(example.instruction, example.scene, example.feedback)
        steps = result.plan.subgoals if result.plan is not None else ()
        rows.append({"kind": example.kind, "instruction": example.instruction, "feedback": example.feedback,
                     "valid": result.valid, "success": bool(steps) and reached_goal(example.scene, steps,
                                                                                   example.plan.subgoals),
                     "exact": result.plan == example.plan, "calls": result.calls, "tokens": result.tokens,
                     "seconds": result.seconds, "plan": result.plan.calls() if result.plan else None,
                     "reference": example.plan.calls()})
    return summarise(rows)


def summarise(rows: list[dict]) -> dict:
    seconds = np.array([r["seconds"] for r in rows])
    kinds = sorted({r["kind"] for r in rows})
    return {"n": len(rows),
            "valid": float(np.mean([r["valid"] for r in rows])),
            "success": float(np.mean([r["success"] for r in rows])),
            "exact": float(np.mean([r.get("exact", False) for r in rows])),
            "success_by_kind": {k: float(np.mean([r["success"] for r in rows if r["kind"] == k]))
                                for k in kinds},
            "calls_mean": float(np.mean([r["calls"] for r in rows])),
            "tokens_mean": float(np.mean([r["tokens"] for r in rows])),
            "latency_p50_s": float(np.percentile(seconds, 50)),
            "latency_p95_s": float(np.percentile(seconds, 95)),
            "rows": rows}


def sim_episodes(backend: str, strategy: str, episodes: list[int], seed: int, max_steps: int,
                 max_replans: int) -> list[dict]:
    """Held-out instructions on the sim's own layouts, closed loop: the planner node's `Executive` hands
    out one subgoal at a time, the scripted expert carries it out, and a failed subgoal is re-planned from
    the scene it left, with the Inner Monologue feedback (as `planner_node` does on the live graph).
    Episode k is seeded by (seed, k) alone, so any split of the episodes over processes gives the same rows."""
    from sim.experts import run_expert
    from sim.state import scene_state_to_dict
    from sim.tabletop_env import TabletopConfig, TabletopEnv
    from sim.tasks import task_from_instruction

    torch.set_num_threads(1)
    planner = Planner(PlannerConfig(backend=backend, strategy=strategy, seed=seed, **STRATEGIES[strategy]))
    env = TabletopEnv(TabletopConfig(render=False))
    rows = []

    def scene_now() -> SymbolicScene:
        return scene_from_state(scene_state_to_dict(env.scene_state()))

    def observed() -> SymbolicScene | None:
        """The scene as the planner node reads it during an episode; None where it refuses the state (it
        then keeps the previous one), e.g. two blocks in the hand when a stacked block comes up with the
        grasped one."""
        try:
            return scene_now()
        except ValueError:
            return None

    try:
        for episode in episodes:
            rng = random.Random(f"sim:{seed}:{episode}")
            env.reset(seed=seed + episode)
            scene = scene_now()  # a freshly reset layout always reads
            draft = None
            while draft is None:
                kind = rng.choice(("single", "compound", "compound", "goal"))
                draft = GENERATORS[kind](rng, scene, "heldout")
            instruction, reference = draft[0], draft[1]
            executive = Executive(planner, ExecutiveConfig(max_replans=max_replans))
            executive.start(instruction, env.sim_time, scene)
            first_plan, seconds, tokens = None, [], []
            while executive.status in (PLANNING, EXECUTING):
                request = executive.take_request()
                if request is not None:
                    result = executive.run_request(request)
                    seconds.append(result.seconds)
                    tokens.append(getattr(result, "tokens", 0))
                    if first_plan is None:
                        first_plan = result
                    executive.on_plan(request, result, env.sim_time)
                    continue
                subgoal = executive.subgoal
                try:
                    outcome = run_expert(env, task_from_instruction(subgoal.instruction), max_steps)
                    reason = "timeout"
                except RuntimeError as error:  # the expert cannot act here (e.g. no free spot)
                    outcome, reason = {"success": False}, str(error)
                now = observed()
                if now is not None:
                    executive.on_scene(now, env.sim_time)
                if outcome["success"]:
                    executive.on_task_status({"instruction": subgoal.instruction, "success": True},
                                             env.sim_time)
                else:
                    executive.on_subgoal_status({"subgoal": subgoal.instruction, "status": "failed",
                                                 "reason": reason}, env.sim_time)
            goal, final = run(scene, list(reference)), observed()
            success = bool(executive.status == SUCCEEDED and goal is not None and final is not None
                           and final.blocks == goal.blocks)
            rows.append({"episode": episode, "kind": kind, "instruction": instruction, "valid": first_plan.valid,
                         "success": success, "status": executive.status, "replans": executive.replans,
                         "calls": executive.calls, "tokens": sum(tokens),
                         "seconds": sum(seconds), "sim_seconds": round(env.sim_time, 1),
                         "plan": first_plan.plan.calls() if first_plan.plan else None,
                         "executed": "; ".join(s.call() for s in executive.done),
                         "reference": "; ".join(s.call() for s in reference)})
            print(f"sim episode {episode}: {executive.status}, goal {'reached' if success else 'missed'}"
                  f" ({executive.replans} replans)", flush=True)
    finally:
        env.close()
    return rows


def sim_summary(rows: list[dict]) -> dict:
    summary = summarise(sorted(rows, key=lambda r: r["episode"]))
    summary["replans_mean"] = float(np.mean([r["replans"] for r in rows]))
    summary["first_plan_success"] = float(np.mean([r["success"] and r["replans"] == 0 for r in rows]))
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, from {list(STRATEGIES)}")
    parser.add_argument("--instructions", type=int, default=200)
    parser.add_argument("--sim-episodes", type=int, default=0)
    parser.add_argument("--sim-strategy", default="self_consistency")
    parser.add_argument("--max-steps", type=int, default=150, help="sim steps per subgoal (10 Hz)")
    parser.add_argument("--max-replans", type=int, default=3, help="re-plans per sim instruction")
    parser.add_argument("--workers", type=int, default=1, help="processes sharing the sim episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    strategies = [s for s in args.strategies.split(",") if s]
    llm = make_llm(args.backend) if strategies else None  # the sim workers load their own
    examples = make_corpus("heldout", args.instructions, args.seed)
    results = {}
    summary = {"backend": args.backend, "instructions": args.instructions, "seed": args.seed,
               "machine": platform.platform(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in strategies:
        planner = Planner(PlannerConfig(backend=args.backend, strategy=name, seed=args.seed,
                                        **STRATEGIES[name]), llm=llm)
        started = time.perf_counter()
        results[name] = symbolic(planner, examples)
        results[name]["wall_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(summary, indent=1))  # each strategy's results as soon as they exist
        print(f"{name}: valid {results[name]['valid']:.3f} success {results[name]['success']:.3f} "
              f"in {results[name]['wall_s']} s", flush=True)
    if args.sim_episodes:
        shards = [list(range(args.sim_episodes))[i::args.workers] for i in range(args.workers)]
        job = functools.partial(sim_episodes, args.backend, args.sim_strategy, seed=args.seed,
                                max_steps=args.max_steps, max_replans=args.max_replans)
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
            rows = [row for shard in pool.map(job, shards) for row in shard]
        results[f"sim:{args.sim_strategy}"] = sim_summary(rows)
        results[f"sim:{args.sim_strategy}"]["wall_s"] = round(time.perf_counter() - started, 1)

    table = Table(title=f"planner on {args.instructions} held-out instructions ({args.backend})")
    for column in ("strategy", "n", "valid %", "success %", "exact %", "calls", "tokens", "p50 s", "p95 s"):
        table.add_column(column, justify="right" if column != "strategy" else "left")
    for name, r in results.items():
        table.add_row(name, str(r["n"]), f"{100 * r['valid']:.1f}", f"{100 * r['success']:.1f}",
                      f"{100 * r['exact']:.1f}", f"{r['calls_mean']:.1f}", f"{r['tokens_mean']:.0f}",
                      f"{r['latency_p50_s']:.2f}", f"{r['latency_p95_s']:.2f}")
    Console().print(table)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
