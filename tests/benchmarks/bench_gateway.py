"""The local gateway under load: ``timeline-ws loadtest`` against ``timeline-ws serve``.

Starts a real ``redis-server`` and ``timeline-ws serve --redis-url ...`` (its own process,
a temporary state folder for the development key, handler and access logs to a file),
then runs ``timeline-ws loadtest`` in another process and returns its JSON report. The two
processes share this machine's CPUs: the figures are the gateway's AND the load
generator's. ``CONNECTION_LIMIT_GLOBAL`` is raised above the connection count (its
default, 1,000, is a production guard, not what this measures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.benchmarks.support import REPO_ROOT
from tests.support.servers import free_port, running_redis_server

READY_TIMEOUT_SECONDS = 30.0
TIMELINE_WS = str(Path(sys.executable).with_name("timeline-ws"))


def wait_for_health(base_url: str, process: subprocess.Popen[bytes]) -> None:
    """Bounded poll of ``GET /health``; raises when the server exits or never answers."""
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"timeline-ws serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{base_url}/health", timeout=1) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)  # polling interval of a bounded readiness loop
    raise RuntimeError("timeline-ws serve did not become healthy")


def serve_command(tree: Path | None) -> list[str]:
    """``timeline-ws serve`` of this checkout, or of ``tree`` (its own modules first on
    ``sys.path``; run it with ``cwd=tree``)."""
    if tree is None:
        return [TIMELINE_WS, "serve"]
    program = (
        "import sys; sys.path.insert(0, '.'); from entrypoints.cli import main; sys.exit(main())"
    )
    return [sys.executable, "-c", program, "serve"]


def run(
    *,
    connections: int,
    duration_seconds: float,
    ping_interval_seconds: float,
    ramp_rate_per_second: float,
    extra_loadtest_args: list[str] | None = None,
    keep_logs: Path | None = None,
    tree: Path | None = None,
) -> dict[str, Any]:
    """Run one load test against a fresh gateway; returns the loadtest's JSON report.

    ``tree`` serves another checkout of the project instead (e.g. a ``git worktree`` of an
    earlier commit, with this virtualenv's libraries); the load tester is always this one.
    The report gets ``exitStatus`` (the loadtest's), ``command`` (to reproduce it) and
    ``tree`` (the checkout served).
    """
    with (
        running_redis_server() as redis_server,
        tempfile.TemporaryDirectory(prefix="timeline-ws-load-") as folder,
    ):
        workdir = Path(folder)
        port = free_port()
        environ = dict(os.environ)
        for name in ("COGNITO_REGION", "COGNITO_USER_POOL_ID", "COGNITO_APP_CLIENT_IDS"):
            environ.pop(name, None)
        environ["TIMELINE_WS_STATE_DIR"] = str(workdir / "state")
        environ["CONNECTION_LIMIT_GLOBAL"] = str(connections + 1000)
        server_log = (keep_logs or workdir) / "serve.log"
        with server_log.open("wb") as log:
            server = subprocess.Popen(
                [
                    *serve_command(tree),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--redis-url",
                    redis_server.url,
                    "--log-level",
                    "WARNING",
                ],
                env=environ,
                cwd=tree or REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for_health(f"http://127.0.0.1:{port}", server)
                report_path = workdir / "report.json"
                command = [
                    TIMELINE_WS,
                    "loadtest",
                    f"ws://127.0.0.1:{port}/ws",
                    "--connections",
                    str(connections),
                    "--duration",
                    str(duration_seconds),
                    "--ping-interval",
                    str(ping_interval_seconds),
                    "--ramp-rate",
                    f"{ramp_rate_per_second:g}/s",
                    "--server-pid",
                    str(server.pid),
                    "--quiet",
                    "--json",
                    str(report_path),
                    *(extra_loadtest_args or []),
                ]
                completed = subprocess.run(
                    command, env=environ, cwd=REPO_ROOT, check=False, stdout=subprocess.DEVNULL
                )
                report: dict[str, Any] = json.loads(report_path.read_text())
                report["exitStatus"] = completed.returncode
                report["tree"] = str(tree or REPO_ROOT)
                report["command"] = (
                    f"timeline-ws loadtest ws://127.0.0.1:PORT/ws --connections {connections} "
                    f"--duration {duration_seconds:g} --ping-interval {ping_interval_seconds:g} "
                    f"--ramp-rate {ramp_rate_per_second:g}/s"
                )
            finally:
                server.terminate()
                try:
                    server.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait(timeout=10)
    return report


def render(report: dict[str, Any]) -> str:
    """The load test's figures as a short table."""
    connect, rtt = report["connectLatencyMs"], report["pongRoundTripMs"]
    server = report.get("server") or {}
    per = server.get("rssPerConnectionBytes")
    lines = [
        f"Local gateway under load ({report['connections']} connections, "
        f"{report['durationSeconds']:g} s hold, {report['pingIntervalSeconds']:g} s pings, "
        f"ramp {report['rampRatePerSecond']:g}/s; serve + redis-server + loadtest on one machine)",
        f"  serving {report.get('tree', REPO_ROOT)}",
        "",
        f"  attempted {report['attempted']}, established {report['established']}, "
        f"rejected {report['rejectedTotal']}{_counts(report['rejected'])}, "
        f"failed {report['failedTotal']}{_counts(report['failed'])}, "
        f"peak open {report['peakOpen']}",
        f"  unexpected disconnects {report['unexpectedDisconnectsTotal']}"
        f"{_counts(report['unexpectedDisconnects'])} ({report['disconnectRatePercent']:.2f}%), "
        f"pings {report['pingsSent']}, pongs {report['pongsReceived']}, "
        f"unanswered {report['unansweredPings']}, error frames {report['errorFrames']}",
        "                  p50 ms   p95 ms   p99 ms   max ms",
        "  connect      " + _cells(connect),
        "  pong RTT     " + _cells(rtt),
    ]
    if server:
        lines.append(
            f"  serve RSS: before {server['rssBeforeBytes'] / 2**20:.1f} MiB, peak "
            f"{server['peakRssBytes'] / 2**20:.1f} MiB, per connection "
            f"{'-' if per is None else f'{per / 1024:.1f} KiB'}"
        )
    if server.get("cpuMsPerPong") is not None:
        lines.append(
            f"  serve CPU in the hold: {server['holdCpuSeconds']:.2f} s for "
            f"{server['holdPongs']} pongs, {server['cpuMsPerPong']:.3f} ms per pong"
        )
    lines.append(f"  verdict: {report['verdict']} (exit {report['exitStatus']})")
    return "\n".join(lines)


def _cells(distribution: dict[str, Any]) -> str:
    return "".join(
        f"{'-' if distribution[key] is None else f'{distribution[key]:.1f}':>9}"
        for key in ("p50", "p95", "p99", "max")
    )


def _counts(counts: dict[str, int]) -> str:
    """`` (401: 2, HTTP 503: 1)`` for a non-empty count map, else nothing."""
    return f" ({', '.join(f'{key}: {n}' for key, n in counts.items())})" if counts else ""


def cpu_comparison(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[str, Any]:
    """Gateway CPU per pong, before (another tree) against after (this one), medians of the
    rounds; ``lowerBy`` is before / after (issue 11's target: at least 2)."""
    import statistics

    def per_pong(reports: list[dict[str, Any]]) -> float | None:
        values = [
            r["server"]["cpuMsPerPong"]
            for r in reports
            if r.get("server") and r["server"].get("cpuMsPerPong") is not None
        ]
        return statistics.median(values) if values else None

    was, now = per_pong(before), per_pong(after)
    lower_by = None if not was or not now else was / now
    return {
        "beforeTree": before[0]["tree"] if before else None,
        "beforeCpuMsPerPong": was,
        "afterCpuMsPerPong": now,
        "lowerBy": lower_by,
        "target": 2.0,
        "met": None if lower_by is None else lower_by >= 2.0,
        "rounds": len(after),
    }


def render_cpu_comparison(comparison: dict[str, Any]) -> str:
    """One paragraph: CPU per pong before and after, the ratio, the verdict."""
    from tests.benchmarks.support import verdict

    was, now, by = (
        comparison["beforeCpuMsPerPong"],
        comparison["afterCpuMsPerPong"],
        comparison["lowerBy"],
    )
    if by is None:
        return "Gateway CPU per pong: not measured (no CPU window in one of the runs)"
    return (
        f"Gateway CPU per pong (median of {comparison['rounds']} round(s), runs alternated): "
        f"before {was:.3f} ms ({comparison['beforeTree']}), after {now:.3f} ms: "
        f"{by:.2f}x lower (target >= 2x) {verdict(comparison['met'])}"
    )
