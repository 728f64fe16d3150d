"""The local gateway's aiohttp application: WebSocket upgrades, routing, closes, @connections.

Behaviour follows API Gateway's WebSocket API:

- Upgrade (``GET /ws`` or ``GET /{stage}``): a ``$connect`` event goes to the handler before
  the handshake completes; a non-2xx ``statusCode`` rejects the upgrade with that HTTP
  status and no socket; 2xx completes it, passing back ``Sec-WebSocket-Protocol`` when
  the handler returns one (the client's offer is never negotiated or logged here). A
  handler that raises or answers garbage is a 502, one slower than the integration timeout
  (29 s) a 504; nothing of the handler's internals reaches the client
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
- Upgrades over ``connect_rate`` new connections per second (API Gateway: 500) get 429 before
  ``$connect`` runs.
- Messages: route selection on ``$request.body.action``
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html);
  one MESSAGE event per message, invoked as it arrives, concurrently with the connection's
  other messages (API Gateway keeps no order between them); on a two-way route (one with a
  route response) the handler's ``body`` is sent back to the client when its invocation
  returns, on a one-way route it is ignored; a failed invocation sends the client
  ``{"message": "Internal server error", "connectionId", "requestId"}`` as API Gateway does,
  and the socket stays open. A message over the account's request bucket is not invoked and
  gets a ``Too Many Requests`` frame. Frames over 32 KB and messages over 128 KB close the
  socket with 1009; messages to the client go out in frames of at most 32 KB
  (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-execution-service-websocket-limits-table.html).
  Binary frames close it with 1003 (API Gateway rejects them:
  https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-binary-media-types.html)
  unless ``binary_frames="base64"``, which delivers them base64 with ``isBase64Encoded`` true.
- Closes complete the closing handshake (RFC 6455 §7): the side that did not start the close
  answers with a close frame, the gateway waits for the client's answer (at most
  :data:`CLOSE_HANDSHAKE_SECONDS`) before closing TCP, and echoes a client's own code.
- Closes: every close runs ``$disconnect`` once, after the connection's invocations have
  finished, with ``disconnectStatusCode`` / ``disconnectReason`` as API Gateway reports them
  (see :data:`CLIENT_NO_STATUS` and friends), unless ``disconnect_loss`` skips it (logged):
  API Gateway delivers ``$disconnect`` best-effort. Idle timeout (no data frame from the
  client for 10 min) and maximum duration (2 h) close with 1001 ``Going away``.
- Handlers run in a thread pool, so a slow handler never blocks other sockets.
- A request that cannot be parsed is a plain ``400 Bad Request`` and one log line naming the
  error type; nothing of the request is echoed or logged (see :class:`GatewayRunner`).
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import logging
import random
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any, Final

import attrs
from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_websocket import WebSocketError

from entrypoints.local_gateway.emulator.connections import ConnectionRegistry, LiveConnection
from entrypoints.local_gateway.emulator.events import (
    CONNECT_ROUTE,
    DEFAULT_ROUTE,
    DISCONNECT_ROUTE,
    ApiIdentity,
    ClientConnection,
    connect_event,
    disconnect_event,
    message_event,
    new_id,
    now_ms,
    select_route,
)
from entrypoints.local_gateway.emulator.frames import MAX_FRAME_BYTES, guard_frames
from entrypoints.local_gateway.emulator.lambda_context import lambda_context
from entrypoints.local_gateway.emulator.lambda_invoke import INVOKE_PATH, LambdaInvokeApi
from entrypoints.local_gateway.emulator.lambda_invoke import (
    SIGNING_SERVICE as LAMBDA_SIGNING_SERVICE,
)
from entrypoints.local_gateway.emulator.management_api import SIGNING_SERVICE, ManagementApi
from entrypoints.local_gateway.emulator.sigv4 import (
    DEFAULT_CREDENTIALS,
    AwsCredentials,
    SigV4Verifier,
)
from entrypoints.local_gateway.emulator.throttling import (
    ACCOUNT_REQUEST_BURST,
    ACCOUNT_REQUEST_RATE,
    NEW_CONNECTIONS_PER_SECOND,
    TokenBucket,
)

Handler = Callable[[dict[str, Any], Any], Any]
"""A Lambda handler: ``(event, context) -> response dict``."""

access_log = logging.getLogger("timeline_ws.gateway.access")
logger = logging.getLogger("timeline_ws.gateway")

MAX_MESSAGE_BYTES: Final = 128 * 1024
IDLE_TIMEOUT_SECONDS: Final = 600.0
MAX_DURATION_SECONDS: Final = 7200.0
INTEGRATION_TIMEOUT_SECONDS: Final = 29.0

THROTTLED_MESSAGE: Final = "Too Many Requests"
"""The error frame's message for a throttled message (AWS: "Clients may receive 429 Too Many
Requests error responses", https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-protect.html;
the frame's shape is the captured error frame's, see :func:`gateway_error_frame`)."""

GOING_AWAY: Final = (1001, "Going away")
"""Idle timeout, maximum duration and shutdown (captured ``$disconnect`` after an idle timeout)."""
CLIENT_NO_STATUS: Final = (1005, "Client-side close frame status not set")
"""A client close frame without a status code (captured, and in the AWS developer guide)."""
ABNORMAL: Final = (1006, "")
"""The client vanished without a close frame (RFC 6455 1006; reason text not documented)."""
MESSAGE_TOO_BIG: Final = (1009, "Message too big")
UNSUPPORTED_DATA: Final = (1003, "Unsupported data")

MAX_INFLIGHT_PER_CONNECTION: Final = 64
"""Invocations of one connection's messages running at once; the reader stops reading (TCP
back-pressure) while this many are in flight. AWS documents no such bound (its bound is the
account's request rate); this one keeps a flooding client from queueing without limit."""
DEFAULT_REGION: Final = "us-east-1"

CLOSE_HANDSHAKE_SECONDS: Final = 2.0
"""How long the gateway waits for the client's close frame after sending its own."""
READ_LIMIT_BYTES: Final = 1024 * 1024
"""Messages up to this size are read whole, so one over 128 KB gets a clean 1009 close; a
larger one makes aiohttp stop reading at once (the client may then see a reset)."""
_SENDABLE_CLOSE_CODES: Final = frozenset(range(1000, 5000)) - {1004, 1005, 1006, 1015}
"""Codes a close frame may carry (RFC 6455 §7.4): a client's other codes are answered 1000."""

_CLOSE_MESSAGE_TYPES: Final = frozenset(
    {WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR}
)


@attrs.frozen(slots=True, kw_only=True)
class GatewaySettings:
    """How the gateway behaves; the defaults are API Gateway's quotas.

    Attributes:
        api: apiId and stage reported in events; the stage also prefixes the WebSocket and
            ``@connections`` paths.
        idle_timeout_seconds: close after this long without a data frame from the client.
        max_duration_seconds: close this long after the connection opened.
        max_message_bytes: larger messages close the socket with 1009.
        integration_timeout_seconds: a handler slower than this fails the request.
        binary_frames: ``"reject"`` (API Gateway: close with 1003) or ``"base64"``.
        route_keys: the configured routes; ``$default`` plus any custom action routes.
        shutdown_timeout_seconds: how long shutdown waits for ``$disconnect`` handlers.
        client_send_timeout_seconds: a ``POST @connections`` whose frame the client does not
            take within this long answers 429 ``LimitExceededException``.
        workers: threads running handlers (Lambda would scale out; a few threads keep the
            event loop responsive under the GIL).
        queue_warning_seconds: an invocation that waited at least this long for a free
            worker is logged as a WARNING (its wait is on every access line as ``queued_ms``).
            Lambda would have run it at once (up to the account's concurrency), so such a
            wait is this emulator being overloaded, not the handlers being slow.
        region: the API's region: ``@connections`` requests must be signed for it.
        credentials: the access keys ``@connections`` accepts (SigV4, service ``execute-api``).
        deny_manage_connections: every signed ``@connections`` request gets 403
            ``AccessDeniedException``, as for a caller without ``execute-api:ManageConnections``.
        max_frame_bytes: a client frame over this closes the socket with 1009; messages to
            the client go out in frames of at most this (API Gateway: 32 KB).
        connect_rate: new connections per second (a token bucket holding one second's worth);
            a handshake over it gets 429.
        request_rate, request_burst: the account's request bucket, shared by the messages
            (over it: a ``Too Many Requests`` frame, no invocation) and the ``@connections``
            calls (over it: 429 ``LimitExceededException``).
        disconnect_loss: the share (0..1) of ``$disconnect`` invocations skipped, each one
            logged: API Gateway delivers ``$disconnect`` on a best-effort basis.
        disconnect_loss_seed: seeds the skip decisions (``None``: unseeded).
        max_inflight_per_connection: see :data:`MAX_INFLIGHT_PER_CONNECTION`.
    """

    api: ApiIdentity = attrs.field(factory=ApiIdentity)
    idle_timeout_seconds: float = IDLE_TIMEOUT_SECONDS
    max_duration_seconds: float = MAX_DURATION_SECONDS
    max_message_bytes: int = MAX_MESSAGE_BYTES
    integration_timeout_seconds: float = INTEGRATION_TIMEOUT_SECONDS
    binary_frames: str = attrs.field(
        default="reject", validator=attrs.validators.in_(("reject", "base64"))
    )
    route_keys: tuple[str, ...] = (DEFAULT_ROUTE,)
    shutdown_timeout_seconds: float = 35.0
    workers: int = 16
    client_send_timeout_seconds: float = 10.0
    queue_warning_seconds: float = 1.0
    region: str = DEFAULT_REGION
    credentials: tuple[AwsCredentials, ...] = (DEFAULT_CREDENTIALS,)
    deny_manage_connections: bool = False
    max_frame_bytes: int = MAX_FRAME_BYTES
    connect_rate: float = NEW_CONNECTIONS_PER_SECOND
    request_rate: float = ACCOUNT_REQUEST_RATE
    request_burst: int = ACCOUNT_REQUEST_BURST
    disconnect_loss: float = attrs.field(
        default=0.0, validator=[attrs.validators.ge(0.0), attrs.validators.le(1.0)]
    )
    disconnect_loss_seed: int | None = None
    max_inflight_per_connection: int = MAX_INFLIGHT_PER_CONNECTION


@attrs.frozen(slots=True)
class Invocation:
    """The outcome of one handler call: ``status`` (``None`` when the call failed) and ``response``."""

    status: int | None
    response: Mapping[str, Any] | None
    failure: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class Integration:
    """What a route invokes: a Lambda handler, its function's name, and whether the route is two-way.

    Attributes:
        handler: ``(event, context) -> response``.
        function_name: reported in the Lambda context (``context.function_name``).
        two_way: the route has a route response: the handler's ``body`` is sent to the
            client once the invocation returns (:meth:`Gateway.route_response`); on a
            one-way route it is ignored.
    """

    handler: Handler
    function_name: str = "local-function"
    two_way: bool = False


class Gateway:
    """The emulator's state and behaviour; :func:`create_app` exposes it over HTTP.

    Args:
        handlers: route key -> :class:`Integration`, or a bare Lambda handler (a one-way
            route); needs ``$connect``, ``$disconnect`` and ``$default`` (custom route keys
            in ``settings.route_keys`` need one too).
        settings: see :class:`GatewaySettings`.
        executor: where handlers run; a private thread pool by default.

    Raises:
        ValueError: a configured route has no handler.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler | Integration],
        settings: GatewaySettings | None = None,
        executor: concurrent.futures.Executor | None = None,
    ) -> None:
        self.settings = settings or GatewaySettings()
        missing = {CONNECT_ROUTE, DISCONNECT_ROUTE, *self.settings.route_keys} - set(handlers)
        if missing:
            raise ValueError(f"no handler for route(s): {', '.join(sorted(missing))}")
        self.integrations = {
            route: target if isinstance(target, Integration) else Integration(handler=target)
            for route, target in handlers.items()
        }
        self.registry = ConnectionRegistry()
        settings = self.settings
        self.connects = TokenBucket(settings.connect_rate, max(1.0, settings.connect_rate))
        self.requests = TokenBucket(settings.request_rate, settings.request_burst)
        self.management = ManagementApi(
            self.registry,
            stage=settings.api.stage,
            api_id=settings.api.api_id,
            verifier=SigV4Verifier(
                service=SIGNING_SERVICE, region=settings.region, credentials=settings.credentials
            ),
            requests=self.requests,
            deny_manage_connections=settings.deny_manage_connections,
            send_timeout_seconds=settings.client_send_timeout_seconds,
            max_frame_bytes=settings.max_frame_bytes,
        )
        self._loss = random.Random(settings.disconnect_loss_seed)  # noqa: S311 (not security)
        self._own_executor = executor is None
        self.executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="lambda"
        )
        self._sessions: set[asyncio.Task[Any]] = set()
        self.shutting_down = False

    # -- handler invocation ------------------------------------------------------------

    async def invoke(self, route_key: str, event: dict[str, Any]) -> Invocation:
        """Run the route's handler in the pool and log one access line (no tokens, no query)."""
        integration = self.integrations[route_key]
        handler = integration.handler
        timeout = self.settings.integration_timeout_seconds
        context = lambda_context(integration.function_name, timeout)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        began: list[float] = []  # when a worker took it: the wait for a free worker
        outcome: Invocation
        try:
            future = loop.run_in_executor(
                self.executor, _run_handler, handler, event, context, began
            )
            response = await asyncio.wait_for(future, timeout)
        except TimeoutError:
            outcome = Invocation(None, None, "timeout")
        except Exception as error:  # the handler's bug must not kill the gateway
            logger.error(
                "handler %s raised %s",
                route_key,
                type(error).__name__,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            outcome = Invocation(None, None, "error")
        else:
            status = proxy_response_status(response)
            if status is None:
                outcome = Invocation(None, None, "malformed_response")
            else:
                outcome = Invocation(status, response)
        finished = time.perf_counter()
        queued = (began[0] if began else finished) - started
        connection_id = event["requestContext"]["connectionId"]
        access_log.info(
            "%s connectionId=%s route=%s status=%s ms=%.1f queued_ms=%.1f",
            event["requestContext"]["eventType"].lower(),
            connection_id,
            route_key,
            outcome.status if outcome.status is not None else outcome.failure,
            (finished - started) * 1000,
            queued * 1000,
        )
        if queued >= self.settings.queue_warning_seconds:
            logger.warning(
                "%s of connectionId=%s waited %.2f s for a free worker (all %d busy; "
                "Lambda would have run it at once: this gateway is overloaded)",
                route_key,
                connection_id,
                queued,
                self.settings.workers,
            )
        return outcome

    # -- WebSocket sessions --------------------------------------------------------------

    async def handle_upgrade(self, request: web.Request) -> web.StreamResponse:
        """One client: ``$connect``, the handshake, its messages, then ``$disconnect``."""
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            return await self._session(request)
        finally:
            self._sessions.discard(task)

    async def _session(self, request: web.Request) -> web.StreamResponse:
        handshake = _without_subprotocols(request)
        if handshake is None:
            return web.Response(status=400, text="Bad Request")
        probe = web.WebSocketResponse()
        if not probe.can_prepare(handshake).ok:
            return web.Response(
                status=426, text="Upgrade Required", headers={"Upgrade": "websocket"}
            )
        if self.shutting_down:
            return web.Response(status=503)
        if not self.connects.take():
            logger.warning(
                "handshake refused with 429: over %g new connections per second",
                self.settings.connect_rate,
            )
            return web.Response(status=429, text="Too Many Requests")
        peer = request.transport.get_extra_info("peername") if request.transport else None
        client = ClientConnection(
            connection_id=new_id(),
            connected_at_ms=now_ms(),
            domain_name=request.host,
            source_ip=peer[0] if peer else "127.0.0.1",
            user_agent=request.headers.get("User-Agent"),
        )
        sockname = request.transport.get_extra_info("sockname") if request.transport else None
        event = connect_event(
            api=self.settings.api,
            client=client,
            headers=_headers(request),
            query_string=request.rel_url.raw_query_string,
            server_port=sockname[1] if sockname else 0,
        )
        outcome = await self.invoke(CONNECT_ROUTE, event)
        if outcome.status is None:
            return web.Response(status=504 if outcome.failure == "timeout" else 502)
        if not 200 <= outcome.status < 300:
            return web.Response(status=outcome.status)
        socket_response = web.WebSocketResponse(
            # The 128 KB limit is checked in _read, on whole messages, so the close is clean.
            max_msg_size=max(READ_LIMIT_BYTES, self.settings.max_message_bytes + 1),
            compress=False,
            autoping=True,
            # A client's close frame comes to _read, which answers it with the client's code.
            autoclose=False,
            timeout=CLOSE_HANDSHAKE_SECONDS,
        )
        protocol = _returned_protocol(outcome.response)
        if protocol:
            # API Gateway passes the handler's header back as is, offered or not.
            socket_response.headers[hdrs.SEC_WEBSOCKET_PROTOCOL] = protocol
        try:
            await socket_response.prepare(handshake)
        except Exception:  # the client left between $connect and the handshake
            await self._disconnect(client, ABNORMAL)
            raise
        connection = LiveConnection(
            client=client,
            socket=socket_response,
            last_active_ms=client.connected_at_ms,
            transport=handshake.transport,
        )
        guard_frames(
            request.protocol,
            self.settings.max_frame_bytes,
            lambda: self._oversized_frame(connection),
        )
        self.registry.add(connection)
        close = ABNORMAL
        try:
            close = await self._pump(connection)
        finally:
            # Whatever ended the session (even a bug or a cancellation), $disconnect runs once.
            self.registry.remove(client.connection_id)
            await self._disconnect(client, close)
            connection.finished.set()
        return socket_response

    async def _pump(self, connection: LiveConnection) -> tuple[int, str]:
        """Read frames until the connection closes; returns the ``$disconnect`` code and reason.

        Each message is invoked as it arrives, concurrently with the connection's other
        messages (as API Gateway invokes them), at most ``max_inflight_per_connection`` at
        once; the session ends once every invocation has finished.
        """
        inflight: set[asyncio.Task[None]] = set()
        slots = asyncio.Semaphore(self.settings.max_inflight_per_connection)
        loop = asyncio.get_running_loop()

        def finished(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            slots.release()

        async def dispatch(event: dict[str, Any]) -> None:
            await slots.acquire()
            task = loop.create_task(self._handle_message(connection, event))
            inflight.add(task)
            task.add_done_callback(finished)

        try:
            return await self._read(connection, dispatch)
        finally:
            if inflight:
                await asyncio.wait(set(inflight))

    async def _read(
        self,
        connection: LiveConnection,
        dispatch: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> tuple[int, str]:
        """Read the client's frames until the connection closes; this task alone reads.

        A close the gateway starts (:meth:`LiveConnection.request_close`) wakes this loop,
        which sends the close frame and waits for the client's. A client's close frame is
        answered with its own code. A frame over ``max_frame_bytes`` never reaches this loop
        (:class:`~entrypoints.local_gateway.emulator.frames.FrameSizeGuard` drops it and
        requests the 1009 close).
        """
        settings = self.settings
        ws = connection.socket
        max_deadline = time.monotonic() + settings.max_duration_seconds
        idle_deadline = time.monotonic() + settings.idle_timeout_seconds
        if self.shutting_down:
            connection.request_close(*GOING_AWAY)
        while True:
            request = connection.close_request
            if request is not None:
                await _close_handshake(ws, request.code)
                return request.code, request.reason
            remaining = max(0.0, min(idle_deadline, max_deadline) - time.monotonic())
            try:
                async with asyncio.timeout(remaining) as deadline:
                    connection.reading = deadline
                    message = await ws.receive()
            except TimeoutError:
                connection.reading = None
                connection.request_close(*GOING_AWAY)  # idle or maximum duration, unless woken
                continue
            connection.reading = None
            if message.type is WSMsgType.TEXT:
                if _too_big(message.data, settings.max_message_bytes):
                    connection.request_close(*MESSAGE_TOO_BIG)
                    continue
                idle_deadline = time.monotonic() + settings.idle_timeout_seconds
                connection.last_active_ms = now_ms()
                if await self._throttled(connection):
                    continue
                route = select_route(message.data, settings.route_keys)
                await dispatch(self._message_event(connection, route, message.data, False))
            elif message.type is WSMsgType.BINARY:
                if settings.binary_frames == "reject":
                    connection.request_close(*UNSUPPORTED_DATA)
                    continue
                if len(message.data) > settings.max_message_bytes:
                    connection.request_close(*MESSAGE_TOO_BIG)
                    continue
                idle_deadline = time.monotonic() + settings.idle_timeout_seconds
                connection.last_active_ms = now_ms()
                if await self._throttled(connection):
                    continue
                body = base64.b64encode(message.data).decode("ascii")
                await dispatch(self._message_event(connection, DEFAULT_ROUTE, body, True))
            elif message.type is WSMsgType.CLOSE:
                code = int(message.data or 0)
                with contextlib.suppress(Exception):  # the client may be gone already
                    await ws.close(code=code if code in _SENDABLE_CLOSE_CODES else 1000)
                return _client_close(message)
            elif message.type in _CLOSE_MESSAGE_TYPES:
                return _client_close(message)

    async def _throttled(self, connection: LiveConnection) -> bool:
        """Take a token from the account's bucket; without one, the message is not invoked
        and the client gets a ``Too Many Requests`` frame (returns ``True``)."""
        if self.requests.take():
            return False
        logger.warning(
            "message of connectionId=%s throttled: over the account's request rate "
            "(%g/s, burst %d); not invoked",
            connection.connection_id,
            self.settings.request_rate,
            self.settings.request_burst,
        )
        await self._tell(connection, THROTTLED_MESSAGE, new_id())
        return True

    def _oversized_frame(self, connection: LiveConnection) -> None:
        logger.warning(
            "connectionId=%s sent a frame over %d bytes: closing with 1009",
            connection.connection_id,
            self.settings.max_frame_bytes,
        )
        connection.request_close(*MESSAGE_TOO_BIG)

    def _message_event(
        self, connection: LiveConnection, route: str | None, body: str, is_base64: bool
    ) -> dict[str, Any]:
        return message_event(
            api=self.settings.api,
            client=connection.client,
            route_key=route or "",
            body=body,
            is_base64_encoded=is_base64,
        )

    async def _handle_message(self, connection: LiveConnection, event: dict[str, Any]) -> None:
        """Invoke one MESSAGE event's route and send what it answers, as soon as it finishes."""
        context = event["requestContext"]
        route = context["routeKey"]
        if route == "":
            await self._tell(connection, "Forbidden", context["requestId"])
            return
        outcome = await self.invoke(route, event)
        if outcome.status is None:
            message = (
                "Endpoint request timed out"
                if outcome.failure == "timeout"
                else "Internal server error"
            )
            await self._tell(connection, message, context["requestId"])
        elif self.integrations[route].two_way:
            await self.route_response(connection, outcome.response)

    async def route_response(
        self, connection: LiveConnection, response: Mapping[str, Any] | None
    ) -> None:
        """Send a two-way route's response ``body`` to the client as one text frame.

        What API Gateway does with a Lambda proxy integration's response on a route with a
        route response (the sources, and what they leave open, are in the gateway README):
        the ``body`` is the message, whatever the ``statusCode`` (which only counts as an
        ``IntegrationError`` at 4xx/5xx); a missing, ``null`` or empty body is an empty text
        message; ``isBase64Encoded`` is not honoured (the body goes out as text). Choices
        where AWS documents nothing: a body over 128 KB is not sent (logged); a connection
        that began closing during the invocation gets nothing.
        """
        if connection.closing:
            return
        body = response.get("body") if response else None
        body = body if isinstance(body, str) else ""
        if len(body.encode("utf-8", errors="surrogatepass")) > self.settings.max_message_bytes:
            logger.warning(
                "route response over %d bytes not sent to connectionId=%s",
                self.settings.max_message_bytes,
                connection.connection_id,
            )
            return
        with contextlib.suppress(ConnectionError):
            await connection.send(body, self.settings.max_frame_bytes)

    async def _tell(self, connection: LiveConnection, message: str, request_id: str) -> None:
        """API Gateway's own error frame to the client, e.g. after a failed integration."""
        if not connection.closing:
            with contextlib.suppress(ConnectionError):
                await connection.socket.send_str(
                    gateway_error_frame(message, connection.connection_id, request_id)
                )

    async def _disconnect(self, client: ClientConnection, close: tuple[int, str]) -> None:
        """Invoke ``$disconnect``, unless ``disconnect_loss`` drops it (logged)."""
        loss = self.settings.disconnect_loss
        if loss and self._loss.random() < loss:
            logger.warning(
                "$disconnect of connectionId=%s skipped (disconnect loss %g: API Gateway "
                "delivers $disconnect on a best-effort basis)",
                client.connection_id,
                loss,
            )
            return
        event = disconnect_event(
            api=self.settings.api, client=client, status_code=close[0], reason=close[1]
        )
        await self.invoke(DISCONNECT_ROUTE, event)

    # -- lifecycle ---------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Close every socket with 1001 ``Going away`` and wait for each ``$disconnect``.

        Upgrades still in ``$connect`` finish, then close the same way. Waits at most
        ``settings.shutdown_timeout_seconds``.
        """
        self.shutting_down = True
        for connection in self.registry:
            connection.request_close(*GOING_AWAY)
        sessions = [task for task in self._sessions if not task.done()]
        if sessions:
            await asyncio.wait(sessions, timeout=self.settings.shutdown_timeout_seconds)
        if self._own_executor:
            self.executor.shutdown(wait=False, cancel_futures=True)


def _run_handler(handler: Handler, event: dict[str, Any], context: Any, began: list[float]) -> Any:
    """Call ``handler`` in a worker, first noting when the worker took it (``perf_counter``)."""
    began.append(time.perf_counter())
    return handler(event, context)


PROXY_RESPONSE_KEYS: Final = frozenset(
    {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
)
"""The keys of a Lambda proxy response; API Gateway fails a response with any other key
(reported in https://github.com/middyjs/middy/issues/1219: the client then gets the
"Internal server error" frame)."""


def proxy_response_status(response: object) -> int | None:
    """The ``statusCode`` of a well-formed Lambda proxy response, else ``None`` (a failed invocation).

    Well-formed: a mapping with only :data:`PROXY_RESPONSE_KEYS`, an integer ``statusCode``
    within 200..599 and, when present, a string (or ``null``) ``body``.
    """
    if not isinstance(response, Mapping) or not PROXY_RESPONSE_KEYS.issuperset(response):
        return None
    status = response.get("statusCode")
    body = response.get("body")
    if not isinstance(status, int) or isinstance(status, bool) or not 200 <= status <= 599:
        return None
    if body is not None and not isinstance(body, str):
        return None
    return status


async def _close_handshake(ws: web.WebSocketResponse, code: int) -> None:
    """Send a close frame with ``code``, wait (bounded) for the client's, then close TCP.

    aiohttp's ``close()`` does exactly that when no other task is reading the socket; bounded
    by :data:`CLOSE_HANDSHAKE_SECONDS` for the answer, and again for a client that does not
    even read our close frame.
    """
    with contextlib.suppress(Exception):
        async with asyncio.timeout(2 * CLOSE_HANDSHAKE_SECONDS):
            await ws.close(code=code)


def _too_big(text: str, limit: int) -> bool:
    """Whether ``text`` is over ``limit`` bytes of UTF-8 (a character is at most 4 bytes)."""
    return len(text) * 4 > limit and len(text.encode("utf-8", errors="surrogatepass")) > limit


def gateway_error_frame(message: str, connection_id: str, request_id: str) -> str:
    """API Gateway's error frame, byte for byte as captured from a real API, e.g.
    ``{"message": "Internal server error", "connectionId":"VNRUSeldSwMCIRQ=", "requestId":"VNRXVFJOywMF3-Q="}``
    (https://github.com/aws-samples/simple-websockets-chat-app/issues/42)."""
    return (
        f'{{"message": {json.dumps(message)}, "connectionId":{json.dumps(connection_id)}, '
        f'"requestId":{json.dumps(request_id)}}}'
    )


def _headers(request: web.Request) -> list[tuple[str, str]]:
    return [
        (name.decode("latin-1"), value.decode("latin-1")) for name, value in request.raw_headers
    ]


def _without_subprotocols(request: web.Request) -> web.Request | None:
    """``request`` without ``Sec-WebSocket-Protocol``, for aiohttp's handshake; ``None`` if unusable.

    The subprotocol is the handler's choice (it answers ``Sec-WebSocket-Protocol``), not
    aiohttp's: left in, aiohttp negotiates it itself and logs the client's values (a browser
    client may carry its token there) when none matches.
    """
    if hdrs.SEC_WEBSOCKET_PROTOCOL not in request.headers:
        return request
    # Only what the handshake reads: other headers may hold bytes clone() cannot re-encode.
    headers = {
        name: value for name, value in request.headers.items() if name.lower() in _HANDSHAKE_HEADERS
    }
    try:
        return request.clone(headers=headers)
    except UnicodeError:  # a handshake header that is not UTF-8
        return None


_HANDSHAKE_HEADERS: Final = frozenset(
    name.lower()
    for name in (
        hdrs.UPGRADE,
        hdrs.CONNECTION,
        hdrs.SEC_WEBSOCKET_VERSION,
        hdrs.SEC_WEBSOCKET_KEY,
        hdrs.SEC_WEBSOCKET_EXTENSIONS,
    )
)


def _returned_protocol(response: Mapping[str, Any] | None) -> str | None:
    headers = response.get("headers") if response else None
    if not isinstance(headers, Mapping):
        return None
    for name, value in headers.items():
        if (
            isinstance(name, str)
            and name.lower() == "sec-websocket-protocol"
            and isinstance(value, str)
        ):
            return value
    return None


def _client_close(message: Any) -> tuple[int, str]:
    """``disconnectStatusCode`` / ``disconnectReason`` for a close the gateway did not start."""
    if message.type is WSMsgType.CLOSE:
        code = int(message.data or 0)
        if code == 0:
            return CLIENT_NO_STATUS
        return code, str(message.extra or "")
    if message.type is WSMsgType.ERROR and isinstance(message.data, WebSocketError):
        if message.data.code == WSCloseCode.MESSAGE_TOO_BIG:
            return MESSAGE_TOO_BIG
        return int(message.data.code), ""
    return ABNORMAL


async def _health(request: web.Request) -> web.Response:
    gateway: Gateway = request.app[GATEWAY_KEY]
    return web.json_response({"status": "ok", "connections": len(gateway.registry)})


GATEWAY_KEY: Final = web.AppKey("gateway", Gateway)
INVOKE_API_KEY: Final = web.AppKey("invoke_api", LambdaInvokeApi)


def create_app(
    handlers: Mapping[str, Handler | Integration],
    settings: GatewaySettings | None = None,
    functions: Mapping[str, Handler] | None = None,
) -> web.Application:
    """The aiohttp application of the gateway.

    Args:
        handlers: route key -> :class:`Integration` or Lambda handler (see :class:`Gateway`).
        settings: see :class:`GatewaySettings`.
        functions: function name -> Lambda handler, served by Lambda's Invoke API (see
            :mod:`~entrypoints.local_gateway.emulator.lambda_invoke`), signed for the
            gateway's region with the credentials ``@connections`` accepts.

    Routes: ``GET /health``; the WebSocket at ``/ws`` and ``/{stage}``; Lambda's Invoke API
    (``POST /2015-03-31/functions/{name}/invocations``); and ``@connections`` (see
    :mod:`~entrypoints.local_gateway.emulator.management_api`). Add more routes to the
    returned app's router (a path more specific than the ``@connections`` catch-all wins).
    """
    gateway = Gateway(handlers, settings)
    app = web.Application()
    app[GATEWAY_KEY] = gateway
    invoke_api = LambdaInvokeApi(
        functions or {},
        verifier=SigV4Verifier(
            service=LAMBDA_SIGNING_SERVICE,
            region=gateway.settings.region,
            credentials=gateway.settings.credentials,
        ),
        executor=gateway.executor,
    )
    app[INVOKE_API_KEY] = invoke_api
    app.router.add_get("/health", _health)
    app.router.add_get("/ws", gateway.handle_upgrade)
    if gateway.settings.api.stage not in {"ws", "health"}:
        app.router.add_get(f"/{gateway.settings.api.stage}", gateway.handle_upgrade)
    app.router.add_post(INVOKE_PATH, invoke_api.handle)
    app.router.add_route("*", "/{tail:.*}", gateway.management.handle)

    async def on_shutdown(app: web.Application) -> None:
        await gateway.shutdown()

    app.on_shutdown.append(on_shutdown)
    return app


class _GatewayRequestHandler(web.RequestHandler):
    """aiohttp's per-connection protocol, answering requests it cannot serve without echoing them.

    aiohttp answers a request it cannot parse (a bad request line, a control character in the
    query, a line over 8190 bytes, too many headers) with a 400 whose body is the parser's
    message, which quotes the request line (token included), and logs that message with a
    traceback. Here the body is only the status line and the log one line naming the error
    type. aiohttp has no public hook for this (https://github.com/aio-libs/aiohttp/issues/3287).
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A ``{status} {reason}`` text response that closes the connection; logs one line.

        Raises:
            ConnectionError: part of a response was already sent (aiohttp's contract).
        """
        if status < 500 or isinstance(exc, HttpProcessingError):
            logger.warning(
                "rejected a malformed request from %s: %d %s",
                request.remote,
                status,
                type(exc).__name__ if exc is not None else "error",
            )
        else:  # a bug of the gateway: the traceback only at DEBUG, like handler failures
            logger.error(
                "request from %s failed: %d %s",
                request.remote,
                status,
                type(exc).__name__ if exc is not None else "error",
                exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None,
            )
        if request.writer.output_size > 0:
            raise ConnectionError("a response was already partly sent")
        phrase = HTTPStatus(status).phrase if status in _HTTP_STATUSES else "Error"
        response = web.Response(status=status, text=f"{status} {phrase}")
        response.force_close()
        return response

    def log_exception(self, *args: Any, **kw: Any) -> None:
        """aiohttp's other failures ("Unhandled exception", "Missing return statement …"): one
        line with aiohttp's fixed text and the error type, never the exception's message."""
        exc_info = kw.get("exc_info")
        text = args[0] if args and isinstance(args[0], str) and len(args) == 1 else "failure"
        name = type(exc_info).__name__ if isinstance(exc_info, BaseException) else "-"
        logger.error("aiohttp: %s (%s)", text, name)


_HTTP_STATUSES: Final = frozenset(status.value for status in HTTPStatus)


class _GatewayServer(web.Server):
    def __call__(self) -> web.RequestHandler:
        return _GatewayRequestHandler(self, loop=self._loop, **self._kwargs)


class GatewayRunner(web.AppRunner):
    """``web.AppRunner`` whose connections are served by :class:`_GatewayRequestHandler`.

    Use it wherever the gateway's app is served, so no malformed request is echoed or logged.
    """

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        gateway_server = _GatewayServer(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=asyncio.get_running_loop(),
            **server._kwargs,
        )
        return gateway_server


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound, listening TCP socket (``port`` 0 picks a free one); SO_REUSEADDR is set.

    Raises:
        OSError: the address cannot be bound (in use, not this machine's, or not an
            address); its message names ``host:port`` and keeps the system's reason and errno.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise OSError(error.errno, f"cannot listen on {host}:{port}: {reason}") from error
    sock.setblocking(False)
    return sock
