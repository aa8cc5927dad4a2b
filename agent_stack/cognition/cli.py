"""`agent-stack plan INSTRUCTION`: plan on a symbolic scene from the command line.

    agent-stack plan "put the red block on the green pad, then the blue one on it" \
        --blocks red,green,blue --pads red,green --strategy tot --backend embedded --samples 5

The scene comes from `--scene FILE` (a symbolic scene {"blocks", "pads", "has_bin"} or a sim
`scene_state` JSON) or from `--blocks` (all on the table) and `--pads`. Options left out keep the
`--config FILE` (PlannerConfig JSON) or default value. Prints the plan, the verdict and a trace summary;
`--json` prints the PlanResult JSON instead. Exit status: 0 for a valid plan, 1 without one, 2 on a usage
error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from agent_stack.cognition.llm.base import LLMError
from agent_stack.cognition.planner import STRATEGY_OPTIONS, Planner, PlannerConfig, PlanResult
from agent_stack.cognition.scene import TABLE, SymbolicScene, scene_from_state
from agent_stack.cognition.strategies import STRATEGIES

BUDGET_OPTIONS = ("max_calls", "max_tokens", "max_seconds", "seed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-stack plan", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("instruction", help="what the robot should do, in words")
    scene = parser.add_argument_group("scene")
    scene.add_argument("--scene", type=Path, help="JSON file: a symbolic scene or a sim scene_state")
    scene.add_argument("--blocks", help="block colours, all on the table, e.g. red,green,blue")
    scene.add_argument("--pads", default="", help="comma-separated pad colours")
    scene.add_argument("--no-bin", action="store_true", help="the scene has no bin")
    planner = parser.add_argument_group("planner")
    planner.add_argument("--config", type=Path, help="PlannerConfig JSON; the options below override it")
    planner.add_argument("--backend", help='"embedded", "hf:DIR" or "openai:URL#model"')
    planner.add_argument("--strategy", choices=sorted(STRATEGIES))
    for name, kind in (("samples", int), ("temperature", float), ("top_p", float), ("beam", int),
                       ("branching", int), ("depth", int), ("retries", int), ("max_calls", int),
                       ("max_tokens", int), ("max_seconds", float), ("seed", int)):
        planner.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind)
    planner.add_argument("--search", choices=("bfs", "dfs"))
    planner.add_argument("--value", help='value function, e.g. "verifier", "verifier+logprob", "self_eval"')
    planner.add_argument("--vote", choices=("majority", "verifier"))
    parser.add_argument("--feedback", default="", help="what happened so far (replanning)")
    parser.add_argument("--json", action="store_true", help="print the PlanResult as JSON")
    return parser


def load_scene(args: argparse.Namespace) -> SymbolicScene:
    if args.scene is not None:
        try:
            data = json.loads(args.scene.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"cannot read scene {args.scene}: {error}") from None
        if not isinstance(data, dict):
            raise ValueError(f"scene {args.scene} is not a JSON object")
        return scene_from_state(data) if "objects" in data else SymbolicScene.from_dict(data)
    if not args.blocks:
        raise ValueError("give the scene with --scene FILE or --blocks red,green,...")
    colours = [c.strip() for c in args.blocks.split(",") if c.strip()]
    pads = frozenset(c.strip() for c in args.pads.split(",") if c.strip())
    return SymbolicScene({c: TABLE for c in colours}, pads, has_bin=not args.no_bin)


def load_config(args: argparse.Namespace) -> PlannerConfig:
    data = PlannerConfig.load(args.config).to_dict() if args.config else {}
    for name in ("backend", "strategy", *STRATEGY_OPTIONS, *BUDGET_OPTIONS):
        if getattr(args, name) is not None:
            data[name] = getattr(args, name)
    return PlannerConfig.from_dict(data)


def print_result(result: PlanResult, console: Console) -> None:
    if result.plan is not None:
        table = Table(title=f"plan ({result.strategy})")
        for column in ("#", "skill", "instruction"):
            table.add_column(column)
        for index, subgoal in enumerate(result.plan.subgoals, start=1):
            table.add_row(str(index), subgoal.call(), subgoal.instruction)
        console.print(table)
    verdict = "[green]valid[/green]" if result.valid else f"[red]rejected[/red]: {'; '.join(result.reasons)}"
    console.print(f"verdict: {verdict}")
    stats = ", ".join(f"{k}={v}" for k, v in result.info.items() if not isinstance(v, (list, dict)))
    console.print(f"{result.calls} LLM calls, {result.tokens} tokens, {result.seconds:.2f} s" +
                  (f"; {stats}" if stats else ""))
    trace = Table(title="trace")
    for column in ("call", "purpose", "answer", "verdict"):
        trace.add_column(column, overflow="fold")
    for entry in result.trace:
        if "event" in entry:
            details = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "event")
            trace.add_row("", entry["event"], details, "")
        else:
            answer = entry.get("steps") or entry.get("error") or entry["completion"][:80]
            trace.add_row(str(entry["call"]), entry["purpose"], answer, entry.get("verdict") or "")
    console.print(trace)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        scene = load_scene(args)
        planner = Planner(load_config(args))
    except (ValueError, LLMError) as error:
        print(f"agent-stack plan: {error}", file=sys.stderr)
        return 2
    result = planner.plan(args.instruction, scene, args.feedback)
    if args.json:
        print(result.to_json())
    else:
        print_result(result, console)
    return 0 if result.valid else 1


if __name__ == "__main__":
    sys.exit(main())
