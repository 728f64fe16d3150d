"""The live progress display: a rich table on a terminal, a plain line every 10 s otherwise."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Final

from rich.console import Console
from rich.live import Live
from rich.table import Table

from entrypoints.loadtest.clients import LiveStats, LoadtestPlan

PLAIN_EVERY_SECONDS: Final = 10.0


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f} MiB"


class ProgressDisplay:
    """Context manager whose :meth:`update` is the run's ``tick``; writes to stderr.

    On a terminal it redraws a table (phase, elapsed, attempted, open/established, rejected,
    failed, unexpected disconnects, pings/pongs, recent pong p99, server RSS) four times a
    second; elsewhere (CI logs, pipes) it prints one summary line every 10 s.
    """

    def __init__(self, plan: LoadtestPlan, console: Console | None = None) -> None:
        self._plan = plan
        self._console = console or Console(stderr=True)
        self._live: Live | None = None
        self._last_plain = 0.0

    def __enter__(self) -> ProgressDisplay:
        if self._console.is_terminal:
            self._live = Live(console=self._console, refresh_per_second=4, transient=False)
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

    def update(self, stats: LiveStats) -> None:
        """Show ``stats`` (called every tick by the run)."""
        if self._live is not None:
            self._live.update(self._table(stats))
            return
        now = time.monotonic()
        if stats.phase == "done" or now - self._last_plain >= PLAIN_EVERY_SECONDS:
            self._last_plain = now
            self._console.print(self._line(stats), highlight=False)

    def _line(self, stats: LiveStats) -> str:
        elapsed = time.monotonic() - stats.started_at
        return (
            f"[{stats.phase} {elapsed:6.1f} s] attempted {stats.attempted}/{self._plan.connections}"
            f" open {stats.open} established {stats.established}"
            f" rejected {sum(stats.rejected.values())} failed {sum(stats.failed.values())}"
            f" unexpected {sum(stats.unexpected.values())}"
            f" pings {stats.pings_sent} pongs {stats.pongs_received}"
            f" server RSS {_mib(stats.server_rss_bytes)}"
        )

    def _table(self, stats: LiveStats) -> Table:
        elapsed = time.monotonic() - stats.started_at
        recent = stats.recent_rtt()
        table = Table(title=f"timeline-ws loadtest {self._plan.display_url}", show_header=False)
        table.add_column("figure", style="bold")
        table.add_column("value", justify="right")
        rows = [
            ("phase", f"{stats.phase} ({elapsed:.1f} s)"),
            ("attempted", f"{stats.attempted} / {self._plan.connections}"),
            ("open now / peak", f"{stats.open} / {stats.peak_open}"),
            ("established", str(stats.established)),
            ("rejected", _counter(stats.rejected)),
            ("failed", _counter(stats.failed)),
            ("unexpected disconnects", _counter(stats.unexpected)),
            ("pings sent / pongs", f"{stats.pings_sent} / {stats.pongs_received}"),
            ("pong RTT p99 (recent)", "-" if recent.p99_ms is None else f"{recent.p99_ms:.1f} ms"),
            ("server RSS", _mib(stats.server_rss_bytes)),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table


def _counter(counts: dict[int, int] | dict[str, int]) -> str:
    total = sum(counts.values())
    if not total:
        return "0"
    detail = ", ".join(
        f"{key}: {n}" for key, n in sorted(counts.items(), key=lambda kv: str(kv[0]))
    )
    return f"{total} ({detail})"
