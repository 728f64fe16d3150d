"""The invariants of issue 14, checked all the time, and the violations they report.

Every second the checker reads both stores **directly** (redis-server on its own port, one
``MULTI``: the record keys and the three limiter keys together; moto with a consistent
``Scan``), never through the fault proxies, so it sees the truth even while the gateway
cannot reach a store. It can read Redis only while redis-server itself is up (not killed,
not SIGSTOPped); checks that need Redis skip those ticks. Times are seconds since the
schedule began. "Healthy since H": no fault active, the last one healed at H. With
``reset`` = ``REDIS_BREAKER_RESET_SECONDS`` = ``DYNAMODB_BREAKER_RESET_SECONDS``:

``missing_record``
    A connection open for >= 2 s (known connectionId, not closing) has no live record in
    either store. Exempt: connections open or opening when Redis lost its data
    (``redis_wipe``; see ``lost_record_not_expired``).
``lost_record_not_expired``
    An exempt connection with no record anywhere is still open ``reset + longest ping
    interval + ping timeout + 5 s`` after the stores are healthy again: its next ping
    should have got ``connection_expired`` and the server should have closed it.
``false_expired``
    ``connection_expired`` (and the server's close) for a connection that is not exempt.
``ghost_record``
    A record (Redis key or live DynamoDB item) of a connection that closed (or that no
    client knows) is still there ``reset + 5 s`` after both stores are healthy again
    (counted from the close, or from when the record was first seen, when later).
``ping_unanswered``
    A ping without an answer after ``ping timeout`` (10 s) while its socket is open.
``bad_reply``
    A reply that is neither a pong nor ``connection_expired`` (e.g. the gateway's
    ``Internal server error`` frame).
``unexpected_close``
    The server closed a socket without ``connection_expired``.
``connect_5xx``
    A ``$connect`` answered 5xx although at least one store answered throughout. Reported
    apart (tolerated, not violations): ``connect_5xx_both_down`` when a fault took both
    stores down during the handshake, ``connect_5xx_breaker_grace`` within 2 s of a fault's
    start (the breaker's first failures).
``connect_failed``
    A handshake that timed out (20 s) or failed without an HTTP status, or with a status
    other than 429 or 5xx, unless both stores were down.
``false_429``
    A 429 although the user held fewer than ``CONNECTION_LIMIT_PER_USER`` connections and
    everyone fewer than ``CONNECTION_LIMIT_GLOBAL`` (counting every connection open or
    closed less than 2 s before the handshake, and every handshake in flight).
``leftover_without_ttl``
    A Redis record left behind by a ``$disconnect`` that the gateway skipped on purpose
    (``serve --disconnect-loss``: AWS delivers ``$disconnect`` best-effort) without a TTL
    that ends it within the record TTL (600 s): the TTL backstop would not clean it. Such
    a record (and its limiter slot) is otherwise no ghost until ``600 s + reset + 5 s``
    after its connection closed, when its TTL must have ended it.
``ghost_slot``
    A limiter slot (``ws:limits:{connections}:expiry`` member) of a closed or unknown
    connection, ``reset + 5 s`` after the stores are healthy again: a count too high.
``uncounted_slot``
    A live connection without a slot ``reset + longest ping interval + 5 s`` after the stores
    are healthy again (and after it opened): a count too low.
``limiter_inconsistent``
    The per-user hash disagrees with the owner hash (user -> number of slots).
``memory_unbounded``
    The gateway's RSS went above its bound: RSS when the ramp ended + max(64 MiB, 50 %).
``directory_missing``
    The directory does not list a connection open for >= 2 s under its user (exempt as for
    ``missing_record``). The directory is read as the adapters compute it, from the
    documented layout: Redis's entries (``ws:limits:{connections}:by-user``) whose record
    key exists, plus DynamoDB's live records by ``userId`` (the GSI's source). Its other
    half, nothing closed listed, is ``ghost_record``'s: the directory lists records only,
    and a record of a closed connection is a ghost (one left by a skipped ``$disconnect``
    is live until its TTL, and listed).
``directory_inconsistent``
    A directory entry without the same owner in the owner hash, or an owner without its
    entry: the entries must mirror the slots exactly (read in one ``MULTI``), so the
    ghost entries are bounded by the slots (``ghost_slot``).
``directory_not_empty``
    After the drain (every client closed, the stores settled), a user's directory entry
    still lists a connection (a Redis entry, or a live DynamoDB record), other than one
    whose ``$disconnect`` serve skipped on purpose.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from tests.soak.clients import Conn, World
from tests.soak.faults import DYNAMODB_FAULTS, REDIS_FAULTS, FaultKind, HealthTimeline

RECORD_GRACE_SECONDS: Final = 2.0
CLOSE_GRACE_SECONDS: Final = 2.0
"""A connection closed this recently may still hold its slot (its $disconnect may be running)."""
CONNECT_GRACE_SECONDS: Final = 2.0
MEMORY_HEADROOM_BYTES: Final = 64 * 2**20
MEMORY_HEADROOM_FRACTION: Final = 0.5
RECORD_TTL_SECONDS: Final = 600.0
"""The handlers' record TTL (``CONNECTION_TTL_SECONDS``' default): a record whose ``$disconnect``
was lost must be gone this long after its connection's last refresh, hence after its close."""


class ViolationKind(enum.StrEnum):
    MISSING_RECORD = "missing_record"
    LOST_RECORD_NOT_EXPIRED = "lost_record_not_expired"
    FALSE_EXPIRED = "false_expired"
    GHOST_RECORD = "ghost_record"
    PING_UNANSWERED = "ping_unanswered"
    BAD_REPLY = "bad_reply"
    UNEXPECTED_CLOSE = "unexpected_close"
    CONNECT_5XX = "connect_5xx"
    CONNECT_FAILED = "connect_failed"
    FALSE_429 = "false_429"
    GHOST_SLOT = "ghost_slot"
    LEFTOVER_WITHOUT_TTL = "leftover_without_ttl"
    UNCOUNTED_SLOT = "uncounted_slot"
    LIMITER_INCONSISTENT = "limiter_inconsistent"
    MEMORY_UNBOUNDED = "memory_unbounded"
    DIRECTORY_MISSING = "directory_missing"
    DIRECTORY_INCONSISTENT = "directory_inconsistent"
    DIRECTORY_NOT_EMPTY = "directory_not_empty"


class ToleratedKind(enum.StrEnum):
    """Outcomes the invariants allow, reported apart from the violations."""

    CONNECT_5XX_BOTH_DOWN = "connect_5xx_both_down"
    CONNECT_5XX_BREAKER_GRACE = "connect_5xx_breaker_grace"
    CONNECT_FAILED_BOTH_DOWN = "connect_failed_both_down"
    EXPIRED_AFTER_WIPE = "expired_after_wipe"


@attrs.frozen(slots=True, kw_only=True)
class Violation:
    """One violation: what, when (s since the schedule began), which schedule and seed."""

    kind: ViolationKind
    at: float
    schedule: int
    seed: int
    detail: str
    connection_id: str | None = None
    fields: Mapping[str, Any] = attrs.field(factory=dict)

    def line(self) -> str:
        who = f" {self.connection_id}" if self.connection_id else ""
        return (
            f"VIOLATION schedule {self.schedule} seed {self.seed} t={self.at:.1f}s "
            f"{self.kind.value}{who}: {self.detail}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": round(self.at, 3),
            "schedule": self.schedule,
            "seed": self.seed,
            "connectionId": self.connection_id,
            "detail": self.detail,
            **({"fields": dict(self.fields)} if self.fields else {}),
        }


@attrs.frozen(slots=True, kw_only=True)
class Snapshot:
    """What the stores held at one moment; ``None`` for a store that could not be read."""

    redis_records: frozenset[str] | None
    slots: Mapping[str, float] | None
    owners: Mapping[str, str] | None
    per_user: Mapping[str, int] | None
    dynamodb_records: frozenset[str] | None
    rss_bytes: int | None
    redis_ttls: Mapping[str, float] | None = None
    """Seconds each Redis record has left (negative: no TTL); ``None`` when not read."""
    directory: Mapping[str, str] | None = None
    """Redis's directory entries, connectionId -> userId; ``None`` when not read."""
    dynamodb_users: Mapping[str, str] | None = None
    """DynamoDB's live records (not tombstones), connectionId -> userId; ``None`` when not read."""

    def listed(self) -> dict[str, set[str]] | None:
        """The directory as the adapters answer it, userId -> connectionIds: Redis's entries
        whose record exists, and DynamoDB's live records; ``None`` unless all were read."""
        if self.directory is None or self.redis_records is None or self.dynamodb_users is None:
            return None
        listed: dict[str, set[str]] = {}
        for connection_id, user in self.directory.items():
            if connection_id in self.redis_records:
                listed.setdefault(user, set()).add(connection_id)
        for connection_id, user in self.dynamodb_users.items():
            listed.setdefault(user, set()).add(connection_id)
        return listed


@attrs.frozen(slots=True, kw_only=True)
class CheckerSettings:
    """The bounds of the invariants (seconds unless named otherwise)."""

    breaker_reset: float
    max_ping_interval: float
    ping_timeout: float = 10.0
    per_user_limit: int = 10
    global_limit: int = 1000

    @property
    def ghost_grace(self) -> float:
        return self.breaker_reset + 5.0

    @property
    def slot_settle(self) -> float:
        return self.breaker_reset + self.max_ping_interval + 5.0

    @property
    def wipe_deadline(self) -> float:
        return self.breaker_reset + self.max_ping_interval + self.ping_timeout + 5.0


Report = Callable[[Violation], None]


class Checker:
    """Judges what the clients saw and what the stores hold; reports each violation once."""

    def __init__(
        self,
        *,
        world: World,
        timeline: HealthTimeline,
        settings: CheckerSettings,
        schedule: int,
        seed: int,
        report: Report,
    ) -> None:
        self.world = world
        self.timeline = timeline
        self.settings = settings
        self.schedule = schedule
        self.seed = seed
        self._report = report
        self._reported: set[tuple[ViolationKind, str]] = set()
        self._first_seen: dict[str, float] = {}
        self.violations: list[Violation] = []
        self.tolerated: dict[str, int] = {}
        self.memory_baseline: int | None = None
        self.rss_peak: int | None = None
        self.rss_last: int | None = None
        self.last_snapshot: Snapshot | None = None
        self.lost_disconnects: dict[str, float] = {}
        """connectionId -> when serve's log said it skipped that ``$disconnect``."""
        self.learn_lost_disconnects: Callable[[], None] | None = None
        """Brings :attr:`lost_disconnects` up to date (the run reads serve's log)."""

    def disconnect_lost(self, connection_id: str, at: float) -> None:
        """serve skipped this connection's ``$disconnect`` (``--disconnect-loss``)."""
        self.lost_disconnects.setdefault(connection_id, at)

    # -- reporting ---------------------------------------------------------------------

    def violation(
        self,
        kind: ViolationKind,
        at: float,
        detail: str,
        *,
        key: str | None = None,
        connection_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Report ``kind`` once per ``key`` (default: the connection id, else the detail)."""
        dedupe = (kind, key or connection_id or detail)
        if dedupe in self._reported:
            return
        self._reported.add(dedupe)
        found = Violation(
            kind=kind,
            at=at,
            schedule=self.schedule,
            seed=self.seed,
            detail=detail,
            connection_id=connection_id,
            fields=fields,
        )
        self.violations.append(found)
        self._report(found)

    def tolerate(self, kind: ToleratedKind) -> None:
        self.tolerated[kind.value] = self.tolerated.get(kind.value, 0) + 1

    # -- what the clients see, as it happens ---------------------------------------------

    def handshake_failed(self, conn: Conn) -> None:
        """Judge a refused or failed ``$connect``."""
        t0 = conn.started_at
        t1 = conn.handshake_done_at if conn.handshake_done_at is not None else t0
        during = self.timeline.overlapping(t0, t1)
        both_down = any(r.kind is FaultKind.BOTH_DOWN for r in during) or (
            any(r.kind in REDIS_FAULTS for r in during)
            and any(r.kind in DYNAMODB_FAULTS for r in during)
        )
        what = self.timeline.at(t0)
        if conn.status == 429:
            self._judge_429(conn, t0, t1)
            return
        if conn.status is not None and conn.status >= 500:
            if both_down:
                self.tolerate(ToleratedKind.CONNECT_5XX_BOTH_DOWN)
            elif any(0 <= t0 - r.started <= CONNECT_GRACE_SECONDS for r in during):
                self.tolerate(ToleratedKind.CONNECT_5XX_BREAKER_GRACE)
            else:
                self.violation(
                    ViolationKind.CONNECT_5XX,
                    t1,
                    f"$connect answered {conn.status} ({what}) although a store answered",
                    key=f"connect-{conn.serial}",
                    user=conn.user,
                    status=conn.status,
                    started=round(t0, 3),
                    situation=what,
                )
            return
        if both_down:
            self.tolerate(ToleratedKind.CONNECT_FAILED_BOTH_DOWN)
            return
        reason = f"HTTP {conn.status}" if conn.status is not None else conn.failure
        self.violation(
            ViolationKind.CONNECT_FAILED,
            t1,
            f"$connect failed: {reason} after {t1 - t0:.1f} s ({what})",
            key=f"connect-{conn.serial}",
            user=conn.user,
            reason=reason,
            started=round(t0, 3),
            situation=what,
        )

    def _judge_429(self, conn: Conn, t0: float, t1: float) -> None:
        if self.learn_lost_disconnects is not None:
            self.learn_lost_disconnects()  # a slot a skipped $disconnect left counts

        def may_hold_a_slot(other: Conn) -> bool:
            if other is conn or other.started_at > t1:
                return False
            if other.opened_at is None:  # a handshake: in flight during ours, or failed
                done = other.handshake_done_at
                return done is None or done >= t0
            if other.connection_id in self.lost_disconnects:  # its slot lives out its TTL
                return other.closed_at is None or other.closed_at >= t0 - RECORD_TTL_SECONDS
            return other.closed_at is None or other.closed_at >= t0 - CLOSE_GRACE_SECONDS

        holders = [other for other in self.world.conns if may_hold_a_slot(other)]
        mine = sum(1 for other in holders if other.user == conn.user)
        if mine < self.settings.per_user_limit and len(holders) < self.settings.global_limit:
            self.violation(
                ViolationKind.FALSE_429,
                t1,
                f"429 for {conn.user}, who held at most {mine} of {self.settings.per_user_limit} "
                f"connections ({len(holders)} in all; {self.timeline.at(t0)})",
                key=f"connect-{conn.serial}",
                user=conn.user,
                user_connections=mine,
                all_connections=len(holders),
            )

    def bad_frame(self, conn: Conn, detail: str) -> None:
        self.violation(
            ViolationKind.BAD_REPLY,
            self._now_of(conn),
            f"unexpected reply {detail}",
            key=f"frame-{conn.serial}-{detail}",
            connection_id=conn.connection_id,
        )

    def server_closed(self, conn: Conn) -> None:
        """Judge a close the server started."""
        at = conn.closed_at if conn.closed_at is not None else conn.started_at
        if conn.expired_at is None:
            self.violation(
                ViolationKind.UNEXPECTED_CLOSE,
                at,
                f"the server closed the socket with {conn.close_code} without "
                f"connection_expired ({self.timeline.at(at)})",
                key=f"close-{conn.serial}",
                connection_id=conn.connection_id,
                close_code=conn.close_code,
            )
        elif conn.wipe_exempt_at is None:
            self.violation(
                ViolationKind.FALSE_EXPIRED,
                conn.expired_at,
                f"connection_expired although its record was not lost by a restart without "
                f"data; opened at {conn.opened_at:.1f} s, {self.timeline.at(conn.expired_at)}",
                key=f"expired-{conn.serial}",
                connection_id=conn.connection_id,
                opened_at=conn.opened_at,
            )
        else:
            self.tolerate(ToleratedKind.EXPIRED_AFTER_WIPE)

    def _now_of(self, conn: Conn) -> float:
        return conn.closed_at or conn.opened_at or conn.started_at

    # -- the periodic checks -------------------------------------------------------------

    def check_pings(self, now: float) -> None:
        timeout = self.settings.ping_timeout
        for conn in self.world.open_conns():
            if conn.closing:
                continue
            for ping_id, sent in list(conn.pending.items()):
                if now - sent >= timeout and ping_id not in conn.late:
                    conn.late.add(ping_id)
                    self.violation(
                        ViolationKind.PING_UNANSWERED,
                        now,
                        f"ping {ping_id} sent at {sent:.1f} s unanswered after {timeout:.0f} s "
                        f"(sent {self.timeline.at(sent)})",
                        key=f"ping-{ping_id}",
                        connection_id=conn.connection_id,
                        sentAt=round(sent, 3),
                    )

    def check_memory(self, now: float, rss: int | None) -> None:
        if rss is None:
            return
        self.rss_last = rss
        self.rss_peak = max(self.rss_peak or 0, rss)
        if self.memory_baseline is None:
            return
        bound = self.memory_bound
        assert bound is not None
        if rss > bound:
            self.violation(
                ViolationKind.MEMORY_UNBOUNDED,
                now,
                f"gateway RSS {rss / 2**20:.0f} MiB over its bound {bound / 2**20:.0f} MiB "
                f"(baseline {self.memory_baseline / 2**20:.0f} MiB at the end of the ramp)",
                key="memory",
                rss=rss,
            )

    @property
    def memory_bound(self) -> int | None:
        if self.memory_baseline is None:
            return None
        return self.memory_baseline + max(
            MEMORY_HEADROOM_BYTES, int(self.memory_baseline * MEMORY_HEADROOM_FRACTION)
        )

    def check_snapshot(self, t0: float, t1: float, snapshot: Snapshot) -> None:
        """Judge the stores as read between ``t0`` and ``t1``."""
        self.last_snapshot = snapshot
        self.check_memory(t1, snapshot.rss_bytes)
        healthy = self.timeline.healthy_since(t0)
        if healthy is not None and self.timeline.healthy_since(t1) != healthy:
            healthy = None  # a fault began while we were reading
        redis_records = snapshot.redis_records
        dynamodb_records = snapshot.dynamodb_records
        stable = [c for c in self.world.open_conns() if c.open_during(t0, t1) and not c.closing]
        if redis_records is not None and dynamodb_records is not None:
            everywhere = redis_records | dynamodb_records
            self._check_missing(t0, stable, everywhere)
            self._check_lost(t0, healthy, stable, everywhere)
        for store, records in (("redis", redis_records), ("dynamodb", dynamodb_records)):
            if records is not None:
                self._check_leftovers(
                    ViolationKind.GHOST_RECORD, store, records, t0, t1, healthy, snapshot
                )
        if snapshot.slots is not None:
            self._check_leftovers(
                ViolationKind.GHOST_SLOT,
                "limiter",
                frozenset(snapshot.slots),
                t0,
                t1,
                healthy,
                snapshot,
            )
            self._check_uncounted(t0, healthy, stable, snapshot)
        if snapshot.owners is not None and snapshot.per_user is not None:
            self._check_limiter_consistency(t0, snapshot.owners, snapshot.per_user)
        if snapshot.owners is not None and snapshot.directory is not None:
            self._check_directory_consistency(t0, snapshot.owners, snapshot.directory)
        listed = snapshot.listed()
        if listed is not None:
            self._check_directory_missing(t0, stable, listed)
        known = set(self.world.by_id)
        seen = (redis_records or frozenset()) | (dynamodb_records or frozenset())
        seen |= frozenset(snapshot.slots or ())
        for connection_id in list(self._first_seen):
            if connection_id in known or (
                connection_id not in seen
                and redis_records is not None
                and dynamodb_records is not None
            ):
                del self._first_seen[connection_id]

    def _must_be_recorded(self, t0: float, stable: list[Conn]) -> list[Conn]:
        """The open connections whose record must be found by ``t0``: known, opened at least
        :data:`RECORD_GRACE_SECONDS` before, not exempt by a wipe, not expired."""
        return [
            conn
            for conn in stable
            if conn.connection_id is not None
            and conn.wipe_exempt_at is None
            and conn.expired_at is None
            and conn.opened_at is not None
            and conn.opened_at <= t0 - RECORD_GRACE_SECONDS
        ]

    def _check_missing(self, t0: float, stable: list[Conn], everywhere: frozenset[str]) -> None:
        for conn in self._must_be_recorded(t0, stable):
            assert conn.opened_at is not None
            if conn.connection_id in everywhere:
                continue
            self.violation(
                ViolationKind.MISSING_RECORD,
                t0,
                f"open since {conn.opened_at:.1f} s ({self.timeline.at(conn.opened_at)}) "
                f"with no record in Redis or DynamoDB ({self.timeline.at(t0)})",
                connection_id=conn.connection_id,
                opened_at=conn.opened_at,
            )

    def _check_lost(
        self, t0: float, healthy: float | None, stable: list[Conn], everywhere: frozenset[str]
    ) -> None:
        if healthy is None:
            return
        for conn in stable:
            if (
                conn.wipe_exempt_at is None
                or conn.connection_id is None
                or conn.connection_id in everywhere
                or conn.expired_at is not None
            ):
                continue
            if t0 >= max(healthy, conn.wipe_exempt_at) + self.settings.wipe_deadline:
                self.violation(
                    ViolationKind.LOST_RECORD_NOT_EXPIRED,
                    t0,
                    f"record lost by the restart without data at {conn.wipe_exempt_at:.1f} s, "
                    f"still open and answered {t0 - healthy:.1f} s after the stores healed",
                    connection_id=conn.connection_id,
                )

    def _check_leftovers(
        self,
        kind: ViolationKind,
        store: str,
        ids: frozenset[str],
        t0: float,
        t1: float,
        healthy: float | None,
        snapshot: Snapshot,
    ) -> None:
        """Records (or slots) of connections that are closed, or that no client knows."""
        for connection_id in ids:
            conn = self.world.by_id.get(connection_id)
            if conn is None:
                since = self._first_seen.setdefault(connection_id, t0)
            elif conn.is_open and not conn.closing:
                continue
            elif conn.closed_at is None or conn.closed_at > t0:
                continue  # closing right now: its $disconnect may still be running
            else:
                since = conn.closed_at
            if connection_id in self.lost_disconnects:
                if not self._expires_in_time(store, connection_id, t0, snapshot):
                    continue
                # Left by the skipped $disconnect: only its TTL ends it
                since = since + RECORD_TTL_SECONDS
            if healthy is None or t0 < max(since, healthy) + self.settings.ghost_grace:
                continue
            what = "slot" if kind is ViolationKind.GHOST_SLOT else "record"
            if conn is None:
                detail = (
                    f"{what} in {store} of a connection no client knows, seen since {since:.1f} s"
                )
                closed: dict[str, Any] = {}
            else:
                detail = (
                    f"{what} in {store} of a connection closed by the {conn.closed_by} at "
                    f"{since:.1f} s ({self.timeline.at(since)}; opened at "
                    f"{conn.opened_at:.1f} s, {self.timeline.at(conn.opened_at or 0.0)})"
                )
                closed = {
                    "closedAt": round(since, 3),
                    "closedBy": conn.closed_by,
                    "closedDuring": self.timeline.at(since),
                    "openedAt": conn.opened_at,
                    "openedDuring": self.timeline.at(conn.opened_at or 0.0),
                    "user": conn.user,
                }
            self.violation(
                kind,
                t0,
                detail + f"; still there {t0 - max(since, healthy):.1f} s after the stores healed",
                key=f"{store}-{connection_id}",
                connection_id=connection_id,
                store=store,
                **closed,
            )

    def _expires_in_time(
        self, store: str, connection_id: str, t0: float, snapshot: Snapshot
    ) -> bool:
        """Whether a leftover of a skipped ``$disconnect`` has a TTL that ends it within the
        record TTL; reports ``leftover_without_ttl`` (and returns False) when it has not."""
        ttls = snapshot.redis_ttls
        if store != "redis" or ttls is None or connection_id not in ttls:
            return True  # DynamoDB's reader already drops expired items; slots carry expiries
        left = ttls[connection_id]
        if 0 <= left <= RECORD_TTL_SECONDS + 1.0:
            return True
        self.violation(
            ViolationKind.LEFTOVER_WITHOUT_TTL,
            t0,
            "record left by a skipped $disconnect "
            + ("without a TTL" if left < 0 else f"with {left:.0f} s to live, over the record TTL"),
            key=f"ttl-{connection_id}",
            connection_id=connection_id,
        )
        return False

    def _check_uncounted(
        self, t0: float, healthy: float | None, stable: list[Conn], snapshot: Snapshot
    ) -> None:
        if healthy is None or snapshot.slots is None:
            return
        everywhere = (snapshot.redis_records or frozenset()) | (
            snapshot.dynamodb_records or frozenset()
        )
        for conn in stable:
            if conn.connection_id is None or conn.connection_id in snapshot.slots:
                continue
            if conn.wipe_exempt_at is not None and conn.connection_id not in everywhere:
                continue  # lost with Redis's data: about to be expired, not to be counted
            assert conn.opened_at is not None
            if t0 < max(healthy, conn.opened_at) + self.settings.slot_settle:
                continue
            self.violation(
                ViolationKind.UNCOUNTED_SLOT,
                t0,
                f"open since {conn.opened_at:.1f} s ({self.timeline.at(conn.opened_at)}) "
                f"without a limiter slot, {t0 - healthy:.1f} s after the stores healed",
                connection_id=conn.connection_id,
                openedAt=conn.opened_at,
                openedDuring=self.timeline.at(conn.opened_at),
                user=conn.user,
            )

    def _check_limiter_consistency(
        self, t0: float, owners: Mapping[str, str], per_user: Mapping[str, int]
    ) -> None:
        counted: dict[str, int] = {}
        for user in owners.values():
            counted[user] = counted.get(user, 0) + 1
        for user in set(counted) | set(per_user):
            if counted.get(user, 0) != per_user.get(user, 0):
                self.violation(
                    ViolationKind.LIMITER_INCONSISTENT,
                    t0,
                    f"per-user count of {user} is {per_user.get(user, 0)} but it owns "
                    f"{counted.get(user, 0)} slots",
                    key=f"user-{user}-{per_user.get(user, 0)}-{counted.get(user, 0)}",
                    user=user,
                )

    def _check_directory_missing(
        self, t0: float, stable: list[Conn], listed: Mapping[str, set[str]]
    ) -> None:
        for conn in self._must_be_recorded(t0, stable):
            assert conn.opened_at is not None
            if conn.connection_id in listed.get(conn.user, ()):
                continue
            elsewhere = sorted(u for u, ids in listed.items() if conn.connection_id in ids)
            self.violation(
                ViolationKind.DIRECTORY_MISSING,
                t0,
                f"open since {conn.opened_at:.1f} s ({self.timeline.at(conn.opened_at)}) and "
                f"not listed under its user {conn.user}"
                + (f" (listed under {', '.join(elsewhere)})" if elsewhere else "")
                + f" ({self.timeline.at(t0)})",
                connection_id=conn.connection_id,
                user=conn.user,
                opened_at=conn.opened_at,
            )

    def _check_directory_consistency(
        self, t0: float, owners: Mapping[str, str], directory: Mapping[str, str]
    ) -> None:
        for connection_id in set(owners) | set(directory):
            owner, listed_under = owners.get(connection_id), directory.get(connection_id)
            if owner == listed_under:
                continue
            self.violation(
                ViolationKind.DIRECTORY_INCONSISTENT,
                t0,
                f"slot owned by {owner} but the directory entry is under {listed_under}",
                key=f"directory-{connection_id}-{owner}-{listed_under}",
                connection_id=connection_id,
                owner=owner,
                listed_under=listed_under,
            )

    def check_drained(self, at: float, snapshot: Snapshot) -> None:
        """After the drain: every user's directory entry is empty, but for connections whose
        ``$disconnect`` serve skipped (live until their TTL, so listed)."""
        if snapshot.directory is None or snapshot.dynamodb_users is None:
            return
        left: dict[str, set[str]] = {}
        for entries in (snapshot.directory, snapshot.dynamodb_users):
            for connection_id, user in entries.items():
                if connection_id not in self.lost_disconnects:
                    left.setdefault(user, set()).add(connection_id)
        for user, ids in sorted(left.items()):
            self.violation(
                ViolationKind.DIRECTORY_NOT_EMPTY,
                at,
                f"the directory entry of {user} still lists {len(ids)} connection(s) after "
                f"the drain: {', '.join(sorted(ids)[:5])}",
                key=f"drained-{user}",
                user=user,
                connections=sorted(ids),
            )
