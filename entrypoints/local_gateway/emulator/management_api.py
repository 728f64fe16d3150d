"""The API Gateway Management API (``@connections``) on the local gateway's port.

Follows https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html
and botocore's ``apigatewaymanagementapi`` 2018-11-29 service model, so the real boto3 client
(``endpoint_url="http://127.0.0.1:8080"``, optionally with ``/{stage}``) works unchanged:

- ``POST /@connections/{connectionId}``: the raw body goes to the client as one text frame
  (binary when it is not UTF-8); 200 with an empty body.
- ``GET /@connections/{connectionId}``: 200 ``{"connectedAt", "identity": {"sourceIp",
  "userAgent"}, "lastActiveAt"}`` with ISO-8601 UTC times.
- ``DELETE /@connections/{connectionId}``: 204; the socket closes with 1000 and
  ``$disconnect`` runs with 1000 ``Connection Closed Normally``.

Errors carry ``x-amzn-ErrorType`` (botocore reads the error code from it) and a JSON body
``{"message": …}``: 410 ``GoneException`` for an unknown or closing connection, 413
``PayloadTooLargeException`` over 128 KB, 429 ``LimitExceededException`` when the client does
not read (more than 1 MiB of earlier frames still waits in the gateway for 10 s; the frame is
then not sent), 403 ``ForbiddenException`` for an unsigned request (API Gateway requires
SigV4; the signature itself is not checked locally).

Paths: ``/@connections/{id}`` and ``/{stage}/@connections/{id}``; ``@`` may arrive as
``%40``; the id is URL-decoded exactly once (boto3 sends ``=`` as ``%3D``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web

from entrypoints.local_gateway.emulator.connections import ConnectionRegistry
from entrypoints.local_gateway.emulator.events import iso8601_ms

logger = logging.getLogger("timeline_ws.gateway.management")

MAX_POST_BYTES: Final = 128 * 1024
"""``PostToConnection`` data limit: 128 KB (the service model's ``Data`` max, 131072 bytes)."""

SEND_TIMEOUT_SECONDS: Final = 10.0
"""A POST whose frame the client does not take within 10 s answers 429 ``LimitExceededException``
("the WebSocket client side buffer is full", in the service model)."""

MAX_CLIENT_BUFFER_BYTES: Final = 1024 * 1024
"""How much written-but-untaken data one client may hold in the gateway (beyond what the
kernel's socket buffers took) before a POST waits for room, and then answers 429: without
this bound a client that never reads would grow the gateway's memory without limit."""

_ROOM_POLL_SECONDS: Final = 0.05

DELETE_CLOSE_CODE: Final = 1000
DELETE_DISCONNECT_REASON: Final = "Connection Closed Normally"
"""What ``$disconnect`` reports after ``DeleteConnection`` (captured from API Gateway:
https://github.com/boto/boto3/issues/3789)."""

CONNECTIONS_SEGMENT: Final = "@connections"


def connection_id_from_path(raw_path: str, stage: str) -> str | None:
    """The connectionId addressed by a raw (still percent-encoded) request path, else ``None``.

    Accepts ``/@connections/{id}`` and ``/{stage}/@connections/{id}``; the ``@connections``
    segment may be spelled ``%40connections``; the id is decoded once and must not be empty.
    """
    path = raw_path.split("?", 1)[0]
    segments = path.split("/")
    if len(segments) == 4 and segments[0] == "" and unquote(segments[1]) == stage:
        segments = ["", *segments[2:]]
    if len(segments) != 3 or segments[0] != "" or unquote(segments[1]) != CONNECTIONS_SEGMENT:
        return None
    connection_id = unquote(segments[2])
    return connection_id or None


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response(
        {"message": message},
        status=status,
        headers={"x-amzn-ErrorType": error_type, "x-amzn-RequestId": str(uuid.uuid4())},
    )


async def _read_body(request: web.Request, limit: int) -> bytes | None:
    """The whole request body, or ``None`` as soon as it exceeds ``limit`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _signed(request: web.Request) -> bool:
    return request.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")


class ManagementApi:
    """The ``@connections`` handlers over a :class:`ConnectionRegistry`."""

    def __init__(
        self,
        registry: ConnectionRegistry,
        *,
        stage: str,
        max_post_bytes: int = MAX_POST_BYTES,
        send_timeout_seconds: float = SEND_TIMEOUT_SECONDS,
        max_client_buffer_bytes: int = MAX_CLIENT_BUFFER_BYTES,
    ) -> None:
        self._registry = registry
        self._stage = stage
        self._max_post_bytes = max_post_bytes
        self._send_timeout_seconds = send_timeout_seconds
        self._max_client_buffer_bytes = max_client_buffer_bytes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one ``@connections`` call and log one access line (method, id, status).

        See the module docstring for the contract.
        """
        connection_id = connection_id_from_path(request.rel_url.raw_path, self._stage)
        if connection_id is None:
            return _error(404, "NotFoundException", "Not Found")
        response = await self._dispatch(request, connection_id)
        logger.info(
            "@connections %s connectionId=%s status=%d",
            request.method,
            connection_id,
            response.status,
        )
        return response

    async def _dispatch(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        if not _signed(request):
            return _error(403, "ForbiddenException", "Missing Authentication Token")
        if request.method == "POST":
            return await self._post(request, connection_id)
        if request.method == "GET":
            return self._get(connection_id)
        if request.method == "DELETE":
            return self._delete(connection_id)
        return _error(405, "MethodNotAllowedException", "Method Not Allowed")

    async def _post(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > self._max_post_bytes:
            return _error(413, "PayloadTooLargeException", "Message too long")
        data = await _read_body(request, self._max_post_bytes)
        if data is None:
            return _error(413, "PayloadTooLargeException", "Message too long")
        connection = self._registry.open(connection_id)
        if connection is None:
            return _error(410, "GoneException", "Connection is gone")
        try:
            async with asyncio.timeout(self._send_timeout_seconds):
                # aiohttp's own flow control is not enough here: it waits only every other
                # frame or so, and after one timed-out wait it raises CancelledError (below)
                # until the client reads; so the gateway bounds the buffer itself.
                while connection.buffered_bytes() > self._max_client_buffer_bytes:
                    await asyncio.sleep(_ROOM_POLL_SECONDS)
                    if connection.closing:
                        return _error(410, "GoneException", "Connection is gone")
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    await connection.socket.send_bytes(data)
                else:
                    await connection.socket.send_str(text)
        except TimeoutError:
            # The client does not read: API Gateway's "client side buffer is full".
            return _error(429, "LimitExceededException", "Limit Exceeded")
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request is really being cancelled
            # Not a cancellation of ours: aiohttp awaited again the drain waiter that an
            # earlier timed-out POST cancelled, which it keeps until the client reads.
            return _error(429, "LimitExceededException", "Limit Exceeded")
        except ConnectionError:
            return _error(410, "GoneException", "Connection is gone")
        return web.Response(status=200, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    def _get(self, connection_id: str) -> web.StreamResponse:
        connection = self._registry.open(connection_id)
        if connection is None:
            return _error(410, "GoneException", "Connection is gone")
        identity: dict[str, Any] = {"sourceIp": connection.client.source_ip}
        if connection.client.user_agent is not None:
            identity["userAgent"] = connection.client.user_agent
        document = {
            "connectedAt": iso8601_ms(connection.client.connected_at_ms),
            "identity": identity,
            "lastActiveAt": iso8601_ms(connection.last_active_ms),
        }
        return web.Response(
            text=json.dumps(document),
            content_type="application/json",
            headers={"x-amzn-RequestId": str(uuid.uuid4())},
        )

    def _delete(self, connection_id: str) -> web.StreamResponse:
        connection = self._registry.open(connection_id)
        if connection is None:
            return _error(410, "GoneException", "Connection is gone")
        connection.request_close(DELETE_CLOSE_CODE, DELETE_DISCONNECT_REASON)
        return web.Response(status=204, headers={"x-amzn-RequestId": str(uuid.uuid4())})
