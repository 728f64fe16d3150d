"""The ``timeline-ws`` command line.

Commands:
  serve   run the local API Gateway WebSocket emulator with the real Lambda handlers
  token   print a development access token that a running ``serve`` accepts
  loadtest  hold many WebSocket connections with pings and report what happened
  push    push a message to users' live connections through the push function

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
from entrypoints.local_gateway.cli import add_serve_command, add_token_command
from entrypoints.push_cli import add_push_command

COMMANDS: list[Callable[[Any], None]] = [
    add_serve_command,
    add_token_command,
    add_loadtest_command,
    add_push_command,
]
"""Sub-command registrars, in the order ``--help`` lists them."""


DESCRIPTION = (
    "The WebSocket connection layer of the timeline service: run API Gateway's WebSocket API "
    "locally with the real Lambda handlers, mint development tokens, load-test a deployment."
)
EPILOG = "Run `timeline-ws COMMAND --help` for a command's options."


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per job; a command is required."""
    parser = argparse.ArgumentParser(prog="timeline-ws", description=DESCRIPTION, epilog=EPILOG)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True
    )
    for register in COMMANDS:
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit status.

    Raises:
        SystemExit: 2 with a usage message on bad arguments or a missing command (argparse);
            0 after ``--help``.

    Ctrl-C (KeyboardInterrupt) that reaches here prints one line and returns 130.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:  # Ctrl-C before a command installs its own handling
        print(f"timeline-ws {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
