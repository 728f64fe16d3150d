"""Each ghost gets its cause from serve's JSON log lines."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from tests.soak.diagnosis import (
    BREAKER_OPEN,
    DISCONNECT_QUEUED,
    DYNAMODB_FAILED,
    NOT_LOGGED,
    REDIS_FAILED,
    UNKNOWN_CONNECTION,
    SkippedDisconnects,
    annotate,
    read_queue_waits,
    read_traces,
)
from tests.soak.faults import FaultKind, HealthTimeline, PlannedFault
from tests.soak.invariants import Violation, ViolationKind

STARTED = datetime(2026, 1, 3, 12, 0, 0, tzinfo=UTC).timestamp()


def stamp(seconds: float) -> str:
    moment = datetime.fromtimestamp(STARTED + seconds, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}+0000"


def ghost(kind: ViolationKind, connection_id: str, store: str, closed: bool = True) -> Violation:
    fields = {"store": store, **({"closedAt": 10.0} if closed else {})}
    return Violation(
        kind=kind,
        at=30.0,
        schedule=1,
        seed=5,
        detail="left behind",
        connection_id=connection_id,
        fields=fields,
    )


def test_every_ghost_is_given_the_cause_its_disconnect_left_in_the_log(tmp_path: Path) -> None:
    lines = [
        "2026-01-03 12:00:01,000 WARNING plain text lines are skipped",
        {
            "timestamp": stamp(11.5),
            "route": "$disconnect",
            "outcome": "failed",
            "connection_id": "open",
        },
        {
            "timestamp": stamp(11.4),
            "operation": "delete",
            "reason": "circuit_open",
            "message": "connection store failover: delete went to the secondary store (circuit_open)",
            "connection_id": "open",
        },
        {
            "timestamp": stamp(12.0),
            "route": "$disconnect",
            "outcome": "failed",
            "connection_id": "down",
        },
        {
            "timestamp": stamp(11.9),
            "operation": "delete",
            "reason": "primary_unavailable",
            "message": "connection store failover: delete went to the secondary store (primary_unavailable)",
            "connection_id": "down",
        },
        {
            "timestamp": stamp(13.0),
            "route": "$disconnect",
            "outcome": "failed",
            "connection_id": "dynamo",
        },
        {
            "timestamp": stamp(14.0),
            "route": "$default",
            "outcome": "pong_unrecorded",
            "connection_id": "quiet",
        },
        {  # skipped Redis, and its tombstone was written: no failed $disconnect
            "timestamp": stamp(12.5),
            "operation": "delete",
            "reason": "circuit_open",
            "message": "connection store failover: delete went to the secondary store (circuit_open)",
            "connection_id": "buried",
        },
        f"{local_stamp(31.0)} WARNING timeline_ws.gateway $disconnect of connectionId=late "
        "waited 4.87 s for a free worker (all 16 busy; Lambda would have run it at once: "
        "this gateway is overloaded)",
    ]
    log = tmp_path / "serve.log"
    log.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    timeline = HealthTimeline()
    hang = timeline.begin(PlannedFault(kind=FaultKind.REDIS_HANG, at=11, duration=2), 11.0)
    hang.healed = 13.5

    traces = read_traces(log, STARTED)
    assert traces["open"].failed_at == 11.5
    assert traces["open"].primary_skipped == "circuit_open"
    assert "quiet" not in traces

    found, causes = annotate(
        [
            ghost(ViolationKind.GHOST_RECORD, "open", "redis"),
            ghost(ViolationKind.GHOST_SLOT, "open", "limiter"),
            ghost(ViolationKind.GHOST_RECORD, "down", "redis"),
            ghost(ViolationKind.GHOST_RECORD, "dynamo", "dynamodb"),
            ghost(ViolationKind.GHOST_RECORD, "quiet", "redis"),
            ghost(ViolationKind.GHOST_RECORD, "stray", "redis", closed=False),
            ghost(ViolationKind.PING_UNANSWERED, "open", "-"),
            ghost(ViolationKind.GHOST_RECORD, "buried", "redis"),
            ghost(ViolationKind.GHOST_SLOT, "late", "limiter"),
        ],
        traces,
        timeline,
        read_queue_waits(log, STARTED),
    )
    assert [v.fields.get("cause") for v in found] == [
        BREAKER_OPEN,
        BREAKER_OPEN,
        REDIS_FAILED,
        DYNAMODB_FAILED,
        NOT_LOGGED,
        UNKNOWN_CONNECTION,
        None,
        BREAKER_OPEN,
        DISCONNECT_QUEUED,
    ]
    assert found[0].fields["disconnectFailedDuring"] == "during redis_hang"
    assert "disconnectFailedAt" not in found[7].fields
    assert (
        found[8].fields["disconnectQueuedSeconds"],
        found[8].fields["disconnectFinishedAt"],
    ) == (
        4.87,
        31.0,
    )
    assert causes["ghost_record: " + BREAKER_OPEN] == 2  # "open" and "buried"
    assert causes["ghost_slot: " + BREAKER_OPEN] == 1
    assert causes["ghost_slot: " + DISCONNECT_QUEUED] == 1
    assert sum(causes.values()) == 8


def local_stamp(seconds: float) -> str:
    """``asctime`` as serve's plain lines write it: this machine's local time."""
    moment = datetime.fromtimestamp(STARTED + seconds)
    return moment.strftime("%Y-%m-%d %H:%M:%S,") + f"{moment.microsecond // 1000:03d}"


def test_an_unanswered_ping_gets_the_longest_wait_for_a_worker_of_its_connection(
    tmp_path: Path,
) -> None:
    def waited(at: float, connection_id: str, seconds: float) -> str:
        return (
            f"{local_stamp(at)} WARNING timeline_ws.gateway $default of "
            f"connectionId={connection_id} waited {seconds:.2f} s for a free worker "
            f"(all 16 busy; Lambda would have run it at once: this gateway is overloaded)"
        )

    log = tmp_path / "serve.log"
    log.write_text(
        "\n".join(
            [
                waited(5.0, "slow=", 4.0),  # before the ping was sent: not its wait
                waited(21.0, "slow=", 1.5),
                waited(22.5, "slow=", 11.25),
                waited(22.6, "other=", 12.0),  # another connection
                f"{local_stamp(23.0)} WARNING urllib3.connectionpool Connection pool is full",
                json.dumps({"timestamp": stamp(24.0), "message": "waited 9 s for a free worker"}),
            ]
        )
        + "\n"
    )
    waits = read_queue_waits(log, STARTED)
    assert [(w.at, w.route, w.connection_id, w.seconds) for w in waits] == [
        (5.0, "$default", "slow=", 4.0),
        (21.0, "$default", "slow=", 1.5),
        (22.5, "$default", "slow=", 11.25),
        (22.6, "$default", "other=", 12.0),
    ]

    def unanswered(connection_id: str, sent: float) -> Violation:
        return Violation(
            kind=ViolationKind.PING_UNANSWERED,
            at=sent + 10,
            schedule=1,
            seed=5,
            detail="unanswered",
            connection_id=connection_id,
            fields={"sentAt": sent},
        )

    found, causes = annotate(
        [unanswered("slow=", 11.0), unanswered("quick=", 11.0)], {}, HealthTimeline(), waits
    )
    assert [v.fields["queuedSeconds"] for v in found] == [11.25, 0.0]
    assert causes == {}


def test_skipped_disconnects_are_followed_in_the_log_line_by_line(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    log.write_text("2026-01-01 INFO timeline_ws.gateway.access disconnect connectionId=A\n")
    follower = SkippedDisconnects(log)
    assert follower.poll() == []
    with log.open("a") as out:
        out.write(
            "2026-01-01 WARNING timeline_ws.gateway $disconnect of connectionId=L0SM9cOFvHcCIhw= "
            "skipped (disconnect loss 0.25: API Gateway delivers $disconnect on a best-effort "
            "basis)\n2026-01-01 WARNING timeline_ws.gateway $disconnect of connectionId=JC1d"
        )
    assert follower.poll() == ["L0SM9cOFvHcCIhw="]  # the unfinished line waits
    with log.open("a") as out:
        out.write("gf9yoAMCK-g= skipped (disconnect loss 0.25)\n")
    assert follower.poll() == ["JC1dgf9yoAMCK-g="]
    assert SkippedDisconnects(tmp_path / "missing.log").poll() == []
