"""The simulated clients (asyncio + websockets) and the run that ramps, holds and drains them.

Each simulated client is a :class:`~timeline_ws_client.TimelineSocket`, the project's own
client, so the load test exercises what real clients run.

A run has three phases. **Ramp**: client ``i`` starts ``i / ramp_rate`` seconds after the
start. **Hold**: ``duration_seconds`` from the moment the last client was started; every
open client pings (``{"action":"ping","id":"tws:<client>-<seq>"}``, the client's reserved heartbeat prefix) once when its handshake
completes (the pong tells it its connectionId), then on its interval, the first interval
stretched by a per-client offset so the pings spread evenly. **Drain**: no new pings; each
client waits (at most ``drain_timeout_seconds``) for its outstanding pongs, then closes with
1000. A close the client did not start is an unexpected disconnect, counted by its close
code (1006 when the socket vanished without a close frame, or when the client declared it
dead: no message for 2 x interval + 10 s with a ping unanswered). An ``interrupt`` (Ctrl-C in
the command) ends the ramp or the hold early and goes straight to the drain, so an
interrupted run still reports what it saw.

Reconnection is off by default (``reconnect``): the report's figures and its verdict are
defined per planned connection (attempted = connections, a disconnect rate per established
connection), and a client that quietly reconnected would hide the cost of a drop from the
figures a load test exists to show. With ``reconnect=True`` (``--reconnect``) clients follow
the client policy (full-jitter backoff, ...); every handshake then counts as an attempt and
every close the client did not start still counts as an unexpected disconnect, reconnected
or not.

A handshake the server refuses with 401, 403 or 429 is a rejection on purpose (a token it
does not accept, a connection limit); any other HTTP status (404, 5xx, ...) is a failure,
counted as ``HTTP <status>``: a store that is down answers 503, and that is what a load
test is there to catch.

Everything is bounded: the connection count, the ramp (at most an hour), the duration, each
handshake (``open_timeout_seconds``), the drain and the whole run (a hard deadline after
which unfinished clients are cancelled and counted as failed with ``CancelledAtDeadline``).
"""

from __future__ import annotations

import asyncio
import collections
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Final

import attrs
from timeline_ws_client import ClientPolicy, TimelineSocket, static_token
from timeline_ws_client.events import (
    CloseEvent,
    HandshakeEvent,
    MessageEvent,
    PingEvent,
    PongEvent,
)
from timeline_ws_client.timeline_socket import url_with_token as url_with_token  # re-exported

from entrypoints.loadtest.server_process import ServerSampler
from entrypoints.loadtest.stats import Distribution, LoadtestReport

MAX_CONNECTIONS: Final = 20_000
MAX_DURATION_SECONDS: Final = 3_600.0
MAX_RAMP_RATE_PER_SECOND: Final = 5_000.0
MAX_RAMP_SECONDS: Final = 3_600.0
DELIBERATE_REJECTION_STATUSES: Final = frozenset({401, 403, 429})
"""HTTP statuses with which a server refuses a handshake on purpose (bad token, a limit)."""
_TIMEOUT_OPTIONS: Final = {
    "open_timeout_seconds": "--open-timeout",
    "drain_timeout_seconds": "--drain-timeout",
    "close_timeout_seconds": "close timeout",
}
TICK_SECONDS: Final = 0.5
USER_AGENT: Final = "timeline-ws-loadtest"
_GOLDEN_RATIO_FRACTION: Final = 0.6180339887498949


class PlanError(ValueError):
    """The requested run is outside the bounds the load test accepts."""


@attrs.frozen(slots=True, kw_only=True)
class LoadtestPlan:
    """What to run. Seconds everywhere; ``ramp_rate_per_second`` is new connections per second.

    Raises:
        PlanError: at construction, on a value outside its bounds (see :meth:`validate`).
    """

    url: str
    connections: int
    duration_seconds: float
    ping_interval_seconds: float
    ramp_rate_per_second: float = 200.0
    open_timeout_seconds: float = 30.0
    drain_timeout_seconds: float = 10.0
    close_timeout_seconds: float = 5.0
    reconnect: bool = False

    def __attrs_post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every bound; raise :class:`PlanError` naming the first value outside it."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in {"ws", "wss"}:
            raise PlanError("the URL must start with ws:// or wss://")
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError as error:
            raise PlanError(f"the URL's port is not valid: {error}") from None
        if not parts.hostname:
            raise PlanError("the URL has no host")
        if not 1 <= self.connections <= MAX_CONNECTIONS:
            raise PlanError(f"--connections must be within 1..{MAX_CONNECTIONS}")
        if not 0 < self.duration_seconds <= MAX_DURATION_SECONDS:
            raise PlanError(f"--duration must be within (0, {MAX_DURATION_SECONDS:.0f}] seconds")
        if not 0 < self.ping_interval_seconds <= MAX_DURATION_SECONDS:
            raise PlanError("--ping-interval must be a positive number of seconds")
        if not 0 < self.ramp_rate_per_second <= MAX_RAMP_RATE_PER_SECOND:
            raise PlanError(f"--ramp-rate must be within (0, {MAX_RAMP_RATE_PER_SECOND:.0f}]/s")
        if self.ramp_seconds > MAX_RAMP_SECONDS:
            raise PlanError(
                f"--ramp-rate is too low: starting {self.connections} connections would take "
                f"{self.ramp_seconds:.0f} s (at most {MAX_RAMP_SECONDS:.0f} s)"
            )
        for name, option in _TIMEOUT_OPTIONS.items():
            if not 0 < getattr(self, name) <= 300:
                raise PlanError(f"{option} must be within (0, 300] seconds")

    @property
    def ramp_seconds(self) -> float:
        """Time from the first connection attempt to the last one."""
        return (self.connections - 1) / self.ramp_rate_per_second

    @property
    def hard_deadline_seconds(self) -> float:
        """The longest a run may take before unfinished clients are cancelled."""
        return (
            self.ramp_seconds
            + self.duration_seconds
            + self.open_timeout_seconds
            + self.drain_timeout_seconds
            + self.close_timeout_seconds
            + 10.0
        )

    @property
    def display_url(self) -> str:
        """The URL without query or fragment: what reports and logs may show."""
        parts = urllib.parse.urlsplit(self.url)
        return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@attrs.define
class LiveStats:
    """Running counts, shared by every client task of one event loop (no locks needed)."""

    attempted: int = 0
    established: int = 0
    open: int = 0
    peak_open: int = 0
    rejected: collections.Counter[int] = attrs.field(factory=collections.Counter)
    failed: collections.Counter[str] = attrs.field(factory=collections.Counter)
    unexpected: collections.Counter[int] = attrs.field(factory=collections.Counter)
    connect_seconds: list[float] = attrs.field(factory=list)
    rtt_seconds: list[float] = attrs.field(factory=list)
    pings_sent: int = 0
    pongs_received: int = 0
    error_frames: int = 0
    phase: str = "ramp"
    started_at: float = attrs.field(factory=time.monotonic)
    server_rss_bytes: int | None = None

    def opened(self, connect_seconds: float) -> None:
        """Count one established connection whose handshake took ``connect_seconds``."""
        self.established += 1
        self.open += 1
        self.peak_open = max(self.peak_open, self.open)
        self.connect_seconds.append(connect_seconds)

    def handshakes_settled(self) -> bool:
        """Whether every handshake attempted so far has opened, been refused or failed."""
        return self.attempted <= (self.established + self.rejected.total() + self.failed.total())

    def recent_rtt(self, last: int = 2000) -> Distribution:
        """Round trips of the last ``last`` pongs (for the live display)."""
        return Distribution.of_seconds(self.rtt_seconds[-last:])


Tick = Callable[[LiveStats], None]


class SimulatedClient:
    """One WebSocket client: a :class:`TimelineSocket` whose events feed the run's counts."""

    def __init__(
        self,
        *,
        index: int,
        url: str,
        token: str,
        plan: LoadtestPlan,
        stats: LiveStats,
        stop: asyncio.Event,
    ) -> None:
        self._plan = plan
        self._stats = stats
        self._stop = stop
        self._handshake_settled = asyncio.Event()
        self._handshake_settled.set()
        interval = plan.ping_interval_seconds
        self.socket = TimelineSocket(
            url,
            static_token(token),
            policy=ClientPolicy(ping_interval_seconds=interval),
            reconnect=plan.reconnect,
            # Spread the interval pings over the interval (low-discrepancy offsets).
            heartbeat_offset_seconds=interval * ((index * _GOLDEN_RATIO_FRACTION) % 1.0),
            open_timeout_seconds=plan.open_timeout_seconds,
            close_timeout_seconds=plan.close_timeout_seconds,
            user_agent=USER_AGENT,
            connect_options={
                "compression": None,  # 10,000 zlib contexts would measure zlib, not us
                "proxy": None,  # talk only to the URL given
                "max_queue": 64,
            },
            ping_prefix=f"{index}-",
        )
        self.socket.on("connecting", self._connecting)
        self.socket.on("handshake", self._handshake)
        self.socket.on("ping", self._ping)
        self.socket.on("pong", self._pong)
        self.socket.on("message", self._message)
        self.socket.on("close", self._closed)

    async def run(self) -> None:
        """Connect, live until the run stops, then drain and close. Never raises."""
        self.socket.start()
        stopped = asyncio.ensure_future(self._stop.wait())
        finished = asyncio.ensure_future(self.socket.wait_closed())
        try:
            await asyncio.wait({stopped, finished}, return_when=asyncio.FIRST_COMPLETED)
            # A handshake under way when the run stops is let finish (bounded), so that every
            # attempt ends established, rejected or failed, as the report's verdict expects.
            try:
                async with asyncio.timeout(self._plan.open_timeout_seconds):
                    await self._handshake_settled.wait()
            except TimeoutError:
                pass
            await self.socket.close(
                1000, "loadtest done", drain_seconds=self._plan.drain_timeout_seconds
            )
        except asyncio.CancelledError:
            self.socket.abort()  # the run's hard deadline
            raise
        finally:
            for task in (stopped, finished):
                task.cancel()

    def _connecting(self, event: object) -> None:
        self._stats.attempted += 1
        self._handshake_settled.clear()

    def _handshake(self, event: HandshakeEvent) -> None:
        self._stats.opened(event.seconds)
        self._handshake_settled.set()

    def _ping(self, event: PingEvent) -> None:
        self._stats.pings_sent += 1

    def _pong(self, event: PongEvent) -> None:
        self._stats.pongs_received += 1
        self._stats.rtt_seconds.append(event.rtt_seconds)

    def _message(self, event: MessageEvent) -> None:
        if isinstance(event.data, dict) and event.data.get("action") == "error":
            self._stats.error_frames += 1

    def _closed(self, event: CloseEvent) -> None:
        self._handshake_settled.set()
        stats = self._stats
        if event.opened:
            stats.open -= 1
            if not event.requested:
                stats.unexpected[event.code] += 1
        elif event.requested:
            return  # the run ended during a handshake or a backoff wait
        elif event.status is not None:
            if event.status in DELIBERATE_REJECTION_STATUSES:
                stats.rejected[event.status] += 1
            else:
                stats.failed[f"HTTP {event.status}"] += 1
        else:
            stats.failed[event.error or "ConnectionError"] += 1


async def run_load(
    plan: LoadtestPlan,
    tokens: Sequence[str],
    *,
    sampler: ServerSampler | None = None,
    tick: Tick | None = None,
    interrupt: asyncio.Event | None = None,
) -> LoadtestReport:
    """Run ``plan`` with ``tokens`` (connection ``i`` uses ``tokens[i % len(tokens)]``).

    ``sampler`` samples a local server's RSS every tick, and its CPU over the hold once
    every handshake has settled; ``tick`` is called every 0.5 s with
    the running counts (the progress display); setting ``interrupt`` ends the ramp or hold
    early (then the drain runs and the report says ``interrupted``). Returns the report;
    never raises for what the clients observe.

    Raises:
        ValueError: on an empty ``tokens``.
    """
    if not tokens:
        raise ValueError("at least one token is needed")
    interrupt = interrupt or asyncio.Event()
    stats = LiveStats()
    stop = asyncio.Event()
    started = time.monotonic()
    ticker = asyncio.create_task(_tick_forever(stats, sampler, tick))
    tasks: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(plan.hard_deadline_seconds):
            await _ramp(plan, tokens, stats, stop, interrupt, tasks, started)
            if not interrupt.is_set():
                stats.phase = "hold"
                await _interrupted_within(interrupt, plan.duration_seconds)
            if sampler is not None:
                sampler.end_window(stats.pongs_received)
            stats.phase = "drain"
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
    except TimeoutError:
        pass  # the hard deadline: unfinished clients are cancelled below
    finally:
        stop.set()
        await _cancel_unfinished(tasks, stats, ticker)
    stats.phase = "done"
    if sampler is not None:
        sampler.sample()
    if tick is not None:
        tick(stats)
    return _report(plan, stats, started, sampler, interrupt)


async def _ramp(
    plan: LoadtestPlan,
    tokens: Sequence[str],
    stats: LiveStats,
    stop: asyncio.Event,
    interrupt: asyncio.Event,
    tasks: list[asyncio.Task[None]],
    started: float,
) -> None:
    """Start the clients at ``plan.ramp_rate_per_second`` into ``tasks``, until all have
    started or ``interrupt`` is set."""
    for index in range(plan.connections):
        due = started + index / plan.ramp_rate_per_second
        delay = due - time.monotonic()
        if delay > 0 and await _interrupted_within(interrupt, delay):
            break
        if interrupt.is_set():
            break
        client = SimulatedClient(
            index=index,
            url=plan.url,
            token=tokens[index % len(tokens)],
            plan=plan,
            stats=stats,
            stop=stop,
        )
        tasks.append(asyncio.create_task(client.run()))


async def _cancel_unfinished(
    tasks: list[asyncio.Task[None]], stats: LiveStats, ticker: asyncio.Task[None]
) -> None:
    """Cancel the clients still running (counted ``CancelledAtDeadline``) and the ticker."""
    unfinished = [task for task in tasks if not task.done()]
    if unfinished:
        stats.failed["CancelledAtDeadline"] += len(unfinished)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)
    ticker.cancel()
    await asyncio.gather(ticker, return_exceptions=True)


def _report(
    plan: LoadtestPlan,
    stats: LiveStats,
    started: float,
    sampler: ServerSampler | None,
    interrupt: asyncio.Event,
) -> LoadtestReport:
    return LoadtestReport(
        url=plan.display_url,
        connections=plan.connections,
        duration_seconds=plan.duration_seconds,
        ping_interval_seconds=plan.ping_interval_seconds,
        ramp_rate_per_second=plan.ramp_rate_per_second,
        attempted=stats.attempted,
        established=stats.established,
        rejected=dict(stats.rejected),
        failed=dict(stats.failed),
        unexpected_disconnects=dict(stats.unexpected),
        peak_open=stats.peak_open,
        connect_latency=Distribution.of_seconds(stats.connect_seconds),
        pong_rtt=Distribution.of_seconds(stats.rtt_seconds),
        pings_sent=stats.pings_sent,
        pongs_received=stats.pongs_received,
        error_frames=stats.error_frames,
        wall_seconds=time.monotonic() - started,
        server=None if sampler is None else sampler.figures(stats.peak_open),
        interrupted=interrupt.is_set(),
    )


async def _interrupted_within(interrupt: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``interrupt`` is set; True when it was set."""
    try:
        async with asyncio.timeout(seconds):
            await interrupt.wait()
    except TimeoutError:
        return False
    return True


async def _tick_forever(stats: LiveStats, sampler: ServerSampler | None, tick: Tick | None) -> None:
    while True:
        if sampler is not None:
            stats.server_rss_bytes = sampler.sample()
            if stats.phase == "hold" and stats.handshakes_settled():
                sampler.start_window(stats.pongs_received)
        if tick is not None:
            tick(stats)
        await asyncio.sleep(TICK_SECONDS)
