"""The registry of live WebSocket connections the local gateway holds, keyed by connectionId.

A connection enters the registry once ``$connect`` has returned 2xx and the handshake is
complete, and leaves it as soon as it starts closing: API Gateway answers ``@connections``
calls with 410 ``GoneException`` before ``$connect`` has returned and after a close began
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-how-to-call-websocket-api-connections.html).
All methods run on the event loop thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import attrs
from aiohttp import web

from entrypoints.local_gateway.emulator.events import ClientConnection
from entrypoints.local_gateway.emulator.frames import MAX_FRAME_BYTES, send_fragmented


@attrs.frozen(slots=True)
class CloseRequest:
    """A server-side close: the code sent to the client and the ``$disconnect`` reason."""

    code: int
    reason: str


@attrs.define(slots=True, eq=False)
class LiveConnection:
    """One open socket and what API Gateway knows about it.

    Attributes:
        client: the data repeated in every event (id, connectedAt, identity, domain).
        socket: the aiohttp WebSocket.
        last_active_ms: when the client last sent a data frame (epoch ms); starts at
            ``connectedAt``. Reported by ``GET @connections`` as ``lastActiveAt``.
        close_request: set once the gateway decided to close (DELETE, idle timeout, maximum
            duration, shutdown, oversized or binary frame); the reader loop performs the
            closing handshake and reports it.
        finished: set when ``$disconnect`` has run.
        transport: the socket's transport, whose write buffer tells whether the client
            reads (``@connections`` answers 429 while it stays full); None in tests that
            build a connection without one.
    """

    client: ClientConnection
    socket: web.WebSocketResponse
    last_active_ms: int
    transport: asyncio.BaseTransport | None = None
    close_request: CloseRequest | None = None
    finished: asyncio.Event = attrs.field(factory=asyncio.Event)
    reading: asyncio.Timeout | None = None
    """The deadline of the reader's pending ``receive()``; a close request moves it to now."""

    @property
    def connection_id(self) -> str:
        return self.client.connection_id

    @property
    def closing(self) -> bool:
        """True once a close began, from either side."""
        return self.close_request is not None or self.socket.closed

    def request_close(self, code: int, reason: str) -> bool:
        """Close from the server side with ``code``; the first request wins.

        The reader loop, woken here, sends the close frame and completes the closing
        handshake (RFC 6455 §7): it is the one task reading the socket, so the client's close
        frame is read before TCP closes. The ``$disconnect`` event reports ``code`` and
        ``reason``. Returns whether this request started the close.
        """
        if self.close_request is not None or self.socket.closed:
            return False
        self.close_request = CloseRequest(code, reason)
        if self.reading is not None and not self.reading.expired():
            self.reading.reschedule(asyncio.get_running_loop().time())
        return True

    async def send(self, data: str | bytes, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        """Send one message (text for ``str``, binary for ``bytes``) as API Gateway does: in
        frames of at most ``max_frame_bytes`` (32 KB), so a larger one arrives fragmented.

        A message that fits one frame goes through aiohttp (whose flow control waits while
        the client does not read); a larger one is written as its fragments at once.

        Raises:
            ConnectionError: the socket is closing or gone.
        """
        payload_size = len(data) if isinstance(data, bytes) else len(data) * 4
        if payload_size > max_frame_bytes and isinstance(data, str):
            payload_size = len(data.encode("utf-8", errors="surrogatepass"))
        if payload_size <= max_frame_bytes or self.transport is None:
            if isinstance(data, str):
                await self.socket.send_str(data)
            else:
                await self.socket.send_bytes(data)
            return
        if self.socket.closed:
            raise ConnectionResetError("the socket is closing")
        send_fragmented(self.transport, data, max_frame_bytes)

    def buffered_bytes(self) -> int:
        """Bytes written to this client that its socket has not taken yet (0 without a transport)."""
        if isinstance(self.transport, asyncio.WriteTransport):
            return self.transport.get_write_buffer_size()
        return 0


class ConnectionRegistry:
    """Live connections by connectionId (exact, URL-decoded ids)."""

    def __init__(self) -> None:
        self._connections: dict[str, LiveConnection] = {}

    def add(self, connection: LiveConnection) -> None:
        """Register a connection whose ``$connect`` succeeded."""
        self._connections[connection.connection_id] = connection

    def remove(self, connection_id: str) -> None:
        """Forget a connection (idempotent)."""
        self._connections.pop(connection_id, None)

    def open(self, connection_id: str) -> LiveConnection | None:
        """The connection if it is registered and not closing, else ``None`` (API Gateway: 410)."""
        connection = self._connections.get(connection_id)
        if connection is None or connection.closing:
            return None
        return connection

    def __iter__(self) -> Iterator[LiveConnection]:
        return iter(list(self._connections.values()))

    def __len__(self) -> int:
        return len(self._connections)
