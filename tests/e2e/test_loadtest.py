"""``timeline-ws loadtest`` against the local gateway (real handlers, real redis-server).

A small run (50 connections, 10 s, 1 s pings) through the real CLI entrypoint: every
connection is established, none closes unexpectedly, and every ping is answered. Timing
figures are printed for the log, never asserted. And a run stopped with Ctrl-C, in its own
process: it drains, reports, writes its JSON and exits 130.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import redis

from entrypoints.cli import main
from tests.e2e.conftest import RunningGateway
from tests.support.http import wait_until

CONNECTIONS = 50
DURATION_SECONDS = 10
PING_INTERVAL_SECONDS = 1


def test_given_the_gateway_when_50_clients_ping_for_10_s_then_all_connect_and_every_ping_is_answered(
    gateway: Callable[..., RunningGateway],
    state_dir: Path,
    tmp_path: Path,
    redis_client: redis.Redis,
    capsys,
) -> None:
    # Given: the gateway on real Redis, tokens minted from its development key
    running = gateway()
    report_path = tmp_path / "report.json"

    # When
    status = main(
        [
            "loadtest",
            running.ws_url,
            "--connections",
            str(CONNECTIONS),
            "--duration",
            str(DURATION_SECONDS),
            "--ping-interval",
            str(PING_INTERVAL_SECONDS),
            "--ramp-rate",
            "100/s",
            "--state-dir",
            str(state_dir),
            "--quiet",
            "--json",
            str(report_path),
        ]
    )

    # Then: every client closed with 1000, so $disconnect removed every record
    wait_until(lambda: not redis_client.keys("ws:connection:*"), what="every record removed")
    printed = capsys.readouterr().out
    report = json.loads(report_path.read_text())
    report_text = printed[printed.index("timeline-ws loadtest ") :]
    # The in-process handlers' JSON log lines interleave with the report: keep the report.
    summary = "\n".join(line for line in report_text.splitlines() if not line.startswith("{"))
    with capsys.disabled():
        print("\n" + summary)  # the timing figures, for the log only
    assert status == 0
    assert report["attempted"] == CONNECTIONS
    assert report["established"] == CONNECTIONS
    assert report["rejectedTotal"] == 0
    assert report["failedTotal"] == 0
    assert report["unexpectedDisconnectsTotal"] == 0
    assert report["pingsSent"] >= CONNECTIONS * (DURATION_SECONDS // PING_INTERVAL_SECONDS - 1)
    assert report["pongsReceived"] == report["pingsSent"]
    assert report["errorFrames"] == 0
    assert report["passed"] is True
    assert "token=" not in summary and "token" not in report["url"]
    # The gateway runs in this process: its CPU over the hold, once every handshake settled
    server = report["server"]
    assert server["pid"] == os.getpid()
    assert CONNECTIONS * 5 <= server["holdPongs"] <= report["pongsReceived"]
    assert server["holdCpuSeconds"] > 0
    assert server["cpuMsPerPong"] == server["holdCpuSeconds"] * 1000 / server["holdPongs"]
    assert "ms per pong" in summary


def test_given_tokens_the_pool_does_not_accept_when_loadtesting_then_rejections_are_counted_by_status(
    gateway: Callable[..., RunningGateway], tmp_path: Path, capsys
) -> None:
    # Given: a token file with tokens the development pool never issued (progress shown)
    running = gateway()
    token_file = tmp_path / "tokens.txt"
    token_file.write_text("# not tokens\nnot-a-jwt\n\nstill.not.one\n")

    # When
    status = main(
        [
            "loadtest",
            running.ws_url,
            "--connections",
            "4",
            "--duration",
            "1",
            "--ping-interval",
            "1",
            "--token-file",
            str(token_file),
            "--json",
            str(tmp_path / "report.json"),
        ]
    )

    # Then: refused on purpose (HTTP 401), not failed; a run that established nothing fails
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rejected"] == {"401": 4}
    assert report["established"] == 0
    assert report["failedTotal"] == 0
    assert report["passed"] is False
    assert status == 1
    assert "not-a-jwt" not in capsys.readouterr().out


def test_given_a_long_run_when_it_gets_ctrl_c_then_it_drains_reports_and_exits_130(
    gateway: Callable[..., RunningGateway],
    state_dir: Path,
    tmp_path: Path,
    redis_client: redis.Redis,
) -> None:
    # Given: the real command in its own process, planned to hold 10 connections for an hour
    running = gateway()
    report_path = tmp_path / "report.json"
    command = [
        sys.executable,
        "-c",
        "import sys; from entrypoints.cli import main; sys.exit(main())",
        "loadtest",
        running.ws_url,
        "--connections",
        "10",
        "--duration",
        "3600",
        "--ping-interval",
        "1",
        "--state-dir",
        str(state_dir),
        "--quiet",
        "--json",
        str(report_path),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(
            lambda: len(redis_client.keys("ws:connection:*")) == 10,
            timeout=30,
            what="all 10 connections stored",
        )
        # When: Ctrl-C
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    # Then: no traceback, the report of what was seen, exit 130, and every socket closed cleanly
    assert "Traceback" not in stderr, stderr[-2000:]
    assert process.returncode == 130
    assert "INTERRUPTED" in stdout
    report = json.loads(report_path.read_text())
    assert report["interrupted"] is True and report["verdict"] == "INTERRUPTED"
    assert report["established"] == 10
    assert report["unexpectedDisconnectsTotal"] == 0
    wait_until(lambda: not redis_client.keys("ws:connection:*"), what="every record removed")
