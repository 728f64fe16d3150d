"""Fault kinds, the schedule drawn from a seed, and the timeline of what was injected when.

A schedule is a sequence of faults, one after the other, drawn from ``random.Random(seed)``:
the kinds come from a shuffled deck (every enabled kind once before any repeats), each with
a duration (and, for latency, a delay) drawn from its range, separated by quiet gaps. The
same seed always gives the same schedule, so ``--seed`` replays one. Faults end by
``seconds - quiet_tail`` so every schedule ends healthy, long enough for the settle checks.

How each kind is made (see the README's "Soak test" for why these are faithful):

- ``redis_kill``: SIGKILL redis-server, restart it after the downtime on the same port and
  folder; its append-only file (``appendfsync always``) brings every key back.
- ``redis_wipe``: the same, restarted on an empty folder: an ElastiCache node replacement
  that loses every record and every limiter key.
- ``redis_hang``: SIGSTOP for 1-20 s, then SIGCONT.
- ``redis_latency``: the Redis proxy delays every chunk by 50-600 ms in each direction.
- ``redis_blackhole``: the Redis proxy partitions the network (see ``proxy.py``).
- ``dynamodb_down``: the DynamoDB proxy refuses connections and resets the open ones (the
  endpoint is unreachable, as when its server dies); moto keeps its data, as DynamoDB does.
- ``dynamodb_blackhole``: the DynamoDB proxy partitions the network.
- ``both_down``: ``redis_kill`` and ``dynamodb_down`` at once, for a few seconds.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from typing import Final

import attrs


class FaultKind(enum.StrEnum):
    """What a fault does; the value is its name in reports and on the command line."""

    REDIS_KILL = "redis_kill"
    REDIS_WIPE = "redis_wipe"
    REDIS_HANG = "redis_hang"
    REDIS_LATENCY = "redis_latency"
    REDIS_BLACKHOLE = "redis_blackhole"
    DYNAMODB_DOWN = "dynamodb_down"
    DYNAMODB_BLACKHOLE = "dynamodb_blackhole"
    BOTH_DOWN = "both_down"


DURATION_RANGES: Final[dict[FaultKind, tuple[float, float]]] = {
    FaultKind.REDIS_KILL: (1.0, 8.0),
    FaultKind.REDIS_WIPE: (1.0, 5.0),
    FaultKind.REDIS_HANG: (1.0, 20.0),
    FaultKind.REDIS_LATENCY: (3.0, 15.0),
    FaultKind.REDIS_BLACKHOLE: (1.0, 10.0),
    FaultKind.DYNAMODB_DOWN: (2.0, 15.0),
    FaultKind.DYNAMODB_BLACKHOLE: (1.0, 10.0),
    FaultKind.BOTH_DOWN: (2.0, 6.0),
}
"""Seconds each kind lasts (downtime, hang, partition or added latency), drawn uniformly."""

LATENCY_RANGE_MS: Final = (50, 600)
"""Delay added in each direction by ``redis_latency``, milliseconds, drawn uniformly."""

REDIS_FAULTS: Final = frozenset(
    {
        FaultKind.REDIS_KILL,
        FaultKind.REDIS_WIPE,
        FaultKind.REDIS_HANG,
        FaultKind.REDIS_LATENCY,
        FaultKind.REDIS_BLACKHOLE,
        FaultKind.BOTH_DOWN,
    }
)
"""Kinds during which the gateway's Redis may not answer (in time)."""

DYNAMODB_FAULTS: Final = frozenset(
    {FaultKind.DYNAMODB_DOWN, FaultKind.DYNAMODB_BLACKHOLE, FaultKind.BOTH_DOWN}
)
"""Kinds during which the gateway's DynamoDB does not answer."""

REDIS_SERVER_DOWN: Final = frozenset(
    {FaultKind.REDIS_KILL, FaultKind.REDIS_WIPE, FaultKind.REDIS_HANG, FaultKind.BOTH_DOWN}
)
"""Kinds during which the soak's own checker cannot read Redis either (the server itself is
down or stopped; proxy faults leave the checker's direct connection alone)."""

RESTART_ALLOWANCE_SECONDS: Final = 1.0
"""Planned time for a restart to answer again, between a fault's end and the next gap."""


@attrs.frozen(slots=True, kw_only=True)
class PlannedFault:
    """One fault of a schedule: ``kind`` at ``at`` s after the fault phase began, for
    ``duration`` s; ``latency_ms`` for ``redis_latency`` only."""

    kind: FaultKind
    at: float
    duration: float
    latency_ms: int | None = None

    def describe(self) -> str:
        extra = f", +{self.latency_ms} ms each way" if self.latency_ms is not None else ""
        return f"{self.at:6.1f} s  {self.kind.value:<19} {self.duration:4.1f} s{extra}"

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind.value,
            "at": self.at,
            "duration": self.duration,
            "latencyMs": self.latency_ms,
        }


def plan_faults(
    seed: int,
    *,
    seconds: float,
    kinds: Sequence[FaultKind],
    quiet_tail: float,
    first_at: float = 3.0,
    gap: tuple[float, float] = (2.0, 8.0),
) -> list[PlannedFault]:
    """The schedule of ``seed``: faults from ``first_at`` until ``seconds - quiet_tail``.

    A fault that does not fit whole is shortened to fit when at least its minimum duration
    still fits; otherwise the schedule ends there.

    Raises:
        ValueError: no kind given.
    """
    if not kinds:
        raise ValueError("at least one fault kind is needed")
    rng = random.Random(seed)
    end = seconds - quiet_tail
    faults: list[PlannedFault] = []
    deck: list[FaultKind] = []
    at = first_at
    while True:
        if not deck:
            deck = sorted(set(kinds))
            rng.shuffle(deck)
        kind = deck.pop()
        low, high = DURATION_RANGES[kind]
        duration = round(rng.uniform(low, high), 1)
        latency = rng.randint(*LATENCY_RANGE_MS) if kind is FaultKind.REDIS_LATENCY else None
        room = end - at - RESTART_ALLOWANCE_SECONDS
        if room < low:
            return faults
        duration = min(duration, round(room, 1))
        faults.append(
            PlannedFault(kind=kind, at=round(at, 1), duration=duration, latency_ms=latency)
        )
        at += duration + RESTART_ALLOWANCE_SECONDS + rng.uniform(*gap)


@attrs.define(slots=True, kw_only=True)
class FaultRecord:
    """A fault as it happened: from ``started`` (just before the first action) until
    ``healed`` (every store it touched answers again), seconds since the schedule began."""

    planned: PlannedFault
    started: float
    ended: float | None = None
    """When the fault's own action stopped (restart issued, SIGCONT sent, proxy healed)."""
    healed: float | None = None

    @property
    def kind(self) -> FaultKind:
        return self.planned.kind

    def active_at(self, t: float) -> bool:
        return self.started <= t and (self.healed is None or t < self.healed)

    def overlaps(self, t0: float, t1: float) -> bool:
        return self.started <= t1 and (self.healed is None or self.healed >= t0)

    def to_dict(self) -> dict[str, object]:
        return {
            **self.planned.to_dict(),
            "started": round(self.started, 3),
            "ended": None if self.ended is None else round(self.ended, 3),
            "healed": None if self.healed is None else round(self.healed, 3),
        }


class HealthTimeline:
    """What was injected when; answers "were the stores healthy then?" for the checker."""

    def __init__(self) -> None:
        self.records: list[FaultRecord] = []

    def begin(self, planned: PlannedFault, now: float) -> FaultRecord:
        record = FaultRecord(planned=planned, started=now)
        self.records.append(record)
        return record

    def active(self, t: float) -> list[FaultRecord]:
        return [record for record in self.records if record.active_at(t)]

    def overlapping(self, t0: float, t1: float) -> list[FaultRecord]:
        return [record for record in self.records if record.overlaps(t0, t1)]

    def healthy_since(self, t: float) -> float | None:
        """Since when both stores have been healthy at ``t`` (0.0: always); ``None`` while a
        fault is active."""
        if self.active(t):
            return None
        healed = [r.healed for r in self.records if r.healed is not None and r.healed <= t]
        return max(healed, default=0.0)

    def redis_server_down(self, t: float) -> bool:
        """Whether redis-server itself was down or stopped at ``t`` (the checker cannot read it)."""
        return any(record.kind in REDIS_SERVER_DOWN for record in self.active(t))

    def at(self, t: float) -> str:
        """A short description of what was going on at ``t`` for violation reports."""
        active = self.active(t)
        if active:
            return "during " + "+".join(record.kind.value for record in active)
        since = self.healthy_since(t)
        previous = [r for r in self.records if r.healed is not None and r.healed <= t]
        if not previous or since is None:
            return "healthy"
        last = max(previous, key=lambda record: record.healed or 0.0)
        return f"healthy, {t - since:.1f} s after {last.kind.value} healed"
