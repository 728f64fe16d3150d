"""The development demo page of ``timeline-ws serve``: the browser client against the gateway.

Added only when ``serve`` uses its development Cognito stand-in (never with a real user pool,
see :func:`entrypoints.local_gateway.wiring.prepare_gateway`). Routes:

- ``GET /``: ``demo/index.html``, a page that says it is for development, connects with the
  browser client and shows the connectionId, each pong with its round trip and an event log.
- ``GET /client/timeline-ws.js``: the browser module, the npm package ``timeline-ws-client``'s
  one source file (``clients/js/timeline-ws-client.js``; ``demo/timeline-ws-client.js`` is a
  symlink to it, copied into the wheel as package data).
- ``POST /dev/token``: ``{"token": "<access token>"}`` for ``sub`` ``demo-user`` (or the
  JSON body's ``"sub"``), valid ``"expiresIn"`` seconds (default 3600, 1..86400).
- ``POST /dev/connections/{connectionId}/drop``: a Management API ``DeleteConnection`` of that
  connection through the gateway's own ``/{stage}/@connections`` (boto3, signed with the
  credentials the gateway accepts, for its region): the socket
  closes with 1000 and the client reconnects. Answers ``{"status": <the DELETE's status>}``.
- ``POST /dev/handshake-status``: body ``{"token": ...}``; performs a real handshake with that
  token against the gateway's ``/ws`` and answers ``{"status": 101 | 401 | 429 | ...}``
  (closing a successful one at once with 1000). It is the demo page's ``probe``: a browser
  cannot read a refused handshake's status, and API Gateway answers a plain GET on the
  WebSocket endpoint with 426 without running ``$connect`` (see the README's "Clients").

Nothing here logs a token. aiohttp resolves the exact path ``/`` to the gateway's catch-all
``@connections`` route (registered first), so ``GET /`` is served by a middleware; the other
paths are more specific than the catch-all and win as routes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any, Final

import aiohttp
from aiohttp import web

from entrypoints.local_gateway.dev_cognito import MAX_EXPIRES_IN_SECONDS, DevCognito
from entrypoints.local_gateway.emulator.server import GATEWAY_KEY, GatewaySettings

logger = logging.getLogger("timeline_ws.gateway.demo")

DEMO_SUB: Final = "demo-user"
PROBE_TIMEOUT_SECONDS: Final = 10.0
_NO_STORE: Final = {"Cache-Control": "no-store"}


def _read_package_text(package: str, name: str) -> str:
    return resources.files(package).joinpath(name).read_text(encoding="utf-8")


def demo_page() -> str:
    """The demo page's HTML (package data)."""
    return _read_package_text("entrypoints.local_gateway", "demo/index.html")


def client_module() -> str:
    """The browser client's source (package data: the npm package's module)."""
    return _read_package_text("entrypoints.local_gateway", "demo/timeline-ws-client.js")


async def _json_body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = json.loads(await request.text())
    except ValueError:
        raise web.HTTPBadRequest(text="the body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="the body must be a JSON object")
    return body


def add_demo_routes(app: web.Application, *, dev_cognito: DevCognito, base_url: str) -> None:
    """Add the demo page and its development endpoints to the gateway's ``app``.

    ``base_url`` is the gateway's own ``http://host:port`` (its ``/ws`` and ``@connections``);
    ``DeleteConnection`` goes to its stage, signed with the gateway's region and the first
    credentials it accepts. Call it before the app starts (it appends a middleware).
    """
    ws_url = base_url.replace("http://", "ws://", 1) + "/ws"

    @web.middleware
    async def serve_page(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path == "/" and request.method in {"GET", "HEAD"}:
            return web.Response(text=demo_page(), content_type="text/html", headers=_NO_STORE)
        return await handler(request)

    async def serve_module(request: web.Request) -> web.Response:
        return web.Response(text=client_module(), content_type="text/javascript", headers=_NO_STORE)

    async def mint_token(request: web.Request) -> web.Response:
        body = await _json_body(request)
        sub = body.get("sub", DEMO_SUB)
        expires_in = body.get("expiresIn", 3600)
        if not isinstance(sub, str) or not sub.strip():
            raise web.HTTPBadRequest(text="sub must be a non-empty string")
        if (
            not isinstance(expires_in, int)
            or isinstance(expires_in, bool)
            or not 1 <= expires_in <= MAX_EXPIRES_IN_SECONDS
        ):
            raise web.HTTPBadRequest(text=f"expiresIn must be within 1..{MAX_EXPIRES_IN_SECONDS}")
        token = dev_cognito.access_token(sub=sub, expires_in_seconds=expires_in)
        return web.json_response({"token": token}, headers=_NO_STORE)

    async def drop_connection(request: web.Request) -> web.Response:
        connection_id = request.match_info["connection_id"]
        settings = request.app[GATEWAY_KEY].settings
        status = await asyncio.to_thread(
            _delete_connection, f"{base_url}/{settings.api.stage}", settings, connection_id
        )
        logger.info("demo: DeleteConnection %s answered %d", connection_id, status)
        return web.json_response({"status": status}, headers=_NO_STORE)

    async def handshake_status(request: web.Request) -> web.Response:
        token = (await _json_body(request)).get("token")
        if not isinstance(token, str):
            raise web.HTTPBadRequest(text="token must be a string")
        status = await _handshake_status(ws_url, token)
        return web.json_response({"status": status}, headers=_NO_STORE)

    app.middlewares.append(serve_page)
    app.router.add_get("/client/timeline-ws.js", serve_module)
    app.router.add_post("/dev/token", mint_token)
    app.router.add_post("/dev/connections/{connection_id}/drop", drop_connection)
    app.router.add_post("/dev/handshake-status", handshake_status)


def _delete_connection(endpoint_url: str, settings: GatewaySettings, connection_id: str) -> int:
    """``DeleteConnection`` through the gateway's staged ``@connections`` with the real boto3
    client, signed as the gateway requires (its region, the credentials it accepts)."""
    import boto3
    from botocore.exceptions import ClientError

    credentials = settings.credentials[0]
    api = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name=settings.region,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
    )
    try:
        response = api.delete_connection(ConnectionId=connection_id)
    except ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return int(response["ResponseMetadata"]["HTTPStatusCode"])


async def _handshake_status(ws_url: str, token: str) -> int | None:
    """The HTTP status a handshake with ``token`` gets (101 on success); ``None`` when the
    gateway could not be reached."""
    timeout = aiohttp.ClientWSTimeout(ws_receive=PROBE_TIMEOUT_SECONDS)
    try:
        async with (
            aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_SECONDS)
            ) as session,
            session.ws_connect(
                ws_url,
                params={"token": token},
                timeout=timeout,
                headers={"User-Agent": "timeline-ws-demo-probe"},
            ) as ws,
        ):
            await ws.close(code=1000)
            return 101
    except aiohttp.WSServerHandshakeError as error:
        return error.status
    except (aiohttp.ClientError, TimeoutError):
        return None
