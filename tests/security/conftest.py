"""Fixtures of the security tier: the real handlers on the real verifier and a real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.cognito import CognitoTokenVerifier, StaticJwksFetcher
from adapters.connection_store.redis import RedisClient, create_redis_client
from adapters.in_memory import FixedClock
from tests.security.harness import WiredHandlers, cognito_verifier, wired_handlers
from tests.support.tokens import TEST_NOW, TestKeyPair, jwks_document, shared_key_pair


class CountingStaticJwksFetcher(StaticJwksFetcher):
    """The real preloaded-JWKS fetcher, counting how often the verifier asks for the keys."""

    def __init__(self, jwks: dict[str, Any]) -> None:
        super().__init__(jwks)
        self.fetches = 0

    def fetch(self) -> dict[str, Any]:
        self.fetches += 1
        return super().fetch()


@pytest.fixture(scope="session")
def pool_key() -> TestKeyPair:
    """The user pool's signing key (kid ``test-kid-1``), the only key in its JWKS."""
    return shared_key_pair("test-kid-1")


@pytest.fixture
def clock() -> FixedClock:
    """Both the verifier and the Connect use case read this clock (``TEST_NOW``)."""
    return FixedClock(TEST_NOW)


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisClient]:
    """A client of the session's real redis-server (flushed before and after the test)."""
    client = create_redis_client(redis_url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def jwks_fetcher(pool_key: TestKeyPair) -> CountingStaticJwksFetcher:
    return CountingStaticJwksFetcher(jwks_document(pool_key))


@pytest.fixture
def verifier(jwks_fetcher: CountingStaticJwksFetcher, clock: FixedClock) -> CognitoTokenVerifier:
    """A fresh production verifier (empty key cache) for the test pool, access tokens."""
    return cognito_verifier(jwks_fetcher, clock)


@pytest.fixture
def real_handlers(
    verifier: CognitoTokenVerifier, store: RedisClient, clock: FixedClock
) -> Iterator[WiredHandlers]:
    """The Lambda handlers with the real verifier and the real Redis repository behind them."""
    with wired_handlers(verifier=verifier, redis_client=store, clock=clock) as app:
        yield app
