"""The invariant checker on made-up worlds: each rule reports what it should, when it should."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import pytest

from tests.soak.clients import Conn, World
from tests.soak.environment import directory_entry
from tests.soak.faults import FaultKind, HealthTimeline, PlannedFault
from tests.soak.invariants import (
    Checker,
    CheckerSettings,
    Snapshot,
    ToleratedKind,
    Violation,
    ViolationKind,
)

SETTINGS = CheckerSettings(breaker_reset=3.0, max_ping_interval=6.0, ping_timeout=10.0)
# ghost grace 8 s, slot settle 14 s, wipe deadline 24 s


class Scene:
    """A world, a timeline and a checker whose reports are collected."""

    def __init__(self) -> None:
        self.world = World()
        self.timeline = HealthTimeline()
        self.found: list[Violation] = []
        self.checker = Checker(
            world=self.world,
            timeline=self.timeline,
            settings=SETTINGS,
            schedule=1,
            seed=99,
            report=self.found.append,
        )
        self._serial = 0

    def conn(
        self,
        connection_id: str | None,
        *,
        opened: float | None = 1.0,
        closed: float | None = None,
        user: str = "u1",
        started: float | None = None,
    ) -> Conn:
        self._serial += 1
        conn = Conn(
            serial=self._serial,
            slot=self._serial,
            user=user,
            started_at=started if started is not None else (opened or 0.0) - 0.1,
            handshake_done_at=opened,
            opened_at=opened,
            connection_id=connection_id,
            closed_at=closed,
            closed_by="client" if closed is not None else None,
        )
        self.world.conns.append(conn)
        if connection_id is not None:
            self.world.by_id[connection_id] = conn
        return conn

    def fault(self, kind: FaultKind, start: float, healed: float | None) -> None:
        record = self.timeline.begin(PlannedFault(kind=kind, at=start, duration=1.0), start)
        record.ended = record.healed = healed

    def check(
        self,
        at: float,
        *,
        redis: Iterable[str] | None = (),
        dynamodb: Iterable[str] | None = (),
        slots: Iterable[str] | None = None,
        owners: dict[str, str] | None = None,
        per_user: dict[str, int] | None = None,
        rss: int | None = None,
        ttls: dict[str, float] | None = None,
        directory: dict[str, str] | None = None,
        dynamodb_users: dict[str, str] | None = None,
    ) -> list[ViolationKind]:
        before = len(self.found)
        self.checker.check_snapshot(
            at,
            at + 0.05,
            Snapshot(
                redis_records=None if redis is None else frozenset(redis),
                slots=None if slots is None else dict.fromkeys(slots, 0.0),
                owners=owners,
                per_user=per_user,
                dynamodb_records=None if dynamodb is None else frozenset(dynamodb),
                rss_bytes=rss,
                redis_ttls=ttls,
                directory=directory,
                dynamodb_users=dynamodb_users,
            ),
        )
        return [v.kind for v in self.found[before:]]


def test_an_open_connection_without_a_record_is_reported_after_2_s_once() -> None:
    scene = Scene()
    scene.conn("a", opened=10.0)
    assert scene.check(11.0) == []  # younger than 2 s
    assert scene.check(12.5, redis=["a"]) == []
    assert scene.check(13.0, dynamodb=["a"]) == []
    assert scene.check(14.0) == [ViolationKind.MISSING_RECORD]
    assert scene.check(15.0) == []  # once per connection
    assert scene.found[0].connection_id == "a"
    assert scene.found[0].seed == 99


def test_records_are_not_judged_while_redis_cannot_be_read() -> None:
    scene = Scene()
    scene.conn("a", opened=1.0)
    assert scene.check(10.0, redis=None) == []


def test_a_closed_connections_record_is_a_ghost_only_reset_plus_5_s_after_the_stores_healed() -> (
    None
):
    scene = Scene()
    scene.conn("a", opened=1.0, closed=10.0)
    scene.fault(FaultKind.REDIS_HANG, 9.0, healed=12.0)
    assert scene.check(11.0, redis=["a"]) == []  # a fault is active
    assert scene.check(19.9, redis=["a"]) == []  # 12 + 8 not reached
    found = scene.check(20.1, redis=["a"], dynamodb=["a"])
    assert found == [ViolationKind.GHOST_RECORD, ViolationKind.GHOST_RECORD]
    assert {v.fields["store"] for v in scene.found} == {"redis", "dynamodb"}
    assert scene.found[0].fields["closedDuring"] == "during redis_hang"
    assert scene.check(25.0, redis=["a"], dynamodb=["a"]) == []


def test_a_record_left_by_a_skipped_disconnect_waits_for_its_ttl_and_must_have_one() -> None:
    scene = Scene()
    scene.conn("lost", opened=1.0, closed=10.0)
    scene.conn("dropped", opened=1.0, closed=10.0)
    scene.checker.disconnect_lost("lost", 10.5)
    # Given serve skipped the $disconnect of "lost": its record and slot are left to the TTL
    assert scene.check(30.0, redis=["lost"], slots=["lost"], ttls={"lost": 580.0}) == []
    assert scene.check(600.0, redis=["lost"], dynamodb=["lost"], ttls={"lost": 10.0}) == []
    # ... but past close + TTL + grace it is a ghost: the TTL did not end it
    assert scene.check(619.0, redis=["lost"], ttls={"lost": 1.0}) == [ViolationKind.GHOST_RECORD]
    # A record whose $disconnect ran is a ghost after the usual grace, lost ones or not
    assert scene.check(619.5, redis=["dropped"]) == [ViolationKind.GHOST_RECORD]


@pytest.mark.parametrize("ttl", [-1.0, 3600.0])
def test_a_record_left_by_a_skipped_disconnect_without_a_ttl_that_ends_it_is_reported(
    ttl: float,
) -> None:
    scene = Scene()
    scene.conn("lost", opened=1.0, closed=10.0)
    scene.checker.disconnect_lost("lost", 10.5)
    assert scene.check(11.0, redis=["lost"], ttls={"lost": ttl}) == [
        ViolationKind.LEFTOVER_WITHOUT_TTL
    ]


def test_a_record_nobody_knows_is_a_ghost_once_seen_long_enough_in_health() -> None:
    scene = Scene()
    assert scene.check(5.0, redis=["stray"]) == []
    assert scene.check(12.9, redis=["stray"]) == []
    assert scene.check(13.1, redis=["stray"]) == [ViolationKind.GHOST_RECORD]


def test_a_connection_closing_right_now_is_not_judged() -> None:
    scene = Scene()
    conn = scene.conn("a", opened=1.0)
    conn.closing = True
    assert scene.check(30.0, redis=["a"], slots=["a"]) == []


def test_after_a_restart_without_data_a_lost_record_must_end_in_connection_expired() -> None:
    scene = Scene()
    lost = scene.conn("lost", opened=1.0)
    kept = scene.conn("kept", opened=1.0)
    lost.wipe_exempt_at = kept.wipe_exempt_at = 5.0
    scene.fault(FaultKind.REDIS_WIPE, 5.0, healed=7.0)
    assert scene.check(8.0, dynamodb=["kept"]) == []  # exempt from missing_record
    assert scene.check(30.9, dynamodb=["kept"]) == []  # 7 + 24 not reached
    assert scene.check(31.1, dynamodb=["kept"]) == [ViolationKind.LOST_RECORD_NOT_EXPIRED]
    assert scene.found[0].connection_id == "lost"


def test_connection_expired_is_tolerated_after_a_wipe_and_a_violation_otherwise() -> None:
    scene = Scene()
    lost = scene.conn("lost", opened=1.0, closed=20.0)
    lost.expired_at, lost.closed_by, lost.wipe_exempt_at = 19.9, "server", 5.0
    scene.checker.server_closed(lost)
    wrong = scene.conn("wrong", opened=1.0, closed=21.0)
    wrong.expired_at, wrong.closed_by = 20.9, "server"
    scene.checker.server_closed(wrong)
    odd = scene.conn("odd", opened=1.0, closed=22.0)
    odd.closed_by, odd.close_code = "server", 1011
    scene.checker.server_closed(odd)
    assert [v.kind for v in scene.found] == [
        ViolationKind.FALSE_EXPIRED,
        ViolationKind.UNEXPECTED_CLOSE,
    ]
    assert scene.checker.tolerated == {ToleratedKind.EXPIRED_AFTER_WIPE.value: 1}


def failed_connect(
    scene: Scene, *, at: float, status: int | None, failure: str | None = None, user: str = "u1"
) -> Conn:
    conn = scene.conn(None, opened=None, started=at, user=user)
    conn.handshake_done_at = at + 0.5
    conn.status, conn.failure = status, failure
    scene.checker.handshake_failed(conn)
    return conn


@pytest.mark.parametrize(
    ("kind", "start", "tolerated"),
    [
        (FaultKind.BOTH_DOWN, 5.0, ToleratedKind.CONNECT_5XX_BOTH_DOWN),
        (FaultKind.REDIS_HANG, 9.0, ToleratedKind.CONNECT_5XX_BREAKER_GRACE),
        (None, 0.0, None),
        (FaultKind.DYNAMODB_DOWN, 5.0, None),
    ],
)
def test_a_5xx_connect_is_a_violation_unless_both_stores_were_down_or_a_fault_had_just_begun(
    kind: FaultKind | None, start: float, tolerated: ToleratedKind | None
) -> None:
    scene = Scene()
    if kind is not None:
        scene.fault(kind, start, healed=20.0)
    failed_connect(scene, at=10.0, status=503)
    if tolerated is None:
        assert [v.kind for v in scene.found] == [ViolationKind.CONNECT_5XX]
    else:
        assert scene.found == []
        assert scene.checker.tolerated == {tolerated.value: 1}


def test_a_timed_out_handshake_is_a_violation_unless_both_stores_were_down() -> None:
    scene = Scene()
    failed_connect(scene, at=10.0, status=None, failure="timeout")
    scene.fault(FaultKind.REDIS_KILL, 30.0, healed=31.0)
    scene.fault(FaultKind.DYNAMODB_DOWN, 30.5, healed=32.0)
    failed_connect(scene, at=30.6, status=None, failure="timeout")
    assert [v.kind for v in scene.found] == [ViolationKind.CONNECT_FAILED]
    assert scene.checker.tolerated == {ToleratedKind.CONNECT_FAILED_BOTH_DOWN.value: 1}


def test_a_429_is_false_when_the_user_held_fewer_connections_than_the_limit() -> None:
    scene = Scene()
    for index in range(9):
        scene.conn(f"c{index}", opened=1.0, user="busy")
    scene.conn("gone", opened=1.0, closed=9.0, user="busy")  # closed 1 s before: may still count
    failed_connect(scene, at=10.0, status=429, user="busy")
    assert scene.found == []  # 10 may hold a slot
    scene.conn("old", opened=1.0, closed=2.0, user="calm")  # closed long before
    failed_connect(scene, at=10.0, status=429, user="calm")
    assert [v.kind for v in scene.found] == [ViolationKind.FALSE_429]


def test_limiter_slots_too_many_too_few_and_inconsistent() -> None:
    scene = Scene()
    scene.conn("live", opened=1.0)
    scene.conn("late", opened=30.0)
    scene.conn("closed", opened=1.0, closed=5.0)
    owners = {"live": "u1", "closed": "u1"}
    found = scene.check(15.1, redis=["live"], slots=["closed"], owners=owners, per_user={"u1": 2})
    assert found == [ViolationKind.GHOST_SLOT, ViolationKind.UNCOUNTED_SLOT]
    # "late" opened at 30 s: it has until 44 s to be counted.
    assert scene.check(43.0, redis=["live", "late"], slots=["live"], owners={}, per_user={}) == []
    assert scene.check(44.5, redis=["live", "late"], slots=["live"], owners={}, per_user={}) == [
        ViolationKind.UNCOUNTED_SLOT
    ]
    assert scene.check(
        45.0, redis=["live", "late"], slots=["live", "late"], owners=owners, per_user={"u1": 1}
    ) == [ViolationKind.LIMITER_INCONSISTENT]


def test_a_slot_left_by_a_skipped_disconnect_makes_a_429_true() -> None:
    scene = Scene()
    for n in range(9):
        scene.conn(f"open-{n}", opened=1.0)
    scene.conn("lost", opened=1.0, closed=5.0)
    learned: list[bool] = []

    def learn() -> None:  # as the run does: read serve's log just before judging
        learned.append(True)
        scene.checker.disconnect_lost("lost", 5.5)

    scene.checker.learn_lost_disconnects = learn
    failed_connect(scene, at=60.0, status=429)
    assert learned == [True]
    assert scene.found == []  # 9 open + the lost one's slot make the limit
    scene.checker.lost_disconnects.clear()
    scene.checker.learn_lost_disconnects = None
    failed_connect(scene, at=70.0, status=429)
    assert [v.kind for v in scene.found] == [ViolationKind.FALSE_429]  # without it: 9 of 10


def test_unanswered_pings_are_reported_once_each() -> None:
    scene = Scene()
    conn = scene.conn("a", opened=1.0)
    conn.pending = {"1-1": 2.0, "1-2": 11.0}
    scene.checker.check_pings(11.9)
    scene.checker.check_pings(12.0)
    scene.checker.check_pings(13.0)
    assert [v.kind for v in scene.found] == [ViolationKind.PING_UNANSWERED]
    scene.checker.check_pings(21.0)
    assert len(scene.found) == 2


def test_memory_is_bounded_by_the_baseline_plus_its_headroom() -> None:
    scene = Scene()
    scene.checker.memory_baseline = 100 * 2**20
    assert scene.check(1.0, redis=None, rss=160 * 2**20) == []
    assert scene.check(2.0, redis=None, rss=170 * 2**20) == [ViolationKind.MEMORY_UNBOUNDED]
    assert scene.checker.rss_peak == 170 * 2**20


# --- the directory ---------------------------------------------------------------------------


def test_an_open_connection_the_directory_does_not_list_under_its_user_is_reported() -> None:
    scene = Scene()
    scene.conn("a", opened=10.0, user="alice")
    scene.conn("b", opened=10.0, user="bob")
    scene.conn("c", opened=10.0, user="carol")
    # Listed: a Redis entry whose record exists, or a live DynamoDB record of the user
    listed = scene.check(
        13.0,
        redis=["a", "c"],
        directory={"a": "alice", "c": "carol"},
        dynamodb=["b"],
        dynamodb_users={"b": "bob"},
    )
    assert listed == []
    # Not listed: under the wrong user (either store), or an entry whose record is gone
    found = scene.check(
        14.0,
        redis=["b"],
        dynamodb=["a", "c"],
        directory={"b": "eve", "c": "carol"},
        dynamodb_users={"a": "mallory"},
    )
    assert found == [ViolationKind.DIRECTORY_MISSING] * 3
    details = {v.connection_id: v.detail for v in scene.found}
    assert "(listed under mallory)" in details["a"]
    assert "(listed under eve)" in details["b"]
    assert "(listed under" not in details["c"]


def test_the_directory_is_not_judged_young_exempt_or_unread() -> None:
    scene = Scene()
    scene.conn("young", opened=13.5)
    scene.conn("wiped", opened=1.0).wipe_exempt_at = 5.0
    assert scene.check(14.0, redis=["young", "wiped"], directory={}, dynamodb_users={}) == []
    scene.conn("a", opened=1.0)
    assert scene.check(15.0, redis=["a"], directory=None, dynamodb_users={}) == []
    assert scene.check(16.0, redis=None, directory={}, dynamodb_users={}) == []


def test_directory_entries_must_mirror_the_slots_owners_exactly() -> None:
    scene = Scene()
    owners = {"a": "alice", "b": "bob"}
    assert scene.check(5.0, redis=None, owners=owners, directory={"a": "alice", "b": "bob"}) == []
    found = scene.check(
        6.0, redis=None, owners=owners, directory={"a": "alice", "b": "eve", "c": "carol"}
    )
    assert found == [ViolationKind.DIRECTORY_INCONSISTENT] * 2
    assert {v.connection_id for v in scene.found} == {"b", "c"}


def test_after_the_drain_every_users_entry_must_be_empty_but_for_skipped_disconnects() -> None:
    scene = Scene()
    scene.conn("lost", opened=1.0, closed=10.0, user="alice")
    scene.checker.disconnect_lost("lost", 10.5)
    drained = Snapshot(
        redis_records=frozenset({"lost"}),
        slots=None,
        owners=None,
        per_user=None,
        dynamodb_records=frozenset(),
        rss_bytes=None,
        directory={"lost": "alice"},
        dynamodb_users={},
    )
    scene.checker.check_drained(40.0, drained)
    assert scene.found == []

    left = attrs.evolve(
        drained, directory={"lost": "alice", "x": "bob"}, dynamodb_users={"y": "bob"}
    )
    scene.checker.check_drained(41.0, left)
    [violation] = scene.found
    assert violation.kind is ViolationKind.DIRECTORY_NOT_EMPTY
    assert violation.fields["connections"] == ["x", "y"] and violation.fields["user"] == "bob"


def test_a_directory_member_is_parsed_by_the_userids_length() -> None:
    assert directory_entry("5:a:b:c:conn=") == ("conn=", "a:b:c")
    assert directory_entry("4:ü-7:L0SM9cOFvHcCIhw=") == ("L0SM9cOFvHcCIhw=", "ü-7")
