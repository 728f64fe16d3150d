"""Wires timeline-ws into the API Gateway emulator: the one module that knows both.

``prepare_gateway`` binds the socket, builds the handlers' settings (the caller's
environment plus what the gateway itself provides: ``MANAGEMENT_API_ENDPOINT`` pointing at
the gateway, the development Cognito stand-in unless ``COGNITO_USER_POOL_ID`` is set, the
store options), builds the application with :func:`~entrypoints.bootstrap.bootstrap` (an
embedded fakeredis unless a Redis URL is given), and hands the emulator one integration per
route of ``entrypoints/routes.py``. It never changes ``os.environ`` and imports no handlers
module: every call builds a container of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Final

import attrs
from aiohttp import web

from entrypoints.bootstrap import bootstrap
from entrypoints.container import Container
from entrypoints.local_gateway.demo import add_demo_routes
from entrypoints.local_gateway.dev_cognito import DevCognito, load_dev_cognito
from entrypoints.local_gateway.emulator.server import (
    GatewaySettings,
    Integration,
    create_app,
    listening_socket,
)
from entrypoints.routes import FUNCTIONS, ROUTES
from entrypoints.settings import ConfigurationError, Settings

logger = logging.getLogger("timeline_ws.gateway")

RECONCILE_INTERVAL_SECONDS: Final = 2.0
"""How often ``serve`` runs the reconciler (the scheduled Lambda runs it every minute on AWS)."""


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


STAND_IN_OVERRIDES: Final = (
    "COGNITO_REGION",
    "COGNITO_APP_CLIENT_IDS",
    "COGNITO_TOKEN_USE",
    "COGNITO_JWKS",
    "COGNITO_JWKS_URL",
)
"""Cognito variables the development stand-in replaces when no user pool is named."""


def ignored_cognito_variables(environ: Mapping[str, str]) -> list[str]:
    """The ``COGNITO_*`` variables set in ``environ`` that the stand-in will ignore.

    Empty when ``COGNITO_USER_POOL_ID`` is set (real Cognito: nothing is ignored) or when
    none of :data:`STAND_IN_OVERRIDES` is set.
    """
    if real_cognito_configured(environ):
        return []
    return [name for name in STAND_IN_OVERRIDES if environ.get(name, "").strip()]


def gateway_environment(
    *,
    base_url: str,
    stage: str,
    redis_url: str | None,
    dev_cognito: DevCognito | None,
    redis_cluster: bool = False,
    connections_table: str | None = None,
    dynamodb_endpoint: str | None = None,
    environ: Mapping[str, str],
) -> dict[str, str]:
    """The variables the gateway provides to the handlers' settings, over ``environ``.

    ``MANAGEMENT_API_ENDPOINT`` is always the gateway's stage (``base_url/stage``); EMF metrics are off
    unless ``POWERTOOLS_METRICS_DISABLED`` is set (they are CloudWatch's, and would lengthen
    every access line on a terminal); ``REDIS_URL`` and the store options when given; the
    stand-in's ``COGNITO_*`` when given, with ``COGNITO_JWKS_URL`` at ``base_url``.
    """
    variables = {"MANAGEMENT_API_ENDPOINT": f"{base_url}/{stage}"}
    if "POWERTOOLS_METRICS_DISABLED" not in environ:
        variables["POWERTOOLS_METRICS_DISABLED"] = "true"
    if not environ.get("AWS_REGION") and not environ.get("AWS_DEFAULT_REGION"):
        variables["AWS_DEFAULT_REGION"] = "us-east-1"
    if redis_url is not None:
        variables["REDIS_URL"] = redis_url
    if redis_cluster:
        variables["REDIS_CLUSTER"] = "true"
    if connections_table:
        variables["CONNECTIONS_TABLE"] = connections_table
    if dynamodb_endpoint:
        variables["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_endpoint
    if dev_cognito is not None:
        variables.update(dev_cognito.environment(base_url + dev_cognito.jwks_path))
    return variables


STAND_IN_AWS_CREDENTIALS: Final = ("local", "local")
"""What the handlers' DynamoDB client signs with when the environment has no credentials (a
local DynamoDB accepts any; ``@connections`` calls sign with the gateway's own)."""


def aws_credentials_for(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """``None`` when ``environ`` holds an access key id and a secret (boto3 reads them), else
    the stand-ins, each part from ``environ`` when it holds that one."""
    key_id, secret = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if key_id is not None and secret is not None:
        return None
    return (key_id or STAND_IN_AWS_CREDENTIALS[0], secret or STAND_IN_AWS_CREDENTIALS[1])


def embedded_redis_client() -> Any:
    """An in-process fakeredis client on its own server (no network, nothing persisted)."""
    import fakeredis

    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def ensure_local_failover_table(settings: Settings) -> str | None:
    """Create ``CONNECTIONS_TABLE`` when missing, only at a local ``AWS_ENDPOINT_URL_DYNAMODB``.

    Returns the table name when failover is configured with a local endpoint, else ``None``
    (a real AWS table is Terraform's, never created here).

    Raises:
        ConfigurationError: the endpoint refused or could not be reached.
    """
    table, endpoint = settings.connections_table, settings.dynamodb_endpoint_url
    if not table or not endpoint:
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    from adapters.connection_store import create_dynamodb_client
    from entrypoints.local_gateway.dynamodb_table import ensure_connections_table

    try:
        client = create_dynamodb_client(
            endpoint_url=endpoint,
            region_name=settings.aws_region,
            credentials=settings.aws_credentials,
        )
        if ensure_connections_table(client, table):
            logger.info("created the DynamoDB table %s at %s", table, endpoint)
    except (BotoCoreError, ClientError) as error:
        raise ConfigurationError(
            f"CONNECTIONS_TABLE: cannot create {table!r} at {endpoint}: {type(error).__name__}"
        ) from error
    return table


@attrs.frozen(slots=True, kw_only=True)
class PreparedGateway:
    """Everything ``serve`` built before serving: the app, its socket, URLs, the stand-in
    and the application's container (``container.redis_client()`` for the start-up PING)."""

    app: web.Application
    sock: Any
    base_url: str
    ws_url: str
    dev_cognito: DevCognito | None
    redis_url: str | None
    container: Container


def prepare_gateway(
    *,
    host: str,
    port: int,
    settings: GatewaySettings,
    redis_url: str | None,
    state_dir: Path | None,
    environ: Mapping[str, str],
    redis_cluster: bool = False,
    connections_table: str | None = None,
    dynamodb_endpoint: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> PreparedGateway:
    """Bind the socket, build the application over the gateway, build the emulator's app.

    ``port`` 0 picks a free port (the JWKS and Management API URLs use the real one).
    ``environ`` is read, never changed. ``overrides`` replace container providers by name
    (tests: ``bootstrap``'s overrides).

    Raises:
        OSError: the address cannot be bound.
        DevKeyError: the state folder or the development key in it cannot be used.
        ConfigurationError: the resulting configuration is invalid.
    """
    sock = listening_socket(host, port)
    try:
        base_url = f"http://{connect_host(host)}:{sock.getsockname()[1]}"
        dev = None if real_cognito_configured(environ) else load_dev_cognito(state_dir)
        ignored = ignored_cognito_variables(environ)
        if ignored:
            logger.warning(
                "%s set without COGNITO_USER_POOL_ID: ignored, the development Cognito "
                "stand-in verifies tokens (set COGNITO_USER_POOL_ID to use a real user pool)",
                ", ".join(ignored),
            )
        variables = gateway_environment(
            base_url=base_url,
            stage=settings.api.stage,
            redis_url=redis_url,
            dev_cognito=dev,
            redis_cluster=redis_cluster,
            connections_table=connections_table,
            dynamodb_endpoint=dynamodb_endpoint,
            environ=environ,
        )
        lambda_settings = handler_settings(environ, variables, gateway=settings)
        ensure_local_failover_table(lambda_settings)
        replaced = {} if redis_url else {"redis_client": embedded_redis_client()}
        container = bootstrap(lambda_settings, **replaced, **(overrides or {}))
        app = create_app(integrations(container), settings, functions=functions(container))
        if lambda_settings.connections_table:
            app.cleanup_ctx.append(reconciling(container.reconcile_handler()))
        if dev is not None:
            add_stand_in_routes(app, dev, base_url)
    except BaseException:
        sock.close()
        raise
    return PreparedGateway(
        app=app,
        sock=sock,
        base_url=base_url,
        ws_url=base_url.replace("http://", "ws://", 1) + "/ws",
        dev_cognito=dev,
        redis_url=redis_url,
        container=container,
    )


def handler_settings(
    environ: Mapping[str, str], variables: Mapping[str, str], *, gateway: GatewaySettings
) -> Settings:
    """The handlers' settings: ``environ`` with the gateway's ``variables`` over it, read as
    Lambda reads its environment, with the gateway's client pools and credentials: DynamoDB
    signs with the environment's (stand-ins when it has none), ``@connections`` calls with the
    first credentials the gateway accepts, since it verifies their SigV4 signature.

    Raises:
        ConfigurationError: the resulting configuration is invalid.
    """
    # One HTTP connection per handler thread: botocore's pool of 10 is a Lambda's size.
    # DynamoDB's gets one more for the reconciler's timer, which runs in its own thread.
    accepted = gateway.credentials[0]
    return attrs.evolve(
        Settings.from_environ({**environ, **variables}),
        dynamodb_max_pool_connections=gateway.workers + 1,
        management_api_max_pool_connections=gateway.workers,
        aws_credentials=aws_credentials_for(environ),
        management_api_credentials=(accepted.access_key_id, accepted.secret_access_key),
    )


def integrations(container: Container) -> dict[str, Integration]:
    """One emulator integration per route of ``entrypoints/routes.py``: its handler, its
    Lambda function's name, one-way or two-way."""
    handlers = container.route_handlers()
    return {
        route.route_key: Integration(
            handler=handlers[route.route_key],
            function_name=f"timeline-ws-{route.function}",
            two_way=route.two_way,
        )
        for route in ROUTES
    }


def functions(container: Container) -> dict[str, Any]:
    """The directly invoked functions of ``entrypoints/routes.py`` (``push``), by name, for
    the emulator's Lambda Invoke API."""
    handlers = container.function_handlers()
    return {function.function: handlers[function.function] for function in FUNCTIONS}


def add_stand_in_routes(app: web.Application, dev: DevCognito, base_url: str) -> None:
    """The development stand-in's JWKS and the demo page with its endpoints."""
    document = dev.key.jwks()

    async def serve_jwks(request: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get(dev.jwks_path, serve_jwks)
    add_demo_routes(app, dev_cognito=dev, base_url=base_url)


def reconciling(reconcile: Any, interval_seconds: float = RECONCILE_INTERVAL_SECONDS) -> Any:
    """An aiohttp cleanup context that runs ``reconcile`` every ``interval_seconds`` while
    the app serves, as EventBridge runs the reconciler Lambda (in a thread: it does I/O)."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()

        async def schedule() -> None:
            while True:
                await asyncio.sleep(interval_seconds)  # a schedule, as EventBridge's
                await loop.run_in_executor(None, reconcile, {"source": "timeline-ws serve"}, None)

        task = loop.create_task(schedule())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context


def redis_ping_failure(prepared: PreparedGateway) -> str | None:
    """PING Redis once with the handlers' own client; the error type when it fails, else ``None``.

    The client's timeouts are the handlers' (0.25 s by default), so this is quick.
    """
    try:
        prepared.container.redis_client().ping()
    except Exception as error:  # any failure is worth the warning; its text may hold the URL
        return type(error).__name__
    return None
