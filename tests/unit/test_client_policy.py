"""The client policy on a fake clock: backoff, the reset rule, liveness, handover, queue, size.

The browser module implements the same rules; ``tests/browser`` runs its twin of these tests
in Chromium.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from timeline_ws_client.errors import AuthError, ConfigurationError, TimelineSocketError
from timeline_ws_client.policy import (
    DEFAULT_POLICY,
    HEARTBEAT_ID_PREFIX,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    Backoff,
    ClientPolicy,
    Liveness,
    MessageTooLargeError,
    SendQueue,
    backoff_ceiling,
    backoff_delay,
    check_message_size,
    fragments,
    handover_delay,
    is_configuration_status,
    token_expires_soon,
    token_expiry,
    utf8_size,
)


class ScriptedRandom:
    """A ``random()`` that returns scripted draws and counts them."""

    def __init__(self, *draws: float) -> None:
        self._draws: Iterator[float] = iter(draws)
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return next(self._draws)


# -- backoff ----------------------------------------------------------------------------


def test_the_ceiling_doubles_from_one_second_and_is_capped_at_thirty() -> None:
    ceilings = [backoff_ceiling(DEFAULT_POLICY, attempt) for attempt in range(8)]
    assert ceilings == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert backoff_ceiling(DEFAULT_POLICY, 10_000) == 30.0  # no overflow
    with pytest.raises(ValueError):
        backoff_ceiling(DEFAULT_POLICY, -1)


def test_full_jitter_draws_a_new_random_number_for_every_attempt() -> None:
    # Given: a counter at 0 and two scripted draws
    backoff = Backoff(DEFAULT_POLICY)
    random = ScriptedRandom(0.5, 0.25)

    # When: two attempts are scheduled
    first = backoff.next_delay(random)
    second = backoff.next_delay(random)

    # Then: two draws, each scaled by its own attempt's ceiling
    assert random.calls == 2
    assert (first, second) == (0.5 * 1.0, 0.25 * 2.0)
    assert backoff.attempt == 2


@pytest.mark.parametrize("attempt", [0, 1, 4, 5, 30])
def test_a_delay_stays_within_zero_and_its_ceiling(attempt: int) -> None:
    ceiling = backoff_ceiling(DEFAULT_POLICY, attempt)
    assert backoff_delay(DEFAULT_POLICY, attempt, lambda: 0.0) == 0.0
    assert backoff_delay(DEFAULT_POLICY, attempt, lambda: 0.999999) < ceiling
    assert backoff_delay(DEFAULT_POLICY, attempt, lambda: 0.999999) <= 30.0


def test_the_counter_is_not_reset_by_a_connection_shorter_than_five_seconds() -> None:
    # Given: three failed attempts, then a connection that lasted 4.9 s
    backoff = Backoff(DEFAULT_POLICY, attempt=3)

    # When it closes (even cleanly)
    delay = backoff.connection_closed(
        code=1000, opened_at=100.0, closed_at=104.9, random=lambda: 1.0
    )

    # Then: the schedule goes on from attempt 3 (ceiling 8 s)
    assert delay == 8.0
    assert backoff.attempt == 4


def test_a_connection_that_stayed_open_five_seconds_resets_the_counter() -> None:
    backoff = Backoff(DEFAULT_POLICY, attempt=6)

    delay = backoff.connection_closed(
        code=1006, opened_at=100.0, closed_at=105.0, random=lambda: 0.5
    )

    assert delay == 0.5 * 1.0  # attempt 0 again
    assert backoff.attempt == 1


def test_a_clean_server_close_of_a_stable_connection_reconnects_within_the_jitter() -> None:
    policy = ClientPolicy(clean_close_jitter_seconds=0.2)
    for code in (1000, 1001):
        backoff = Backoff(policy, attempt=5)
        delay = backoff.connection_closed(
            code=code, opened_at=0.0, closed_at=3600.0, random=lambda: 0.5
        )
        assert delay == pytest.approx(0.1)
        assert backoff.attempt == 1  # a failure of that attempt backs off from 2 s


# -- liveness ---------------------------------------------------------------------------


def test_a_late_timer_alone_never_kills_a_live_connection() -> None:
    # Given: a connection that answered every ping; the last pong at t=30
    liveness = Liveness(DEFAULT_POLICY, last_message_at=0.0)
    liveness.ping_sent("1", 0.0)
    assert liveness.pong_received("1", 0.05) == pytest.approx(0.05)
    liveness.ping_sent("2", 30.0)
    liveness.pong_received("2", 30.05)

    # When: the tab is throttled and the heartbeat timer fires 60 s late (t=120), 90 s of silence
    assert not liveness.is_dead(120.0)  # no unanswered ping: silence alone is not death
    liveness.ping_sent("3", 120.0)

    # Then: even the late check just after that ping does not kill it...
    assert not liveness.is_dead(120.0)
    assert not liveness.is_dead(129.9)
    # ...the pong arrives (events are not throttled) and the connection lives on
    liveness.pong_received("3", 120.2)
    assert not liveness.is_dead(200.0)


def test_silence_and_an_unanswered_ping_past_its_timeout_kill_a_connection() -> None:
    # Given: the last message at t=0, pings at 30 and 60 unanswered
    liveness = Liveness(DEFAULT_POLICY, last_message_at=0.0)
    liveness.ping_sent("1", 30.0)
    liveness.ping_sent("2", 60.0)

    # Then: dead once 70 s (2 x 30 + 10) passed without a message, not before
    assert DEFAULT_POLICY.dead_after_seconds == 70.0
    assert not liveness.is_dead(69.9)
    assert liveness.is_dead(70.0)
    # Any message revives it
    liveness.message_received(70.5)
    assert not liveness.is_dead(71.0)


def test_a_ping_younger_than_its_timeout_keeps_a_silent_connection_alive() -> None:
    # Given: 100 s of silence (a late timer), and a ping sent 5 s ago
    liveness = Liveness(DEFAULT_POLICY, last_message_at=0.0)
    liveness.ping_sent("1", 95.0)

    assert not liveness.is_dead(100.0)  # the ping still has 5 s to be answered
    assert liveness.is_dead(105.0)


def test_a_check_ping_must_be_answered_within_its_short_deadline() -> None:
    # Given: a quiet but healthy connection; the tab becomes visible at t=40 and checks
    liveness = Liveness(DEFAULT_POLICY, last_message_at=30.0)
    liveness.check_sent("c1", 40.0)

    assert not liveness.is_dead(44.9)
    assert liveness.is_dead(45.0)  # no message within 5 s: dead, not after 70 s
    # An answer in time clears the check
    liveness.pong_received("c1", 41.0)
    assert not liveness.is_dead(45.0)


def test_pongs_of_pings_that_are_not_ours_are_not_round_trips() -> None:
    liveness = Liveness(DEFAULT_POLICY, last_message_at=0.0)
    assert liveness.pong_received("someone-else", 5.0) is None
    assert liveness.last_message_at == 5.0  # but they are messages


def test_dead_after_defaults_to_twice_the_interval_plus_ten_seconds() -> None:
    assert ClientPolicy(ping_interval_seconds=5).dead_after_seconds == 20.0
    assert ClientPolicy(dead_after_seconds=3.0).dead_after_seconds == 3.0


# -- handover ---------------------------------------------------------------------------


def test_the_handover_comes_after_115_minutes_plus_up_to_3_minutes_of_jitter() -> None:
    assert handover_delay(DEFAULT_POLICY, lambda: 0.0) == 115 * 60
    assert handover_delay(DEFAULT_POLICY, lambda: 0.5) == 115 * 60 + 90
    latest = handover_delay(DEFAULT_POLICY, lambda: 0.999999)
    assert latest < 118 * 60 < 2 * 3600  # always before API Gateway's 2-hour close


# -- queue and size ---------------------------------------------------------------------


def test_the_queue_keeps_the_newest_messages_and_reports_the_dropped_oldest() -> None:
    queue: SendQueue[str] = SendQueue(DEFAULT_POLICY.queue_limit)
    dropped = [queue.push(str(n)) for n in range(100)]
    assert dropped == [None] * 100

    assert queue.push("100") == "0"
    assert queue.push("101") == "1"
    assert len(queue) == 100
    items = list(queue)
    assert (items[0], items[-1]) == ("2", "101")
    assert queue.pop() == "2"


def test_a_message_put_back_goes_first_and_drops_the_newest_past_the_bound() -> None:
    queue: SendQueue[str] = SendQueue(2)
    queue.push("a")
    queue.push("b")
    assert queue.push_front("again") == "b"
    assert list(queue) == ["again", "a"]
    with pytest.raises(ValueError):
        SendQueue(0)


def test_128_kb_of_utf8_is_accepted_and_one_byte_more_is_refused() -> None:
    check_message_size("x" * MAX_MESSAGE_BYTES)
    with pytest.raises(MessageTooLargeError) as refused:
        check_message_size("x" * (MAX_MESSAGE_BYTES + 1))
    assert (refused.value.size, refused.value.limit) == (MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES)


def test_the_size_is_counted_in_utf8_bytes_not_characters() -> None:
    text = "é" * (MAX_MESSAGE_BYTES // 2)  # two bytes each: exactly 128 KB
    assert utf8_size(text) == MAX_MESSAGE_BYTES
    check_message_size(text)
    with pytest.raises(MessageTooLargeError):
        check_message_size(text + "é")


def test_a_policy_refuses_numbers_that_cannot_work() -> None:
    for bad in (
        {"ping_interval_seconds": 0},
        {"backoff_cap_seconds": float("inf")},
        {"dead_after_seconds": -1.0},
        {"queue_limit": 0},
        {"max_message_bytes": MAX_MESSAGE_BYTES + 1},
        {"handover_jitter_seconds": float("nan")},
    ):
        with pytest.raises(ValueError):
            ClientPolicy(**bad)  # type: ignore[arg-type]


# -- tokens -----------------------------------------------------------------------------


def jwt(claims: dict[str, object]) -> str:
    def part(value: dict[str, object]) -> str:
        raw = base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")
        return raw.decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


def test_a_token_expiring_within_60_seconds_is_refreshed_and_others_are_not() -> None:
    token = jwt({"sub": "a", "exp": 1_000})
    assert token_expiry(token) == 1_000.0
    assert token_expires_soon(token, now=941.0, margin=60.0)
    assert not token_expires_soon(token, now=940.0, margin=60.0)


def test_tokens_without_a_readable_exp_are_left_to_the_server() -> None:
    for token in (
        "not-a-jwt",
        "a.b.c",
        jwt({"sub": "a"}),
        jwt({"exp": "soon"}),
        jwt({"exp": True}),
    ):
        assert token_expiry(token) is None
        assert not token_expires_soon(token, now=10**12, margin=60.0)


# -- frame limits ---------------------------------------------------------------------------


def test_a_message_within_one_frame_is_one_piece() -> None:
    assert fragments("x" * MAX_FRAME_BYTES) == ["x" * MAX_FRAME_BYTES]


def test_a_100_kb_ascii_message_is_cut_in_frames_of_at_most_32_kb() -> None:
    text = "x" * (100 * 1024)
    pieces = fragments(text)
    assert "".join(pieces) == text
    assert [len(p) for p in pieces] == [32768, 32768, 32768, 4096]


def test_multibyte_characters_are_never_cut_and_each_piece_stays_within_the_limit() -> None:
    text = "é" * 20_000 + "😀" * 10_000 + "x"  # 2-byte and 4-byte characters
    pieces = fragments(text)
    assert "".join(pieces) == text
    assert all(utf8_size(p) <= MAX_FRAME_BYTES for p in pieces)
    assert len(pieces) == -(-utf8_size(text) // MAX_FRAME_BYTES)  # no piece wasted
    with pytest.raises(ValueError, match="at least 4"):
        fragments(text, 3)


def test_the_errors_carry_the_browser_modules_codes() -> None:
    too_large = MessageTooLargeError(131073, 131072)
    assert (too_large.code, too_large.size, isinstance(too_large, ValueError)) == (
        "message_too_large",
        131073,
        True,
    )
    assert AuthError(403).code == "auth_error" and AuthError(403).status == 403
    assert ConfigurationError("bad", status=404).code == "invalid_url"
    assert all(
        issubclass(e, TimelineSocketError)
        for e in (MessageTooLargeError, AuthError, ConfigurationError)
    )
    assert HEARTBEAT_ID_PREFIX == "tws:"


@pytest.mark.parametrize("status", [200, 204, 301, 400, 404, 405, 426])
def test_a_handshake_answer_no_retry_can_fix_is_a_configuration_error(status: int) -> None:
    assert is_configuration_status(status)


@pytest.mark.parametrize("status", [401, 403, 429, 500, 502, 503, 504])
def test_auth_refusals_throttling_and_server_errors_are_not_configuration_errors(
    status: int,
) -> None:
    assert not is_configuration_status(status)
