"""Wiring of ``timeline-ws serve`` and ``timeline-ws token``: environment, handlers, banner, signals.

``serve`` prepares the environment the real handlers read (``MANAGEMENT_API_ENDPOINT`` pointing
at the gateway itself, dummy ``AWS_*`` credentials when absent so boto3 can sign, ``REDIS_URL``
or an embedded fakeredis, and the development Cognito stand-in unless
``COGNITO_USER_POOL_ID`` is already set), imports ``entrypoints.aws_lambda.handlers`` only
then, and serves until Ctrl-C / SIGTERM, when every socket closes with 1001 and
``$disconnect`` runs for each.

This module imports aiohttp only when ``serve`` runs, so the CLI stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import ipaddress
import logging
import math
import os
import re
import resource
import shlex
import signal
import sys
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import attrs

from entrypoints.local_gateway.dev_cognito import (
    DEFAULT_EXPIRES_IN_SECONDS,
    DEV_SUB,
    MAX_EXPIRES_IN_SECONDS,
    DevCognito,
    DevKeyError,
    load_dev_cognito,
)

if TYPE_CHECKING:
    from aiohttp import web

    from entrypoints.local_gateway.server import GatewaySettings, Integration

logger = logging.getLogger("timeline_ws.gateway")

DUMMY_AWS_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}
FILE_LIMIT_CEILING: Final = 1_048_576


def connect_host(host: str) -> str:
    """The host a local client uses to reach a server bound to ``host`` (wildcards -> loopback)."""
    if not host:
        return "127.0.0.1"  # an empty host binds every IPv4 interface
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host  # a name such as localhost
    if address.is_unspecified:
        return "[::1]" if address.version == 6 else "127.0.0.1"
    return f"[{host}]" if address.version == 6 else host


def real_cognito_configured(environ: Mapping[str, str]) -> bool:
    """Whether the environment names a real user pool (then no stand-in is used)."""
    return bool(environ.get("COGNITO_USER_POOL_ID", "").strip())


def lambda_environment(
    *,
    base_url: str,
    redis_url: str | None,
    dev_cognito: DevCognito | None,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """The variables ``serve`` sets for the handlers (to be merged into ``os.environ``).

    ``MANAGEMENT_API_ENDPOINT`` is always the gateway (``base_url``); EMF metrics are off
    unless ``POWERTOOLS_METRICS_DISABLED`` is set; ``AWS_*`` dummies only
    where absent; ``REDIS_URL`` when given; the stand-in's ``COGNITO_*`` when given, with
    ``COGNITO_JWKS_URL`` at ``base_url``.
    """
    variables = {"MANAGEMENT_API_ENDPOINT": base_url}
    if "POWERTOOLS_METRICS_DISABLED" not in environ:
        # EMF documents are for CloudWatch; on a terminal they drown the access log.
        variables["POWERTOOLS_METRICS_DISABLED"] = "true"
    for name, value in DUMMY_AWS_CREDENTIALS.items():
        if not environ.get(name) and not (
            name == "AWS_DEFAULT_REGION" and environ.get("AWS_REGION")
        ):
            variables[name] = value
    if redis_url is not None:
        variables["REDIS_URL"] = redis_url
    if dev_cognito is not None:
        variables.update(dev_cognito.environment(base_url + dev_cognito.jwks_path))
    return variables


@attrs.define
class LoadedHandlers:
    """The real handlers, with the container pointed at this gateway; ``restore()`` undoes it.

    ``redis_client()`` is the handlers' own Redis client (for the start-up PING).
    """

    handlers: dict[str, Integration]
    restore: Callable[[], None]
    redis_client: Callable[[], Any] | None = None


def load_handlers(environ: Mapping[str, str], redis_client: Any | None = None) -> LoadedHandlers:
    """Import the Lambda handlers and configure their container from ``environ``.

    The module builds its container from ``os.environ`` at import (cold start); if it was
    imported earlier (tests), the container's ``settings`` provider is overridden with
    settings read from ``environ`` and its singletons reset, so the outcome does not depend
    on import order. ``redis_client`` (an embedded fakeredis) replaces the Redis client.

    Raises:
        entrypoints.settings.ConfigurationError: ``environ`` is not a usable configuration.
    """
    from dependency_injector import providers

    from entrypoints.settings import Settings

    settings = Settings.from_environ(environ)
    module = _import_handlers(environ)
    container = module.container
    container.settings.override(providers.Object(settings))
    if redis_client is not None:
        container.redis_client.override(providers.Object(redis_client))
    container.reset_singletons()

    def restore() -> None:
        container.settings.reset_last_overriding()
        if redis_client is not None:
            container.redis_client.reset_last_overriding()
        container.reset_singletons()

    from entrypoints.local_gateway.server import Integration
    from entrypoints.routes import ROUTES

    routes = {
        route.route_key: Integration(
            handler=getattr(module, route.handler),
            function_name=f"timeline-ws-{route.function}",
            two_way=route.two_way,
        )
        for route in ROUTES
    }
    return LoadedHandlers(routes, restore, container.redis_client)


def redis_ping_failure(loaded: LoadedHandlers) -> str | None:
    """PING Redis once with the handlers' own client; the error type when it fails, else ``None``.

    The client's timeouts are the handlers' (0.25 s by default), so this is quick.
    """
    if loaded.redis_client is None:
        return None
    try:
        loaded.redis_client().ping()
    except Exception as error:  # any failure is worth the warning; its text may hold the URL
        return type(error).__name__
    return None


def _import_handlers(environ: Mapping[str, str]) -> Any:
    """The handlers module; a first import (its cold start) sees ``environ`` in ``os.environ``."""
    name = "entrypoints.aws_lambda.handlers"
    if name in sys.modules:
        return sys.modules[name]
    saved = dict(os.environ)
    os.environ.update(environ)
    try:
        return importlib.import_module(name)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def embedded_redis_client() -> Any:
    """An in-process fakeredis client on its own server (no network, nothing persisted)."""
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def raise_open_file_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE toward the hard limit so thousands of sockets fit.

    Returns the (soft, hard) limits in force afterwards; failures leave the limit unchanged.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


@attrs.frozen(slots=True, kw_only=True)
class PreparedGateway:
    """Everything ``serve`` built before serving: the app, its socket, URLs and the stand-in."""

    app: web.Application
    sock: Any
    base_url: str
    ws_url: str
    dev_cognito: DevCognito | None
    redis_url: str | None
    loaded: LoadedHandlers


def prepare_gateway(
    *,
    host: str,
    port: int,
    settings: GatewaySettings,
    redis_url: str | None,
    state_dir: Path | None,
    environ: MutableMapping[str, str],
) -> PreparedGateway:
    """Bind the socket, set the handlers' environment in ``environ``, load them, build the app.

    ``port`` 0 picks a free port (the JWKS and Management API URLs use the real one).

    Raises:
        OSError: the address cannot be bound.
        DevKeyError: the state folder or the development key in it cannot be used.
        entrypoints.settings.ConfigurationError: the resulting configuration is invalid.
    """
    from entrypoints.local_gateway.demo import add_demo_routes
    from entrypoints.local_gateway.server import create_app, listening_socket

    sock = listening_socket(host, port)
    try:
        base_url = f"http://{connect_host(host)}:{sock.getsockname()[1]}"
        dev = None if real_cognito_configured(environ) else load_dev_cognito(state_dir)
        environ.update(
            lambda_environment(
                base_url=base_url, redis_url=redis_url, dev_cognito=dev, environ=environ
            )
        )
        ensure_local_failover_table(environ)
        loaded = load_handlers(environ, None if redis_url else embedded_redis_client())
        app = create_app(
            loaded.handlers,
            settings,
            jwks=dev.key.jwks() if dev else None,
            jwks_path=dev.jwks_path if dev else None,
        )
        if dev is not None:  # the development demo page: only with the Cognito stand-in
            add_demo_routes(app, dev_cognito=dev, base_url=base_url)
    except BaseException:
        sock.close()
        raise
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws"
    return PreparedGateway(
        app=app,
        sock=sock,
        base_url=base_url,
        ws_url=ws_url,
        dev_cognito=dev,
        redis_url=redis_url,
        loaded=loaded,
    )


def banner(prepared: PreparedGateway, python: str = sys.executable) -> str:
    """What ``serve`` prints on start: URLs, the store, Cognito mode, a ready token, a client command."""
    lines = [
        "timeline-ws local gateway: API Gateway WebSocket API emulation running the real handlers",
        f"  WebSocket       {prepared.ws_url}?token=<access token>",
        f"  @connections    {prepared.base_url}/@connections/{{connectionId}}"
        f"  (boto3 endpoint_url={prepared.base_url})",
        f"  Health          {prepared.base_url}/health",
        "  Store           "
        + (
            f"Redis at {redact_url(prepared.redis_url)}"
            if prepared.redis_url
            else "embedded fakeredis (in-process)"
        ),
    ]
    dev = prepared.dev_cognito
    if dev is None:
        lines.append("  Cognito         the user pool in COGNITO_USER_POOL_ID (real tokens)")
        lines.append(
            f"Connect with:    {shlex.quote(python)} -m websockets '{prepared.ws_url}?token=<token>'"
        )
    else:
        token = dev.access_token(sub=DEV_SUB)
        lines += [
            f"  Cognito         development stand-in, issuer {dev.issuer}",
            f"Ready token (sub {DEV_SUB}, valid 1 h; more: timeline-ws token --sub <id>):",
            f"  {token}",
            'Connect, then type {"action":"ping"}:',
            f"  {shlex.quote(python)} -m websockets '{prepared.ws_url}?token={token}'",
        ]
    lines.append("Ctrl-C stops the gateway (every socket closes with 1001 and $disconnect runs).")
    return "\n".join(lines)


def redact_url(url: str | None) -> str:
    """``url`` with its password masked as ``***``, in the userinfo and in a ``password=``
    query parameter (redis-py reads both); ``<unreadable URL>`` when it cannot be parsed."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    try:
        parts = urlsplit(url or "")
        password = parts.password
    except ValueError:
        return "<unreadable URL>"
    if password:
        userinfo, _, host = parts.netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(name.lower() == "password" for name, _ in query):
        masked = [(n, "***" if n.lower() == "password" else v) for n, v in query]
        parts = parts._replace(query=urlencode(masked, safe="*"))
    return urlunsplit(parts)


async def serve_until_stopped(
    app: web.Application, sock: Any, stop: asyncio.Event | None = None
) -> None:
    """Serve ``app`` on ``sock`` until SIGINT/SIGTERM (or ``stop`` is set), then shut down cleanly.

    A second SIGINT/SIGTERM during the shutdown (e.g. while ``$disconnect`` waits on a hung
    store) exits at once with status 130; records not deleted then expire by their TTL.
    """
    from aiohttp import web

    from entrypoints.local_gateway.server import GATEWAY_KEY, GatewayRunner

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []

    def stop_now() -> None:
        print(
            "timeline-ws serve: stopped before every $disconnect ran; the records left "
            "expire by their TTL",
            file=sys.stderr,
            flush=True,
        )
        os._exit(130)

    def stop_cleanly() -> None:
        stop.set()
        for signum in installed:  # the next signal does not wait for the shutdown
            loop.add_signal_handler(signum, stop_now)

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop_cleanly)
            installed.append(signum)
    runner = GatewayRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5)
    await runner.setup()
    try:
        await web.SockSite(runner, sock).start()
        await stop.wait()
        logger.info(
            "shutting down: closing %d connection(s) with 1001", len(app[GATEWAY_KEY].registry)
        )
        await app[GATEWAY_KEY].shutdown()
    finally:
        await runner.cleanup()
        for signum in installed:
            loop.remove_signal_handler(signum)


# -- the command line ------------------------------------------------------------------


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


def store_environment(
    *, redis_cluster: bool, connections_table: str | None, dynamodb_endpoint: str | None
) -> dict[str, str]:
    """The variables the store options of ``serve`` set for the handlers."""
    variables: dict[str, str] = {}
    if redis_cluster:
        variables["REDIS_CLUSTER"] = "true"
    if connections_table:
        variables["CONNECTIONS_TABLE"] = connections_table
    if dynamodb_endpoint:
        variables["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    return variables


def ensure_local_failover_table(environ: Mapping[str, str]) -> str | None:
    """Create ``CONNECTIONS_TABLE`` when missing, only at a local ``AWS_ENDPOINT_URL_DYNAMODB``.

    Returns the table name when failover is configured with a local endpoint, else ``None``
    (a real AWS table is Terraform's, never created here).

    Raises:
        entrypoints.settings.ConfigurationError: the endpoint refused or could not be reached.
    """
    from entrypoints.settings import ConfigurationError

    table = environ.get("CONNECTIONS_TABLE", "").strip()
    endpoint = environ.get("AWS_ENDPOINT_URL_DYNAMODB", "").strip()
    if not table or not endpoint:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from adapters.dynamodb_connection_repository import (
        create_dynamodb_client,
        ensure_connections_table,
    )

    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    try:
        client = create_dynamodb_client(endpoint_url=endpoint, region_name=region)
        if ensure_connections_table(client, table):
            logger.info("created the DynamoDB table %s at %s", table, endpoint)
    except (BotoCoreError, ClientError) as error:
        raise ConfigurationError(
            f"CONNECTIONS_TABLE: cannot create {table!r} at {endpoint}: {type(error).__name__}"
        ) from error
    return table


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


def add_serve_command(commands: Any) -> None:
    """Register ``serve`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "serve",
        help="run the local API Gateway WebSocket emulator with the real handlers",
        description=SERVE_DESCRIPTION,
    )
    parser.add_argument(
        "--host", type=_host, default="127.0.0.1", help="address to bind (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=_port, default=8080, help="port to bind; 0 picks one (default 8080)"
    )
    parser.add_argument(
        "--redis-url",
        type=_redis_url,
        default=None,
        metavar="URL",
        help="a real Redis (redis://, rediss:// or unix://) instead of the embedded fakeredis "
        "(default: embedded); PINGed once at start",
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="--redis-url names a node of a Redis Cluster (sets REDIS_CLUSTER=true; default off)",
    )
    parser.add_argument(
        "--connections-table",
        default=None,
        metavar="NAME",
        help="fail over to this DynamoDB table when Redis fails (sets CONNECTIONS_TABLE; "
        "default: no failover); created when missing if --dynamodb-endpoint is given",
    )
    parser.add_argument(
        "--dynamodb-endpoint",
        type=_http_url,
        default=None,
        metavar="URL",
        help="a local DynamoDB endpoint for --connections-table, e.g. a moto_server at "
        "http://127.0.0.1:5000 (sets AWS_ENDPOINT_URL_DYNAMODB; default: AWS's)",
    )
    parser.add_argument(
        "--stage",
        type=_stage,
        default="local",
        metavar="NAME",
        help="stage name in events, also served at /NAME and /NAME/@connections: 1..128 "
        "letters, digits, '-' or '_' (default local)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=_positive_seconds,
        default=600.0,
        metavar="SECONDS",
        help="close a socket with 1001 after this many seconds without a data frame from the "
        "client (default 600, API Gateway's 10 min)",
    )
    parser.add_argument(
        "--max-duration",
        type=_positive_seconds,
        default=7200.0,
        metavar="SECONDS",
        help="close a socket with 1001 this many seconds after it opened "
        "(default 7200, API Gateway's 2 h)",
    )
    parser.add_argument(
        "--integration-timeout",
        type=_positive_seconds,
        default=29.0,
        metavar="SECONDS",
        help="fail handler calls slower than this many seconds (default 29, API Gateway's limit)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default=16,
        metavar="N",
        help="threads running the handlers, 1..512 (default 16)",
    )
    parser.add_argument(
        "--binary-frames",
        choices=("reject", "base64"),
        default="reject",
        help="reject: close with 1003 as API Gateway does (default); "
        "base64: deliver them with isBase64Encoded",
    )
    parser.add_argument(
        "--state-dir", type=_folder, default=None, metavar="DIR", help=STATE_DIR_HELP
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="INFO logs one access line per connect / message / disconnect; DEBUG adds "
        "details and tracebacks (default INFO)",
    )
    parser.set_defaults(handler=run_serve)


def add_token_command(commands: Any) -> None:
    """Register ``token`` on an ``argparse`` sub-parsers object."""
    parser = commands.add_parser(
        "token",
        help="print a development access token that a running serve accepts",
        description="Print only a Cognito-shaped access token, signed with the development key "
        "that `timeline-ws serve` publishes (same state folder).",
    )
    parser.add_argument(
        "--sub",
        default=DEV_SUB,
        metavar="ID",
        help=f"the user id, the sub claim (default {DEV_SUB})",
    )
    parser.add_argument(
        "--expires-in",
        type=_expires_in,
        default=DEFAULT_EXPIRES_IN_SECONDS,
        metavar="SECONDS",
        help="validity in seconds, 1..86400 (default 3600)",
    )
    parser.add_argument(
        "--state-dir", type=_folder, default=None, metavar="DIR", help=STATE_DIR_HELP
    )
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


def run_serve(args: argparse.Namespace) -> int:
    """``timeline-ws serve``: prepare, print the banner, serve until a signal; 1 on a startup error."""
    from entrypoints.local_gateway.events import ApiIdentity
    from entrypoints.local_gateway.server import GatewaySettings
    from entrypoints.settings import ConfigurationError

    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    soft, _hard = raise_open_file_limit()
    settings = GatewaySettings(
        api=ApiIdentity(stage=args.stage),
        idle_timeout_seconds=args.idle_timeout,
        max_duration_seconds=args.max_duration,
        integration_timeout_seconds=args.integration_timeout,
        workers=args.workers,
        binary_frames=args.binary_frames,
    )
    if args.redis_cluster and not args.redis_url:
        print("timeline-ws serve: --redis-cluster needs --redis-url", file=sys.stderr)
        return 2
    if args.dynamodb_endpoint and not args.connections_table:
        print("timeline-ws serve: --dynamodb-endpoint needs --connections-table", file=sys.stderr)
        return 2
    os.environ.update(
        store_environment(
            redis_cluster=args.redis_cluster,
            connections_table=args.connections_table,
            dynamodb_endpoint=args.dynamodb_endpoint,
        )
    )
    try:
        prepared = prepare_gateway(
            host=args.host,
            port=args.port,
            settings=settings,
            redis_url=args.redis_url,
            state_dir=args.state_dir,
            environ=os.environ,
        )
    except (OSError, DevKeyError, ConfigurationError) as error:
        print(f"timeline-ws serve: {error}", file=sys.stderr)
        return 1
    print(banner(prepared), flush=True)
    failure = redis_ping_failure(prepared.loaded) if prepared.redis_url else None
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
