"""`agent-stack train control --algo NAME ...`: train a learned low-level controller.

    agent-stack train control --algo diffusion --data <rlds dir> --out runs/dp     (from demonstrations)
    agent-stack train control --algo tdmpc2 --env dmc:walker-walk --out runs/tdmpc2  (online, in an env)
    agent-stack train control --algo dreamerv3 --env tabletop:reach --out runs/reach

Each algorithm has its own training script (its options: `agent-stack train control --algo NAME --help`);
this command only picks it.
"""

from __future__ import annotations

import argparse
import sys
from importlib import import_module

from agent_stack.control.agent import AGENT_PACKAGES

ALGORITHMS = {
    "diffusion": "agent_stack.train.train_diffusion",
    **{name: "agent_stack.train.online" for name in AGENT_PACKAGES},  # one online trainer for every OnlineAgent
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent-stack train control", add_help=False,
                                     usage="agent-stack train control --algo {%s} [options]" % ",".join(ALGORITHMS))
    parser.add_argument("--algo", choices=ALGORITHMS, required=True)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    module = import_module(ALGORITHMS[args.algo])
    if args.algo in AGENT_PACKAGES:
        return int(module.main(rest, algo=args.algo) or 0)
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
