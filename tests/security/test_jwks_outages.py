"""A JWKS endpoint that fails or is abused, seen through the real ``$connect`` handler.

Given the real ``CognitoTokenVerifier`` on the real ``HttpJwksFetcher`` pointed at a
loopback JWKS endpoint that answers 500, hangs past the fetch timeout, returns garbage, a
huge body or only unusable keys, and tokens with random unknown ``kid`` values:

- with no key cached, ``$connect`` answers 503 (not 401: the token may be fine) and stores
  nothing;
- with keys cached, valid tokens keep connecting (200);
- the endpoint sees at most one fetch per 60 s cooldown, however many tokens arrive
  (counted on the server side; the cooldown runs on a stepped monotonic clock).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.cognito import HttpJwksFetcher
from adapters.connection_store.redis import RedisClient
from adapters.in_memory import FixedClock
from tests.security.harness import (
    JwksServer,
    cognito_verifier,
    connect_event,
    connection_records,
    wired_handlers,
)
from tests.support.tokens import (
    TEST_NOW,
    SteppingMonotonic,
    TestKeyPair,
    cognito_claims,
    jwks_document,
    mint_access_token,
)

COOLDOWN_SECONDS = 60.0
FETCH_TIMEOUT_SECONDS = 1.0  # generous: a loaded CI machine must not fail a good fetch
FLOOD = 100

FAILING_MODES = ["status_500", "hang", "garbage", "huge", "huge_unannounced", "junk_keys"]


class Edge:
    """The handler wired to a verifier that fetches from ``server``; connects count up ids."""

    def __init__(self, server: JwksServer, store: RedisClient, key: TestKeyPair) -> None:
        self.server = server
        self.store = store
        self.key = key
        self.app: Any = None
        self.monotonic = SteppingMonotonic()
        self._connections = 0
        self._users = 0

    def connect(self, token: str) -> dict[str, Any]:
        self._connections += 1
        event = connect_event(token)
        event["requestContext"]["connectionId"] = f"conn{self._connections:05d}="
        return self.app.connect_handler(event, None)

    def valid_token(self) -> str:
        # One user per token: the per-user connection limit (10) is not what is tested here.
        self._users += 1
        return mint_access_token(self.key, now=TEST_NOW, sub=f"user-{self._users:05d}")

    def unknown_kid_token(self) -> str:
        # Signed by the pool's own key, so only the kid lookup can reject it.
        kid = secrets.token_urlsafe(12)
        return self.key.sign(cognito_claims(now=TEST_NOW), headers={"kid": kid})


@pytest.fixture
def edge(store: RedisClient, pool_key: TestKeyPair, clock: FixedClock) -> Iterator[Edge]:
    with JwksServer(jwks_document(pool_key)) as server:
        edge = Edge(server, store, pool_key)
        verifier = cognito_verifier(
            HttpJwksFetcher(server.url, timeout_seconds=FETCH_TIMEOUT_SECONDS),
            clock,
            monotonic=edge.monotonic,
        )
        with wired_handlers(verifier=verifier, redis_client=store, clock=clock) as app:
            edge.app = app
            yield edge


def handler_reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [getattr(r, "reason", "") for r in caplog.records if r.name == "timeline-ws"]


@pytest.mark.parametrize("mode", FAILING_MODES)
def test_given_no_cached_key_and_a_failing_jwks_when_connect_then_503_and_one_fetch_per_cooldown(
    edge: Edge, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    edge.server.mode = mode

    first = edge.connect(edge.valid_token())
    burst = [edge.connect(edge.valid_token())["statusCode"] for _ in range(20)]

    assert first["statusCode"] == 503
    assert burst == [503] * 20
    assert edge.store.dbsize() == 0
    assert edge.server.fetches == 1, "retries within the cooldown would hammer a failing JWKS"
    assert set(handler_reasons(caplog)) == {"verifier_unavailable"}

    # When the endpoint heals and the cooldown has passed, the next token connects.
    edge.server.mode = "ok"
    edge.monotonic.advance(COOLDOWN_SECONDS)
    assert edge.connect(edge.valid_token())["statusCode"] == 200
    assert edge.server.fetches == 2


@pytest.mark.parametrize("mode", FAILING_MODES)
def test_given_cached_keys_and_a_failing_jwks_then_valid_tokens_keep_connecting(
    edge: Edge, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    assert edge.connect(edge.valid_token())["statusCode"] == 200
    edge.server.mode = mode
    edge.monotonic.advance(COOLDOWN_SECONDS)

    # An unknown kid after the cooldown may refetch once; the fetch fails; the kid stays unknown.
    unknown = [edge.connect(edge.unknown_kid_token())["statusCode"] for _ in range(10)]
    valid = [edge.connect(edge.valid_token())["statusCode"] for _ in range(10)]

    assert unknown == [401] * 10
    assert valid == [200] * 10
    assert len(connection_records(edge.store)) == 11
    assert edge.server.fetches == 2
    assert handler_reasons(caplog).count("unknown_kid") == 10


def test_given_a_flood_of_unknown_kids_then_at_most_one_fetch_per_cooldown(
    edge: Edge, caplog: pytest.LogCaptureFixture
) -> None:
    assert edge.connect(edge.valid_token())["statusCode"] == 200
    windows = 3

    statuses: list[int] = []
    for _ in range(windows):
        edge.monotonic.advance(COOLDOWN_SECONDS)
        statuses += [edge.connect(edge.unknown_kid_token())["statusCode"] for _ in range(FLOOD)]
        assert edge.connect(edge.valid_token())["statusCode"] == 200

    assert statuses == [401] * (FLOOD * windows)
    assert edge.server.fetches == 1 + windows
    assert handler_reasons(caplog).count("unknown_kid") == FLOOD * windows
    assert len(connection_records(edge.store)) == 1 + windows


def test_given_a_flood_of_unknown_kids_and_no_cached_key_and_the_jwks_down_then_503_and_one_fetch(
    edge: Edge,
) -> None:
    edge.server.mode = "status_500"

    statuses = [edge.connect(edge.unknown_kid_token())["statusCode"] for _ in range(FLOOD)]

    assert statuses == [503] * FLOOD
    assert edge.server.fetches == 1
    assert edge.store.dbsize() == 0


def test_given_a_rotated_key_then_its_tokens_connect_after_one_refetch(
    edge: Edge, pool_key: TestKeyPair
) -> None:
    # The cooldown throttles floods without locking out a legitimate key rotation.
    assert edge.connect(edge.valid_token())["statusCode"] == 200
    rotated = TestKeyPair.generate("rotated-kid")
    edge.server.document = jwks_document(pool_key, rotated)
    edge.monotonic.advance(COOLDOWN_SECONDS)

    assert edge.connect(mint_access_token(rotated, now=TEST_NOW))["statusCode"] == 200
    assert edge.connect(mint_access_token(rotated, now=TEST_NOW))["statusCode"] == 200
    assert edge.server.fetches == 2
