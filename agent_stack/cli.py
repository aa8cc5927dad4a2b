"""`agent-stack` command line.

Subcommands are entry points in the `agent_stack.commands` group (see setup.py): each maps a name to a
`main(argv)` function. This keeps `agent_stack` free of ROS and MuJoCo imports, and lets a plugin
package add a subcommand without editing this file.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points

COMMAND_GROUP = "agent_stack.commands"


def _commands() -> dict:
    return {ep.name: ep for ep in entry_points(group=COMMAND_GROUP)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = _commands()
    parser = argparse.ArgumentParser(
        prog="agent-stack",
        description="agent_stack: robot agents on ROS 2 and MuJoCo.",
        epilog="Run `agent-stack COMMAND --help` for a command's options.",
    )
    parser.add_argument("command", choices=sorted(commands), help="what to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the command")
    parsed = parser.parse_args(argv[:1] if argv and not argv[0].startswith("-") else argv)
    command_main = commands[parsed.command].load()
    return int(command_main(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
