"""The API Gateway Management API (``@connections``) on the local gateway's port.

Follows https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html
and botocore's ``apigatewaymanagementapi`` 2018-11-29 service model, so the real boto3 client
(``endpoint_url="http://127.0.0.1:8080/{stage}"``, signed for the gateway's region with the
credentials it accepts) works unchanged:

- ``POST /{stage}/@connections/{connectionId}``: the raw body goes to the client as one
  message (binary when it is not UTF-8), in frames of at most 32 KB; 200 with an empty body.
- ``GET /{stage}/@connections/{connectionId}``: 200 ``{"connectedAt", "identity":
  {"sourceIp", "userAgent"}, "lastActiveAt"}`` with ISO-8601 UTC times.
- ``DELETE /{stage}/@connections/{connectionId}``: 204; the socket closes with 1000 and
  ``$disconnect`` runs with 1000 ``Connection Closed Normally``.

Refusals, in the order they are checked, each with ``x-amzn-ErrorType`` (botocore reads the
error code from it) and nothing changed on the server:

1. Any other path (no stage, another stage, no connectionId): 403 ``ForbiddenException``
   ``Forbidden``.
2. Over the account's request bucket (shared with the WebSocket messages): 429
   ``LimitExceededException``.
3. A body over 128 KB: 413 ``PayloadTooLargeException``.
4. SigV4 (:mod:`~entrypoints.local_gateway.emulator.sigv4`, service ``execute-api``): 403
   ``ForbiddenException`` ``Missing Authentication Token`` when unsigned,
   ``IncompleteSignatureException``, ``UnrecognizedClientException`` or
   ``InvalidSignatureException``.
5. A caller without ``execute-api:ManageConnections`` (``deny_manage_connections``): 403
   ``AccessDeniedException``.
6. A connectionId API Gateway cannot have issued: 400 ``BadRequestException``
   ``Invalid connectionId``.
7. An unknown or closing connection: 410 ``GoneException`` with an empty body, as AWS
   answers it (https://github.com/aws/aws-sdk-java/issues/2200: error code GoneException,
   message null; https://github.com/georgeboot/laravel-echo-api-gateway/issues/9: the body
   is not JSON).
8. A client that does not read (more than 1 MiB of earlier frames still waits in the gateway
   for 10 s; the message is then not sent): 429 ``LimitExceededException``.

``@`` may arrive as ``%40``; the id is URL-decoded exactly once (boto3 sends ``=`` as ``%3D``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
from typing import Any, Final
from urllib.parse import unquote

from aiohttp import web

from entrypoints.local_gateway.emulator.connections import ConnectionRegistry, LiveConnection
from entrypoints.local_gateway.emulator.events import iso8601_ms
from entrypoints.local_gateway.emulator.frames import MAX_FRAME_BYTES
from entrypoints.local_gateway.emulator.request_body import read_body
from entrypoints.local_gateway.emulator.sigv4 import AwsRefusal, SigV4Error, SigV4Verifier
from entrypoints.local_gateway.emulator.throttling import TokenBucket

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
SIGNING_SERVICE: Final = "execute-api"
"""The signing name of the Management API (botocore's ``apigatewaymanagementapi`` model)."""

CONNECTION_ID: Final = re.compile(r"[A-Za-z0-9_-]{15}=")
"""The connectionIds API Gateway issues: 11 bytes as URL-safe base64 (``L0SM9cOFvHcCIhw=``).
AWS documents no format; anything else is refused as malformed (the strict choice)."""

FORBIDDEN: Final = AwsRefusal(403, "ForbiddenException", "Forbidden", "no such resource")
THROTTLED: Final = AwsRefusal(
    429, "LimitExceededException", "Limit Exceeded", "over the account's request rate"
)
TOO_LARGE: Final = AwsRefusal(
    413, "PayloadTooLargeException", "Message too long", "a body over 128 KB"
)
INVALID_CONNECTION_ID: Final = AwsRefusal(
    400, "BadRequestException", "Invalid connectionId", "a malformed connectionId"
)
GONE: Final = AwsRefusal(410, "GoneException", "", "no such connection")
NOT_READING: Final = AwsRefusal(
    429, "LimitExceededException", "Limit Exceeded", "the client does not read"
)
METHOD_NOT_ALLOWED: Final = AwsRefusal(
    405, "MethodNotAllowedException", "Method Not Allowed", "not POST, GET or DELETE"
)
ACCOUNT_ID: Final = "000000000000"
"""The emulated account, in ARNs."""


def connection_id_from_path(raw_path: str, stage: str) -> str | None:
    """The connectionId addressed by a raw (still percent-encoded) request path, else ``None``.

    Only ``/{stage}/@connections/{id}``: API Gateway's Management API lives under the stage
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html);
    the ``@connections`` segment may be spelled ``%40connections``; the id is decoded once
    and must not be empty.
    """
    path = raw_path.split("?", 1)[0]
    segments = path.split("/")
    if len(segments) != 4 or segments[0] != "" or unquote(segments[1]) != stage:
        return None
    if unquote(segments[2]) != CONNECTIONS_SEGMENT:
        return None
    connection_id = unquote(segments[3])
    return connection_id or None


def _error(refusal: AwsRefusal) -> web.Response:
    return web.json_response(
        {refusal.message_key: refusal.message},
        status=refusal.status,
        headers={"x-amzn-ErrorType": refusal.error_type, "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _gone() -> web.Response:
    """410 as API Gateway answers it: the error type in the header, an empty body."""
    return web.Response(
        status=410,
        headers={"x-amzn-ErrorType": "GoneException", "x-amzn-RequestId": str(uuid.uuid4())},
    )


def _raw_headers(request: web.Request) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers
    ]


class ManagementApi:
    """The ``@connections`` handlers over a :class:`ConnectionRegistry`.

    Args:
        registry: the live connections.
        stage: the only stage served (``/{stage}/@connections/{id}``).
        verifier: checks SigV4 (service ``execute-api``, the gateway's region and credentials).
        requests: the account's request bucket (shared with the WebSocket messages); ``None``
            for no throttling.
        deny_manage_connections: answer every signed request 403 ``AccessDeniedException``,
            as for a caller without ``execute-api:ManageConnections``.
        api_id: in the ``AccessDeniedException`` message's resource ARN.
        max_post_bytes, send_timeout_seconds, max_client_buffer_bytes, max_frame_bytes: see
            the module constants.
    """

    def __init__(
        self,
        registry: ConnectionRegistry,
        *,
        stage: str,
        verifier: SigV4Verifier,
        requests: TokenBucket | None = None,
        deny_manage_connections: bool = False,
        api_id: str = "timelinews",
        max_post_bytes: int = MAX_POST_BYTES,
        send_timeout_seconds: float = SEND_TIMEOUT_SECONDS,
        max_client_buffer_bytes: int = MAX_CLIENT_BUFFER_BYTES,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self._registry = registry
        self._stage = stage
        self._verifier = verifier
        self._requests = requests
        self._deny = deny_manage_connections
        self._api_id = api_id
        self._max_post_bytes = max_post_bytes
        self._send_timeout_seconds = send_timeout_seconds
        self._max_client_buffer_bytes = max_client_buffer_bytes
        self._max_frame_bytes = max_frame_bytes

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Dispatch one ``@connections`` call and log one access line.

        The line names the method, the connectionId (``<malformed>`` for one API Gateway
        cannot have issued), the status and, for a refusal, its error type and why, never the
        signature or a token. A path that is not ``/{stage}/@connections/{id}`` (this route
        is the app's catch-all) is logged as the method and the raw path that was asked,
        without its query string (it may hold a token). See the module docstring for the
        contract.
        """
        connection_id = connection_id_from_path(request.rel_url.raw_path, self._stage)
        if connection_id is None:
            forbidden = _error(FORBIDDEN)
            logger.warning(
                "%s %s status=%d refused %s: %s",
                request.method,
                _shown_path(request.rel_url.raw_path),
                forbidden.status,
                FORBIDDEN.error_type,
                FORBIDDEN.reason,
            )
            return forbidden
        response: web.StreamResponse
        try:
            response = await self._serve(request, connection_id)
        except _Refused as refused:
            refusal = refused.refusal
            response = _gone() if refusal is GONE else _error(refusal)
            if refusal is not GONE:
                logger.warning(
                    "@connections %s connectionId=%s status=%d refused %s: %s",
                    request.method,
                    _shown(connection_id),
                    response.status,
                    refusal.error_type,
                    refusal.reason,
                )
                return response
        logger.info(
            "@connections %s connectionId=%s status=%d",
            request.method,
            _shown(connection_id),
            response.status,
        )
        return response

    async def _serve(self, request: web.Request, connection_id: str) -> web.StreamResponse:
        """The checks of the module docstring in order, then the call.

        Raises:
            _Refused: with AWS's answer.
        """
        if self._requests is not None and not self._requests.take():
            raise _Refused(THROTTLED)
        body = await read_body(request, self._max_post_bytes)
        if body is None:
            raise _Refused(TOO_LARGE)
        url = f"{request.scheme}://{request.host}{request.rel_url.raw_path_qs}"
        try:
            access_key_id = self._verifier.verify(
                method=request.method, url=url, headers=_raw_headers(request), body=body
            )
        except SigV4Error as error:
            raise _Refused(error.refusal) from None
        if self._deny:
            raise _Refused(self._access_denied(request.method, access_key_id, connection_id))
        if CONNECTION_ID.fullmatch(connection_id) is None:
            raise _Refused(INVALID_CONNECTION_ID)
        if request.method == "POST":
            return await self._post(body, connection_id)
        if request.method == "GET":
            return self._get(connection_id)
        if request.method == "DELETE":
            return self._delete(connection_id)
        raise _Refused(METHOD_NOT_ALLOWED)

    def _access_denied(self, method: str, access_key_id: str, connection_id: str) -> AwsRefusal:
        """IAM's refusal as API Gateway words it (knowledge-center api-gateway-iam-sigv4-mismatch)."""
        region = self._verifier.region
        resource = (
            f"arn:aws:execute-api:{region}:{ACCOUNT_ID}:{self._api_id}/{self._stage}/"
            f"{method}/@connections/{connection_id}"
        )
        message = (
            f"User: arn:aws:iam::{ACCOUNT_ID}:user/{access_key_id} is not authorized to "
            f"perform: execute-api:ManageConnections on resource: {resource}"
        )
        return AwsRefusal(
            403,
            "AccessDeniedException",
            message,
            "the caller lacks execute-api:ManageConnections (--deny-manage-connections)",
            message_key="Message",
        )

    async def _post(self, data: bytes, connection_id: str) -> web.StreamResponse:
        connection = self._open(connection_id)
        try:
            async with asyncio.timeout(self._send_timeout_seconds):
                # aiohttp's own flow control is not enough here: it waits only every other
                # frame or so, and after one timed-out wait it raises CancelledError (below)
                # until the client reads; so the gateway bounds the buffer itself.
                while connection.buffered_bytes() > self._max_client_buffer_bytes:
                    await asyncio.sleep(_ROOM_POLL_SECONDS)
                    if connection.closing:
                        raise _Refused(GONE)
                message: str | bytes
                try:
                    message = data.decode("utf-8")
                except UnicodeDecodeError:
                    message = data
                await connection.send(message, self._max_frame_bytes)
        except TimeoutError:
            raise _Refused(NOT_READING) from None  # API Gateway's "client side buffer is full"
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this request is really being cancelled
            # Not a cancellation of ours: aiohttp awaited again the drain waiter that an
            # earlier timed-out POST cancelled, which it keeps until the client reads.
            raise _Refused(NOT_READING) from None
        except ConnectionError:
            raise _Refused(GONE) from None
        return web.Response(status=200, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    def _get(self, connection_id: str) -> web.StreamResponse:
        connection = self._open(connection_id)
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
        self._open(connection_id).request_close(DELETE_CLOSE_CODE, DELETE_DISCONNECT_REASON)
        return web.Response(status=204, headers={"x-amzn-RequestId": str(uuid.uuid4())})

    def _open(self, connection_id: str) -> LiveConnection:
        connection = self._registry.open(connection_id)
        if connection is None:
            raise _Refused(GONE)
        return connection


class _Refused(Exception):
    def __init__(self, refusal: AwsRefusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


MAX_SHOWN_PATH_CHARS: Final = 200


def _shown_path(raw_path: str) -> str:
    """A requested path for the log: still percent-encoded (no line breaks or control
    characters can be forged into the log), cut at 200 characters."""
    if len(raw_path) <= MAX_SHOWN_PATH_CHARS:
        return raw_path
    return raw_path[:MAX_SHOWN_PATH_CHARS] + "…"


def _shown(connection_id: str) -> str:
    """The connectionId for the log: ``<malformed>`` rather than a stranger's text."""
    return connection_id if CONNECTION_ID.fullmatch(connection_id) else "<malformed>"
