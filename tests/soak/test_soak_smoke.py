"""A 60-second soak (``make test`` runs it; ``make soak`` runs the long ones), and its cleanup.

The smoke run is ``python -m tests.soak.run`` exactly as a user runs it: 100 clients pinging
every 2-6 s, one schedule of 60 s whose seed (20) draws five fault kinds — ``dynamodb_down``, ``redis_wipe``,
``redis_kill``, ``both_down``, ``redis_latency`` — then the JSON report is read. The tests
check that the run really did what it claims (every fault applied and healed, the stores
drained) and that it found no violation: no ghost record, no ghost or uncounted slot, no
false 429 (the kinds issue 14 found, ``tests/soak/FINDINGS.md``), nothing lost.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.soak.faults import FaultKind

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
SMOKE_SEED = 20
SMOKE_KINDS = {
    FaultKind.DYNAMODB_DOWN,
    FaultKind.REDIS_WIPE,
    FaultKind.REDIS_KILL,
    FaultKind.BOTH_DOWN,
    FaultKind.REDIS_LATENCY,
}


def soak_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.soak.run", "--quiet", *args]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The JSON report of one 60-second schedule, with the runner's exit status."""
    report = tmp_path_factory.mktemp("soak") / "smoke.json"
    completed = subprocess.run(
        soak_command(
            "--clients",
            "100",
            "--schedules",
            "1",
            "--schedule-seconds",
            "60",
            "--ping-interval",
            "2-6",
            "--disconnect-loss",
            "0.25",
            "--disconnect-loss-every",
            "1",
            "--seed",
            str(SMOKE_SEED),
            "--json",
            str(report),
        ),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    document: dict[str, Any] = json.loads(report.read_text())
    document["exitStatus"] = completed.returncode
    document["stderr"] = completed.stderr
    return document


def test_the_smoke_run_injects_five_kinds_of_fault_under_100_live_clients(
    smoke: dict[str, Any],
) -> None:
    schedule = smoke["schedules"][0]
    assert schedule["seed"] == SMOKE_SEED
    assert not smoke["interrupted"]
    assert {fault["kind"] for fault in schedule["faults"]} == {k.value for k in SMOKE_KINDS}
    assert all(fault["healed"] is not None for fault in schedule["faults"])
    connections = schedule["connections"]
    assert connections["opened"] >= 150  # 100 at first, then reconnections
    assert connections["expired"] > 0  # the restart without data lost records
    pings = schedule["pings"]
    assert pings["sent"] >= 1000
    assert pings["pongs"] >= 0.9 * pings["sent"]  # the rest: in flight when a client left
    assert schedule["tolerated"].get("connect_5xx_both_down", 0) > 0
    assert schedule["gatewayRss"]["peakBytes"] is not None
    assert set(schedule["leftAfterDrain"]) >= {"redisRecords", "dynamodbRecords", "limiterSlots"}
    # serve skipped a quarter of the $disconnects: their records are left to their TTL
    assert schedule["disconnectLoss"] == 0.25
    assert schedule["disconnectsLost"] > 0
    assert f"seed {SMOKE_SEED}" in smoke["stderr"]


def test_the_smoke_run_violates_no_invariant_and_exits_0(smoke: dict[str, Any]) -> None:
    assert smoke["totals"]["violations"] == 0, json.dumps(smoke["totals"]["violationsByKind"])
    assert smoke["schedules"][0]["violations"] == []
    assert smoke["exitStatus"] == 0


# -- every process goes away ---------------------------------------------------------------


def children_of(pid: int) -> dict[int, str]:
    """The live direct children of ``pid``: pid -> command line."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found[int(entry.name)] = command
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def running_soak() -> Iterator[subprocess.Popen[str]]:
    """A soak runner whose five processes are all up (bounded wait)."""
    runner = subprocess.Popen(
        soak_command("--clients", "20", "--schedules", "1", "--schedule-seconds", "60"),
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            commands = " ".join(children_of(runner.pid).values())
            if "timeline-ws serve" in commands and commands.count("tests.soak.proxy") == 2:
                break
            time.sleep(0.1)  # polling interval of a bounded loop
        else:
            pytest.fail("the soak's processes did not all start within 60 s")
        yield runner
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(timeout=30)


def soak_folder(children: dict[int, str]) -> Path:
    """The runner's temporary folder, read from serve's ``--state-dir``."""
    for command in children.values():
        if "--state-dir" in command:
            state_dir = Path(command.split("--state-dir ", 1)[1].split()[0])
            return next(p for p in state_dir.parents if p.name.startswith("timeline-ws-soak-"))
    raise AssertionError(f"no timeline-ws serve among {children}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_stops_every_process_and_removes_the_temporary_folder(
    running_soak: subprocess.Popen[str], signum: signal.Signals
) -> None:
    children = children_of(running_soak.pid)
    assert len(children) == 5, children  # redis-server, moto_server, 2 proxies, serve
    folder = soak_folder(children)
    assert folder.is_dir()
    running_soak.send_signal(signum)
    assert running_soak.wait(timeout=60) == 130
    assert not [pid for pid in children if alive(pid)]
    assert not folder.exists()


def test_a_killed_runner_takes_its_processes_with_it(
    running_soak: subprocess.Popen[str],
) -> None:
    children = children_of(running_soak.pid)
    folder = soak_folder(children)
    os.kill(running_soak.pid, signal.SIGKILL)
    running_soak.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval of a bounded loop
    assert not [pid for pid in children if alive(pid)]
    shutil.rmtree(folder, ignore_errors=True)  # nobody was left to remove it
