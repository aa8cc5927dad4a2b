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
`--sim-episodes N` also runs N instructions end to end in MuJoCo: the planner's subgoals executed one by
one by the scripted expert from the sim's own layout, success when the sim's final scene matches the
reference's (block locations), and every subgoal's own success predicate held.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

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


def sim_episodes(planner: Planner, n: int, seed: int, max_steps: int) -> dict:
    """Held-out instructions on the sim's own layouts, executed subgoal by subgoal by the expert."""
    from sim.experts import run_expert
    from sim.state import scene_state_to_dict
    from sim.tabletop_env import TabletopConfig, TabletopEnv
    from sim.tasks import task_from_instruction

    env = TabletopEnv(TabletopConfig(render=False))
    rng, rows = random.Random(f"sim:{seed}"), []
    try:
        for episode in range(n):
            env.reset(seed=seed + episode)
            scene = scene_from_state(scene_state_to_dict(env.scene_state()))
            draft = None
            while draft is None:
                kind = rng.choice(("single", "compound", "compound", "goal"))
                draft = GENERATORS[kind](rng, scene, "heldout")
            instruction, reference = draft[0], draft[1]
            result = planner.plan(instruction, scene)
            subgoals_ok = result.valid
            for subgoal in (result.plan.subgoals if result.valid else ()):
                try:
                    done = run_expert(env, task_from_instruction(subgoal.instruction), max_steps)["success"]
                except RuntimeError:  # the expert cannot act here (e.g. no free spot): the subgoal fails
                    done = False
                subgoals_ok = subgoals_ok and done
            final = scene_from_state(scene_state_to_dict(env.scene_state()))
            goal = run(scene, list(reference))
            success = bool(subgoals_ok and goal is not None and final.blocks == goal.blocks)
            rows.append({"kind": "sim", "instruction": instruction, "valid": result.valid, "success": success,

                         "calls": result.calls, "tokens": result.tokens, "seconds": result.seconds,
                         "plan": result.plan.calls() if result.plan else None,
                         "reference": "; ".join(s.call() for s in reference)})
    finally:
        env.close()
    return summarise(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="embedded")
    parser.add_argument("--strategies", default=",".join(STRATEGIES),
                        help=f"comma-separated, from {list(STRATEGIES)}")
    parser.add_argument("--instructions", type=int, default=200)
    parser.add_argument("--sim-episodes", type=int, default=0)
    parser.add_argument("--sim-strategy", default="self_consistency")
    parser.add_argument("--max-steps", type=int, default=150, help="sim steps per subgoal (10 Hz)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    llm = make_llm(args.backend)
    examples = make_corpus("heldout", args.instructions, args.seed)
    results = {}
    summary = {"backend": args.backend, "instructions": args.instructions, "seed": args.seed,
               "machine": platform.platform(), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for name in [s for s in args.strategies.split(",") if s]:
        planner = Planner(PlannerConfig(backend=args.backend, strategy=name, seed=args.seed,
                                        **STRATEGIES[name]), llm=llm)
        started = time.perf_counter()
        results[name] = symbolic(planner, examples)
        results[name]["wall_s"] = round(time.perf_counter() - started, 1)
        args.out.write_text(json.dumps(summary, indent=1))  # each strategy's results as soon as they exist
        print(f"{name}: valid {results[name]['valid']:.3f} success {results[name]['success']:.3f} "
              f"in {results[name]['wall_s']} s", flush=True)
    if args.sim_episodes:
        planner = Planner(PlannerConfig(backend=args.backend, strategy=args.sim_strategy, seed=args.seed,
                                        **STRATEGIES[args.sim_strategy]), llm=llm)
        results[f"sim:{args.sim_strategy}"] = sim_episodes(planner, args.sim_episodes, args.seed,
                                                           args.max_steps)

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
