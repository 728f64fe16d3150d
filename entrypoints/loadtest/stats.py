"""The load test's figures: percentiles, the final report, its verdict, text and JSON forms."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import attrs

MAX_DISCONNECT_RATE_PERCENT: Final = 1.0
"""The run fails when unexpected disconnects reach 1% of the connections established."""
MAX_UNANSWERED_PINGS_PERCENT: Final = 1.0
"""The run fails when pings without a pong (by the end of the drain) reach 1% of those sent."""

EXIT_PASSED: Final = 0
EXIT_FAILED: Final = 1
EXIT_INTERRUPTED: Final = 130
"""128 + SIGINT, the shell's status for a command stopped with Ctrl-C."""


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending sequence (``fraction`` in [0, 1]).

    Nearest rank never interpolates, so the figure is a value that was really observed;
    ``percentile(v, 1.0)`` is the maximum.

    Raises:
        ValueError: on an empty sequence or a fraction outside [0, 1].
    """
    if not sorted_values:
        raise ValueError("no values")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError("fraction must be within [0, 1]")
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return float(sorted_values[rank - 1])


@attrs.frozen(slots=True, kw_only=True)
class Distribution:
    """p50 / p95 / p99 / max of a set of durations, in milliseconds; ``None`` when empty."""

    count: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def of_seconds(cls, samples: Sequence[float]) -> Distribution:
        """Summarise durations given in seconds."""
        if not samples:
            return cls(count=0, p50_ms=None, p95_ms=None, p99_ms=None, max_ms=None)
        ordered = sorted(samples)

        def ms(fraction: float) -> float:
            return round(percentile(ordered, fraction) * 1000, 3)

        return cls(
            count=len(ordered), p50_ms=ms(0.50), p95_ms=ms(0.95), p99_ms=ms(0.99), max_ms=ms(1.0)
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"count", "p50", "p95", "p99", "max"}``, in milliseconds (``None`` when empty)."""
        return {
            "count": self.count,
            "p50": self.p50_ms,
            "p95": self.p95_ms,
            "p99": self.p99_ms,
            "max": self.max_ms,
        }

    def cells(self) -> list[str]:
        """The four figures formatted for a table (``-`` when there are none)."""
        return [
            "-" if value is None else f"{value:.1f}"
            for value in (self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms)
        ]


@attrs.frozen(slots=True, kw_only=True)
class ServerFigures:
    """Memory and CPU of a server process on this machine, read from ``/proc/{pid}``.

    ``rss_per_connection_bytes`` is (peak RSS - RSS before the first connection) divided by
    the most connections open at once; ``None`` when no connection was open.
    ``hold_cpu_seconds`` (user + system) and ``hold_pongs`` cover the hold from the moment
    every handshake had settled to its end; ``None`` when that window never opened.
    """

    pid: int
    rss_before_bytes: int
    peak_rss_bytes: int
    rss_per_connection_bytes: int | None
    hold_cpu_seconds: float | None = None
    hold_pongs: int | None = None

    @property
    def cpu_ms_per_pong(self) -> float | None:
        """Server CPU milliseconds per pong during the hold, ``None`` without a window or pongs."""
        if self.hold_cpu_seconds is None or not self.hold_pongs:
            return None
        return self.hold_cpu_seconds * 1000 / self.hold_pongs


@attrs.frozen(slots=True, kw_only=True)
class LoadtestReport:
    """What one run observed. Counts are connections or frames; times are seconds or ms.

    ``url`` never carries a query string (tokens travel there). ``rejected`` counts
    handshakes the server refused on purpose (401, 403, 429), by HTTP status; ``failed``
    counts connections that could not be established for any other reason, by exception
    name or ``HTTP <status>`` (404, 503, ...); ``unexpected_disconnects`` counts closes the
    client did not ask for, by close code (1006 when the socket vanished without a close
    frame). ``interrupted``: the run was stopped early (Ctrl-C); it then never passes.
    """

    url: str
    connections: int
    duration_seconds: float
    ping_interval_seconds: float
    ramp_rate_per_second: float
    attempted: int
    established: int
    rejected: Mapping[int, int]
    failed: Mapping[str, int]
    unexpected_disconnects: Mapping[int, int]
    peak_open: int
    connect_latency: Distribution
    pong_rtt: Distribution
    pings_sent: int
    pongs_received: int
    error_frames: int
    wall_seconds: float
    server: ServerFigures | None = None
    interrupted: bool = False

    @property
    def rejected_total(self) -> int:
        """Handshakes refused with an HTTP status."""
        return sum(self.rejected.values())

    @property
    def failed_total(self) -> int:
        """Connections that failed without an HTTP refusal (timeouts, resets, ...)."""
        return sum(self.failed.values())

    @property
    def unexpected_disconnects_total(self) -> int:
        """Closes the clients did not ask for."""
        return sum(self.unexpected_disconnects.values())

    @property
    def disconnect_rate_percent(self) -> float:
        """Unexpected disconnects per 100 established connections (0 when none was)."""
        if not self.established:
            return 0.0
        return 100.0 * self.unexpected_disconnects_total / self.established

    @property
    def unanswered_pings(self) -> int:
        """Pings that got no pong by the end of the drain (error frames included)."""
        return max(0, self.pings_sent - self.pongs_received)

    @property
    def unanswered_pings_percent(self) -> float:
        """Unanswered pings per 100 sent (0 when none was sent)."""
        if not self.pings_sent:
            return 0.0
        return 100.0 * self.unanswered_pings / self.pings_sent

    @property
    def passed(self) -> bool:
        """True when the run completed, the disconnect rate is under 1%, no connection failed
        without being rejected on purpose, and under 1% of the pings went unanswered.

        A run that established no connection at all proves nothing, so it does not pass
        either (every attempt rejected, e.g. with tokens the pool does not accept).
        """
        return (
            not self.interrupted
            and self.established > 0
            and self.failed_total == 0
            and self.disconnect_rate_percent < MAX_DISCONNECT_RATE_PERCENT
            and self.unanswered_pings_percent < MAX_UNANSWERED_PINGS_PERCENT
            and self.established + self.rejected_total == self.attempted
        )

    @property
    def verdict(self) -> str:
        """``PASSED``, ``FAILED`` or ``INTERRUPTED``."""
        if self.interrupted:
            return "INTERRUPTED"
        return "PASSED" if self.passed else "FAILED"

    @property
    def exit_status(self) -> int:
        """0 when :attr:`passed`, 130 when interrupted, else 1."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_PASSED if self.passed else EXIT_FAILED

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (``--json``); keys are camelCase, times in ms or s."""
        server = None
        if self.server is not None:
            server = {
                "pid": self.server.pid,
                "rssBeforeBytes": self.server.rss_before_bytes,
                "peakRssBytes": self.server.peak_rss_bytes,
                "rssPerConnectionBytes": self.server.rss_per_connection_bytes,
                "holdCpuSeconds": self.server.hold_cpu_seconds,
                "holdPongs": self.server.hold_pongs,
                "cpuMsPerPong": self.server.cpu_ms_per_pong,
            }
        return {
            "url": self.url,
            "connections": self.connections,
            "durationSeconds": self.duration_seconds,
            "pingIntervalSeconds": self.ping_interval_seconds,
            "rampRatePerSecond": self.ramp_rate_per_second,
            "attempted": self.attempted,
            "established": self.established,
            "rejected": {str(status): n for status, n in sorted(self.rejected.items())},
            "rejectedTotal": self.rejected_total,
            "failed": dict(sorted(self.failed.items())),
            "failedTotal": self.failed_total,
            "unexpectedDisconnects": {
                str(code): n for code, n in sorted(self.unexpected_disconnects.items())
            },
            "unexpectedDisconnectsTotal": self.unexpected_disconnects_total,
            "disconnectRatePercent": round(self.disconnect_rate_percent, 4),
            "peakOpen": self.peak_open,
            "connectLatencyMs": self.connect_latency.to_dict(),
            "pongRoundTripMs": self.pong_rtt.to_dict(),
            "pingsSent": self.pings_sent,
            "pongsReceived": self.pongs_received,
            "unansweredPings": self.unanswered_pings,
            "unansweredPingsPercent": round(self.unanswered_pings_percent, 4),
            "errorFrames": self.error_frames,
            "wallSeconds": round(self.wall_seconds, 3),
            "server": server,
            "interrupted": self.interrupted,
            "passed": self.passed,
            "verdict": self.verdict,
        }

    def lines(self) -> list[str]:
        """The report as plain text lines (what the command prints at the end)."""
        verdict = self.verdict
        rejected = ", ".join(f"{status}: {n}" for status, n in sorted(self.rejected.items()))
        failed = ", ".join(f"{name}: {n}" for name, n in sorted(self.failed.items()))
        closes = ", ".join(
            f"{code}: {n}" for code, n in sorted(self.unexpected_disconnects.items())
        )
        lines = [
            f"timeline-ws loadtest {self.url}: {verdict}",
            f"  connections   attempted {self.attempted}, established {self.established}, "
            f"rejected {self.rejected_total}{f' ({rejected})' if rejected else ''}, "
            f"failed {self.failed_total}{f' ({failed})' if failed else ''}, "
            f"peak open {self.peak_open}",
            f"  disconnects   unexpected {self.unexpected_disconnects_total}"
            f"{f' ({closes})' if closes else ''}, rate {self.disconnect_rate_percent:.2f}%",
            f"  pings         sent {self.pings_sent}, pongs received {self.pongs_received}, "
            f"unanswered {self.unanswered_pings} ({self.unanswered_pings_percent:.2f}%), "
            f"error frames {self.error_frames}",
            "                   p50 ms   p95 ms   p99 ms   max ms",
            "  connect       " + "".join(f"{c:>9}" for c in self.connect_latency.cells()),
            "  pong RTT      " + "".join(f"{c:>9}" for c in self.pong_rtt.cells()),
        ]
        if self.server is not None:
            per = self.server.rss_per_connection_bytes
            lines.append(
                f"  server pid {self.server.pid}: RSS before {self.server.rss_before_bytes / 2**20:.1f} MiB, "
                f"peak {self.server.peak_rss_bytes / 2**20:.1f} MiB, "
                f"per connection {'-' if per is None else f'{per / 1024:.1f} KiB'}"
            )
            per_pong = self.server.cpu_ms_per_pong
            if per_pong is not None:
                lines.append(
                    f"  server CPU    {self.server.hold_cpu_seconds:.2f} s for "
                    f"{self.server.hold_pongs} pongs in the hold: {per_pong:.3f} ms per pong"
                )
        lines.append(f"  wall time     {self.wall_seconds:.1f} s")
        return lines
