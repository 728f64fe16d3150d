"""The stored record format: key and JSON text exactly as the wire contract shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from adapters.connection_store.record import (
    KEY_PREFIX,
    CorruptRecordError,
    decode_record,
    encode_record,
    record_key,
)
from domain.connection import Connection

EXAMPLE = Connection(
    connection_id="L0SM9cOFvHcCIhw=",
    user_id="7d8ca528-4931-4254-9273-ea5ee853f271",
    connected_at=datetime(2026, 1, 3, tzinfo=UTC),
)
EXAMPLE_TEXT = (
    '{"connectionId": "L0SM9cOFvHcCIhw=", '
    '"userId": "7d8ca528-4931-4254-9273-ea5ee853f271", '
    '"connectedAt": "2026-01-03T00:00:00Z"}'
)


def test_key_is_the_prefix_and_the_raw_connection_id() -> None:
    assert KEY_PREFIX == "ws:connection:"
    assert record_key("L0SM9cOFvHcCIhw=") == "ws:connection:L0SM9cOFvHcCIhw="


def test_key_of_an_empty_id_is_refused() -> None:
    with pytest.raises(ValueError):
        record_key("")


def test_encoding_is_exactly_the_documented_json_text() -> None:
    assert encode_record(EXAMPLE) == EXAMPLE_TEXT
    assert list(json.loads(encode_record(EXAMPLE))) == ["connectionId", "userId", "connectedAt"]


def test_encoding_drops_fractions_of_a_second_and_writes_utc_with_z() -> None:
    # Given a connection accepted at 01:00:00.999 in UTC+1 (as an aware datetime)
    moment = datetime(2026, 1, 3, 1, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=1)))
    connection = Connection(connection_id="abc=", user_id="u", connected_at=moment.astimezone(UTC))
    # Then the record says midnight UTC, whole seconds
    assert json.loads(encode_record(connection))["connectedAt"] == "2026-01-03T00:00:00Z"


@pytest.mark.parametrize("form", [str, lambda text: text.encode("utf-8")], ids=["str", "bytes"])
def test_round_trip(form) -> None:
    assert decode_record(form(encode_record(EXAMPLE))) == EXAMPLE


def test_decoding_accepts_an_explicit_utc_offset() -> None:
    text = EXAMPLE_TEXT.replace("00:00:00Z", "00:00:00+00:00")
    assert decode_record(text) == EXAMPLE


def test_decoded_timestamp_is_aware_utc() -> None:
    assert decode_record(EXAMPLE_TEXT).connected_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "stored",
    [
        b"\xff\xfe not utf-8",
        "not json",
        "",
        "[]",
        '"a string"',
        '{"userId": "u", "connectedAt": "2026-01-03T00:00:00Z"}',
        '{"connectionId": "", "userId": "u", "connectedAt": "2026-01-03T00:00:00Z"}',
        '{"connectionId": "c", "userId": 42, "connectedAt": "2026-01-03T00:00:00Z"}',
        '{"connectionId": "c", "userId": "u", "connectedAt": null}',
        '{"connectionId": "c", "userId": "u", "connectedAt": "yesterday"}',
        '{"connectionId": "c", "userId": "u", "connectedAt": "2026-01-03T00:00:00"}',
    ],
    ids=[
        "not-utf8",
        "not-json",
        "empty",
        "array",
        "string",
        "no-connectionId",
        "empty-connectionId",
        "userId-not-string",
        "connectedAt-null",
        "connectedAt-not-a-date",
        "connectedAt-naive",
    ],
)
def test_corrupt_records_raise_a_value_error_naming_the_problem_not_the_value(stored) -> None:
    with pytest.raises(CorruptRecordError) as caught:
        decode_record(stored)
    assert isinstance(caught.value, ValueError)
    assert "yesterday" not in str(caught.value)
    assert "not json" not in str(caught.value)
