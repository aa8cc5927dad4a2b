"""`agent-stack train WHAT ...`: one training script per model family."""

from __future__ import annotations

import sys
from importlib import import_module

TRAINERS = {
    "vla": "agent_stack.train.train_vla",
    "planner-lm": "agent_stack.train.train_planner_lm",
    "control": "agent_stack.train.train_control",
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TRAINERS:
        print(f"usage: agent-stack train {{{','.join(TRAINERS)}}} [options]   (--help after the name for its options)",
              file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return int(import_module(TRAINERS[argv[0]]).main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
