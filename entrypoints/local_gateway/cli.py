"""The ``serve`` and ``token`` commands of the ``timeline-ws`` CLI: options, checks, runs.

This module imports aiohttp only when ``serve`` runs, so the CLI stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Final

from entrypoints.cli_options import add_options, option
from entrypoints.local_gateway.banner import banner, redact_url
from entrypoints.local_gateway.dev_cognito import (
    DEFAULT_EXPIRES_IN_SECONDS,
    DEV_SUB,
    MAX_EXPIRES_IN_SECONDS,
    DevKeyError,
    load_dev_cognito,
)
from entrypoints.local_gateway.signing import DEFAULT_CREDENTIALS, gateway_region, parse_credentials

logger = logging.getLogger("timeline_ws.gateway")


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError("must be a finite number of seconds greater than 0")
    return value


STAGE_NAME: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
"""API Gateway's stage names: letters, digits, ``-`` and ``_``, 1 to 128 characters
(https://docs.aws.amazon.com/apigatewayv2/latest/api-reference/apis-apiid-stages.html)."""


def _stage(text: str) -> str:
    if STAGE_NAME.fullmatch(text) is None:
        raise argparse.ArgumentTypeError("a stage name is 1 to 128 letters, digits, '-' or '_'")
    if text == "health":
        raise argparse.ArgumentTypeError("'health' is taken by the gateway's /health")
    return text


def _host(text: str) -> str:
    if not text.strip():
        # An empty host binds every interface, while the banner would say 127.0.0.1
        raise argparse.ArgumentTypeError("name an address, e.g. 127.0.0.1 (or 0.0.0.0 for all)")
    return text


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("name a folder (an empty one means the current folder)")
    return Path(text)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be within 0..65535")
    return value


def _workers(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of threads, got {text!r}") from None
    if not 1 <= value <= 512:
        raise argparse.ArgumentTypeError("must be within 1..512")
    return value


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a rate per second, got {text!r}") from None
    if not math.isfinite(value) or not value > 0:
        raise argparse.ArgumentTypeError("must be a finite number greater than 0")
    return value


def _burst(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be within 0..1")
    return value


def _redis_url(text: str) -> str:
    from entrypoints.settings import redis_url_problem

    problem = redis_url_problem(text)
    if problem:
        raise argparse.ArgumentTypeError(problem)  # never quotes the URL: it may hold a password
    return text


def _http_url(text: str) -> str:
    if not text.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError("must start with http:// or https://")
    return text


def _expires_in(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected whole seconds, got {text!r}") from None
    if not 1 <= value <= MAX_EXPIRES_IN_SECONDS:
        raise argparse.ArgumentTypeError(f"must be within 1..{MAX_EXPIRES_IN_SECONDS}")
    return value


SERVE_DESCRIPTION: Final = (
    "Emulate API Gateway's WebSocket API and its @connections Management API on one port, "
    "running the real $connect, $disconnect and $default Lambda handlers. With no options the "
    "store is an embedded fakeredis and tokens come from a development Cognito stand-in; on "
    "start it prints the WebSocket URL, a ready token and a client command. Ctrl-C closes "
    "every socket with 1001 and runs $disconnect for each."
)
STATE_DIR_HELP: Final = (
    "folder of the development signing key "
    "(default $TIMELINE_WS_STATE_DIR, else $XDG_STATE_HOME/timeline-ws, "
    "else ~/.local/state/timeline-ws)"
)


SERVE_OPTIONS: Final = (
    option("--host", type=_host, default="127.0.0.1", help="address to bind (default 127.0.0.1)"),
    option("--port", type=_port, default=8080, help="port to bind; 0 picks one (default 8080)"),
    option(
        "--redis-url",
        type=_redis_url,
        default=None,
        metavar="URL",
        help="a real Redis (redis://, rediss:// or unix://) instead of the embedded fakeredis "
        "(default: embedded); PINGed once at start",
    ),
    option(
        "--redis-cluster",
        action="store_true",
        help="--redis-url names a node of a Redis Cluster (sets REDIS_CLUSTER=true; default off)",
    ),
    option(
        "--connections-table",
        default=None,
        metavar="NAME",
        help="fail over to this DynamoDB table when Redis fails (sets CONNECTIONS_TABLE; "
        "default: no failover); created when missing if --dynamodb-endpoint is given",
    ),
    option(
        "--dynamodb-endpoint",
        type=_http_url,
        default=None,
        metavar="URL",
        help="a local DynamoDB endpoint for --connections-table, e.g. a moto_server at "
        "http://127.0.0.1:5000 (sets AWS_ENDPOINT_URL_DYNAMODB; default: AWS's)",
    ),
    option(
        "--stage",
        type=_stage,
        default="local",
        metavar="NAME",
        help="stage name in events, also served at /NAME and /NAME/@connections: 1..128 "
        "letters, digits, '-' or '_' (default local)",
    ),
    option(
        "--idle-timeout",
        type=_positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="close a socket with 1001 after this many seconds without a data frame from the "
        "client (default 600, API Gateway's 10 min)",
    ),
    option(
        "--max-duration",
        type=_positive_seconds,
        default=7200.0,
        metavar="SECONDS",
        help="close a socket with 1001 this many seconds after it opened "
        "(default 7200, API Gateway's 2 h)",
    ),
    option(
        "--integration-timeout",
        type=_positive_seconds,
        default=29.0,
        metavar="SECONDS",
        help="fail handler calls slower than this many seconds (default 29, API Gateway's limit)",
    ),
    option(
        "--workers",
        type=_workers,
        default=16,
        metavar="N",
        help="threads running the handlers, 1..512 (default 16)",
    ),
    option(
        "--binary-frames",
        choices=("reject", "base64"),
        default="reject",
        help="reject: close with 1003 as API Gateway does (default); "
        "base64: deliver them with isBase64Encoded",
    ),
    option(
        "--credentials",
        type=parse_credentials,
        default=DEFAULT_CREDENTIALS,
        metavar="KEY:SECRET",
        help="the only AWS credentials @connections accepts, SigV4-signed for service "
        "execute-api and the region of AWS_REGION / AWS_DEFAULT_REGION (default us-east-1); "
        "the handlers sign with them (default test:test)",
    ),
    option(
        "--deny-manage-connections",
        action="store_true",
        help="answer every signed @connections request 403 AccessDeniedException, as AWS does "
        "for a caller without execute-api:ManageConnections (default off)",
    ),
    option(
        "--connect-rate",
        type=_rate,
        default=500.0,
        metavar="N",
        help="new connections per second; a handshake over it gets 429 (default 500, AWS's)",
    ),
    option(
        "--request-rate",
        type=_rate,
        default=10000.0,
        metavar="N",
        help="the account's requests per second, shared by messages and @connections calls "
        "(default 10000, AWS's)",
    ),
    option(
        "--request-burst",
        type=_burst,
        default=5000,
        metavar="N",
        help="the account's request bucket; over it a message gets a 'Too Many Requests' frame "
        "and @connections 429 LimitExceededException (default 5000, AWS's)",
    ),
    option(
        "--disconnect-loss",
        type=_fraction,
        default=0.0,
        metavar="FRACTION",
        help="skip this share (0..1) of $disconnect invocations, each skip logged: AWS delivers "
        "$disconnect best-effort (default 0)",
    ),
    option("--state-dir", type=_folder, default=None, metavar="DIR", help=STATE_DIR_HELP),
    option(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="INFO logs one access line per connect / message / disconnect; DEBUG adds "
        "details and tracebacks (default INFO)",
    ),
)


def add_serve_command(commands: Any) -> None:
    """Register ``serve`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "serve",
        help="run the local API Gateway WebSocket emulator with the real handlers",
        description=SERVE_DESCRIPTION,
    )
    add_options(parser, SERVE_OPTIONS)
    parser.set_defaults(handler=run_serve)


TOKEN_OPTIONS: Final = (
    option(
        "--sub",
        default=DEV_SUB,
        metavar="ID",
        help=f"the user id, the sub claim (default {DEV_SUB})",
    ),
    option(
        "--expires-in",
        type=_expires_in,
        default=DEFAULT_EXPIRES_IN_SECONDS,
        metavar="SECONDS",
        help="validity in seconds, 1..86400 (default 3600)",
    ),
    option("--state-dir", type=_folder, default=None, metavar="DIR", help=STATE_DIR_HELP),
)


def add_token_command(commands: Any) -> None:
    """Register ``token`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "token",
        help="print a development access token that a running serve accepts",
        description="Print only a Cognito-shaped access token, signed with the development key "
        "that `timeline-ws serve` publishes (same state folder).",
    )
    add_options(parser, TOKEN_OPTIONS)
    parser.set_defaults(handler=run_token)


def run_token(args: argparse.Namespace) -> int:
    """``timeline-ws token``: print one token and nothing else; 2 on bad input."""
    if not args.sub.strip():
        print("timeline-ws token: --sub must not be empty", file=sys.stderr)
        return 2
    try:
        dev = load_dev_cognito(args.state_dir)
    except DevKeyError as error:
        print(f"timeline-ws token: {error}", file=sys.stderr)
        return 2
    print(dev.access_token(sub=args.sub, expires_in_seconds=args.expires_in))
    return 0


def plain_log_handler() -> logging.Handler:
    """The terminal's handler: one plain line per record on stderr.

    It skips the handlers' own logger (``timeline-ws``): Powertools already writes each of
    its records once, as the JSON line CloudWatch would show, on stdout.
    """
    from entrypoints.observability import LOGGER_NAME

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(lambda record: record.name != LOGGER_NAME)
    return handler


def run_serve(args: argparse.Namespace) -> int:
    """``timeline-ws serve``: prepare, print the banner, serve until a signal; 1 on a startup error."""
    from entrypoints.local_gateway.emulator.events import ApiIdentity
    from entrypoints.local_gateway.emulator.server import GatewaySettings
    from entrypoints.local_gateway.emulator.sigv4 import AwsCredentials
    from entrypoints.local_gateway.lifecycle import raise_open_file_limit, serve_until_stopped
    from entrypoints.local_gateway.wiring import prepare_gateway, redis_ping_failure
    from entrypoints.settings import ConfigurationError

    logging.basicConfig(level=args.log_level, handlers=[plain_log_handler()])
    soft, _hard = raise_open_file_limit()
    settings = GatewaySettings(
        api=ApiIdentity(stage=args.stage),
        idle_timeout_seconds=args.idle_timeout,
        max_duration_seconds=args.max_duration,
        integration_timeout_seconds=args.integration_timeout,
        workers=args.workers,
        binary_frames=args.binary_frames,
        region=gateway_region(os.environ),
        credentials=(AwsCredentials(*args.credentials),),
        deny_manage_connections=args.deny_manage_connections,
        connect_rate=args.connect_rate,
        request_rate=args.request_rate,
        request_burst=args.request_burst,
        disconnect_loss=args.disconnect_loss,
    )
    if args.redis_cluster and not args.redis_url:
        print("timeline-ws serve: --redis-cluster needs --redis-url", file=sys.stderr)
        return 2
    if args.dynamodb_endpoint and not args.connections_table:
        print("timeline-ws serve: --dynamodb-endpoint needs --connections-table", file=sys.stderr)
        return 2
    try:
        prepared = prepare_gateway(
            host=args.host,
            port=args.port,
            settings=settings,
            redis_url=args.redis_url,
            state_dir=args.state_dir,
            environ=os.environ,
            redis_cluster=args.redis_cluster,
            connections_table=args.connections_table,
            dynamodb_endpoint=args.dynamodb_endpoint,
        )
    except (OSError, DevKeyError, ConfigurationError) as error:
        print(f"timeline-ws serve: {error}", file=sys.stderr)
        return 1
    print(banner(prepared), flush=True)
    failure = redis_ping_failure(prepared) if prepared.redis_url else None
    if failure is not None:
        print(
            f"timeline-ws serve: warning: Redis at {redact_url(prepared.redis_url)} did not "
            f"answer PING ({failure}); $connect fails until it does"
            + (", unless the DynamoDB failover takes over" if args.connections_table else ""),
            file=sys.stderr,
            flush=True,
        )
    logger.info("listening on %s (open-file limit %d)", prepared.base_url, soft)
    asyncio.run(serve_until_stopped(prepared.app, prepared.sock))
    return 0
