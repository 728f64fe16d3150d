"""CognitoTokenVerifier: issue 7's token corpus, claims, leeway, and what the errors say.

Keys are real RSA keys (tests/support/tokens.py); the JWKS comes from a counting fake so the
tests are fast and can assert how often keys were fetched.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jose import jwk, jws
from jose.exceptions import JWSError

import adapters.cognito.token_verifier as token_verifier_module
from adapters.cognito import CognitoTokenVerifier, StaticJwksFetcher
from adapters.in_memory import FixedClock
from domain.connection import VerifiedIdentity
from domain.errors import INVALID_TOKEN_REASONS, InvalidTokenError
from tests.support.tokens import (
    OTHER_CLIENT_ID,
    TEST_CLIENT_ID,
    TEST_ISSUER,
    TEST_NOW,
    TEST_SUB,
    CorpusCase,
    CountingJwksFetcher,
    TestKeyPair,
    b64url,
    cognito_claims,
    jwks_document,
    mint_access_token,
    mint_id_token,
    shared_key_pair,
    sign_hmac,
    token_corpus,
)

NOW = int(TEST_NOW.timestamp())


@pytest.fixture(scope="module")
def key() -> TestKeyPair:
    return shared_key_pair("kid-1")


@pytest.fixture
def fetcher(key: TestKeyPair) -> CountingJwksFetcher:
    return CountingJwksFetcher(jwks_document(key))


def make_verifier(
    fetcher: CountingJwksFetcher | StaticJwksFetcher,
    *,
    token_use: str = "access",
    leeway_seconds: int = 0,
    app_client_ids: tuple[str, ...] = (TEST_CLIENT_ID,),
) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(
        issuer=TEST_ISSUER,
        app_client_ids=app_client_ids,
        jwks_fetcher=fetcher,
        clock=FixedClock(TEST_NOW),
        token_use=token_use,
        leeway_seconds=leeway_seconds,
    )


@pytest.fixture
def verifier(fetcher: CountingJwksFetcher) -> CognitoTokenVerifier:
    return make_verifier(fetcher)


@pytest.fixture
def id_verifier(fetcher: CountingJwksFetcher) -> CognitoTokenVerifier:
    return make_verifier(fetcher, token_use="id")


def reason_of(verifier: CognitoTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


CORPUS = token_corpus(shared_key_pair("kid-1"), now=TEST_NOW)


# -- accepted tokens ------------------------------------------------------------------------


def test_given_a_valid_access_token_when_verified_then_its_identity_is_returned(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    identity = verifier.verify(mint_access_token(key, now=TEST_NOW))

    assert identity == VerifiedIdentity(
        user_id=TEST_SUB,
        client_id=TEST_CLIENT_ID,
        token_use="access",
        expires_at=TEST_NOW + timedelta(hours=1),
    )
    assert identity.expires_at.tzinfo is UTC


def test_given_a_valid_id_token_when_configured_for_id_tokens_then_accepted(
    id_verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    identity = id_verifier.verify(mint_id_token(key, now=TEST_NOW))

    assert (identity.user_id, identity.client_id, identity.token_use) == (
        TEST_SUB,
        TEST_CLIENT_ID,
        "id",
    )


def test_given_an_id_token_whose_aud_is_a_list_when_one_entry_is_ours_then_accepted(
    id_verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = key.sign(cognito_claims(token_use="id", now=NOW, aud=[OTHER_CLIENT_ID, TEST_CLIENT_ID]))

    assert id_verifier.verify(token).client_id == TEST_CLIENT_ID


def test_given_several_app_clients_when_a_token_of_the_second_arrives_then_accepted(
    fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    verifier = make_verifier(fetcher, app_client_ids=(TEST_CLIENT_ID, OTHER_CLIENT_ID))

    identity = verifier.verify(mint_access_token(key, now=TEST_NOW, client_id=OTHER_CLIENT_ID))

    assert identity.client_id == OTHER_CLIENT_ID


def test_given_a_cognito_style_kid_with_slash_plus_and_equals_when_verified_then_accepted(
    key: TestKeyPair,
) -> None:
    # Real Cognito kids are standard base64, e.g. "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI=".
    cognito_kid = "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI="
    rotated = TestKeyPair(cognito_kid, key.private_key)
    verifier = make_verifier(StaticJwksFetcher(jwks_document(rotated)))

    assert verifier.verify(mint_access_token(rotated, now=TEST_NOW)).user_id == TEST_SUB


def test_given_a_token_without_the_optional_iat_and_nbf_when_verified_then_accepted(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = mint_access_token(key, now=NOW, drop=("iat", "nbf", "auth_time"))

    assert verifier.verify(token).user_id == TEST_SUB


def test_given_a_jwk_without_use_and_alg_when_verified_then_the_key_is_usable(
    key: TestKeyPair,
) -> None:
    verifier = make_verifier(StaticJwksFetcher(jwks_document(key.jwk(use=None, alg=None))))

    assert verifier.verify(mint_access_token(key, now=TEST_NOW)).user_id == TEST_SUB


# -- the corpus -----------------------------------------------------------------------------


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_given_a_corpus_token_when_verified_then_rejected_with_its_reason_code(
    verifier: CognitoTokenVerifier, case: CorpusCase
) -> None:
    assert reason_of(verifier, case.token) == case.reason


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_given_a_corpus_token_when_rejected_then_the_error_carries_no_part_of_it(
    verifier: CognitoTokenVerifier, case: CorpusCase
) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(case.token)

    error = caught.value
    said = f"{error} {error!r} {error.message} {error.args}"
    parts = [case.token.strip(), *(part for part in case.token.split(".") if len(part) >= 8)]
    assert not any(part and part in said for part in parts)
    assert error.__cause__ is None
    assert error.reason in INVALID_TOKEN_REASONS


def test_the_corpus_covers_every_case_of_issue_7() -> None:
    names = {case.name for case in CORPUS}
    required = {
        "alg_none_empty_signature",
        "hs256_with_public_key_pem",
        "hs256_with_public_key_der",
        "hs256_with_public_jwk_json",
        "rs256_by_another_key_with_real_kid",
        "unknown_kid",
        "kid_path_traversal",
        "kid_url",
        "expired",
        "exp_missing",
        "exp_a_string",
        "nbf_in_the_future",
        "iat_absurdly_in_the_future",
        "issuer_of_another_pool",
        "issuer_of_another_region",
        "issuer_with_trailing_slash",
        "client_id_of_another_app_client",
        "id_token_where_access_required",
        "access_token_without_token_use",
        "no_sub",
        "two_segments",
        "four_segments",
        "five_segments_jwe",
        "bad_base64_character",
        "header_not_json",
        "non_ascii_bytes",
        "leading_whitespace",
        "trailing_whitespace",
        "token_of_16_kb",
    }
    assert required <= names


# -- named cases of issue 7 (the corpus above runs them all; these spell out the attacks) ----


def test_given_alg_none_with_an_empty_signature_when_verified_then_unsupported_alg(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = f"{key.sign(cognito_claims(now=NOW), headers={'alg': 'none'}).rsplit('.', 1)[0]}."

    assert reason_of(verifier, token) == "unsupported_alg"


@pytest.mark.parametrize("form", ["pem", "der", "jwk_json"])
def test_given_hs256_signed_with_the_public_key_when_verified_then_unsupported_alg(
    verifier: CognitoTokenVerifier, key: TestKeyPair, form: str
) -> None:
    secret = {
        "pem": key.public_pem(),
        "der": key.public_der(),
        "jwk_json": json.dumps(key.jwk()).encode(),
    }[form]
    token = sign_hmac(cognito_claims(now=NOW), secret, headers={"kid": key.kid})

    assert reason_of(verifier, token) == "unsupported_alg"


@pytest.mark.parametrize("form", ["pem", "der", "jwk_json"])
def test_given_hs256_key_confusion_when_our_alg_check_is_bypassed_then_jose_still_refuses(
    key: TestKeyPair, form: str
) -> None:
    # Defence in depth: hand the forged token straight to the jose call the verifier makes,
    # with the key object the verifier builds; even allowing HS256 the RSA key cannot verify a MAC.
    secret = {
        "pem": key.public_pem(),
        "der": key.public_der(),
        "jwk_json": json.dumps(key.jwk()).encode(),
    }[form]
    token = sign_hmac(cognito_claims(now=NOW), secret, headers={"kid": key.kid})
    constructed = jwk.construct(
        {k: v for k, v in key.jwk().items() if k in ("kty", "n", "e")}, "RS256"
    )

    with pytest.raises(JWSError):
        jws.verify(token, constructed, algorithms=["RS256"])
    with pytest.raises(JWSError):
        jws.verify(token, constructed, algorithms=["HS256"])


def test_given_rs256_signed_by_another_key_with_a_real_kid_when_verified_then_bad_signature(
    verifier: CognitoTokenVerifier,
) -> None:
    forger = TestKeyPair.generate("forger")
    token = forger.sign(cognito_claims(now=NOW), headers={"kid": "kid-1"})

    assert reason_of(verifier, token) == "bad_signature"


@pytest.mark.parametrize(
    "kid",
    [
        "../../etc/passwd",
        "https://evil.example/jwks.json",
        "k?x=1",
        "%2e%2e%2f",
        "k#f",
        "a b",
        "k\x00",
    ],
)
def test_given_a_kid_with_path_or_url_characters_when_verified_then_malformed_and_nothing_fetched(
    fetcher: CountingJwksFetcher, key: TestKeyPair, kid: str
) -> None:
    verifier = make_verifier(fetcher)

    assert (
        reason_of(verifier, key.sign(cognito_claims(now=NOW), headers={"kid": kid})) == "malformed"
    )
    assert fetcher.calls == 0


def test_given_an_expired_token_when_verified_then_expired(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    assert reason_of(verifier, mint_access_token(key, now=NOW - 3600)) == "expired"


def test_given_a_token_without_exp_when_verified_then_missing_claim(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    assert reason_of(verifier, mint_access_token(key, now=NOW, drop=("exp",))) == "missing_claim"


@pytest.mark.parametrize("exp", [str(NOW + 3600), True, None, [NOW + 3600], {"at": 1}])
def test_given_exp_that_is_not_a_number_when_verified_then_malformed(
    verifier: CognitoTokenVerifier, key: TestKeyPair, exp: object
) -> None:
    claims = cognito_claims(now=NOW)
    claims["exp"] = exp
    expected = "missing_claim" if exp is None else "malformed"

    assert reason_of(verifier, key.sign(claims)) == expected


def test_given_nbf_in_the_future_when_verified_then_not_yet_valid(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    assert reason_of(verifier, mint_access_token(key, now=NOW, nbf=NOW + 1)) == "not_yet_valid"


def test_given_iat_absurdly_in_the_future_when_verified_then_issued_in_future(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = mint_access_token(key, now=NOW + 10 * 365 * 86400)

    assert reason_of(verifier, token) == "issued_in_future"


@pytest.mark.parametrize(
    "issuer",
    [
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_OtherPool",
        "https://cognito-idp.eu-west-1.amazonaws.com/us-east-1_TimelineWs",
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_TimelineWs/",
        "http://cognito-idp.us-east-1.amazonaws.com/us-east-1_TimelineWs",
        "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_timelinews",
    ],
    ids=["other_pool", "other_region", "trailing_slash", "http_scheme", "other_case"],
)
def test_given_the_issuer_of_another_pool_region_or_spelling_when_verified_then_wrong_issuer(
    verifier: CognitoTokenVerifier, key: TestKeyPair, issuer: str
) -> None:
    assert reason_of(verifier, mint_access_token(key, now=NOW, issuer=issuer)) == "wrong_issuer"


def test_given_the_client_id_of_another_app_client_when_verified_then_wrong_client(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = mint_access_token(key, now=NOW, client_id=OTHER_CLIENT_ID)

    assert reason_of(verifier, token) == "wrong_client"


def test_given_an_access_token_carrying_aud_but_no_client_id_when_verified_then_wrong_client(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = mint_access_token(key, now=NOW, drop=("client_id",), aud=TEST_CLIENT_ID)

    assert reason_of(verifier, token) == "wrong_client"


def test_given_an_id_token_when_access_tokens_are_required_then_wrong_token_use(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    assert reason_of(verifier, mint_id_token(key, now=NOW)) == "wrong_token_use"


def test_given_an_access_token_when_configured_for_id_tokens_then_wrong_token_use(
    id_verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    assert reason_of(id_verifier, mint_access_token(key, now=NOW)) == "wrong_token_use"


@pytest.mark.parametrize(
    "aud",
    [OTHER_CLIENT_ID, [OTHER_CLIENT_ID], [], None, 7, [7]],
    ids=["other", "list_of_other", "empty_list", "missing", "number", "list_of_number"],
)
def test_given_an_id_token_for_another_audience_when_configured_for_id_then_wrong_client(
    id_verifier: CognitoTokenVerifier, key: TestKeyPair, aud: object
) -> None:
    claims = cognito_claims(token_use="id", now=NOW)
    claims["aud"] = aud

    assert reason_of(id_verifier, key.sign(claims)) == "wrong_client"


def test_given_an_access_token_without_token_use_when_verified_then_wrong_token_use(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    token = mint_access_token(key, now=NOW, drop=("token_use",))

    assert reason_of(verifier, token) == "wrong_token_use"


@pytest.mark.parametrize("sub", [None, "", 42, ["a"]], ids=["missing", "empty", "number", "list"])
def test_given_no_usable_sub_when_verified_then_missing_claim(
    verifier: CognitoTokenVerifier, key: TestKeyPair, sub: object
) -> None:
    claims = cognito_claims(now=NOW, drop=("sub",))
    if sub is not None:
        claims["sub"] = sub

    assert reason_of(verifier, key.sign(claims)) == "missing_claim"


@pytest.mark.parametrize("segments", [2, 4, 5])
def test_given_a_token_of_other_than_three_segments_when_verified_then_malformed_before_jose(
    verifier: CognitoTokenVerifier,
    key: TestKeyPair,
    segments: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def never_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("jose must not see a token of the wrong shape")

    monkeypatch.setattr(token_verifier_module, "_signature_matches", never_called)
    head, body, signature = mint_access_token(key, now=NOW).split(".")
    token = ".".join([head, body, signature, signature, signature][:segments])

    assert reason_of(verifier, token) == "malformed"


def test_given_a_16_kb_token_when_verified_then_too_large_before_any_decoding(
    fetcher: CountingJwksFetcher, key: TestKeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never_called(segment: str) -> None:
        raise AssertionError("a too-large token must not be decoded")

    monkeypatch.setattr(token_verifier_module, "_b64url_decode", never_called)
    verifier = make_verifier(fetcher)
    head, _, signature = mint_access_token(key, now=NOW).split(".")
    token = f"{head}.{'A' * 16 * 1024}.{signature}"

    assert reason_of(verifier, token) == "too_large"
    assert fetcher.calls == 0


def test_given_tokens_either_side_of_8_kb_when_verified_then_only_the_longer_is_too_large(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    def padded(size: int) -> str:
        return mint_access_token(key, now=NOW, padding="p" * size)

    # Binary search for the largest padding whose token still fits in 8192 characters.
    low, high = 0, 8192
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if len(padded(middle)) <= 8192 else (low, middle)
    fitting, too_long = padded(low), padded(high)

    assert 8189 <= len(fitting) <= 8192 < len(too_long)
    assert verifier.verify(fitting).user_id == TEST_SUB
    assert reason_of(verifier, too_long) == "too_large"


@pytest.mark.parametrize("token", [None, b"a.b.c", 42, ""], ids=["none", "bytes", "int", "empty"])
def test_given_no_token_string_when_verified_then_missing(
    verifier: CognitoTokenVerifier, token: object
) -> None:
    assert reason_of(verifier, token) == "missing"  # type: ignore[arg-type]


# -- leeway --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leeway", "exp_offset", "accepted"),
    [(0, 1, True), (0, 0, False), (30, -29, True), (30, -30, False), (30, -31, False)],
)
def test_given_a_leeway_when_exp_is_around_the_boundary_then_exp_plus_leeway_is_exclusive(
    fetcher: CountingJwksFetcher, key: TestKeyPair, leeway: int, exp_offset: int, accepted: bool
) -> None:
    verifier = make_verifier(fetcher, leeway_seconds=leeway)
    token = mint_access_token(key, now=NOW - 600, exp=NOW + exp_offset)

    if accepted:
        assert verifier.verify(token).expires_at == TEST_NOW + timedelta(seconds=exp_offset)
    else:
        assert reason_of(verifier, token) == "expired"


@pytest.mark.parametrize(
    ("claim", "leeway", "offset", "reason"),
    [
        # nbf: nbf - leeway <= now is inclusive
        ("nbf", 0, 0, None),
        ("nbf", 0, 1, "not_yet_valid"),
        ("nbf", 30, 30, None),
        ("nbf", 30, 31, "not_yet_valid"),
        # iat: a small skew (60 s, plus the leeway) is tolerated
        ("iat", 0, 60, None),
        ("iat", 0, 61, "issued_in_future"),
        ("iat", 30, 90, None),
        ("iat", 30, 91, "issued_in_future"),
    ],
)
def test_given_a_leeway_when_nbf_or_iat_is_around_the_boundary_then_it_is_accepted_up_to_it(
    fetcher: CountingJwksFetcher,
    key: TestKeyPair,
    claim: str,
    leeway: int,
    offset: int,
    reason: str | None,
) -> None:
    verifier = make_verifier(fetcher, leeway_seconds=leeway)
    claims: dict[str, Any] = {claim: NOW + offset}
    token = mint_access_token(key, now=NOW, **claims)

    if reason is None:
        assert verifier.verify(token).user_id == TEST_SUB
    else:
        assert reason_of(verifier, token) == reason


def test_given_a_clock_that_moves_when_the_token_expires_then_it_is_rejected_from_then_on(
    fetcher: CountingJwksFetcher, key: TestKeyPair
) -> None:
    clock = FixedClock(TEST_NOW)
    verifier = CognitoTokenVerifier(
        issuer=TEST_ISSUER, app_client_ids=[TEST_CLIENT_ID], jwks_fetcher=fetcher, clock=clock
    )
    token = mint_access_token(key, now=NOW, lifetime_seconds=60)
    verifier.verify(token)

    clock.advance(60)

    assert reason_of(verifier, token) == "expired"


def test_given_fractional_exp_when_verified_then_expires_at_keeps_the_fraction(
    verifier: CognitoTokenVerifier, key: TestKeyPair
) -> None:
    identity = verifier.verify(mint_access_token(key, now=NOW, exp=NOW + 0.5))

    assert identity.expires_at == datetime(2026, 1, 3, 0, 0, 0, 500000, tzinfo=UTC)


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"issuer": ""},
        {"app_client_ids": []},
        {"app_client_ids": [""]},
        {"token_use": "refresh"},
        {"leeway_seconds": -1},
        {"leeway_seconds": 301},
        {"leeway_seconds": 1.5},
        {"refetch_cooldown_seconds": -1},
    ],
)
def test_given_an_invalid_configuration_when_built_then_value_error(
    fetcher: CountingJwksFetcher, changes: dict[str, object]
) -> None:
    arguments: dict[str, object] = {
        "issuer": TEST_ISSUER,
        "app_client_ids": [TEST_CLIENT_ID],
        "jwks_fetcher": fetcher,
        "clock": FixedClock(),
        **changes,
    }
    with pytest.raises(ValueError):
        CognitoTokenVerifier(**arguments)  # type: ignore[arg-type]


def test_given_app_client_ids_as_a_single_string_when_built_then_type_error(
    fetcher: CountingJwksFetcher,
) -> None:
    # "abc" is a Collection[str] of "a", "b", "c": a classic configuration slip.
    with pytest.raises(TypeError):
        CognitoTokenVerifier(
            issuer=TEST_ISSUER,
            app_client_ids=TEST_CLIENT_ID,
            jwks_fetcher=fetcher,
            clock=FixedClock(),
        )


# -- property: nothing but InvalidTokenError escapes for hostile input -----------------------

_B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.text(max_size=300))
def test_given_arbitrary_text_when_verified_then_only_invalid_token_error_escapes(
    verifier: CognitoTokenVerifier, token: str
) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)

    assert caught.value.reason in INVALID_TOKEN_REASONS


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["alg", "kid", "typ", "crit", "jku", "x5u", "zip", "enc"]),
            st.one_of(st.text(max_size=20), st.integers(), st.none(), st.booleans()),
        ).map(lambda h: json.dumps({"alg": "RS256", "kid": "kid-1", **h}).encode()),
    ),
    payload=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["exp", "nbf", "iat", "iss", "sub", "aud", "client_id", "token_use"]),
            st.one_of(
                st.text(max_size=20),
                st.integers(),
                st.floats(allow_nan=False, allow_infinity=False),
                st.none(),
                st.lists(st.text(max_size=5), max_size=3),
            ),
        ).map(lambda c: json.dumps(c).encode()),
    ),
    signature=st.text(alphabet=_B64URL, max_size=400),
)
def test_given_arbitrary_segments_when_verified_then_only_invalid_token_error_escapes(
    verifier: CognitoTokenVerifier, header: bytes, payload: bytes, signature: str
) -> None:
    token = f"{b64url(header) or 'e30'}.{b64url(payload) or 'e30'}.{signature}"

    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)

    assert caught.value.reason in INVALID_TOKEN_REASONS


_CLAIM_VALUES = st.one_of(
    st.text(max_size=20),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.none(),
    st.booleans(),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.sampled_from([TEST_ISSUER, TEST_CLIENT_ID, "access", "id", NOW + 60, NOW - 60]),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.dictionaries(
        st.sampled_from(["exp", "nbf", "iat", "iss", "sub", "aud", "client_id", "token_use"]),
        _CLAIM_VALUES,
    )
)
def test_given_correctly_signed_arbitrary_claims_when_verified_then_identity_or_invalid_token(
    verifier: CognitoTokenVerifier, key: TestKeyPair, changes: dict[str, object]
) -> None:
    claims: dict[str, object] = {**cognito_claims(now=NOW), **changes}

    try:
        identity = verifier.verify(key.sign(claims))
    except InvalidTokenError as error:
        assert error.reason in INVALID_TOKEN_REASONS
    else:
        # Accepted only when every rule holds.
        assert claims["iss"] == TEST_ISSUER and claims["token_use"] == "access"
        assert claims["client_id"] == TEST_CLIENT_ID and identity.user_id == claims["sub"]
        exp = claims["exp"]
        assert isinstance(exp, int | float) and not isinstance(exp, bool) and exp > NOW
