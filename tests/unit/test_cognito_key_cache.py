"""CognitoTokenVerifier's key cache: fetch once, rate-limited refetch, rotation, failures, threads."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import adapters.cognito.token_verifier as token_verifier_module
from adapters.cognito import CognitoTokenVerifier
from adapters.in_memory import FixedClock
from domain.errors import InvalidTokenError, VerifierUnavailableError
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_ISSUER,
    TEST_NOW,
    TEST_SUB,
    CountingJwksFetcher,
    SteppingMonotonic,
    TestKeyPair,
    b64url,
    jwks_document,
    mint_access_token,
    shared_key_pair,
)

COOLDOWN = 60.0


@pytest.fixture(scope="module")
def key() -> TestKeyPair:
    return shared_key_pair("kid-1")


@pytest.fixture(scope="module")
def rotated_key() -> TestKeyPair:
    return shared_key_pair("kid-2")


@pytest.fixture
def fetcher(key: TestKeyPair) -> CountingJwksFetcher:
    return CountingJwksFetcher(jwks_document(key))


@pytest.fixture
def monotonic() -> SteppingMonotonic:
    return SteppingMonotonic()


@pytest.fixture
def verifier(fetcher: CountingJwksFetcher, monotonic: SteppingMonotonic) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(
        issuer=TEST_ISSUER,
        app_client_ids=[TEST_CLIENT_ID],
        jwks_fetcher=fetcher,
        clock=FixedClock(TEST_NOW),
        refetch_cooldown_seconds=COOLDOWN,
        monotonic=monotonic,
    )


def token_for(key: TestKeyPair, kid: str | None = None) -> str:
    headers = {"kid": kid} if kid is not None else None
    return mint_access_token(key, now=TEST_NOW, headers=headers)


def reason_of(verifier: CognitoTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


def test_given_an_empty_cache_when_the_first_token_arrives_then_the_jwks_is_fetched_once(
    verifier: CognitoTokenVerifier, fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    for _ in range(5):
        assert verifier.verify(token_for(key)).user_id == TEST_SUB

    assert fetcher.calls == 1


def test_given_cached_keys_when_tokens_are_verified_then_keys_are_constructed_once(
    verifier: CognitoTokenVerifier,
    key: TestKeyPair,
    fetcher: CountingJwksFetcher,
    monotonic: SteppingMonotonic,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    constructed: list[str] = []
    real_construct = token_verifier_module.jwk.construct

    def counting_construct(key_data: dict[str, Any], algorithm: str) -> Any:
        constructed.append(key_data["kid"])
        return real_construct(key_data, algorithm)

    monkeypatch.setattr(token_verifier_module.jwk, "construct", counting_construct)
    for _ in range(3):
        verifier.verify(token_for(key))
    # A refetch (for an unknown kid) returning the same key must not rebuild it.
    monotonic.advance(COOLDOWN)
    reason_of(verifier, token_for(key, kid="unknown"))

    assert fetcher.calls == 2
    assert constructed == ["kid-1"]
    assert verifier.verify(token_for(key)).user_id == TEST_SUB


def test_given_an_unknown_kid_when_tokens_flood_within_the_cooldown_then_at_most_one_refetch(
    verifier: CognitoTokenVerifier, fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    verifier.verify(token_for(key))  # fills the cache: fetch 1

    reasons = {reason_of(verifier, token_for(key, kid=f"random-{n}")) for n in range(200)}

    assert reasons == {"unknown_kid"}
    assert fetcher.calls == 1  # the cooldown started with the first fetch: no refetch yet


def test_given_an_unknown_kid_after_the_cooldown_then_exactly_one_refetch_per_cooldown(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    verifier.verify(token_for(key))
    monotonic.advance(COOLDOWN)

    for n in range(50):
        reason_of(verifier, token_for(key, kid=f"random-{n}"))
    assert fetcher.calls == 2

    monotonic.advance(COOLDOWN - 0.001)
    reason_of(verifier, token_for(key, kid="another"))
    assert fetcher.calls == 2

    monotonic.advance(0.001)
    reason_of(verifier, token_for(key, kid="another"))
    assert fetcher.calls == 3


def test_given_key_rotation_when_a_new_kid_appears_after_the_cooldown_then_it_is_fetched_and_accepted(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    rotated_key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    verifier.verify(token_for(key))
    fetcher.document = jwks_document(key, rotated_key)  # Cognito publishes the new key
    monotonic.advance(COOLDOWN)

    assert verifier.verify(token_for(rotated_key)).user_id == TEST_SUB
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert fetcher.calls == 2


def test_given_key_rotation_within_the_cooldown_when_the_new_kid_arrives_then_unknown_until_it_ends(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    rotated_key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    verifier.verify(token_for(key))
    fetcher.document = jwks_document(rotated_key)

    assert reason_of(verifier, token_for(rotated_key)) == "unknown_kid"
    monotonic.advance(COOLDOWN)
    assert verifier.verify(token_for(rotated_key)).user_id == TEST_SUB
    # The old key left the JWKS, so it left the cache: its tokens no longer verify.
    assert reason_of(verifier, token_for(key)) == "unknown_kid"


def test_given_a_down_endpoint_and_no_cached_key_when_verifying_then_unavailable_and_rate_limited(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    fetcher.error = VerifierUnavailableError("connection refused")

    for _ in range(20):
        with pytest.raises(VerifierUnavailableError):
            verifier.verify(token_for(key))
    assert fetcher.calls == 1  # failures count toward the cooldown

    fetcher.error = None
    monotonic.advance(COOLDOWN)
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert fetcher.calls == 2


def test_given_cached_keys_when_the_endpoint_goes_down_then_known_kids_keep_verifying(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    verifier.verify(token_for(key))
    fetcher.error = VerifierUnavailableError("HTTP 500")
    monotonic.advance(COOLDOWN)

    assert reason_of(verifier, token_for(key, kid="unknown")) == "unknown_kid"  # failed refetch
    for _ in range(10):
        assert verifier.verify(token_for(key)).user_id == TEST_SUB
        assert reason_of(verifier, token_for(key, kid="unknown")) == "unknown_kid"
    assert fetcher.calls == 2


@pytest.mark.parametrize(
    "document",
    [
        {"keys": []},
        {"keys": [{"kty": "EC", "kid": "kid-1", "crv": "P-256", "x": "AA", "y": "AA"}]},
        {"keys": ["not a key"]},
        {"keys": "not a list"},
    ],
    ids=["empty", "ec_only", "garbage_entries", "keys_not_a_list"],
)
def test_given_a_jwks_without_a_usable_key_when_nothing_is_cached_then_unavailable(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    document: dict[str, Any],
) -> None:
    fetcher.document = document

    with pytest.raises(VerifierUnavailableError):
        verifier.verify(token_for(key))


@pytest.mark.parametrize(
    "broken",
    [RuntimeError("bug"), ValueError("bad json"), TimeoutError()],
    ids=["runtime_error", "value_error", "timeout_error"],
)
def test_given_a_fetcher_breaking_its_contract_when_it_raises_then_treated_as_unavailable(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    monotonic: SteppingMonotonic,
    broken: Exception,
) -> None:
    fetcher.error = broken
    with pytest.raises(VerifierUnavailableError):
        verifier.verify(token_for(key))

    fetcher.error = None
    monotonic.advance(COOLDOWN)
    verifier.verify(token_for(key))
    fetcher.error = broken
    monotonic.advance(COOLDOWN)
    assert reason_of(verifier, token_for(key, kid="unknown")) == "unknown_kid"
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert fetcher.calls == 3


def test_given_a_fetcher_returning_a_non_mapping_when_nothing_is_cached_then_unavailable(
    verifier: CognitoTokenVerifier, fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    fetcher.document = ["not", "a", "jwks"]  # type: ignore[assignment]

    with pytest.raises(VerifierUnavailableError):
        verifier.verify(token_for(key))


def test_given_cached_keys_when_a_refetch_returns_no_usable_key_then_the_cache_is_kept(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    monotonic: SteppingMonotonic,
) -> None:
    verifier.verify(token_for(key))
    fetcher.document = {"keys": []}
    monotonic.advance(COOLDOWN)

    assert reason_of(verifier, token_for(key, kid="unknown")) == "unknown_kid"
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert fetcher.calls == 2


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"use": "enc"}, "an encryption key"),
        ({"alg": "RS512"}, "a key for another algorithm"),
        ({"alg": "HS256"}, "a key for HMAC"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "a symmetric key"),
        ({"kid": "../x"}, "an unsafe kid"),
        ({"kid": None}, "no kid"),
        ({"n": 12345}, "a modulus that is not a string"),
        ({"n": "!!!"}, "a modulus that is not base64url"),
    ],
)
def test_given_a_jwk_that_must_not_sign_rs256_when_loaded_then_it_is_ignored(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    rotated_key: TestKeyPair,
    overrides: dict[str, Any],
    why: str,
) -> None:
    fetcher.document = jwks_document(rotated_key, key.jwk(**overrides))

    assert verifier.verify(token_for(rotated_key)).user_id == TEST_SUB  # the good key loads
    assert reason_of(verifier, token_for(key)) in {"unknown_kid", "malformed"}, why


def test_given_a_small_rsa_key_in_the_jwks_when_loaded_then_it_is_ignored(
    verifier: CognitoTokenVerifier, fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    weak = TestKeyPair.generate("weak", bits=1024)
    fetcher.document = jwks_document(key, weak)

    assert reason_of(verifier, token_for(weak)) == "unknown_kid"
    assert verifier.verify(token_for(key)).user_id == TEST_SUB


def test_given_two_jwks_entries_with_the_same_kid_when_loaded_then_neither_is_trusted(
    verifier: CognitoTokenVerifier,
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    rotated_key: TestKeyPair,
) -> None:
    impostor = TestKeyPair.generate("kid-1")
    fetcher.document = jwks_document(key, impostor, rotated_key)

    assert verifier.verify(token_for(rotated_key)).user_id == TEST_SUB
    assert reason_of(verifier, token_for(key)) == "unknown_kid"
    assert reason_of(verifier, token_for(impostor)) == "unknown_kid"


def test_given_a_jwk_with_private_members_when_loaded_then_only_the_public_key_is_kept(
    verifier: CognitoTokenVerifier, fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    numbers = key.private_key.private_numbers()
    private_d = numbers.d.to_bytes((numbers.d.bit_length() + 7) // 8, "big")
    fetcher.document = jwks_document(key.jwk(d=b64url(private_d)))

    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    cached = verifier._keys["kid-1"]
    assert not hasattr(cached.prepared_key, "private_bytes")


def test_given_many_threads_with_a_new_kid_when_verifying_at_once_then_a_single_fetch(
    key: TestKeyPair,
) -> None:
    entered = threading.Event()
    release = threading.Event()

    class BlockingFetcher(CountingJwksFetcher):
        def fetch(self) -> dict[str, Any]:
            entered.set()
            assert release.wait(timeout=10), "the test never released the fetch"
            return super().fetch()

    fetcher = BlockingFetcher(jwks_document(key))
    verifier = CognitoTokenVerifier(
        issuer=TEST_ISSUER,
        app_client_ids=[TEST_CLIENT_ID],
        jwks_fetcher=fetcher,
        clock=FixedClock(),
    )
    token = token_for(key)
    results: list[str] = []
    errors: list[BaseException] = []

    def verify() -> None:
        try:
            results.append(verifier.verify(token).user_id)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=verify) for _ in range(16)]
    for thread in threads:
        thread.start()
    assert entered.wait(timeout=10)
    release.set()
    for thread in threads:
        thread.join(timeout=10)

    assert not any(thread.is_alive() for thread in threads)
    assert errors == []
    assert results == [TEST_SUB] * 16
    assert fetcher.calls == 1
