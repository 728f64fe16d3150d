"""The real Lambda handlers on API Gateway-shaped events, with in-memory adapters behind them.

Each test bootstraps the application with test settings and in-memory adapters as
overrides (never touching the handler code); events come from ``tests/events/*.json``.
Integration tests run the same handlers on real Redis and real Cognito-shaped tokens.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
from dependency_injector import providers

from adapters.in_memory import (
    FixedClock,
    InMemoryConnectionRepository,
    InMemoryMessageSender,
    InMemoryTokenVerifier,
)
from application.commands import optional_text
from domain.connection import Connection, VerifiedIdentity
from domain.errors import (
    ConnectionLimitExceededError,
    InvalidTokenError,
    MessageSendError,
    StoreUnavailableError,
    VerifierUnavailableError,
)
from entrypoints.observability import logger
from tests.support.app import make_container, make_settings
from tests.support.lambda_context import CONTEXT

EVENTS = Path(__file__).parent.parent / "events"
CONNECTION_ID = "L0SM9cOFvHcCIhw="
USER_ID = "7d0c5f4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f"
START = datetime(2026, 1, 3, tzinfo=UTC)


def load_event(name: str, **changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    event.update(changes)
    return event


def connect_event(token: str | None) -> dict[str, Any]:
    if token is None:
        return load_event("connect_without_query_string")
    return load_event(
        "connect",
        queryStringParameters={"token": token},
        multiValueQueryStringParameters={"token": [token]},
    )


class Gateway:
    """What the handlers talk to in these tests."""

    def __init__(self) -> None:
        self.clock = FixedClock(START)
        self.repository = InMemoryConnectionRepository(self.clock)
        self.sender = InMemoryMessageSender()
        self.endpoints: list[str] = []
        identity = VerifiedIdentity(
            user_id=USER_ID, client_id="c", token_use="access", expires_at=START
        )
        self.verifier = InMemoryTokenVerifier(
            {
                "good": identity,
                "expired": InvalidTokenError("expired"),
                "jwks-down": VerifierUnavailableError(),
                "over-limit": ConnectionLimitExceededError("user"),
            }
        )

    def sender_for(self, endpoint_url: str) -> InMemoryMessageSender:
        self.endpoints.append(endpoint_url)
        return self.sender

    def start(self, **variables: str) -> Gateway:
        """Bootstrap the application over this gateway's fakes (``variables``: settings)."""
        container = make_container(
            make_settings(**variables),
            clock=self.clock,
            connection_repository=self.repository,
            token_verifier=self.verifier,
            message_sender=providers.Callable(self.sender_for),
        )
        self.connect_handler = container.connect_handler()
        self.disconnect_handler = container.disconnect_handler()
        self.default_handler = container.default_handler()
        return self


@pytest.fixture
def gateway() -> Gateway:
    return Gateway().start()


class Written:
    """The JSON lines the handlers write (the Powertools handler's stream, and stdout for
    metrics written alone), as CloudWatch Logs would receive them."""

    def __init__(self, buffer: io.StringIO, capsys: pytest.CaptureFixture[str]) -> None:
        self.buffer = buffer
        self.capsys = capsys

    def lines(self) -> list[dict[str, Any]]:
        text = self.buffer.getvalue() + self.capsys.readouterr().out
        self.buffer.seek(0)
        self.buffer.truncate()
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    def emf(self) -> list[dict[str, Any]]:
        """The EMF documents among the lines (those with an ``_aws`` member)."""
        return [line for line in self.lines() if "_aws" in line]


@pytest.fixture
def written(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Written:
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)
    return Written(buffer, capsys)


def logged(caplog: pytest.LogCaptureFixture, field: str) -> list[Any]:
    """The values of one structured field over the captured log records."""
    return [getattr(record, field) for record in caplog.records if hasattr(record, field)]


def test_given_a_valid_token_when_connect_then_200_and_the_record_is_stored(
    gateway: Gateway, written: Written, caplog: pytest.LogCaptureFixture
) -> None:
    response = gateway.connect_handler(connect_event("good"), CONTEXT)

    assert response["statusCode"] == 200
    assert gateway.repository.get(CONNECTION_ID) == Connection(
        connection_id=CONNECTION_ID, user_id=USER_ID, connected_at=START
    )
    assert gateway.sender.sent == {}
    (line,) = written.lines()
    assert line["message"] == "connected"
    assert line["Connects"] == [1.0], "the log line is the EMF document with the Connects metric"
    assert line["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "Connects", "Unit": "Count"}
    ]
    assert logged(caplog, "connection_id") == [CONNECTION_ID]
    assert logged(caplog, "user_id") == [USER_ID]


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (connect_event(None), 401, "missing"),
        (connect_event(""), 401, "missing"),
        (connect_event("expired"), 401, "expired"),
        (connect_event("forged"), 401, "bad_signature"),
        (connect_event("jwks-down"), 503, "verifier_unavailable"),
        (connect_event("over-limit"), 429, "limit_user"),
    ],
)
def test_given_a_rejected_token_when_connect_then_the_status_and_nothing_stored(
    gateway: Gateway,
    written: Written,
    caplog: pytest.LogCaptureFixture,
    event: dict[str, Any],
    status: int,
    reason: str,
) -> None:
    response = gateway.connect_handler(event, CONTEXT)

    assert response["statusCode"] == status
    assert len(gateway.repository) == 0
    assert logged(caplog, "reason") == [reason]
    (emf,) = written.emf()
    assert emf["ConnectsRejected"] == [1.0]
    assert emf["reason"] == reason
    assert emf["message"] == "connect rejected", "one line: the log line carries the metric"


def test_given_two_different_token_values_when_connect_then_401_ambiguous(gateway: Gateway) -> None:
    event = load_event(
        "connect",
        queryStringParameters={"token": "good"},
        multiValueQueryStringParameters={"token": ["expired", "good"]},
    )
    assert gateway.connect_handler(event, CONTEXT)["statusCode"] == 401
    assert gateway.verifier.calls == 0


def test_given_the_same_token_twice_when_connect_then_it_is_accepted(gateway: Gateway) -> None:
    event = load_event(
        "connect",
        queryStringParameters={"token": "good"},
        multiValueQueryStringParameters={"token": ["good", "good"]},
    )
    assert gateway.connect_handler(event, CONTEXT)["statusCode"] == 200


def test_given_null_query_parameters_when_connect_then_401(gateway: Gateway) -> None:
    event = load_event("connect", queryStringParameters=None, multiValueQueryStringParameters=None)
    assert gateway.connect_handler(event, CONTEXT)["statusCode"] == 401


def test_given_the_token_only_in_sec_websocket_protocol_when_connect_then_401(
    gateway: Gateway,
) -> None:
    event = connect_event(None)
    event["headers"]["Sec-WebSocket-Protocol"] = "good"
    assert gateway.connect_handler(event, CONTEXT)["statusCode"] == 401


def test_given_the_store_is_down_when_connect_then_503(gateway: Gateway) -> None:
    gateway.repository.available = False
    assert gateway.connect_handler(connect_event("good"), CONTEXT)["statusCode"] == 503


@pytest.mark.parametrize(
    "event",
    [None, [], "text", {}, {"requestContext": None}, {"requestContext": {"connectionId": 5}}],
)
def test_given_a_malformed_event_then_every_handler_answers_400_and_logs_one_line(
    gateway: Gateway, event: Any, caplog: pytest.LogCaptureFixture
) -> None:
    for handler in (
        gateway.connect_handler,
        gateway.disconnect_handler,
        gateway.default_handler,
    ):
        caplog.clear()
        assert handler(event, CONTEXT)["statusCode"] == 400
        assert logged(caplog, "reason") == ["malformed_event"]
    assert len(gateway.repository) == 0


def test_given_a_connection_when_disconnect_then_200_and_the_record_is_gone(
    gateway: Gateway, written: Written
) -> None:
    gateway.connect_handler(connect_event("good"), CONTEXT)
    written.lines()

    response = gateway.disconnect_handler(load_event("disconnect"), CONTEXT)

    assert response["statusCode"] == 200
    assert len(gateway.repository) == 0
    (line,) = written.lines()
    assert (line["message"], line["Disconnects"], line["AbnormalDisconnects"]) == (
        "disconnected",
        [1.0],
        [0.0],
    )


def test_given_an_abnormal_close_when_disconnect_then_it_is_counted(
    gateway: Gateway, written: Written
) -> None:
    event = load_event("disconnect")
    event["requestContext"]["disconnectStatusCode"] = 1006
    gateway.disconnect_handler(event, CONTEXT)
    (emf,) = written.emf()
    assert emf["AbnormalDisconnects"] == [1.0]


def test_given_the_store_is_down_when_disconnect_then_logged_and_503(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.repository.available = False
    assert gateway.disconnect_handler(load_event("disconnect"), CONTEXT)["statusCode"] == 503
    assert logged(caplog, "reason") == ["store_unavailable"]


def body(response: dict[str, Any]) -> dict[str, Any]:
    """The route response's frame: what API Gateway sends the client on the two-way $default."""
    frame: dict[str, Any] = json.loads(response["body"])
    return frame


@pytest.mark.parametrize("fixture", ["message_ping", "message_ping_base64"])
def test_given_a_ping_when_default_then_the_pong_is_the_route_response_and_ttl_refreshed(
    gateway: Gateway, fixture: str
) -> None:
    gateway.connect_handler(connect_event("good"), CONTEXT)
    gateway.clock.advance(120)

    response = gateway.default_handler(load_event(fixture), CONTEXT)

    assert response["statusCode"] == 200
    assert gateway.repository.ttl(CONNECTION_ID) == 600
    pong = body(response)
    assert pong["action"] == "pong"
    assert pong["connectionId"] == CONNECTION_ID
    assert pong["serverTime"] == "2026-01-03T00:02:00Z"
    assert gateway.sender.sent == {}, "no Management API post for a pong"
    assert gateway.sender.closed == []


def test_given_a_pong_then_no_info_line_and_no_emf_document_but_a_debug_line(
    gateway: Gateway,
    written: Written,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gateway.connect_handler(connect_event("good"), CONTEXT)
    written.lines()
    caplog.clear()

    with caplog.at_level("DEBUG", logger=logger.name):
        logger.setLevel("INFO")
        monkeypatch.setattr(logger, "sampling_rate", 0.0)
        gateway.default_handler(load_event("message_ping"), CONTEXT)
        assert caplog.records == [], "a successful pong logs nothing at INFO"
        monkeypatch.setattr(logger, "sampling_rate", 1.0)  # every invocation sampled
        gateway.default_handler(load_event("message_ping"), CONTEXT)
    logger.setLevel("INFO")

    assert [(r.levelname, r.message, r.outcome) for r in caplog.records] == [
        ("DEBUG", "heartbeat", "pong")
    ]
    (line,) = written.lines()
    assert line["level"] == "DEBUG" and "_aws" not in line, "no EMF document for a pong"


def test_given_log_sampling_then_each_invocation_draws_whether_it_logs_at_debug(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    gateway.connect_handler(connect_event("good"), CONTEXT)
    draws = iter([0.5, 0.001, 0.5])
    monkeypatch.setattr("random.random", lambda: next(draws))
    monkeypatch.setattr(logger, "sampling_rate", 0.01)
    caplog.clear()

    with caplog.at_level("DEBUG", logger=logger.name):
        logger.setLevel("INFO")
        for _ in range(3):
            gateway.default_handler(load_event("message_ping"), CONTEXT)
    logger.setLevel("INFO")

    assert [r.message for r in caplog.records if r.levelname == "DEBUG"] == ["heartbeat"], (
        "only the second invocation (drawn under 1 %) logs its pong"
    )


def test_given_a_message_without_body_when_default_then_bad_request_reply(gateway: Gateway) -> None:
    event = load_event("message_ping")
    del event["body"]
    response = gateway.default_handler(event, CONTEXT)
    assert response["statusCode"] == 200
    assert body(response)["code"] == "bad_request"


@pytest.mark.parametrize(
    ("raw", "is_base64", "code"),
    [
        ("hello", False, "bad_request"),
        ('{"action":"sendmessage"}', False, "unsupported_action"),
        ('{"action":"ping","id":5}', False, "bad_request"),
        ('{"action":"ping","id":"' + "x" * 65 + '"}', False, "bad_request"),
        (base64.b64encode(b"\x00\x01").decode(), True, "bad_request"),
        ("x" * (130 * 1024), False, "payload_too_large"),
        ('{"action":"ping","x":' + "[" * 50_000 + "]" * 50_000 + "}", False, "bad_request"),
    ],
)
def test_given_a_message_that_is_not_a_ping_then_an_error_reply_and_the_record_untouched(
    gateway: Gateway,
    caplog: pytest.LogCaptureFixture,
    raw: str,
    is_base64: bool,
    code: str,
) -> None:
    gateway.connect_handler(connect_event("good"), CONTEXT)
    gateway.clock.advance(100)
    caplog.clear()

    response = gateway.default_handler(
        load_event("message_ping", body=raw, isBase64Encoded=is_base64), CONTEXT
    )

    reply = body(response)
    assert reply["action"] == "error"
    assert reply["code"] == code
    assert gateway.repository.ttl(CONNECTION_ID) == 500
    assert gateway.sender.sent == {}
    assert gateway.sender.closed == []
    assert [(r.levelname, r.reason) for r in caplog.records] == [("INFO", code)]


def test_given_an_expired_record_when_ping_then_error_and_close_through_the_management_api(
    gateway: Gateway, written: Written, caplog: pytest.LogCaptureFixture
) -> None:
    response = gateway.default_handler(load_event("message_ping"), CONTEXT)

    assert response == {"statusCode": 200}, "no body: nothing to send on a closing connection"
    assert json.loads(gateway.sender.sent[CONNECTION_ID][0])["code"] == "connection_expired"
    assert gateway.sender.closed == [CONNECTION_ID]
    assert gateway.endpoints == ["https://abcdef1234.execute-api.us-east-1.amazonaws.com/prod"]
    (emf,) = written.emf()
    assert emf["StaleConnectionsRemoved"] == [1.0]
    assert logged(caplog, "outcome") == ["expired"]


def test_given_a_management_endpoint_override_then_closes_use_it(gateway: Gateway) -> None:
    gateway.start(MANAGEMENT_API_ENDPOINT="https://ws.example.com/ws")
    gateway.default_handler(load_event("message_ping"), CONTEXT)
    assert gateway.endpoints == ["https://ws.example.com/ws"]


def test_given_no_domain_name_and_no_override_when_default_then_400_with_an_error_frame(
    gateway: Gateway,
) -> None:
    event = load_event("message_ping")
    del event["requestContext"]["domainName"]
    response = gateway.default_handler(event, CONTEXT)
    assert response["statusCode"] == 400
    assert body(response)["code"] == "internal_error"


@pytest.mark.parametrize("fixture", ["message_ping", "message_ping_base64"])
def test_given_the_gateway_fails_the_close_of_an_expired_connection_then_502_and_an_error_frame(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, fixture: str
) -> None:
    def failing_close(connection_id: str) -> None:
        raise MessageSendError()

    monkeypatch.setattr(gateway.sender, "close", failing_close)
    response = gateway.default_handler(load_event(fixture), CONTEXT)
    assert response["statusCode"] == 502
    assert body(response) == {
        "action": "error",
        "code": "internal_error",
        "message": "the server could not handle this message; try again",
    }


def test_given_an_unexpected_bug_then_500_without_details(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom with internals")

    monkeypatch.setattr(gateway.repository, "delete", broken)
    response = gateway.disconnect_handler(load_event("disconnect"), CONTEXT)
    assert response["statusCode"] == 500
    assert "boom" not in response["body"]
    assert logged(caplog, "reason") == ["internal_error"]


def test_given_an_unexpected_bug_in_default_then_the_client_reads_an_internal_error_frame(
    gateway: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom with internals")

    monkeypatch.setattr(gateway.repository, "refresh", broken)
    response = gateway.default_handler(load_event("message_ping"), CONTEXT)
    assert response["statusCode"] == 500
    assert body(response)["code"] == "internal_error"
    assert "boom" not in response["body"]


def test_store_unavailable_on_ping_still_pongs_and_logs_an_error_and_a_metric(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, written: Written
) -> None:
    gateway.repository.available = False
    response = gateway.default_handler(load_event("message_ping"), CONTEXT)
    assert response["statusCode"] == 200
    assert body(response)["action"] == "pong"
    assert logged(caplog, "outcome") == ["pong_unrecorded"]
    assert [record.levelname for record in caplog.records] == ["ERROR"]
    (emf,) = written.emf()
    assert (emf["level"], emf["HeartbeatsUnrecorded"]) == ("ERROR", [1.0])


def test_errors_from_the_store_are_mapped_in_one_table() -> None:
    from entrypoints.edge.responses import status_for

    assert status_for(StoreUnavailableError()) == 503
    assert status_for(InvalidTokenError("expired")) == 401
    assert status_for(KeyError("x")) == 500


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"action":"ping","id":5}', '"id" must be a string of at most 64 characters'),
        ('{"action":"subscribe"}', "unsupported action; supported: ping"),
    ],
)
def test_a_rejected_message_says_why_in_the_wire_terms(
    gateway: Gateway, raw: str, message: str
) -> None:
    response = gateway.default_handler(load_event("message_ping", body=raw), CONTEXT)
    assert body(response)["message"] == message


# --- a new action is a row and a use case ------------------------------------------------------


@attrs.frozen(slots=True, kw_only=True)
class EchoCommand:
    connection_id: str
    text: str | None = attrs.field(default=None, validator=optional_text(16))


@attrs.frozen(slots=True, kw_only=True)
class EchoResult:
    outcome: str
    text: str | None


class Echo:
    """A use case that answers with what it was sent; it sends nothing (no sender)."""

    built = 0

    def __init__(self) -> None:
        Echo.built += 1

    def execute(self, command: EchoCommand) -> EchoResult:
        return EchoResult(outcome="echoed" if command.text else "empty", text=command.text)


def test_given_a_new_action_row_then_default_dispatches_it_reports_it_and_builds_its_use_case_once(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    # Given the container's action table with one more row: its command, its use case, its frame
    from entrypoints.edge.invocation import Report
    from entrypoints.edge.websocket_routes import Action

    echo = Action(
        name="echo",
        command=EchoCommand,
        use_case=Echo,
        reply=lambda result: json.dumps({"action": "echo", "text": result.text}),
        message="echo",
        fields={"text": "text"},
        reports={"echoed": Report(logging.INFO, "echo")},
    )
    container = make_container(
        make_settings(), message_sender=providers.Callable(gateway.sender_for)
    )
    container.override_providers(actions=providers.List(*container.actions(), echo))
    handler = container.default_handler()
    Echo.built = 0

    # When two echo messages arrive, then each gets its frame, logged as the row says
    for _ in range(2):
        response = handler(
            load_event("message_ping", body='{"action":"echo","text":"hi"}'), CONTEXT
        )
        assert body(response) == {"action": "echo", "text": "hi"}
    assert Echo.built == 1, "a stateless use case is built once"
    assert [r.message for r in caplog.records if r.levelno == logging.INFO] == ["echo", "echo"]
    # And its fields are judged by its command, in the wire's terms
    rejected = handler(load_event("message_ping", body='{"action":"echo","text":5}'), CONTEXT)
    assert body(rejected)["message"] == '"text" must be a string of at most 16 characters'
