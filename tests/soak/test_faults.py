"""The fault schedule drawn from a seed, and the timeline the checker asks about health."""

from __future__ import annotations

import itertools

import pytest

from tests.soak.faults import (
    DURATION_RANGES,
    LATENCY_RANGE_MS,
    RESTART_ALLOWANCE_SECONDS,
    FaultKind,
    HealthTimeline,
    PlannedFault,
    plan_faults,
)

ALL = tuple(FaultKind)


def test_given_a_seed_then_the_schedule_is_always_the_same_and_another_seed_gives_another() -> None:
    first = plan_faults(42, seconds=600, kinds=ALL, quiet_tail=20)
    again = plan_faults(42, seconds=600, kinds=ALL, quiet_tail=20)
    other = plan_faults(43, seconds=600, kinds=ALL, quiet_tail=20)
    assert first == again
    assert first != other


def test_every_enabled_kind_comes_once_before_any_kind_repeats() -> None:
    for seed in range(20):
        faults = plan_faults(seed, seconds=3600, kinds=ALL, quiet_tail=20)
        assert len(faults) > 2 * len(ALL)
        for start in range(0, 2 * len(ALL), len(ALL)):
            assert {f.kind for f in faults[start : start + len(ALL)]} == set(ALL)


def test_faults_follow_each_other_within_their_ranges_and_end_before_the_quiet_tail() -> None:
    for seed in range(50):
        faults = plan_faults(seed, seconds=180, kinds=ALL, quiet_tail=16)
        assert faults
        for fault in faults:
            low, high = DURATION_RANGES[fault.kind]
            assert low <= fault.duration <= high
            assert fault.at + fault.duration + RESTART_ALLOWANCE_SECONDS <= 180 - 16 + 0.1
            if fault.kind is FaultKind.REDIS_LATENCY:
                assert fault.latency_ms is not None
                assert LATENCY_RANGE_MS[0] <= fault.latency_ms <= LATENCY_RANGE_MS[1]
            else:
                assert fault.latency_ms is None
        for before, after in itertools.pairwise(faults):
            assert after.at >= before.at + before.duration + RESTART_ALLOWANCE_SECONDS


def test_only_the_kinds_asked_for_are_drawn() -> None:
    faults = plan_faults(1, seconds=300, kinds=[FaultKind.REDIS_HANG], quiet_tail=10)
    assert {f.kind for f in faults} == {FaultKind.REDIS_HANG}
    with pytest.raises(ValueError, match="at least one"):
        plan_faults(1, seconds=300, kinds=[], quiet_tail=10)


def test_the_timeline_says_when_the_stores_were_healthy() -> None:
    timeline = HealthTimeline()
    assert timeline.healthy_since(5.0) == 0.0
    hang = timeline.begin(PlannedFault(kind=FaultKind.REDIS_HANG, at=10, duration=5), 10.0)
    assert timeline.healthy_since(12.0) is None
    assert timeline.redis_server_down(12.0)
    hang.ended = hang.healed = 15.5
    assert timeline.healthy_since(15.0) is None
    assert timeline.healthy_since(16.0) == 15.5
    assert not timeline.redis_server_down(16.0)
    latency = timeline.begin(
        PlannedFault(kind=FaultKind.REDIS_LATENCY, at=20, duration=3, latency_ms=100), 20.0
    )
    assert not timeline.redis_server_down(21.0)  # a proxy fault: the checker still reads Redis
    latency.healed = 23.0
    assert timeline.healthy_since(30.0) == 23.0
    assert [r.kind for r in timeline.overlapping(14.0, 21.0)] == [
        FaultKind.REDIS_HANG,
        FaultKind.REDIS_LATENCY,
    ]
    assert timeline.at(30.0) == "healthy, 7.0 s after redis_latency healed"
    assert timeline.at(12.0) == "during redis_hang"
