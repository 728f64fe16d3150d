"""Issue 7's token corpus, end to end through the real ``$connect`` Lambda handler.

Given the real ``CognitoTokenVerifier`` (JWKS preloaded with the pool's one key), the real
Redis repository on a real redis-server and an API Gateway ``$connect`` event from
``tests/events/connect.json`` carrying the hostile token, when the handler runs, then it
answers 401, Redis holds nothing, and exactly one log line says why with a reason code.

The verifier-level corpus (the same cases, exact reasons, no handler) lives in
``tests/unit/test_cognito_*.py``; the cases themselves in ``tests/support/tokens.py``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from adapters.connection_store.redis import RedisClient
from adapters.in_memory import FixedClock
from tests.security.conftest import CountingStaticJwksFetcher
from tests.security.harness import (
    CONNECTION_ID,
    WiredHandlers,
    cognito_verifier,
    connect_event,
    connection_records,
    wired_handlers,
)
from tests.support.tokens import (
    OTHER_CLIENT_ID,
    TEST_NOW,
    TEST_SUB,
    CorpusCase,
    TestKeyPair,
    cognito_claims,
    jwks_document,
    mint_access_token,
    mint_id_token,
    shared_key_pair,
    token_corpus,
)

CORPUS = token_corpus(shared_key_pair("test-kid-1"), now=TEST_NOW)

NO_KEY_LOOKUP_REASONS = frozenset({"missing", "too_large", "unsupported_alg"})
"""Rejected from the token's shape or header alone: such a token never costs a JWKS fetch."""

HANDLER_LOGGER = "timeline-ws"


def assert_rejected(
    response: dict[str, Any],
    store: RedisClient,
    caplog: pytest.LogCaptureFixture,
    reason: str,
) -> None:
    """401 with a body that says nothing more, nothing in Redis, one log line with ``reason``."""
    assert response["statusCode"] == 401
    assert json.loads(response["body"]) == {"message": "Unauthorized"}
    assert store.dbsize() == 0, "a rejected connection stored something"
    handler_lines = [r for r in caplog.records if r.name == HANDLER_LOGGER]
    assert len(handler_lines) == 1, [r.getMessage() for r in handler_lines]
    reasons = [r for r in caplog.records if hasattr(r, "reason")]
    assert len(reasons) == 1
    (line,) = reasons
    assert getattr(line, "reason", None) == reason
    assert getattr(line, "outcome", None) == "rejected"
    assert getattr(line, "connection_id", None) == CONNECTION_ID
    assert line.levelno == logging.INFO


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_given_a_hostile_token_when_connect_then_401_nothing_stored_and_one_reason_logged(
    case: CorpusCase,
    real_handlers: WiredHandlers,
    store: RedisClient,
    jwks_fetcher: CountingStaticJwksFetcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    response = real_handlers.connect_handler(connect_event(case.token), None)

    assert_rejected(response, store, caplog, case.reason)
    if case.reason in NO_KEY_LOOKUP_REASONS:
        assert jwks_fetcher.fetches == 0
    else:
        assert jwks_fetcher.fetches <= 1


# -- cases that only exist at the edge: where the token is, and how often -------------------


def test_given_a_valid_token_when_connect_then_200_and_the_record_is_stored(
    real_handlers: WiredHandlers, store: RedisClient, pool_key: TestKeyPair
) -> None:
    # The control case: the wiring rejects the corpus because of the tokens, not by default.
    response = real_handlers.connect_handler(
        connect_event(mint_access_token(pool_key, now=TEST_NOW)), None
    )

    assert response["statusCode"] == 200
    stored = json.loads(store.get(f"ws:connection:{CONNECTION_ID}") or b"{}")
    assert stored == {
        "connectionId": CONNECTION_ID,
        "userId": TEST_SUB,
        "connectedAt": "2026-01-03T00:00:00Z",
    }
    assert store.ttl(f"ws:connection:{CONNECTION_ID}") == 600


def test_given_the_token_parameter_twice_with_different_values_then_401_ambiguous_without_verifying(
    real_handlers: WiredHandlers,
    store: RedisClient,
    pool_key: TestKeyPair,
    jwks_fetcher: CountingStaticJwksFetcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given two tokens, each valid on its own, for two different users
    mine = mint_access_token(pool_key, now=TEST_NOW)
    theirs = mint_access_token(pool_key, now=TEST_NOW, sub="someone-else")

    response = real_handlers.connect_handler(connect_event(mine, theirs), None)

    assert_rejected(response, store, caplog, "ambiguous")
    assert jwks_fetcher.fetches == 0


def test_given_the_same_valid_token_twice_then_it_connects(
    real_handlers: WiredHandlers, store: RedisClient, pool_key: TestKeyPair
) -> None:
    token = mint_access_token(pool_key, now=TEST_NOW)
    assert real_handlers.connect_handler(connect_event(token, token), None)["statusCode"] == 200
    assert connection_records(store) == [f"ws:connection:{CONNECTION_ID}"]


def _with_header(event: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    event["headers"][name] = value
    event["multiValueHeaders"][name] = [value]
    return event


@pytest.mark.parametrize(
    ("header", "template"),
    [
        ("Sec-WebSocket-Protocol", "{token}"),
        ("Sec-WebSocket-Protocol", "bearer, {token}"),
        ("Authorization", "Bearer {token}"),
        ("Cookie", "token={token}"),
    ],
    ids=["sec_websocket_protocol", "sec_websocket_protocol_list", "authorization", "cookie"],
)
def test_given_a_valid_token_only_in_a_header_when_connect_then_401_missing(
    real_handlers: WiredHandlers,
    store: RedisClient,
    pool_key: TestKeyPair,
    caplog: pytest.LogCaptureFixture,
    header: str,
    template: str,
) -> None:
    # The contract is the query string: a token anywhere else is no token at all.
    token = mint_access_token(pool_key, now=TEST_NOW)
    event = _with_header(connect_event(), header, template.format(token=token))

    assert_rejected(real_handlers.connect_handler(event, None), store, caplog, "missing")


@pytest.mark.parametrize("name", ["Token", "access_token", "id_token", "token[]", "token "])
def test_given_a_valid_token_under_another_query_parameter_name_then_401_missing(
    real_handlers: WiredHandlers,
    store: RedisClient,
    pool_key: TestKeyPair,
    caplog: pytest.LogCaptureFixture,
    name: str,
) -> None:
    token = mint_access_token(pool_key, now=TEST_NOW)
    event = connect_event()
    event["queryStringParameters"] = {name: token}
    event["multiValueQueryStringParameters"] = {name: [token]}

    assert_rejected(real_handlers.connect_handler(event, None), store, caplog, "missing")


@pytest.mark.parametrize(
    ("mint", "reason"),
    [
        (lambda key: mint_access_token(key, now=TEST_NOW), "wrong_token_use"),
        (lambda key: mint_id_token(key, now=TEST_NOW, client_id=OTHER_CLIENT_ID), "wrong_client"),
        (lambda key: mint_id_token(key, now=TEST_NOW, drop=("aud",)), "wrong_client"),
        (
            lambda key: key.sign(
                {**cognito_claims(token_use="id", now=TEST_NOW), "token_use": "access"}
            ),
            "wrong_token_use",
        ),
    ],
    ids=[
        "access_token_where_id_required",
        "id_token_of_another_app_client",
        "id_token_without_aud",
        "id_token_claiming_access_use",
    ],
)
def test_given_a_pool_configured_for_id_tokens_then_other_tokens_get_401(
    store: RedisClient,
    pool_key: TestKeyPair,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
    mint: Any,
    reason: str,
) -> None:
    # Given COGNITO_TOKEN_USE=id
    verifier = cognito_verifier(
        CountingStaticJwksFetcher(jwks_document(pool_key)), clock, token_use="id"
    )
    with wired_handlers(verifier=verifier, redis_client=store, clock=clock) as app:
        # The control: a proper ID token connects
        good = app.connect_handler(connect_event(mint_id_token(pool_key, now=TEST_NOW)), None)
        assert good["statusCode"] == 200
        store.flushdb()
        caplog.clear()

        response = app.connect_handler(connect_event(mint(pool_key)), None)

    assert_rejected(response, store, caplog, reason)
