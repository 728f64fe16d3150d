"""The soak's live clients: N slots, each holding one WebSocket connection at a time.

A slot connects, pings at once (the pong tells it its connectionId), then every 5-15 s, and
closes after a lifetime drawn from an exponential distribution (mean 30 s by default; it
first waits, at most 10 s, for the pong that names its connection); then it connects again
at once. A refused or failed handshake is retried after 0.5-2 s. Slot
``i`` is user ``soak-user-{i % users}``: several connections per user, so the per-user
limit and its counts are exercised. Everything a client sees is written into
:class:`World`, which the invariant checker reads: one event loop, so no locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

import attrs
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

OPEN_TIMEOUT_SECONDS: Final = 20.0
CLOSE_TIMEOUT_SECONDS: Final = 10.0
USER_AGENT: Final = "timeline-ws-soak"
CONNECTION_EXPIRED: Final = "connection_expired"


@attrs.define(eq=False, slots=True, kw_only=True)
class Conn:
    """One connection attempt and, when it opened, the connection's life (times in s since
    the schedule began)."""

    serial: int
    slot: int
    user: str
    started_at: float
    handshake_done_at: float | None = None
    status: int | None = None
    """HTTP status of a refused handshake."""
    failure: str | None = None
    """Why the handshake failed without a status (timeout, error class)."""
    opened_at: float | None = None
    connection_id: str | None = None
    closed_at: float | None = None
    closed_by: str | None = None
    """``"client"`` or ``"server"``."""
    close_code: int | None = None
    expired_at: float | None = None
    """When a ``connection_expired`` error arrived."""
    wipe_exempt_at: float | None = None
    """Set when Redis lost its data (``redis_wipe``) while this connection was open or
    opening: its record may be gone legitimately (see the invariants)."""
    pending: dict[str, float] = attrs.field(factory=dict)
    """Unanswered pings: id -> sent at."""
    late: set[str] = attrs.field(factory=set)
    """Pings already reported unanswered."""
    pings: int = 0
    pongs: int = 0
    closing: bool = False
    """The client started closing (frames may still arrive)."""
    named: asyncio.Future[None] | None = None
    """Done once the first pong told the connectionId (created on demand)."""

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None and self.closed_at is None

    def open_during(self, t0: float, t1: float) -> bool:
        """Open for the whole of ``[t0, t1]``."""
        return (
            self.opened_at is not None
            and self.opened_at <= t0
            and (self.closed_at is None or self.closed_at > t1)
        )


ViolationSink = Callable[..., None]


@attrs.define(slots=True)
class World:
    """Every connection attempt of one schedule, and running counts."""

    conns: list[Conn] = attrs.field(factory=list)
    by_id: dict[str, Conn] = attrs.field(factory=dict)
    attempts: int = 0
    opened: int = 0
    refused: dict[str, int] = attrs.field(factory=dict)
    closed_by_client: int = 0
    closed_by_server: int = 0
    expired: int = 0
    pings: int = 0
    pongs: int = 0
    pong_seconds: list[float] = attrs.field(factory=list)
    pong_sent_at: list[float] = attrs.field(factory=list)
    """When each ping of ``pong_seconds`` was sent (same order)."""
    answered_late: int = 0
    """Pings reported unanswered whose pong came after all (slow, not lost)."""
    never_answered: int = 0
    """Pings reported unanswered still without a pong when their socket closed."""

    def open_conns(self) -> list[Conn]:
        return [conn for conn in self.conns if conn.is_open]

    def count_refusal(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


@attrs.frozen(slots=True, kw_only=True)
class ClientPlan:
    """How the clients behave; seconds."""

    clients: int
    users: int
    mean_lifetime: float = 30.0
    ping_interval: tuple[float, float] = (5.0, 15.0)
    ramp_rate: float = 100.0
    retry_delay: tuple[float, float] = (0.5, 2.0)
    first_pong_wait: float = 10.0


class Population:
    """Runs the slots until :meth:`stop`, then closes every open connection.

    ``on_refused(conn)`` and ``on_frame(conn, frame)`` let the checker judge handshakes
    and replies as they happen; ``clock()`` is seconds since the schedule began.
    """

    def __init__(
        self,
        *,
        plan: ClientPlan,
        ws_url: str,
        tokens: Sequence[str],
        seed: int,
        world: World,
        clock: Callable[[], float],
        on_handshake_failed: Callable[[Conn], None],
        on_bad_frame: Callable[[Conn, str], None],
        on_server_close: Callable[[Conn], None],
    ) -> None:
        self._plan = plan
        self._ws_url = ws_url
        self._tokens = tokens
        self._rng = random.Random(f"clients-{seed}")
        self._world = world
        self._clock = clock
        self._on_handshake_failed = on_handshake_failed
        self._on_bad_frame = on_bad_frame
        self._on_server_close = on_server_close
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._serial = 0
        self.ramped = asyncio.Event()

    def user_of(self, slot: int) -> str:
        return f"soak-user-{slot % self._plan.users}"

    async def run(self) -> None:
        """Start the slots at ``ramp_rate`` per second, then wait for them all to end."""
        started = time.monotonic()
        try:
            for slot in range(self._plan.clients):
                due = started + slot / self._plan.ramp_rate
                delay = due - time.monotonic()
                if delay > 0 and await self._stopped_within(delay):
                    break
                self._tasks.append(asyncio.create_task(self._slot(slot)))
            self.ramped.set()
            await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def stop(self) -> None:
        """No new connections; every open one closes (client-initiated, 1000)."""
        self._stopping.set()

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            async with asyncio.timeout(max(0.0, seconds)):
                await self._stopping.wait()
        except TimeoutError:
            return False
        return True

    async def _slot(self, slot: int) -> None:
        plan = self._plan
        while not self._stopping.is_set():
            conn, ws = await self._connect(slot)
            if ws is None:
                await self._stopped_within(self._rng.uniform(*plan.retry_delay))
                continue
            lifetime = max(1.0, self._rng.expovariate(1 / plan.mean_lifetime))
            await self._live(conn, ws, lifetime)

    async def _connect(self, slot: int) -> tuple[Conn, ClientConnection | None]:
        self._serial += 1
        world = self._world
        conn = Conn(
            serial=self._serial, slot=slot, user=self.user_of(slot), started_at=self._clock()
        )
        world.conns.append(conn)
        world.attempts += 1
        token = self._tokens[slot % len(self._tokens)]
        try:
            ws = await connect(
                f"{self._ws_url}?token={token}",
                open_timeout=OPEN_TIMEOUT_SECONDS,
                close_timeout=CLOSE_TIMEOUT_SECONDS,
                ping_interval=None,
                compression=None,
                proxy=None,
                user_agent_header=USER_AGENT,
                max_queue=64,
            )
        except InvalidStatus as error:
            conn.status = error.response.status_code
            conn.handshake_done_at = self._clock()
            world.count_refusal(str(conn.status))
            self._on_handshake_failed(conn)
            return conn, None
        except TimeoutError:
            conn.failure = "timeout"
        except Exception as error:  # any other failure is reported, never raised
            conn.failure = type(error).__name__
        if conn.failure is not None:
            conn.handshake_done_at = self._clock()
            world.count_refusal(conn.failure)
            self._on_handshake_failed(conn)
            return conn, None
        conn.handshake_done_at = conn.opened_at = self._clock()
        world.opened += 1
        return conn, ws

    async def _live(self, conn: Conn, ws: ClientConnection, lifetime: float) -> None:
        """Ping until the lifetime ends, the run stops or the server closes; then close."""
        assert conn.opened_at is not None
        ends = conn.opened_at + lifetime
        receiver = asyncio.create_task(self._receive_all(conn, ws))
        stopping = asyncio.ensure_future(self._stopping.wait())
        sequence = 0
        try:
            while not stopping.done() and not receiver.done() and self._clock() < ends:
                sequence += 1
                ping_id = f"{conn.serial}-{sequence}"
                conn.pending[ping_id] = self._clock()
                try:
                    await ws.send(json.dumps({"action": "ping", "id": ping_id}))
                except ConnectionClosed:
                    conn.pending.pop(ping_id, None)
                    break
                conn.pings += 1
                self._world.pings += 1
                next_ping = self._clock() + self._rng.uniform(*self._plan.ping_interval)
                wait = min(next_ping, ends) - self._clock()
                if wait > 0:
                    # The ping interval: load shaping, not synchronisation.
                    await asyncio.wait(
                        {receiver, stopping}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
                    )
            if conn.connection_id is None and not receiver.done() and not stopping.done():
                # Close only once the first pong named the connection, so the checker can
                # match every record to its client (bounded: the ping timeout).
                waiters: set[asyncio.Future[Any]] = {receiver, stopping, self._named(conn)}
                await asyncio.wait(
                    waiters,
                    timeout=self._plan.first_pong_wait,
                    return_when=asyncio.FIRST_COMPLETED,
                )
            if receiver.done():
                self._closed_by_server(conn, ws)
                return
            conn.closing = True
            await self._close(conn, ws)
        finally:
            stopping.cancel()
            receiver.cancel()
            await asyncio.gather(receiver, stopping, return_exceptions=True)

    def _named(self, conn: Conn) -> asyncio.Future[None]:
        named = conn.named
        if named is None:
            named = conn.named = asyncio.get_running_loop().create_future()
        return named

    async def _receive_all(self, conn: Conn, ws: ClientConnection) -> None:
        """Read frames until the socket closes (returns then, however it closed)."""
        while True:
            try:
                message = await ws.recv()
            except ConnectionClosed:
                return
            self._receive(conn, message)

    def _receive(self, conn: Conn, message: str | bytes) -> None:
        now = self._clock()
        frame = _json_object(message)
        if frame is None:
            self._on_bad_frame(conn, f"not a JSON object: {str(message)[:80]!r}")
            return
        ping_id = frame.get("id")
        sent = conn.pending.pop(str(ping_id), None) if ping_id is not None else None
        if sent is not None and str(ping_id) in conn.late:
            self._world.answered_late += 1  # a pong, or connection_expired, after the timeout
        action = frame.get("action")
        if action == "pong":
            if conn.connection_id is None and isinstance(frame.get("connectionId"), str):
                conn.connection_id = frame["connectionId"]
                self._world.by_id[conn.connection_id] = conn
                if conn.named is not None and not conn.named.done():
                    conn.named.set_result(None)
            conn.pongs += 1
            self._world.pongs += 1
            if sent is not None:
                self._world.pong_seconds.append(now - sent)
                self._world.pong_sent_at.append(sent)
            return
        if action == "error" and frame.get("code") == CONNECTION_EXPIRED:
            conn.expired_at = now
            self._world.expired += 1
            return
        self._on_bad_frame(conn, json.dumps(frame)[:200])

    def _count_never_answered(self, conn: Conn) -> None:
        self._world.never_answered += sum(1 for ping_id in conn.pending if ping_id in conn.late)

    def _closed_by_server(self, conn: Conn, ws: ClientConnection) -> None:
        self._count_never_answered(conn)
        conn.closed_at = self._clock()
        conn.closed_by = "server"
        conn.close_code = ws.close_code
        self._world.closed_by_server += 1
        self._on_server_close(conn)

    async def _close(self, conn: Conn, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):  # a broken socket is closed either way
            await ws.close(1000, "soak client done")
        self._count_never_answered(conn)
        conn.closed_at = self._clock()
        if conn.closed_by is None:
            conn.closed_by = "client"
            conn.close_code = ws.close_code
            self._world.closed_by_client += 1


def _json_object(message: str | bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(message)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def users_for(clients: int, per_user: int) -> int:
    """How many users ``clients`` slots share when each user has ``per_user`` slots."""
    return max(1, math.ceil(clients / per_user))
