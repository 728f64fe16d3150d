"""No log line ever carries a token, a piece of one, the raw query string or the Redis password.

Every test here runs with ALL log output captured at DEBUG (``capture_all_output``: the root
logger and every library logger at DEBUG, every record rendered with all its attributes and
exception chains, and the exact text Powertools' JSON handler writes to stdout) plus
``capsys`` for printed EMF metrics. The first test proves the capture sees each of those
channels, so the absence checks that follow can fail.

Secrets checked: each token, its trimmed form and each dot-separated segment of 8 characters
or more, the raw and percent-encoded query strings, and the Redis AUTH password (raw and
percent-encoded).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as websocket_connect

from adapters.api_gateway_message_sender import ManagementApiClients
from adapters.cognito import HttpJwksFetcher, StaticJwksFetcher
from adapters.connection_store.redis import create_redis_client
from adapters.in_memory import FixedClock
from entrypoints.local_gateway.emulator.server import GatewaySettings
from entrypoints.local_gateway.wiring import prepare_gateway
from entrypoints.observability import logger as handler_logger
from tests.security.harness import (
    CLIENT_LOGGER,
    CONNECTION_ID,
    JwksServer,
    OutputCapture,
    SecuredRedisServer,
    capture_all_output,
    cognito_verifier,
    connect_event,
    connection_records,
    leaks,
    load_event,
    raw_query_strings,
    running_secured_redis,
    secret_fragments,
    wired_handlers,
)
from tests.support.gateway import BackgroundGateway
from tests.support.management_api_stub import running_management_api_stub
from tests.support.servers import free_port
from tests.support.tokens import (
    TEST_NOW,
    SteppingMonotonic,
    cognito_claims,
    jwks_document,
    mint_access_token,
    shared_key_pair,
    token_corpus,
)

PASSWORD = "redis-" + secrets.token_urlsafe(24)
KEY = shared_key_pair("test-kid-1")
CORPUS = token_corpus(KEY, now=TEST_NOW)


def wait_until(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll ``condition`` (every 20 ms) until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)  # polling interval of a bounded loop


class Secrets:
    """Everything that must not be logged, collected as the test uses it."""

    def __init__(self) -> None:
        self.values: set[str] = {PASSWORD, urllib.parse.quote(PASSWORD, safe="")}

    def tokens(self, *tokens: str) -> tuple[str, ...]:
        for token in tokens:
            self.values |= secret_fragments(token)
        self.values |= raw_query_strings(*tokens)
        return tokens

    def assert_absent_from(self, output: OutputCapture, capsys: pytest.CaptureFixture[str]) -> str:
        printed = capsys.readouterr()
        text = output.text(printed.out, printed.err)
        assert leaks(text, self.values) == []
        return text


@pytest.fixture(scope="module")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedisServer]:
    """A redis-server that requires ``PASSWORD`` (plain TCP; TLS is test_redis_tls's)."""
    with running_secured_redis(
        tmp_path_factory.mktemp("redis-auth"), port=free_port(), password=PASSWORD, tls=None
    ) as server:
        yield server


@pytest.fixture
def store(secured_redis: SecuredRedisServer) -> Iterator[Any]:
    client = create_redis_client(secured_redis.url)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        client.close()


def wrong_password_url(server: SecuredRedisServer) -> str:
    return server.url.replace(urllib.parse.quote(PASSWORD, safe=""), "not-" + PASSWORD[:8])


# -- the capture itself ------------------------------------------------------------------------


def test_the_capture_sees_every_channel_at_debug(capsys: pytest.CaptureFixture[str]) -> None:
    # Given one canary per channel, when each is emitted at DEBUG, then the capture holds it.
    canaries = {
        name: f"canary-{name}-{secrets.token_hex(6)}"
        for name in (
            "botocore",
            "urllib3",
            "aiohttp.access",
            "redis.connection",
            "timeline_ws.gateway",
            "jose",
        )
    }
    powertools = f"canary-powertools-{secrets.token_hex(6)}"
    extra_field = f"canary-extra-{secrets.token_hex(6)}"
    printed = f"canary-print-{secrets.token_hex(6)}"
    with capture_all_output() as output:
        for name, canary in canaries.items():
            logging.getLogger(name).debug("%s", canary)
        handler_logger.debug(powertools)
        handler_logger.info("structured", extra={"detail": extra_field})
        print(printed)

    text = output.text(capsys.readouterr().out)
    for canary in [*canaries.values(), powertools, extra_field, printed]:
        assert canary in text
    # Powertools' own JSON line (what CloudWatch would receive) was captured too.
    assert any(powertools in buffer.getvalue() for buffer in output.streams)


# -- the Lambda handlers -----------------------------------------------------------------------


def test_given_the_whole_corpus_at_debug_then_no_log_line_carries_a_token(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_ = Secrets()
    clock = FixedClock(TEST_NOW)
    verifier = cognito_verifier(StaticJwksFetcher(jwks_document(KEY)), clock)
    valid = mint_access_token(KEY, now=TEST_NOW)
    other = mint_access_token(KEY, now=TEST_NOW, sub="someone-else")
    statuses: list[int] = []
    with (
        capture_all_output() as output,
        wired_handlers(verifier=verifier, redis_client=store, clock=clock) as app,
    ):
        for case in CORPUS:
            statuses.append(
                app.connect_handler(connect_event(*secrets_.tokens(case.token)), None)["statusCode"]
            )
        # The same parameter twice, and the token where the contract does not look for it
        statuses.append(
            app.connect_handler(connect_event(*secrets_.tokens(valid, other)), None)["statusCode"]
        )
        event = connect_event()
        event["headers"]["Sec-WebSocket-Protocol"] = secrets_.tokens(valid)[0]
        statuses.append(app.connect_handler(event, None)["statusCode"])
        # And one accepted connection
        statuses.append(
            app.connect_handler(connect_event(*secrets_.tokens(valid)), None)["statusCode"]
        )

    assert statuses == [401] * (len(CORPUS) + 2) + [200]
    text = secrets_.assert_absent_from(output, capsys)
    for reason in {case.reason for case in CORPUS} | {"ambiguous"}:
        assert f'"reason":"{reason}"' in text or f"'reason', '{reason}'" in text


def test_given_jwks_failures_and_unknown_kids_at_debug_then_no_log_line_carries_a_token(
    store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_ = Secrets()
    clock = FixedClock(TEST_NOW)
    monotonic = SteppingMonotonic()
    with JwksServer(jwks_document(KEY)) as server:
        verifier = cognito_verifier(
            HttpJwksFetcher(server.url, timeout_seconds=1.0), clock, monotonic=monotonic
        )
        server.mode = "status_500"
        with (
            capture_all_output() as output,
            wired_handlers(verifier=verifier, redis_client=store, clock=clock) as app,
        ):
            down = app.connect_handler(
                connect_event(*secrets_.tokens(mint_access_token(KEY, now=TEST_NOW))), None
            )
            server.mode = "ok"
            monotonic.advance(60)
            up = app.connect_handler(
                connect_event(*secrets_.tokens(mint_access_token(KEY, now=TEST_NOW))), None
            )
            monotonic.advance(60)
            server.mode = "garbage"
            unknown = KEY.sign(cognito_claims(now=TEST_NOW), headers={"kid": "rotated-away"})
            gone = app.connect_handler(connect_event(*secrets_.tokens(unknown)), None)

    assert [down["statusCode"], up["statusCode"], gone["statusCode"]] == [503, 200, 401]
    text = secrets_.assert_absent_from(output, capsys)
    assert "JWKS fetch failed" in text


def test_given_a_session_through_the_handlers_with_boto3_and_redis_auth_at_debug_then_no_secret_is_logged(
    store: Any, secured_redis: SecuredRedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    # connect, ping, a bad message, disconnect, a ping on the closed connection (its
    # connection_expired frame and close go through real boto3: botocore at DEBUG logs whole
    # requests) to a loopback @connections stub, Redis with AUTH; then a wrong password.
    secrets_ = Secrets()
    clock = FixedClock(TEST_NOW)
    verifier = cognito_verifier(StaticJwksFetcher(jwks_document(KEY)), clock)
    (token,) = secrets_.tokens(mint_access_token(KEY, now=TEST_NOW))
    broken_store = create_redis_client(wrong_password_url(secured_redis))
    with running_management_api_stub() as stub:
        sender = ManagementApiClients(region_name="us-east-1").sender_for(stub.endpoint + "/prod")
        with capture_all_output() as output:
            with wired_handlers(
                verifier=verifier, redis_client=store, clock=clock, sender=sender
            ) as app:
                connected = app.connect_handler(connect_event(token), None)
                ping = app.default_handler(load_event("message_ping"), None)
                bad = load_event("message_ping")
                bad["body"] = "hello " + token  # a client pasting its token into a message
                rejected = app.default_handler(bad, None)
                closed = app.disconnect_handler(load_event("disconnect"), None)
                expired = app.default_handler(load_event("message_ping"), None)
            with wired_handlers(verifier=verifier, redis_client=broken_store, clock=clock) as app:
                unavailable = app.connect_handler(connect_event(token), None)
    broken_store.close()

    responses = (connected, ping, rejected, closed, expired, unavailable)
    assert [r["statusCode"] for r in responses] == [200, 200, 200, 200, 200, 503]
    assert token not in json.dumps(responses), "no reply echoes the token"
    assert [r.method for r in stub.requests] == ["POST", "DELETE"], (
        "the connection_expired frame and the close went through boto3"
    )
    text = secrets_.assert_absent_from(output, capsys)
    assert "store_unavailable" in text
    assert CONNECTION_ID in text, "the capture saw the session's log lines"


# -- the local gateway (`timeline-ws serve`), in-process --------------------------------------


@pytest.fixture
def served_gateway(secured_redis: SecuredRedisServer, store: Any, tmp_path: Path) -> Iterator[Any]:
    """``timeline-ws serve``'s gateway on a free port over the real handlers, Redis with AUTH."""
    environ = dict(os.environ)
    for name in (
        "COGNITO_REGION",
        "COGNITO_USER_POOL_ID",
        "COGNITO_APP_CLIENT_IDS",
        "COGNITO_JWKS",
    ):
        environ.pop(name, None)  # the conftest's test pool: use the gateway's Cognito stand-in
    prepared = prepare_gateway(
        host="127.0.0.1",
        port=0,
        settings=GatewaySettings(),
        redis_url=secured_redis.url,
        state_dir=tmp_path,
        environ=environ,
    )
    background = BackgroundGateway(prepared.app, prepared.sock)
    background.start()
    try:
        yield prepared
    finally:
        background.stop()


def test_given_an_e2e_session_through_the_local_gateway_at_debug_then_no_secret_is_logged(
    served_gateway: Any, store: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets_ = Secrets()
    token = served_gateway.dev_cognito.access_token(sub="e2e-user", expires_in_seconds=3600)
    (token,) = secrets_.tokens(token)
    forged = token.rsplit(".", 1)[0] + "." + "A" * 342
    cognito = served_gateway.dev_cognito
    expired = cognito.key.sign(
        cognito.access_token_claims(sub="e2e-user", now=int(time.time()) - 7200)
    )
    secrets_.tokens(forged)
    secrets_.tokens(expired)
    ws_url = served_gateway.ws_url
    refusals: list[int] = []
    client = logging.getLogger(CLIENT_LOGGER)
    with capture_all_output() as output:
        with websocket_connect(f"{ws_url}?token={token}", open_timeout=10, logger=client) as ws:
            ws.send(json.dumps({"action": "ping", "id": "1"}))
            pong = json.loads(ws.recv(timeout=10))
            ws.send("not json " + token)
            error = json.loads(ws.recv(timeout=10))
        # $disconnect runs after the close handshake: wait (bounded) so its lines are captured.
        wait_until(lambda: not connection_records(store), "the $disconnect of the session")
        for query in (f"token={forged}", f"token={expired}", f"token={token}&token={forged}"):
            secrets_.values.add(query)
            try:
                with websocket_connect(f"{ws_url}?{query}", open_timeout=10, logger=client):
                    pass
            except InvalidStatus as refused:
                refusals.append(refused.response.status_code)

    assert pong["action"] == "pong"
    assert error["action"] == "error"
    assert refusals == [401, 401, 401]
    text = secrets_.assert_absent_from(output, capsys)
    assert pong["connectionId"] in text, "the capture saw the gateway's and handlers' lines"
    assert "disconnected" in text
    # The browser stand-in's own DEBUG log does show its URL: the capture would have caught
    # the same line from the service.
    assert f"token={token}" in output.client_text()
