"""``TimelineSocket``: an asyncio client of the timeline WebSocket that stays connected.

It follows :mod:`timeline_ws_client.policy` (the numbers the browser module shares):

- a token provider is asked before every attempt (``provider(force_refresh=False)``, sync or
  async), and again with ``force_refresh=True`` when the token expires within 60 s; a provider
  that raises is asked again after the backoff delay (a ``token_error`` event each time);
- heartbeat pings ``{"action":"ping","id":"tws:..."}`` every 30 s, one at once after the handshake:
  its pong carries the connectionId and makes the connection ``open``; round trips per pong;
  a connection silent for too long with a ping unanswered is declared dead and replaced;
- full-jitter backoff between attempts, reset after a connection stayed open 5 s; a clean
  server close (1000, 1001) of a stable connection reconnects within 1 s;
- a handshake refused with 401 or 403 gets one forced token refresh at once; refused again,
  the socket reports ``auth_error`` (:meth:`TimelineSocket.wait_open` raises
  :class:`AuthError`) and waits until the provider returns a different token or
  :meth:`TimelineSocket.set_token` gives one (a wrong path or stage on API Gateway answers
  403 too, which cannot be told from a refused token); any other answer but 101, 429 or a
  5xx (200 from a web page, 404, 405...), or a URL websockets cannot use, stops the socket
  (:class:`ConfigurationError`); 429, 5xx and network errors back off;
- :meth:`TimelineSocket.reconnect` drops the connection and attempts at once, backoff reset;
- near API Gateway's 2-hour limit a successor connection is opened first and the old one
  closed (1000) once the successor answered its first ping; that close is reported nowhere;
- a bounded queue (100) keeps messages sent while disconnected, the oldest dropped first
  (``dropped``); a message over 32 KB goes out in fragments of at most 32 KB (API Gateway's
  frame quota); over 128 KB it is refused with :class:`MessageTooLargeError`.

Example::

    async with TimelineSocket(url, static_token(token)) as socket:
        socket.on("message", lambda event: print(event.data))
        await socket.wait_open(timeout=10)
        await socket.send({"action": "ping", "id": "1"})
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random as random_module
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, Protocol

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from timeline_ws_client.errors import AuthError, ConfigurationError
from timeline_ws_client.events import (
    EVENTS,
    AuthErrorEvent,
    CloseEvent,
    ConnectingEvent,
    DroppedEvent,
    HandshakeEvent,
    MessageEvent,
    OpenEvent,
    PingEvent,
    PongEvent,
    ReconnectingEvent,
    StateEvent,
    TokenErrorEvent,
)
from timeline_ws_client.policy import (
    AUTH_REFUSAL_STATUSES,
    DEFAULT_POLICY,
    HEARTBEAT_ID_PREFIX,
    Backoff,
    ClientPolicy,
    Liveness,
    Random,
    SendQueue,
    backoff_delay,
    check_message_size,
    fragments,
    handover_delay,
    is_configuration_status,
    token_expires_soon,
)

logger = logging.getLogger("timeline_ws.client")

ABNORMAL_CLOSE: Final = 1006
HEARTBEAT_TIMEOUT: Final = "HeartbeatTimeout"
HANDOVER_REASON: Final = "handover"
RECONNECT_REASON: Final = "reconnect"


class TokenProvider(Protocol):
    """Returns a token (or an awaitable of one); ``force_refresh=True`` asks for a new one
    rather than a cached one."""

    def __call__(self, *, force_refresh: bool = False) -> str | Awaitable[str]: ...


def static_token(token: str) -> TokenProvider:
    """A provider that always returns ``token`` (load tests, scripts)."""

    def provide(*, force_refresh: bool = False) -> str:
        return token

    return provide


Connect = Callable[..., Awaitable[ClientConnection]]
Listener = Callable[[Any], object]


def url_with_token(url: str, token: str) -> str:
    """``url`` with ``token`` as its ``token`` query parameter (percent-encoded; replaces any)."""
    parts = urllib.parse.urlsplit(url)
    query = [
        (name, value)
        for name, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if name != "token"
    ]
    query.append(("token", token))
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query), "")
    )


async def _send_text(ws: ClientConnection, text: str) -> None:
    """Send ``text`` as one message: in one frame up to 32 KB of UTF-8, else fragmented in
    frames of at most 32 KB (API Gateway's frame quota; it reassembles up to 128 KB)."""
    pieces = fragments(text)
    await ws.send(pieces[0] if len(pieces) == 1 else pieces)


@attrs.define(slots=True, kw_only=True)
class _Outcome:
    """How one attempt or connection ended (before the decision about the next attempt)."""

    code: int = ABNORMAL_CLOSE
    reason: str = ""
    was_clean: bool = False
    opened: bool = False
    opened_at: float = 0.0
    closed_at: float = 0.0
    status: int | None = None
    error: str | None = None


class _Link:
    """One WebSocket connection: its receiver, its heartbeat and its liveness."""

    def __init__(self, owner: TimelineSocket, ws: ClientConnection, *, handover: bool) -> None:
        self.owner = owner
        self.ws = ws
        self.handover = handover
        self.opened_at = owner._clock()
        self.liveness = Liveness(owner.policy, last_message_at=self.opened_at)
        self.connection_id: str | None = None
        self.ready = asyncio.Event()
        self.retired = False
        self.requested = False
        self.dead = False
        self.pinging = True
        self._sequence = 0
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.finished: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._receive()), loop.create_task(self._heartbeat())]

    # -- heartbeat ------------------------------------------------------------------------

    def _next_id(self) -> str:
        self._sequence += 1
        return f"{HEARTBEAT_ID_PREFIX}{self.owner.ping_prefix}{self._sequence}"

    async def _send_ping(self, *, check: bool = False) -> None:
        ping_id = self._next_id()
        now = self.owner._clock()
        if check:
            self.liveness.check_sent(ping_id, now)
        else:
            self.liveness.ping_sent(ping_id, now)
        try:
            await self.ws.send(json.dumps({"action": "ping", "id": ping_id}))
        except ConnectionClosed:
            self.liveness.pending.pop(ping_id, None)
            return
        self.owner._emit("ping", PingEvent(id=ping_id))

    async def check(self) -> None:
        """Ping at once with the short deadline (the network came back, the app woke up)."""
        await self._send_ping(check=True)
        self._wake.set()

    async def _heartbeat(self) -> None:
        policy = self.owner.policy
        clock = self.owner._clock
        await self._send_ping()
        next_ping = clock() + policy.ping_interval_seconds + self.owner.heartbeat_offset_seconds
        while True:
            now = clock()
            if self.liveness.is_dead(now):
                self.dead = True
                logger.info("connection %s declared dead", self.connection_id)
                self.ws.transport.abort()
                return
            if self.pinging and now >= next_ping:
                await self._send_ping()
                next_ping = clock() + policy.ping_interval_seconds
                continue
            wake = next_ping if self.pinging else now + policy.ping_interval_seconds
            oldest = self.liveness.oldest_unanswered()
            if oldest is not None:
                wake = min(
                    wake,
                    max(
                        oldest + policy.pong_timeout_seconds,
                        self.liveness.last_message_at + policy.dead_after_seconds,
                    ),
                )
            if self.liveness.check_sent_at is not None:
                wake = min(wake, self.liveness.check_sent_at + policy.check_deadline_seconds)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, wake - clock()))

    # -- receiving ------------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            while True:
                try:
                    message = await self.ws.recv()
                except ConnectionClosed:
                    return
                self._handle(message)
        finally:
            for task in self._tasks:
                if task is not asyncio.current_task():
                    task.cancel()
            if not self.finished.done():
                self.finished.set_result(self._outcome())

    def _handle(self, message: str | bytes) -> None:
        now = self.owner._clock()
        data: Any = message
        if isinstance(message, str):
            with contextlib.suppress(ValueError):
                data = json.loads(message)
        if isinstance(data, dict) and data.get("action") == "pong":
            rtt = self.liveness.pong_received(str(data.get("id")), now)
            if rtt is not None:
                connection_id = data.get("connectionId")
                if self.connection_id is None and isinstance(connection_id, str):
                    self.connection_id = connection_id
                server_time = data.get("serverTime")
                self.owner._emit(
                    "pong",
                    PongEvent(
                        id=str(data.get("id")),
                        rtt_seconds=rtt,
                        connection_id=self.connection_id,
                        server_time=server_time if isinstance(server_time, str) else None,
                    ),
                )
                if not self.ready.is_set():
                    self.ready.set()
                    self.owner._link_ready(self)
                return
        self.liveness.message_received(now)
        self.owner._emit("message", MessageEvent(data=data))

    def _outcome(self) -> _Outcome:
        protocol = self.ws.protocol
        code = protocol.close_code
        return _Outcome(
            code=ABNORMAL_CLOSE if code is None else int(code),
            reason=protocol.close_reason or "",
            was_clean=protocol.close_rcvd is not None and protocol.close_sent is not None,
            opened=True,
            opened_at=self.opened_at,
            closed_at=self.owner._clock(),
            error=HEARTBEAT_TIMEOUT if self.dead else None,
        )

    # -- closing --------------------------------------------------------------------------

    async def close(self, code: int, reason: str, drain_seconds: float = 0.0) -> None:
        """Stop pinging, wait (bounded) for pongs of pings already sent, then close."""
        self.pinging = False
        self._wake.set()
        if drain_seconds > 0 and self.liveness.pending and not self.finished.done():
            deadline = self.owner._clock() + drain_seconds
            while self.liveness.pending and not self.finished.done():
                remaining = deadline - self.owner._clock()
                if remaining <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self.finished), min(remaining, 0.05))
        with contextlib.suppress(Exception):
            await self.ws.close(code, reason)
        await asyncio.shield(self.finished)

    def abort(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.ws.transport.abort()


class TimelineSocket:
    """A WebSocket client of timeline-ws that reconnects, heartbeats and hands over.

    Args:
        url: ``ws://`` or ``wss://`` URL of the API (without the token; any ``token`` query
            parameter is replaced).
        token_provider: called before every attempt, see :class:`TokenProvider`.
        policy: the shared numbers (:class:`~timeline_ws_client.policy.ClientPolicy`).
        reconnect: ``False`` makes one attempt only: whatever ends it, the socket is then
            ``closed`` (the load test's clients).
        heartbeat_offset_seconds: added to the first interval after the opening ping, to
            spread the pings of many clients (seconds, 0 or more).
        open_timeout_seconds / close_timeout_seconds: bounds of a handshake and of a closing
            handshake.
        user_agent: the ``User-Agent`` header (websockets' own when ``None``).
        connect_options: more keyword arguments for ``websockets.asyncio.client.connect``.
        clock: wall-clock seconds (``time.time``): liveness, round trips, handover, token
            expiry. random: draws in [0, 1) for the jitters. connect: the connect function.
        ping_prefix: added after :data:`~timeline_ws_client.policy.HEARTBEAT_ID_PREFIX` in
            heartbeat ping ids (ids are ``tws:<ping_prefix><n>``).

    Raises:
        ConfigurationError: a URL that is not ``ws://`` or ``wss://``, or that websockets
            cannot use (a bad port, no host); a ``ValueError``.
        ValueError: a negative offset.
    """

    def __init__(
        self,
        url: str,
        token_provider: TokenProvider,
        *,
        policy: ClientPolicy = DEFAULT_POLICY,
        reconnect: bool = True,
        heartbeat_offset_seconds: float = 0.0,
        open_timeout_seconds: float = 30.0,
        close_timeout_seconds: float = 5.0,
        user_agent: str | None = None,
        connect_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        random: Random = random_module.random,
        connect: Connect = connect,
        ping_prefix: str = "",
    ) -> None:
        try:
            parts = urllib.parse.urlsplit(url)
            scheme, _ = parts.scheme, parts.port  # .port raises on a port that is not one
        except ValueError as error:
            raise ConfigurationError(f"the URL cannot be used: {error}") from None
        if scheme not in {"ws", "wss"}:
            raise ConfigurationError("the URL must start with ws:// or wss://")
        try:
            parse_uri(url)
        except (InvalidURI, ValueError) as error:
            raise ConfigurationError(f"the URL cannot be used: {error}") from None
        if not heartbeat_offset_seconds >= 0:
            raise ValueError("heartbeat_offset_seconds must be 0 or more")
        self.url = url
        self.policy = policy
        self.auto_reconnect = reconnect
        self.heartbeat_offset_seconds = heartbeat_offset_seconds
        self.ping_prefix = ping_prefix
        self._token_provider = token_provider
        self._clock = clock
        self._random = random
        self._connect = connect
        self._connect_options: dict[str, Any] = {
            "open_timeout": open_timeout_seconds,
            "close_timeout": close_timeout_seconds,
            "ping_interval": None,  # the heartbeat is ours, in the protocol's own pings
            **({"user_agent_header": user_agent} if user_agent is not None else {}),
            **(connect_options or {}),
        }
        self._listeners: dict[str, list[Listener]] = {name: [] for name in EVENTS}
        self._queue: SendQueue[str] = SendQueue(policy.queue_limit)
        self._backoff = Backoff(policy)
        self.state = "idle"
        self._current: _Link | None = None
        self._successor: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._stop: asyncio.Event | None = None
        self._opened: asyncio.Event | None = None
        self._kick: asyncio.Event | None = None
        self._failed: asyncio.Event | None = None
        self._failure: AuthError | ConfigurationError | None = None
        self._close_args: tuple[int, str, float] = (1000, "", 0.0)

    # -- public API -----------------------------------------------------------------------

    @property
    def connection_id(self) -> str | None:
        """The connectionId of the open connection (from its first pong), else ``None``."""
        link = self._current
        return link.connection_id if link is not None and link.ready.is_set() else None

    @property
    def queued(self) -> int:
        """Messages waiting for a connection."""
        return len(self._queue)

    def on(self, event: str, listener: Listener) -> None:
        """Call ``listener(event_object)`` on ``event`` (see :data:`events.EVENTS`).

        Raises:
            ValueError: an unknown event name.
        """
        self._listeners_of(event).append(listener)

    def off(self, event: str, listener: Listener) -> None:
        """Stop calling ``listener`` on ``event`` (no error when it was not registered).

        Raises:
            ValueError: an unknown event name (as :meth:`on`).
        """
        listeners = self._listeners_of(event)
        with contextlib.suppress(ValueError):
            listeners.remove(listener)

    def start(self) -> None:
        """Start connecting in the running event loop and return at once: a plain call, not
        a coroutine (``socket.start()``, no ``await``; ``async with`` calls it). Idempotent.
        :meth:`wait_open` waits for the connection.

        Raises:
            RuntimeError: after :meth:`close`, or outside a running event loop (call it from
                a coroutine).
        """
        if self._stopping:
            raise RuntimeError("the socket was closed")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "start() needs a running event loop: call it from a coroutine (it is not awaited)"
            ) from None
        if self._task is None:
            self._stop = asyncio.Event()
            self._opened = asyncio.Event()
            self._kick = asyncio.Event()
            self._failed = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_open(self, timeout: float | None = None) -> str:
        """Wait until a connection is open; returns its connectionId. After
        :meth:`reconnect`, that is the new connection's, not the one being replaced.

        Raises:
            AuthError: the server refused the token (401/403) after a forced refresh, at once
                (also when the socket is already at ``auth_error``); the socket goes on
                waiting for a different token.
            ConfigurationError: the handshake got an answer no retry can fix (not 101, 401,
                403, 429 or 5xx: e.g. 200, 404), or websockets cannot use the URL; the socket
                stopped.
            TimeoutError: not open within ``timeout`` seconds.
            RuntimeError: the socket is not started, or it closed for good meanwhile.
        """
        if self._opened is None or self._task is None or self._failed is None:
            raise RuntimeError("start() the socket first")
        if self._failure is not None and not self._opened.is_set():
            raise self._failure
        opened = asyncio.ensure_future(self._opened.wait())
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            done, _ = await asyncio.wait(
                {opened, failed, self._task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            opened.cancel()
            failed.cancel()
        connection_id = self.connection_id
        if connection_id is not None and self._opened.is_set():
            return connection_id
        if self._failure is not None:
            raise self._failure
        if not done:
            raise TimeoutError("the socket did not open in time")
        raise RuntimeError(f"the socket is {self.state}")

    async def wait_closed(self) -> None:
        """Wait until the socket stopped for good (after :meth:`close`, or with reconnection
        off, after its one connection ended)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def send(self, message: Mapping[str, Any] | str) -> bool:
        """Send ``message`` (a dict is JSON-encoded) now if a connection is open, else queue it.

        Returns ``True`` when it was written to an open connection, ``False`` when it waits in
        the queue (where the oldest message is dropped past the bound, with a ``dropped``
        event). A message over 32 KB of UTF-8 goes out as one fragmented message, in frames
        of at most 32 KB (API Gateway's frame quota).

        Raises:
            MessageTooLargeError: over ``max_message_bytes`` (128 KB) of UTF-8 (nothing is
                sent or queued).
            RuntimeError: after :meth:`close`.
        """
        if self._stopping:
            raise RuntimeError("the socket was closed")
        text = message if isinstance(message, str) else json.dumps(message, separators=(",", ":"))
        check_message_size(text, self.policy.max_message_bytes)
        link = self._current
        if self.state == "open" and link is not None and not self._queue:
            try:
                await _send_text(link.ws, text)
            except ConnectionClosed:
                pass
            else:
                return True
        self._enqueue(text)
        return False

    async def check(self) -> None:
        """Ping the open connection at once with a short deadline (5 s): call it when the
        network may have changed; a connection that does not answer is replaced."""
        link = self._current
        if link is not None and link.ready.is_set() and not link.finished.done():
            await link.check()

    def reconnect(self) -> None:
        """Attempt at once: the open connection (if any) is closed with 1000 ``"reconnect"``
        (its ``close`` event has ``requested=True`` and ``will_reconnect=True``), a backoff or
        ``auth_error`` wait ends, the backoff counter resets and the token provider is asked
        again. A handshake under way finishes first. Call it after a login or a network change.
        From now on :meth:`wait_open` waits for the new connection (the old one may serve
        until it closed, and :attr:`connection_id` names it meanwhile).

        Raises:
            RuntimeError: the socket is not started, or it was closed.
        """
        if self._stopping:
            raise RuntimeError("the socket was closed")
        if self._kick is None or self._failed is None:
            raise RuntimeError("start() the socket first")
        self._failure = None  # a refused token is no reason to fail wait_open() any more
        self._failed.clear()
        self._opened_clear()  # wait_open() now waits for the connection this one asks for
        self._kick.set()

    def set_token(self, token: str) -> None:
        """Use ``token`` for every later attempt (the provider is no longer asked); at
        ``auth_error``, attempt at once (:meth:`reconnect`)."""
        self._token_provider = static_token(token)
        if self.state == "auth_error" and self._kick is not None and not self._stopping:
            self.reconnect()

    async def close(
        self, code: int = 1000, reason: str = "", *, drain_seconds: float = 0.0
    ) -> None:
        """Stop for good: no new pings; wait up to ``drain_seconds`` for the pongs of pings
        already sent; close the connection with ``code``; no reconnection. Idempotent."""
        if self._task is None:
            self._stopping = True
            self._set_state("closed")
            return
        if not self._stopping:
            self._stopping = True
            self._close_args = (code, reason, drain_seconds)
            assert self._stop is not None
            self._stop.set()
        await asyncio.shield(self._task)

    def abort(self) -> None:
        """Stop at once, without a closing handshake (e.g. when the caller is cancelled)."""
        self._stopping = True
        if self._stop is not None:
            self._stop.set()
        for link in (self._current,):
            if link is not None:
                link.abort()
        if self._successor is not None:
            self._successor.cancel()
        if self._task is not None:
            self._task.cancel()

    async def __aenter__(self) -> TimelineSocket:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- events ---------------------------------------------------------------------------

    def _listeners_of(self, event: str) -> list[Listener]:
        try:
            return self._listeners[event]
        except KeyError:
            raise ValueError(f"unknown event {event!r}; known: {', '.join(EVENTS)}") from None

    def _emit(self, event: str, payload: object) -> None:
        for listener in list(self._listeners[event]):
            try:
                listener(payload)
            except Exception:  # a listener's bug must not stop the socket
                logger.exception("a %s listener raised", event)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            previous, self.state = self.state, state
            self._emit("state", StateEvent(state=state, previous=previous))

    def _enqueue(self, text: str, *, front: bool = False) -> None:
        dropped = self._queue.push_front(text) if front else self._queue.push(text)
        if dropped is not None:
            self._emit("dropped", DroppedEvent(message=dropped))

    # -- the connection loop --------------------------------------------------------------

    async def _token(self, force_refresh: bool) -> str:
        token = await self._ask(force_refresh)
        margin = self.policy.token_refresh_margin_seconds
        if not force_refresh and token_expires_soon(token, self._clock(), margin):
            token = await self._ask(True)
        return token

    async def _ask(self, force_refresh: bool) -> str:
        value = self._token_provider(force_refresh=force_refresh)
        if inspect.isawaitable(value):
            value = await value
        if not isinstance(value, str):
            raise TypeError("the token provider must return a str")
        return value

    async def _sleep(self, seconds: float, *, kickable: bool = True) -> bool:
        """Wait ``seconds``, or until :meth:`reconnect` (when ``kickable``); ``False`` when
        :meth:`close` interrupted the wait."""
        assert self._stop is not None and self._kick is not None
        waiters = {asyncio.ensure_future(self._stop.wait())}
        if kickable:
            waiters.add(asyncio.ensure_future(self._kick.wait()))
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds))
        finally:
            for waiter in waiters:
                waiter.cancel()
        return not self._stopping

    def _fail(self, failure: AuthError | ConfigurationError) -> None:
        assert self._failed is not None
        self._failure = failure
        self._failed.set()

    async def _run(self) -> None:
        assert self._kick is not None and self._failed is not None
        force_refresh = False
        forced_failed = False
        refused: str | None = None
        try:
            while not self._stopping:
                if self._kick.is_set():  # reconnect(): start afresh, at once
                    self._kick.clear()
                    self._backoff.attempt = 0
                    refused, force_refresh, forced_failed = None, False, False
                try:
                    token = await self._token(force_refresh)
                except Exception as error:  # the provider's failure: report, back off, ask again
                    delay = self._backoff.next_delay(self._random)
                    self._emit(
                        "token_error",
                        TokenErrorEvent(
                            error=error, attempt=self._backoff.attempt, delay_seconds=delay
                        ),
                    )
                    if refused is None:
                        self._set_state("reconnecting")
                    if not await self._sleep(delay):
                        break
                    continue
                if refused is not None:
                    if token == refused:  # never retry a token the server refused
                        if not await self._sleep(self._backoff.next_delay(self._random)):
                            break
                        continue
                    refused = None
                    forced_failed = False
                self._failure = None
                self._failed.clear()
                used_forced, force_refresh = force_refresh, False
                outcome, requested = await self._connection(token)
                if self._kick.is_set() and not self._stopping:
                    self._emit_close(outcome, requested=True, will_reconnect=True, delay=0.0)
                    continue
                if requested or self._stopping or not self.auto_reconnect:
                    self._emit_close(outcome, requested=requested or self._stopping)
                    break
                if (
                    outcome.status is not None and is_configuration_status(outcome.status)
                ) or outcome.error == "InvalidURI":
                    self._emit_close(outcome, will_reconnect=False)
                    self._fail(
                        ConfigurationError(
                            f"the server answered the handshake with {outcome.status}, not 101:"
                            " the URL is not the WebSocket API's"
                            if outcome.status is not None
                            else "websockets cannot use the URL",
                            status=outcome.status,
                        )
                    )
                    break
                if outcome.opened:
                    forced_failed = False
                    delay = self._backoff.connection_closed(
                        code=outcome.code,
                        opened_at=outcome.opened_at,
                        closed_at=outcome.closed_at,
                        random=self._random,
                    )
                elif outcome.status in AUTH_REFUSAL_STATUSES:
                    if not used_forced and not forced_failed:
                        # at once: the token, not the load, was the problem
                        force_refresh, forced_failed, delay = True, True, 0.0
                    else:
                        refused = token
                        status = outcome.status or 401
                        self._emit_close(outcome, will_reconnect=False, delay=None)
                        self._set_state("auth_error")
                        self._fail(AuthError(status))
                        self._emit("auth_error", AuthErrorEvent(status=status))
                        if not await self._sleep(self._backoff.next_delay(self._random)):
                            break
                        continue
                else:
                    delay = self._backoff.next_delay(self._random)
                self._emit_close(outcome, will_reconnect=True, delay=delay)
                self._set_state("reconnecting")
                self._emit(
                    "reconnecting",
                    ReconnectingEvent(attempt=self._backoff.attempt, delay_seconds=delay),
                )
                if not await self._sleep(delay):
                    break
        finally:
            if self._successor is not None:
                self._successor.cancel()
            self._stopping = True
            self._set_state("closed")

    def _emit_close(
        self,
        outcome: _Outcome,
        *,
        requested: bool = False,
        will_reconnect: bool = False,
        delay: float | None = None,
    ) -> None:
        self._emit(
            "close",
            CloseEvent(
                code=outcome.code,
                reason=outcome.reason,
                was_clean=outcome.was_clean,
                opened=outcome.opened,
                requested=requested,
                status=outcome.status,
                error=outcome.error,
                will_reconnect=will_reconnect,
                delay_seconds=delay,
            ),
        )

    async def _handshake(self, token: str, *, handover: bool) -> _Link | _Outcome:
        self._emit("connecting", ConnectingEvent(attempt=self._backoff.attempt, handover=handover))
        started = time.perf_counter()
        try:
            ws = await self._connect(url_with_token(self.url, token), **self._connect_options)
        except InvalidStatus as error:
            return _Outcome(status=error.response.status_code, closed_at=self._clock())
        except InvalidURI:
            return _Outcome(error="InvalidURI", closed_at=self._clock())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # every failure is reported and retried, never raised
            return _Outcome(error=type(error).__name__, closed_at=self._clock())
        self._emit(
            "handshake", HandshakeEvent(seconds=time.perf_counter() - started, handover=handover)
        )
        link = _Link(self, ws, handover=handover)
        link.start()
        return link

    async def _connection(self, token: str) -> tuple[_Outcome, bool]:
        """One attempt and, when it opens, the connection's life (through handovers).

        Returns how it ended and whether :meth:`close` ended it.
        """
        self._set_state("connecting")
        assert self._stop is not None
        handshake = asyncio.ensure_future(self._handshake(token, handover=False))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({handshake, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if not handshake.done():
            handshake.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await handshake
            return _Outcome(closed_at=self._clock()), True
        result = handshake.result()
        if isinstance(result, _Outcome):
            return result, False
        self._current = result
        while True:
            link = self._current
            assert link is not None
            stop = asyncio.ensure_future(self._stop.wait())
            assert self._kick is not None
            kick = asyncio.ensure_future(self._kick.wait())
            try:
                waiters: set[asyncio.Future[Any]] = {link.finished, stop, kick}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
                kick.cancel()
            if self._stopping and not link.finished.done():
                code, reason, drain = self._close_args
                link.requested = True
                await link.close(code, reason, drain)
            elif self._kick.is_set() and not link.finished.done():
                link.requested = True
                await link.close(1000, RECONNECT_REASON)
            outcome = link.finished.result()
            if link.retired and self._current is not link:
                continue  # handed over: the successor is the connection now
            if self._successor is not None:
                self._successor.cancel()  # the old one ended first: start afresh
                self._successor = None
            self._current = None
            self._opened_clear()
            return outcome, link.requested

    def _opened_clear(self) -> None:
        if self._opened is not None:
            self._opened.clear()

    def _link_ready(self, link: _Link) -> None:
        """A link answered its first ping: make it the connection, retire its predecessor."""
        previous = self._current
        if link.handover and previous is not None and previous is not link:
            previous.retired = True
            self._current = link
            self._successor = None
            asyncio.get_running_loop().create_task(previous.close(1000, HANDOVER_REASON))
        elif self._current is not link:
            return  # a successor that lost its race: it is being closed
        if self._kick is not None and self._kick.is_set():
            return  # opened before reconnect() was seen: it is being closed and replaced
        self._set_state("open")
        self._emit(
            "open", OpenEvent(connection_id=link.connection_id or "", handover=link.handover)
        )
        if self._opened is not None:
            self._opened.set()
        asyncio.get_running_loop().create_task(self._flush(link))
        if self.auto_reconnect:
            self._schedule_handover(link)

    async def _flush(self, link: _Link) -> None:
        while self._queue and self._current is link and not link.finished.done():
            text = self._queue.pop()
            try:
                await _send_text(link.ws, text)
            except ConnectionClosed:
                self._enqueue(text, front=True)
                return

    def _schedule_handover(self, link: _Link) -> None:
        """At the handover time, open a successor; :meth:`_link_ready` swaps them."""
        delay = handover_delay(self.policy, self._random)

        async def hand_over() -> None:
            if not await self._sleep(delay - (self._clock() - link.opened_at)):
                return
            attempt = 0
            successor: _Link | None = None
            try:
                while self._current is link and not link.finished.done() and not self._stopping:
                    try:
                        token = await self._token(False)
                    except Exception:  # the provider failed: the old connection serves on
                        result: _Link | _Outcome | None = None
                    else:
                        result = await self._handshake(token, handover=True)
                    if isinstance(result, _Link):
                        successor = result
                        ready = asyncio.ensure_future(successor.ready.wait())
                        try:
                            waiters: set[asyncio.Future[Any]] = {ready, successor.finished}
                            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
                        finally:
                            ready.cancel()
                        if successor.ready.is_set():
                            return
                        successor = None  # it ended before its first pong: try again
                    if not await self._sleep(backoff_delay(self.policy, attempt, self._random)):
                        return
                    attempt += 1
            finally:
                if successor is not None and not successor.ready.is_set():
                    successor.abort()

        task = asyncio.get_running_loop().create_task(hand_over())
        self._successor = task
