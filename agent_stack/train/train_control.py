"""`agent-stack train control --algo NAME ...`: train a learned low-level controller.

    agent-stack train control --algo diffusion --data <rlds dir> --out runs/dp     (from demonstrations)

Each algorithm has its own training script (its options: `agent-stack train control --algo NAME --help`);
this command only picks it.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

ALGORITHMS = {
    "diffusion": "agent_stack.train.train_diffusion",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-stack train control", add_help=False,
                                     usage="agent-stack train control --algo {%s} [options]" % ",".join(ALGORITHMS))
    parser.add_argument("--algo", choices=ALGORITHMS, required=True)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    return int(import_module(ALGORITHMS[args.algo]).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
