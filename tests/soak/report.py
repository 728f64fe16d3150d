"""The soak's figures: per schedule and in total, as JSON and as a table; the live display."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

import attrs
from rich.console import Console
from rich.live import Live
from rich.table import Table

from tests.soak.invariants import Violation

PLAIN_EVERY_SECONDS: Final = 10.0


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f} MiB"


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(fraction * len(ordered) + 0.5) - 1))]


@attrs.define(kw_only=True)
class ScheduleReport:
    """What one schedule did and found."""

    index: int
    seed: int
    clients: int
    schedule_seconds: float
    planned: list[dict[str, Any]] = attrs.field(factory=list)
    faults: list[dict[str, Any]] = attrs.field(factory=list)
    attempts: int = 0
    opened: int = 0
    refused: dict[str, int] = attrs.field(factory=dict)
    closed_by_client: int = 0
    closed_by_server: int = 0
    expired: int = 0
    pings: int = 0
    pongs: int = 0
    pong_seconds: list[float] = attrs.field(factory=list)
    answered_late: int = 0
    never_answered: int = 0
    pong_healthy_seconds: list[float] = attrs.field(factory=list)
    """Round trips of the pings sent while no fault was active."""
    loop_lag_max: float = 0.0
    """The soak runner's own event-loop lag, worst seen (s): were the clients on time?"""
    load_average_max: float | None = None
    cpu_steal_percent: float | None = None
    """CPU time the hypervisor gave to other guests during the schedule (% of all vCPUs)."""
    cpu_steal_max_percent: float | None = None
    """The same over the worst half-second (the display's cadence)."""
    queue_waits: int = 0
    """Invocations that waited 1 s or more for one of serve's workers (from its log)."""
    queue_wait_max: float = 0.0
    violations: list[Violation] = attrs.field(factory=list)
    ghost_causes: Counter[str] = attrs.field(factory=Counter)
    tolerated: dict[str, int] = attrs.field(factory=dict)
    rss_baseline: int | None = None
    rss_peak: int | None = None
    rss_last: int | None = None
    rss_bound: int | None = None
    leftovers: dict[str, int] = attrs.field(factory=dict)
    disconnect_loss: float = 0.0
    """serve's ``--disconnect-loss`` in this schedule."""
    disconnects_lost: int = 0
    """``$disconnect`` invocations serve skipped (their records are left to their TTL)."""
    wall_seconds: float = 0.0
    started_wall: float | None = None
    """Wall-clock time (epoch s) of the schedule's t=0, to match its times with the logs."""
    interrupted: bool = False
    workdir: str | None = None

    def violations_by_kind(self) -> Counter[str]:
        return Counter(v.kind.value for v in self.violations)

    def faults_by_kind(self) -> Counter[str]:
        return Counter(str(f["kind"]) for f in self.faults)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schedule": self.index,
            "seed": self.seed,
            "replay": f"--seed {self.seed} --schedules 1 --clients {self.clients} "
            f"--schedule-seconds {self.schedule_seconds:g}",
            "clients": self.clients,
            "scheduleSeconds": self.schedule_seconds,
            "wallSeconds": round(self.wall_seconds, 1),
            "startedAt": None
            if self.started_wall is None
            else datetime.fromtimestamp(self.started_wall, UTC).isoformat(timespec="milliseconds"),
            "interrupted": self.interrupted,
            "timeBase": "times are seconds since startedAt, except plannedFaults[].at: "
            "seconds since the fault phase began (after the ramp)",
            "plannedFaults": self.planned,
            "faults": self.faults,
            "faultsByKind": dict(self.faults_by_kind()),
            "connections": {
                "attempts": self.attempts,
                "opened": self.opened,
                "refusedOrFailed": self.refused,
                "closedByClient": self.closed_by_client,
                "closedByServer": self.closed_by_server,
                "expired": self.expired,
            },
            "pings": {
                "sent": self.pings,
                "pongs": self.pongs,
                "unansweredButLaterAnswered": self.answered_late,
                "unansweredWhenTheirSocketClosed": self.never_answered,
                "pongP50Ms": _ms(percentile(self.pong_seconds, 0.5)),
                "pongP99Ms": _ms(percentile(self.pong_seconds, 0.99)),
                "pongMaxMs": _ms(max(self.pong_seconds, default=None)),
                "pongP99HealthyMs": _ms(percentile(self.pong_healthy_seconds, 0.99)),
            },
            "machine": {
                "runnerLoopLagMaxMs": _ms(self.loop_lag_max),
                "loadAverageMax": self.load_average_max,
                "cpuStealPercent": self.cpu_steal_percent,
                "cpuStealMaxPercent": self.cpu_steal_max_percent,
                "cpus": os.cpu_count(),
                "gatewayQueueWaitsOver1s": self.queue_waits,
                "gatewayQueueWaitMaxSeconds": round(self.queue_wait_max, 2),
            },
            "gatewayRss": {
                "baselineBytes": self.rss_baseline,
                "peakBytes": self.rss_peak,
                "lastBytes": self.rss_last,
                "boundBytes": self.rss_bound,
            },
            "leftAfterDrain": self.leftovers,
            "disconnectLoss": self.disconnect_loss,
            "disconnectsLost": self.disconnects_lost,
            "violationsByKind": dict(self.violations_by_kind()),
            "ghostCauses": dict(sorted(self.ghost_causes.items())),
            "tolerated": self.tolerated,
            "violations": [v.to_dict() for v in self.violations],
            "workdir": self.workdir,
        }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def totals(schedules: Sequence[ScheduleReport]) -> dict[str, Any]:
    """The figures over every schedule."""
    faults: Counter[str] = Counter()
    violations: Counter[str] = Counter()
    tolerated: Counter[str] = Counter()
    causes: Counter[str] = Counter()
    pong_seconds: list[float] = []
    for schedule in schedules:
        faults.update(schedule.faults_by_kind())
        violations.update(schedule.violations_by_kind())
        tolerated.update(schedule.tolerated)
        causes.update(schedule.ghost_causes)
        pong_seconds.extend(schedule.pong_seconds)
    return {
        "schedules": len(schedules),
        "faultsByKind": dict(sorted(faults.items())),
        "faults": sum(faults.values()),
        "connectionAttempts": sum(s.attempts for s in schedules),
        "connectionsOpened": sum(s.opened for s in schedules),
        "pingsSent": sum(s.pings for s in schedules),
        "pongs": sum(s.pongs for s in schedules),
        "pongP50Ms": _ms(percentile(pong_seconds, 0.5)),
        "pongP99Ms": _ms(percentile(pong_seconds, 0.99)),
        "violations": sum(violations.values()),
        "violationsByKind": dict(sorted(violations.items())),
        "tolerated": dict(sorted(tolerated.items())),
        "ghostCauses": dict(sorted(causes.items())),
        "wallSeconds": round(sum(s.wall_seconds for s in schedules), 1),
    }


def summary_table(schedules: Sequence[ScheduleReport]) -> Table:
    """One row per schedule, then the totals."""
    table = Table(title="timeline-ws soak", show_lines=False)
    for header in (
        "schedule",
        "seed",
        "faults",
        "$disconnect lost",
        "conns",
        "pings",
        "pong p99",
        "RSS peak",
        "CPU steal",
        "violations",
    ):
        table.add_column(header)
    for s in schedules:
        p99 = percentile(s.pong_seconds, 0.99)
        table.add_row(
            str(s.index),
            str(s.seed),
            ", ".join(f"{k} {n}" for k, n in sorted(s.faults_by_kind().items())) or "-",
            f"{s.disconnects_lost} ({s.disconnect_loss:.0%})" if s.disconnect_loss else "-",
            f"{s.opened}/{s.attempts}",
            f"{s.pongs}/{s.pings}",
            "-" if p99 is None else f"{p99 * 1000:.0f} ms",
            _mib(s.rss_peak),
            _steal(s.cpu_steal_percent, s.cpu_steal_max_percent),
            ", ".join(f"{k} {n}" for k, n in sorted(s.violations_by_kind().items())) or "0",
        )
    return table


def _steal(mean: float | None, worst: float | None) -> str:
    """``"3.1% (max 40.0%)"``: the schedule's stolen CPU share, and its worst half-second."""
    if mean is None:
        return "-"
    return f"{mean:.1f}% (max {worst or 0.0:.1f}%)"


@attrs.define
class LiveState:
    """What the progress display shows (updated by the running schedule)."""

    schedule: int = 0
    schedules: int = 0
    seed: int = 0
    phase: str = "starting"
    elapsed: float = 0.0
    fault: str = "-"
    faults_done: int = 0
    faults_planned: int = 0
    open: int = 0
    attempts: int = 0
    pings: int = 0
    pongs: int = 0
    rss: int | None = None
    violations: Counter[str] = attrs.field(factory=Counter)


class ProgressDisplay:
    """A rich table redrawn on a terminal; a plain line every 10 s elsewhere (CI, pipes).

    ``print`` writes a line above the live table (violations as they happen).
    """

    def __init__(self, console: Console | None = None, *, quiet: bool = False) -> None:
        if console is None:
            console = Console(stderr=True)
            if not console.is_terminal:
                console = Console(stderr=True, width=160)  # logs and pipes: no wrapping
        self.console = console
        self._quiet = quiet
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self.console.is_terminal and not self._quiet:
            self._live = Live(console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, traceback)
            self._live = None

    def print(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True)

    def update(self, state: LiveState) -> None:
        if self._live is not None:
            self._live.update(self._table(state))
            return
        now = time.monotonic()
        if not self._quiet and now - self._last_plain >= PLAIN_EVERY_SECONDS:
            self._last_plain = now
            self.print(self._line(state))

    @staticmethod
    def _line(state: LiveState) -> str:
        found = sum(state.violations.values())
        return (
            f"schedule {state.schedule}/{state.schedules} seed {state.seed} {state.phase} "
            f"t={state.elapsed:.0f}s fault={state.fault} ({state.faults_done}/"
            f"{state.faults_planned}) open={state.open} attempts={state.attempts} "
            f"pongs={state.pongs}/{state.pings} rss={_mib(state.rss)} violations={found}"
        )

    @staticmethod
    def _table(state: LiveState) -> Table:
        table = Table(title=f"soak schedule {state.schedule}/{state.schedules}, seed {state.seed}")
        table.add_column("")
        table.add_column("")
        rows: list[tuple[str, str]] = [
            ("phase", f"{state.phase} ({state.elapsed:.0f} s)"),
            ("fault", f"{state.fault} ({state.faults_done}/{state.faults_planned} done)"),
            ("open / attempts", f"{state.open} / {state.attempts}"),
            ("pongs / pings", f"{state.pongs} / {state.pings}"),
            ("gateway RSS", _mib(state.rss)),
            (
                "violations",
                ", ".join(f"{k} {n}" for k, n in sorted(state.violations.items())) or "0",
            ),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table
