"""Why was a record or a slot left behind? Read serve's log and say, for each ghost.

serve runs with ``AWS_LAMBDA_FUNCTION_NAME`` set, so, as in Lambda, the adapters' lines are
JSON with their extra fields. Two kinds of line name a connection:

- the handler's ``invocation failed`` for ``$disconnect`` (``reason`` ``store_unavailable``):
  a store did not take the delete;
- the failover repository's ``connection store failover: delete went to the secondary
  store`` with ``reason`` ``circuit_open`` (Redis skipped: the breaker was open) or
  ``primary_unavailable`` (Redis was called and failed).

A delete Redis skipped or failed is a tombstone, so such a ghost is a replay that came
late. A ghost's cause is one of :data:`CAUSES`. ``came_back`` would be the worst: the delete
reached every store and the record was written again afterwards (a late write).

The gateway's own plain lines say when an invocation waited a second or more for a free
worker (``$default of connectionId=… waited 2.31 s for a free worker``): an unanswered ping
gets the longest such wait of its connection after it was sent (``queuedSeconds``), which
tells a reply delayed by an overloaded gateway from a lost one; a ghost whose
``$disconnect`` left no failover line but waited for a worker gets ``DISCONNECT_QUEUED``
(``disconnectQueuedSeconds``, and ``disconnectFinishedAt``: after the check, it merely ran
late).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import attrs

from tests.soak.faults import HealthTimeline
from tests.soak.invariants import Violation, ViolationKind

BREAKER_OPEN: Final = "redis delete skipped: breaker open"
REDIS_FAILED: Final = "redis delete failed"
DYNAMODB_FAILED: Final = "dynamodb delete failed"
DISCONNECT_QUEUED: Final = "its $disconnect waited for a worker"
NOT_LOGGED: Final = "no failed $disconnect logged"
UNKNOWN_CONNECTION: Final = "connection unknown to the clients"
CAUSES: Final = (
    BREAKER_OPEN,
    REDIS_FAILED,
    DYNAMODB_FAILED,
    DISCONNECT_QUEUED,
    NOT_LOGGED,
    UNKNOWN_CONNECTION,
)


@attrs.define
class DisconnectTrace:
    """What serve logged about one connection's ``$disconnect``."""

    failed_at: float | None = None
    primary_skipped: str | None = None
    """``circuit_open`` or ``primary_unavailable`` when the Redis delete did not happen."""


def read_traces(log_path: Path, started_wall: float) -> dict[str, DisconnectTrace]:
    """connectionId -> what serve's log says about its ``$disconnect`` (times: schedule s)."""
    traces: dict[str, DisconnectTrace] = {}
    for line in _log_lines(log_path):
        if not line.startswith("{"):
            continue
        try:
            entry: dict[str, Any] = json.loads(line)
        except ValueError:
            continue
        connection_id = entry.get("connection_id")
        if not isinstance(connection_id, str):
            continue
        if entry.get("route") == "$disconnect" and entry.get("outcome") == "failed":
            trace = traces.setdefault(connection_id, DisconnectTrace())
            trace.failed_at = _schedule_seconds(entry.get("timestamp"), started_wall)
        elif entry.get("operation") == "delete" and "failover" in str(entry.get("message")):
            traces.setdefault(connection_id, DisconnectTrace()).primary_skipped = str(
                entry.get("reason")
            )
    return traces


QUEUE_WAIT: Final = re.compile(
    r"^(?P<stamp>\S+ \S+) WARNING timeline_ws\.gateway (?P<route>\S+) of "
    r"connectionId=(?P<connection_id>\S+) waited (?P<seconds>[0-9.]+) s for a free worker"
)


@attrs.frozen
class QueueWait:
    """One invocation that waited for a free worker: logged at ``at`` (schedule s, when it
    finished), after waiting ``seconds``."""

    at: float
    route: str
    connection_id: str
    seconds: float


def read_queue_waits(log_path: Path, started_wall: float) -> list[QueueWait]:
    """The gateway's ``waited … for a free worker`` lines (serve's plain format)."""
    waits: list[QueueWait] = []
    for line in _log_lines(log_path):
        found = QUEUE_WAIT.match(line)
        if found is None:
            continue
        try:  # logging's asctime: local time, this machine's, like serve's
            moment = datetime.strptime(found["stamp"], "%Y-%m-%d %H:%M:%S,%f")
        except ValueError:
            continue
        waits.append(
            QueueWait(
                round(moment.timestamp() - started_wall, 3),
                found["route"],
                found["connection_id"],
                float(found["seconds"]),
            )
        )
    return waits


def _log_lines(log_path: Path) -> list[str]:
    """serve's log, line by line; none when it cannot be read (the run reports without it)."""
    try:
        return log_path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def _schedule_seconds(timestamp: Any, started_wall: float) -> float | None:
    try:
        moment = datetime.strptime(str(timestamp), "%Y-%m-%d %H:%M:%S,%f%z")
    except ValueError:
        return None
    return round(moment.timestamp() - started_wall, 3)


def cause_of(
    violation: Violation, trace: DisconnectTrace | None, queued: QueueWait | None = None
) -> str:
    """Why this ghost record or slot stayed, from its ``$disconnect``'s trace and its
    longest wait for a worker (``None``: under a second, or none logged)."""
    if violation.fields.get("closedAt") is None:
        return UNKNOWN_CONNECTION
    if trace is not None:
        if violation.fields.get("store") == "dynamodb" and trace.failed_at is not None:
            return DYNAMODB_FAILED
        if trace.primary_skipped == "circuit_open":
            return BREAKER_OPEN
        if trace.primary_skipped is not None:
            return REDIS_FAILED
    if queued is not None:
        return DISCONNECT_QUEUED
    return NOT_LOGGED


GHOSTS: Final = frozenset({ViolationKind.GHOST_RECORD, ViolationKind.GHOST_SLOT})


def annotate(
    violations: list[Violation],
    traces: dict[str, DisconnectTrace],
    timeline: HealthTimeline,
    waits: Sequence[QueueWait] = (),
) -> tuple[list[Violation], Counter[str]]:
    """The violations with each ghost's ``cause`` (and when its ``$disconnect`` failed or
    how long it queued), each unanswered ping's ``queuedSeconds`` (see the module
    docstring), and the count of ghosts by cause."""
    causes: Counter[str] = Counter()
    annotated: list[Violation] = []
    for violation in violations:
        if violation.kind is ViolationKind.PING_UNANSWERED:
            annotated.append(_with_queue_wait(violation, waits))
            continue
        if violation.kind not in GHOSTS:
            annotated.append(violation)
            continue
        trace = traces.get(violation.connection_id or "")
        queued = _disconnect_wait(violation.connection_id, waits)
        cause = cause_of(violation, trace, queued)
        causes[f"{violation.kind.value}: {cause}"] += 1
        extra: dict[str, Any] = {"cause": cause}
        if trace is not None and trace.failed_at is not None:
            extra["disconnectFailedAt"] = trace.failed_at
            extra["disconnectFailedDuring"] = timeline.at(trace.failed_at)
        if queued is not None:
            extra["disconnectQueuedSeconds"] = queued.seconds
            extra["disconnectFinishedAt"] = queued.at
        annotated.append(attrs.evolve(violation, fields={**violation.fields, **extra}))
    return annotated, causes


def _disconnect_wait(connection_id: str | None, waits: Sequence[QueueWait]) -> QueueWait | None:
    """The longest logged wait of this connection's ``$disconnect``, if any."""
    own = [w for w in waits if w.route == "$disconnect" and w.connection_id == connection_id]
    return max(own, key=lambda wait: wait.seconds, default=None)


def _with_queue_wait(violation: Violation, waits: Sequence[QueueWait]) -> Violation:
    sent = violation.fields.get("sentAt")
    if not isinstance(sent, (int, float)):
        return violation
    longest = max(
        (
            wait.seconds
            for wait in waits
            if wait.connection_id == violation.connection_id and wait.at >= sent
        ),
        default=0.0,
    )
    return attrs.evolve(violation, fields={**violation.fields, "queuedSeconds": longest})


SKIPPED_DISCONNECT: Final = re.compile(r"\$disconnect of connectionId=(\S+) skipped")
"""The gateway's line for a ``$disconnect`` it skipped on purpose (``serve --disconnect-loss``)."""


class SkippedDisconnects:
    """Follows serve's log for the ``$disconnect`` invocations it skipped on purpose.

    Each :meth:`poll` reads only what was appended since the last one (whole lines), so the
    checker learns of a skip within a tick, while the record it left is still in the stores.
    """

    def __init__(self, log_path: Path) -> None:
        self._path = log_path
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[str]:
        """The connectionIds of the skips logged since the last call (none if unreadable)."""
        try:
            with self._path.open("rb") as log:
                log.seek(self._offset)
                data = log.read()
        except OSError:
            return []
        self._offset += len(data)
        data = self._partial + data
        complete, _, self._partial = data.rpartition(b"\n")
        text = complete.decode(errors="replace")
        return [match.group(1) for match in SKIPPED_DISCONNECT.finditer(text)]
