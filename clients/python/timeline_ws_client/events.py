"""What a :class:`~timeline_ws_client.timeline_socket.TimelineSocket` tells its listeners.

One frozen class per event name; listeners registered with ``socket.on(name, callback)`` get
the instance. Times are seconds (the browser module reports milliseconds).
"""

from __future__ import annotations

from typing import Any, Final

import attrs


@attrs.frozen(slots=True, kw_only=True)
class ConnectingEvent:
    """A handshake starts. ``attempt``: the backoff counter (0 for a first or reset attempt);
    ``handover``: it is the successor of a connection near its 2-hour limit."""

    attempt: int
    handover: bool = False


@attrs.frozen(slots=True, kw_only=True)
class HandshakeEvent:
    """The server accepted the handshake (101) after ``seconds``; ``open`` follows with the
    first pong."""

    seconds: float
    handover: bool = False


@attrs.frozen(slots=True, kw_only=True)
class OpenEvent:
    """The connection answered its first ping: it is usable. ``handover``: it replaced a
    connection near its 2-hour limit (which is being closed, and reported nowhere)."""

    connection_id: str
    handover: bool = False


@attrs.frozen(slots=True, kw_only=True)
class PingEvent:
    """A heartbeat ping with this ``id`` was sent."""

    id: str


@attrs.frozen(slots=True, kw_only=True)
class PongEvent:
    """The pong of our ping ``id``: round trip ``rtt_seconds``; ``server_time`` as sent."""

    id: str
    rtt_seconds: float
    connection_id: str | None
    server_time: str | None


@attrs.frozen(slots=True, kw_only=True)
class MessageEvent:
    """A message from the server: the parsed JSON value, or the raw text (or bytes) when it
    is not JSON. Pongs of our own pings are not messages (see :class:`PongEvent`); error
    frames (``{"action": "error", ...}``) are."""

    data: Any


@attrs.frozen(slots=True, kw_only=True)
class CloseEvent:
    """A connection ended, or a handshake failed.

    ``code``/``reason``: the close frame's (1006 and ``""`` without one); ``was_clean``: both
    close frames were exchanged; ``opened``: the handshake had succeeded; ``requested``:
    :meth:`TimelineSocket.close` asked for it; ``status``: the HTTP status of a refused
    handshake; ``error``: the exception's class name when the handshake failed without one
    (``ConnectionRefusedError``, ``TimeoutError``, ...) or ``"HeartbeatTimeout"`` for a
    connection declared dead; ``will_reconnect`` and ``delay_seconds``: whether and when the
    next attempt comes.
    """

    code: int
    reason: str = ""
    was_clean: bool = False
    opened: bool = False
    requested: bool = False
    status: int | None = None
    error: str | None = None
    will_reconnect: bool = False
    delay_seconds: float | None = None


@attrs.frozen(slots=True, kw_only=True)
class ReconnectingEvent:
    """The next attempt is scheduled ``delay_seconds`` from now; ``attempt`` is its counter."""

    attempt: int
    delay_seconds: float


@attrs.frozen(slots=True, kw_only=True)
class AuthErrorEvent:
    """The server refused the token (``status`` 401 or 403) even after a forced refresh: no
    attempt is made until the token provider returns a different token (it is asked again at
    the backoff cadence) or :meth:`TimelineSocket.set_token` gives one. ``reason`` is
    ``"refused"`` (the browser module also reports ``"token_expired"`` and ``"probe"``)."""

    status: int
    reason: str = "refused"


@attrs.frozen(slots=True, kw_only=True)
class TokenErrorEvent:
    """The token provider raised ``error``; it is asked again after ``delay_seconds`` (the
    backoff; ``attempt`` is its counter). The socket does not close."""

    error: Exception
    attempt: int
    delay_seconds: float


@attrs.frozen(slots=True, kw_only=True)
class StateEvent:
    """The state changed (see :data:`STATES`)."""

    state: str
    previous: str


@attrs.frozen(slots=True, kw_only=True)
class DroppedEvent:
    """A message waiting in the full send queue was dropped (the oldest one)."""

    message: str


STATES: Final = ("idle", "connecting", "open", "reconnecting", "auth_error", "closed")
"""``idle`` before ``start``; ``connecting`` during a handshake and until the first pong;
``open``; ``reconnecting`` while waiting for the next attempt; ``auth_error`` while waiting
for a different token; ``closed`` after :meth:`TimelineSocket.close` (or the end of the one
connection when reconnection is off)."""

EVENTS: Final = {
    "connecting": ConnectingEvent,
    "handshake": HandshakeEvent,
    "open": OpenEvent,
    "ping": PingEvent,
    "pong": PongEvent,
    "message": MessageEvent,
    "close": CloseEvent,
    "reconnecting": ReconnectingEvent,
    "auth_error": AuthErrorEvent,
    "token_error": TokenErrorEvent,
    "state": StateEvent,
    "dropped": DroppedEvent,
}
"""Event name -> the class its listeners receive."""
