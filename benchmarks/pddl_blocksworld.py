"""Plan validity on generated Blocksworld problems: chain of thought vs self-consistency vs tree of thought
at an equal LLM-call budget, with unified-planning's simulator as the verifier.

    .venv/bin/python benchmarks/pddl_blocksworld.py --backend embedded --per-size 10 --calls 5 \
        --out benchmarks/results/pddl_blocksworld.json

Problems: `--per-size` random problems for each of `--sizes` blocks (3-7), from `--seed` (the same
problems every run). Each strategy gets `--calls` LLM requests per problem (Budget.max_calls; no token or
time limit): chain of thought resamples with the verifier's feedback up to calls-1 times, self-consistency
votes over `calls` samples, tree of thought (BFS, beam 2, 3 continuations per request) expands until the
budget is spent. A plan counts as valid when every step runs and the goal holds at the end. A solver row
(up-pyperplan) checks that every problem is solvable and gives the reference plan length.
Prints a table (valid %, mean calls, mean generated tokens, mean seconds per problem) and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "pddl_blocksworld.json"
STRATEGIES = ("chain_of_thought", "self_consistency", "tree_of_thought")


def strategy_options(name: str, calls: int) -> dict:
    """Options that let each strategy use exactly `calls` LLM requests."""
    if name == "chain_of_thought":
        return {"retries": calls - 1}
    if name == "self_consistency":
        return {"samples": calls}
    if name in ("tree_of_thought", "graph_of_thought"):
        return {"search": "bfs", "beam": 2, "branching": 3, "depth": calls}
    return {}


def load_problems(per_size: int, sizes: list[int], seed: int):
    from agent_stack.cognition.pddl import PDDLDomain, PDDLProblem, blocksworld

    out = []
    for size, text in blocksworld.problems(per_size, sizes=tuple(sizes), seed=seed):
        problem = PDDLProblem(blocksworld.DOMAIN_PDDL, text)
        out.append((size, problem, PDDLDomain(problem)))
    return out


def run_solver(problems) -> list[dict]:
    rows = []
    for index, (size, problem, domain) in enumerate(problems):
        start = time.perf_counter()
        plan = problem.solve("pyperplan")
        seconds = time.perf_counter() - start
        verdict = domain.verify(problem, plan or ())
        rows.append({"strategy": "pyperplan (solver)", "size": size, "problem": problem.name, "index": index,
                     "valid": bool(plan) and verdict.valid, "calls": 0, "tokens": 0, "seconds": seconds,
                     "length": len(plan or ()), "plan": domain.render(plan or ())})
    return rows


def run_strategy(name: str, llm, problems, calls: int, max_new_tokens: int, seed: int) -> list[dict]:
    from agent_stack.cognition.strategies import make_strategy
    from agent_stack.cognition.strategies.base import Budget

    strategy = make_strategy(name, max_new_tokens=max_new_tokens, **strategy_options(name, calls))
    budget = Budget(max_calls=calls, max_tokens=None, max_seconds=None)
    rows = []
    for index, (size, problem, domain) in enumerate(problems):
        start = time.perf_counter()
        try:
            result = strategy.run(llm, domain, problem, budget=budget, seed=seed + index)
        except Exception as error:  # noqa: BLE001 - one failing problem is reported, not fatal
            rows.append({"strategy": name, "size": size, "problem": problem.name, "index": index, "valid": False,
                         "calls": None, "tokens": None, "seconds": time.perf_counter() - start, "length": 0,
                         "error": repr(error)})
            continue
        verdict = result.verdict
        rows.append({"strategy": name, "size": size, "problem": problem.name, "index": index,
                     "valid": bool(result.valid and verdict.goal_reached),
                     "calls": result.calls, "tokens": result.tokens, "seconds": time.perf_counter() - start,
                     "length": len(result.steps or ()), "stopped": result.stopped,
                     "verdict": None if verdict is None else verdict.explain(),
                     "plan": domain.render(result.steps or ())})
    return rows


def summarize(rows: list[dict]) -> dict[str, dict]:
    summary: dict[str, dict] = {}
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        groups = {str(s): [r for r in mine if r["size"] == s] for s in sorted({r["size"] for r in mine})}
        summary[name] = {key: _stats(group) for key, group in {**groups, "all": mine}.items()}
    return summary


def _stats(rows: list[dict]) -> dict:
    valid = [r for r in rows if r["valid"]]
    return {"problems": len(rows), "valid_rate": len(valid) / len(rows) if rows else 0.0,
            "mean_calls": _mean([r["calls"] for r in rows if r["calls"] is not None]),
            "mean_tokens": _mean([r["tokens"] for r in rows if r["tokens"] is not None]),
            "mean_seconds": _mean([r["seconds"] for r in rows]),
            "mean_valid_length": _mean([r["length"] for r in valid]),
            "errors": sum("error" in r for r in rows)}


def _mean(values) -> float | None:
    return float(sum(values) / len(values)) if values else None  # None, not NaN: the JSON stays strict


def print_table(summary: dict[str, dict], sizes: list[int], calls: int, backend: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Blocksworld plan validity, {calls} LLM calls per problem ({backend})")
    for column in ("strategy", *(f"{s} blocks" for s in sizes), "all", "calls", "tokens", "s/problem", "length"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, by_size in summary.items():
        total = by_size["all"]
        table.add_row(name, *(f"{by_size[str(s)]['valid_rate']:.0%}" if str(s) in by_size else "-" for s in sizes),
                      f"{total['valid_rate']:.0%}", _fmt(total["mean_calls"]), _fmt(total["mean_tokens"], 0),
                      _fmt(total["mean_seconds"], 2), _fmt(total["mean_valid_length"]))
    Console(width=max(Console().width, 132)).print(table)


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="embedded", help="LLM spec for llm.factory.make_llm")
    parser.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated strategy names")
    parser.add_argument("--per-size", type=int, default=10, help="problems per size")
    parser.add_argument("--sizes", default="3,4,5,6,7", help="comma-separated block counts")
    parser.add_argument("--seed", type=int, default=0, help="problem generator seed (and strategy seeds)")
    parser.add_argument("--calls", type=int, default=5, help="LLM requests per problem for every strategy")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="generated tokens per completion")
    parser.add_argument("--no-solver", action="store_true", help="skip the pyperplan baseline row")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON output path")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--sizes must be comma-separated integers, got {args.sizes!r}")
    args.strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if args.per_size < 1 or args.calls < 1 or args.max_new_tokens < 1 or not args.sizes or min(args.sizes) < 2:
        parser.error("--per-size, --calls and --max-new-tokens must be positive and --sizes >= 2")
    return args


def main(argv: list[str] | None = None, llm=None) -> int:
    """Run the benchmark; `llm` overrides --backend (tests pass a stub)."""
    args = parse_args(argv)
    problems = load_problems(args.per_size, args.sizes, args.seed)
    if llm is None and args.strategies:
        from agent_stack.cognition.llm.factory import make_llm

        llm = make_llm(args.backend)
    start = time.perf_counter()
    rows = [] if args.no_solver else run_solver(problems)
    for name in args.strategies:
        rows += run_strategy(name, llm, problems, args.calls, args.max_new_tokens, args.seed)
    wall = time.perf_counter() - start
    summary = summarize(rows)
    print_table(summary, args.sizes, args.calls, args.backend if llm is None else getattr(llm, "name", args.backend))
    results = {"summary": summary, "problems": rows,
               "config": {"backend": args.backend, "llm": getattr(llm, "name", None), "strategies": args.strategies,
                          "options": {s: strategy_options(s, args.calls) for s in args.strategies},
                          "per_size": args.per_size, "sizes": args.sizes, "seed": args.seed, "calls": args.calls,
                          "max_new_tokens": args.max_new_tokens},
               "wall_seconds": wall, "machine": {"cpu": platform.processor() or platform.machine(),
                                                 "python": platform.python_version()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out} ({len(rows)} runs in {wall:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
