"""The ``timeline-ws`` command line.

Commands:
  serve   run the local API Gateway WebSocket emulator with the real Lambda handlers
  token   print a development access token that a running ``serve`` accepts
  loadtest  hold many WebSocket connections with pings and report what happened

Each command registers itself with a ``register(commands)`` function that adds its
sub-parser and sets a ``handler`` default (``handler(args) -> exit status``); add a command by
appending its register function to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from entrypoints.loadtest.command import add_loadtest_command
from entrypoints.local_gateway.runner import add_serve_command, add_token_command

COMMANDS: list[Callable[[Any], None]] = [
    add_serve_command,
    add_token_command,
    add_loadtest_command,
]
"""Sub-command registrars, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job."""
    parser = argparse.ArgumentParser(
        prog="timeline-ws",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return int(args.handler(args))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
