"""The ``timeline-ws loadtest`` sub-command: arguments, token source, limits, report, exit status.

Exit status: 0 when the run passed (disconnect rate under 1%, no connection failed without
being refused on purpose with 401/403/429, under 1% of the pings unanswered), 1 when it did
not, 2 on a usage error (bad arguments, no tokens, a ``--json`` path that cannot be written,
a file descriptor limit that cannot be raised), 130 when stopped with Ctrl-C (SIGINT) or
SIGTERM: the clients then drain and close, and the report of what was seen is printed (and
written with ``--json``). A second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any, Final

from entrypoints.cli_options import add_options, option
from entrypoints.loadtest.clients import LoadtestPlan, PlanError, Tick, run_load
from entrypoints.loadtest.server_process import (
    ServerSampler,
    is_local_host,
    pid_listening_on,
    rss_bytes,
)
from entrypoints.loadtest.stats import LoadtestReport
from entrypoints.loadtest.tokens import (
    TokenSourceError,
    minted_tokens,
    token_lifetime_seconds,
    tokens_from_file,
)

EXIT_USAGE: Final = 2
SPARE_FILE_DESCRIPTORS: Final = 256
"""Descriptors beyond one per connection: stdio, the event loop, DNS, the JSON file."""

_RATE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*s)?\s*")

EXAMPLE = (
    "example: timeline-ws loadtest ws://127.0.0.1:8080/ws --connections 1000 --duration 120 "
    "--ping-interval 30 --ramp-rate 200/s --json out.json"
)


def ramp_rate(text: str) -> float:
    """Parse ``200/s`` or ``200`` (new connections per second).

    Raises:
        argparse.ArgumentTypeError: on anything else.
    """
    match = _RATE.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a rate such as 200/s, got {text!r}")
    return float(match.group(1))


LOADTEST_OPTIONS: Final = (
    option(
        "url",
        help="the WebSocket URL, e.g. ws://127.0.0.1:8080/ws; with ?token=… every connection "
        "uses that token, otherwise tokens are minted or read from --token-file",
    ),
    option(
        "--connections", type=int, default=1000, help="connections to open (1..20000; default 1000)"
    ),
    option(
        "--duration",
        type=float,
        default=120.0,
        help="seconds to hold them after the ramp (default 120)",
    ),
    option(
        "--ping-interval",
        type=float,
        default=30.0,
        help="seconds between a client's pings (default 30)",
    ),
    option(
        "--ramp-rate",
        type=ramp_rate,
        default=200.0,
        metavar="RATE",
        help="new connections per second, e.g. 200/s (default 200/s)",
    ),
    option(
        "--users",
        group="tokens",
        type=int,
        default=None,
        help="distinct users to mint tokens for (default: one per connection)",
    ),
    option(
        "--token-file",
        group="tokens",
        type=Path,
        default=None,
        help="file with one token per line (for a real deployment)",
    ),
    option(
        "--state-dir",
        type=Path,
        default=None,
        help="the development key's folder (default: as `timeline-ws serve`)",
    ),
    option(
        "--server-pid",
        type=int,
        default=None,
        help="pid of the server to sample RSS of (default: found by port for a local URL)",
    ),
    option(
        "--open-timeout",
        type=float,
        default=30.0,
        help="seconds allowed per handshake (default 30)",
    ),
    option(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="seconds to wait for outstanding pongs at the end (default 10)",
    ),
    option(
        "--json",
        type=Path,
        default=None,
        dest="json_path",
        metavar="PATH",
        help="also write the report as JSON to PATH",
    ),
    option(
        "--reconnect",
        action="store_true",
        help="clients reconnect after a close they did not ask for, as the client library "
        "does (every handshake then counts as an attempt, every such close still as an "
        "unexpected disconnect; default off: one connection per client)",
    ),
    option("--quiet", action="store_true", help="no progress display"),
)


def add_loadtest_command(commands: Any) -> None:
    """Register ``loadtest`` on the CLI's sub-parsers; its ``handler`` default is :func:`run`."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "loadtest",
        help="hold many WebSocket connections with pings and report what happened",
        description=(
            "Open --connections WebSocket connections to URL at --ramp-rate, hold them "
            "--duration seconds after the last one started while each pings every "
            "--ping-interval seconds, then report. Tokens are minted from the development "
            "key of a local `timeline-ws serve` (--state-dir), or read from --token-file "
            "for a real deployment."
        ),
        epilog=EXAMPLE,
    )
    add_options(parser, LOADTEST_OPTIONS)
    parser.set_defaults(handler=run)


def raise_open_file_limit(wanted: int) -> int:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` if it is lower; returns the new soft limit.

    The hard limit bounds the soft one; a privileged process also raises the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= wanted:
        return soft
    if hard == resource.RLIM_INFINITY or hard >= wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return wanted


def url_token(url: str) -> str | None:
    """The ``token`` query parameter of ``url`` (the last one if repeated), else ``None``."""
    query = urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    tokens = [value for name, value in query if name == "token"]
    return tokens[-1] if tokens else None


def _tokens(args: argparse.Namespace, plan: LoadtestPlan) -> list[str]:
    token = url_token(plan.url)
    if token is not None:
        # A URL pasted from `timeline-ws serve`'s banner: every client uses its token.
        if args.token_file is not None or args.users is not None:
            raise TokenSourceError(
                "the URL carries a token (?token=…): drop it, or drop --token-file / --users"
            )
        if not token:
            raise TokenSourceError("the URL's token= is empty")
        if not args.quiet:
            print(
                "every connection uses the URL's token (one user: the per-user connection "
                "limit applies)",
                file=sys.stderr,
            )
        return [token]
    if args.token_file is not None:
        return tokens_from_file(args.token_file)
    # Imported here: a run with --token-file never needs the development key.
    from entrypoints.local_gateway.dev_cognito import (
        KEY_FILE_NAME,
        DevCognito,
        default_state_dir,
        load_or_create_key,
    )

    state_dir = args.state_dir or default_state_dir()
    if not (state_dir / KEY_FILE_NAME).is_file():
        raise TokenSourceError(
            f"no development key in {state_dir}: start `timeline-ws serve` (same "
            "TIMELINE_WS_STATE_DIR) first, or pass --state-dir or --token-file"
        )
    users = args.users if args.users is not None else plan.connections
    if users < 1:
        raise TokenSourceError("--users must be at least 1")
    cognito = DevCognito(key=load_or_create_key(state_dir))
    lifetime = token_lifetime_seconds(plan.duration_seconds, plan.ramp_seconds)
    count = min(users, plan.connections)
    started = time.perf_counter()
    tokens = minted_tokens(cognito, users=count, expires_in_seconds=lifetime)
    if not args.quiet:
        print(
            f"minted {count} tokens from the development key in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return tokens


def check_json_path(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` can be written (checked before a long run).

    Raises:
        ValueError: ``path`` is a folder, its folder does not exist, or cannot be written.
    """
    if path.is_dir():
        raise ValueError(f"--json {path} is a folder")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ValueError(f"--json {path}: the folder {folder} does not exist")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValueError(f"--json {path} cannot be written")
    if not path.exists() and not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"--json {path}: the folder {folder} cannot be written")


def _sampler(args: argparse.Namespace, plan: LoadtestPlan) -> ServerSampler | None:
    pid = args.server_pid
    if pid is not None:
        if pid <= 0 or rss_bytes(pid) is None:
            print(
                f"timeline-ws loadtest: no process {pid} to sample (or not ours to read): "
                "the report has no server figures",
                file=sys.stderr,
            )
            return None
        return ServerSampler(pid)
    parts = urllib.parse.urlsplit(plan.url)
    if parts.hostname is None or not is_local_host(parts.hostname):
        return None
    found = pid_listening_on(parts.port or (443 if parts.scheme == "wss" else 80))
    return None if found is None else ServerSampler(found)


def run(args: argparse.Namespace) -> int:
    """Run the load test the arguments describe; print the report; return the exit status."""
    from entrypoints.loadtest.display import ProgressDisplay  # rich: only for this command

    try:
        plan = LoadtestPlan(
            url=args.url,
            connections=args.connections,
            duration_seconds=args.duration,
            ping_interval_seconds=args.ping_interval,
            ramp_rate_per_second=args.ramp_rate,
            open_timeout_seconds=args.open_timeout,
            drain_timeout_seconds=args.drain_timeout,
            reconnect=args.reconnect,
        )
        tokens = _tokens(args, plan)
        if args.json_path is not None:
            check_json_path(args.json_path)
    except (PlanError, TokenSourceError, ValueError) as error:
        print(f"timeline-ws loadtest: {error}", file=sys.stderr)
        return EXIT_USAGE
    wanted = plan.connections + SPARE_FILE_DESCRIPTORS
    limit = raise_open_file_limit(wanted)
    if limit < wanted:
        print(
            f"timeline-ws loadtest: {plan.connections} connections need {wanted} file "
            f"descriptors but the limit is {limit}; raise `ulimit -Hn`",
            file=sys.stderr,
        )
        return EXIT_USAGE
    sampler = _sampler(args, plan)
    if args.quiet:
        report = asyncio.run(_run_until_done_or_interrupted(plan, tokens, sampler, None))
    else:
        with ProgressDisplay(plan) as display:
            report = asyncio.run(
                _run_until_done_or_interrupted(plan, tokens, sampler, display.update)
            )
    for line in report.lines():
        print(line)
    if args.json_path is not None:
        try:
            args.json_path.write_text(
                json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
            )
        except OSError as error:
            print(f"timeline-ws loadtest: --json {args.json_path}: {error}", file=sys.stderr)
            return max(report.exit_status, 1)
    return report.exit_status


async def _run_until_done_or_interrupted(
    plan: LoadtestPlan, tokens: list[str], sampler: ServerSampler | None, tick: Tick | None
) -> LoadtestReport:
    """``run_load`` with SIGINT and SIGTERM turned into its ``interrupt`` (the first one only)."""
    loop = asyncio.get_running_loop()
    interrupt = asyncio.Event()
    stop_signals = (signal.SIGINT, signal.SIGTERM)

    def interrupted() -> None:
        interrupt.set()
        for number in stop_signals:  # a second signal stops at once, the default way
            loop.remove_signal_handler(number)
        print(
            "\ntimeline-ws loadtest: interrupted; closing the connections (again to abort)",
            file=sys.stderr,
        )

    for number in stop_signals:
        loop.add_signal_handler(number, interrupted)
    try:
        return await run_load(plan, tokens, sampler=sampler, tick=tick, interrupt=interrupt)
    finally:
        for number in stop_signals:
            loop.remove_signal_handler(number)
