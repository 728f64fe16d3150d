"""Mint Cognito-shaped test JWTs and JWKS documents with real RSA keys.

Signing uses ``cryptography`` directly, not python-jose: the library under test never
produces the tokens it verifies, and forged tokens (``alg: none``, HS256 with the public
key, duplicate header members, ``NaN`` claims) can be built byte for byte.

Typical use::

    key = TestKeyPair.generate("kid-1")
    fetcher = StaticJwksFetcher(jwks_document(key))
    token = mint_access_token(key, now=TEST_NOW)           # valid for TEST_ISSUER/TEST_CLIENT_ID
    forged = key.sign(cognito_claims(now=TEST_NOW), headers={"alg": "RS512"})
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

TEST_REGION: Final = "us-east-1"
TEST_USER_POOL_ID: Final = "us-east-1_TimelineWs"
TEST_ISSUER: Final = f"https://cognito-idp.{TEST_REGION}.amazonaws.com/{TEST_USER_POOL_ID}"
TEST_CLIENT_ID: Final = "4timelinewsclient000000000a"
OTHER_CLIENT_ID: Final = "4otherappclient0000000000b"
TEST_SUB: Final = "8f2b6c1e-1d4a-4a8e-9c2d-0123456789ab"
TEST_NOW: Final = datetime(2026, 1, 3, tzinfo=UTC)
"""The default moment of ``adapters.in_memory.FixedClock``; mint with ``now=TEST_NOW``."""

_HASHES: Final[dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]]] = {
    "RS256": hashes.SHA256,
    "RS384": hashes.SHA384,
    "RS512": hashes.SHA512,
}
_HMAC_DIGESTS: Final = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _uint_b64url(value: int) -> str:
    return b64url(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def _segment(part: Mapping[str, Any] | bytes | str) -> str:
    if isinstance(part, bytes):
        return b64url(part)
    if isinstance(part, str):
        return b64url(part.encode("utf-8"))
    return b64url(json.dumps(dict(part), separators=(",", ":")).encode("utf-8"))


def signing_input(
    header: Mapping[str, Any] | bytes | str, payload: Mapping[str, Any] | bytes | str
) -> str:
    """``b64url(header) + "." + b64url(payload)``; dicts are JSON-encoded, bytes/str taken raw."""
    return f"{_segment(header)}.{_segment(payload)}"


def assemble(
    header: Mapping[str, Any] | bytes | str,
    payload: Mapping[str, Any] | bytes | str,
    signature: bytes = b"",
) -> str:
    """A compact JWS from its three parts (no signing: the signature is taken as given)."""
    return f"{signing_input(header, payload)}.{b64url(signature)}"


def sign_hmac(
    claims: Mapping[str, Any] | bytes | str,
    secret: bytes,
    *,
    headers: Mapping[str, Any] | None = None,
    algorithm: str = "HS256",
) -> str:
    """A token MACed with ``secret`` (the key-confusion forgery when ``secret`` is a public key)."""
    header = {"alg": algorithm, **(headers or {})}
    message = signing_input(header, claims)
    mac = hmac.new(secret, message.encode("ascii"), _HMAC_DIGESTS[algorithm]).digest()
    return f"{message}.{b64url(mac)}"


class TestKeyPair:
    """An RSA key pair with a ``kid``, signing tokens and publishing its public JWK."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, kid: str, private_key: rsa.RSAPrivateKey) -> None:
        self.kid = kid
        self.private_key = private_key

    @classmethod
    def generate(cls, kid: str = "test-kid-1", *, bits: int = 2048) -> TestKeyPair:
        """A fresh key pair (RSA, e = 65537). About 50 ms for 2048 bits: share it per module."""
        return cls(kid, rsa.generate_private_key(public_exponent=65537, key_size=bits))

    def jwk(self, **overrides: Any) -> dict[str, Any]:
        """The public JWK, shaped like Cognito's (``kty, kid, alg, use, n, e``); ``overrides``
        replace members (a ``None`` value removes one)."""
        numbers = self.private_key.public_key().public_numbers()
        document: dict[str, Any] = {
            "alg": "RS256",
            "e": _uint_b64url(numbers.e),
            "kid": self.kid,
            "kty": "RSA",
            "n": _uint_b64url(numbers.n),
            "use": "sig",
        }
        document.update(overrides)
        return {name: value for name, value in document.items() if value is not None}

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def public_der(self) -> bytes:
        """The public key as DER (SubjectPublicKeyInfo)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(
        self,
        claims: Mapping[str, Any] | bytes | str,
        *,
        headers: Mapping[str, Any] | None = None,
        algorithm: str = "RS256",
    ) -> str:
        """A JWS of ``claims`` signed with this key (PKCS#1 v1.5 with ``algorithm``'s hash).

        The header is ``{"alg": "RS256", "kid": self.kid}`` updated with ``headers`` (a
        ``None`` value removes a member); ``headers["alg"]`` changes the header only, so a
        token can claim one algorithm while being signed with another. ``claims`` may be raw
        bytes/str for payloads that are not JSON objects.
        """
        header: dict[str, Any] = {"alg": algorithm, "kid": self.kid, **(headers or {})}
        header = {name: value for name, value in header.items() if value is not None}
        message = signing_input(header, claims)
        signature = self.private_key.sign(
            message.encode("ascii"), padding.PKCS1v15(), _HASHES[algorithm]()
        )
        return f"{message}.{b64url(signature)}"


@functools.cache
def shared_key_pair(kid: str = "test-kid-1") -> TestKeyPair:
    """One key pair per kid for the whole test process (key generation is the slow part)."""
    return TestKeyPair.generate(kid)


def jwks_document(*keys: TestKeyPair | Mapping[str, Any]) -> dict[str, Any]:
    """``{"keys": [...]}`` of the keys' public JWKs (JWK dicts are taken as given)."""
    return {"keys": [k.jwk() if isinstance(k, TestKeyPair) else dict(k) for k in keys]}


def _epoch(now: datetime | float | None) -> int:
    if now is None:
        return int(time.time())
    if isinstance(now, datetime):
        return int(now.timestamp())
    return int(now)


def cognito_claims(
    *,
    token_use: str = "access",
    issuer: str = TEST_ISSUER,
    client_id: str = TEST_CLIENT_ID,
    sub: str = TEST_SUB,
    now: datetime | float | None = None,
    lifetime_seconds: int = 3600,
    drop: Iterable[str] = (),
    **extra: Any,
) -> dict[str, Any]:
    """Claims shaped like Cognito's access (``client_id``, ``scope``, ``username``) or ID
    (``aud``, ``cognito:username``) tokens, issued at ``now`` (default: the real time).

    ``extra`` adds or replaces claims; ``drop`` removes claims by name.
    """
    issued_at = _epoch(now)
    claims: dict[str, Any] = {
        "sub": sub,
        "iss": issuer,
        "token_use": token_use,
        "auth_time": issued_at,
        "iat": issued_at,
        "exp": issued_at + lifetime_seconds,
        "jti": "0b3c0d4e-5f60-4718-89ab-cdef01234567",
        "origin_jti": "1c4d1e5f-6071-4829-9abc-def012345678",
        "event_id": "2d5e2f60-7182-4930-abcd-ef0123456789",
    }
    if token_use == "id":
        claims.update({"aud": client_id, "cognito:username": "alice", "email_verified": True})
    else:
        claims.update(
            {"client_id": client_id, "scope": "aws.cognito.signin.user.admin", "username": "alice"}
        )
    claims.update(extra)
    for name in drop:
        claims.pop(name, None)
    return claims


def mint_access_token(
    key: TestKeyPair,
    *,
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A valid Cognito-shaped access token signed by ``key``; see :func:`cognito_claims`."""
    return key.sign(cognito_claims(token_use="access", **claims), headers=headers)


def mint_id_token(
    key: TestKeyPair,
    *,
    headers: Mapping[str, Any] | None = None,
    **claims: Any,
) -> str:
    """A valid Cognito-shaped ID token signed by ``key``; see :func:`cognito_claims`."""
    return key.sign(cognito_claims(token_use="id", **claims), headers=headers)


class SteppingMonotonic:
    """A monotonic clock for the refetch cooldown: call it for seconds, ``advance`` to move."""

    def __init__(self, start: float = 1000.0) -> None:
        self.seconds = start

    def __call__(self) -> float:
        return self.seconds

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


class CountingJwksFetcher:
    """A ``JwksFetcher`` fake that serves ``document`` (or raises ``error``) and counts calls.

    Change ``document`` to rotate keys; set ``error`` (e.g. ``VerifierUnavailableError()``)
    to simulate an unreachable endpoint, ``None`` to heal it.
    """

    def __init__(self, document: Mapping[str, Any] | None = None) -> None:
        self.document: dict[str, Any] = dict(document or {"keys": []})
        self.error: Exception | None = None
        self.calls = 0

    def fetch(self) -> dict[str, Any]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return json.loads(json.dumps(self.document))


@dataclasses.dataclass(frozen=True)
class CorpusCase:
    """One adversarial token and the ``InvalidTokenError.reason`` it must produce."""

    name: str
    token: str
    reason: str


def token_corpus(key: TestKeyPair, *, now: datetime | float | None = None) -> list[CorpusCase]:
    """Issue 7's token corpus: forged, expired, misdirected and malformed tokens.

    Every case must be rejected (with ``reason``) by a verifier configured for
    :data:`TEST_ISSUER`, :data:`TEST_CLIENT_ID`, access tokens, leeway 0, a clock at ``now``
    and a JWKS holding only ``key`` (``jwks_document(key)``).
    """
    at = _epoch(now)
    claims = cognito_claims(now=at)
    real_kid = {"kid": key.kid}
    valid = key.sign(claims)
    head, body, signature = valid.split(".")
    attacker = shared_key_pair("attacker-kid")
    public_jwk_json = json.dumps(key.jwk(), separators=(",", ":")).encode()
    duplicate_alg_header = b'{"alg":"none","alg":"RS256","kid":"x"}'

    def signed(**changes: Any) -> str:
        return key.sign(cognito_claims(**{"now": at, **changes}))

    cases = [
        # Algorithm attacks
        CorpusCase(
            "alg_none_empty_signature",
            assemble({"alg": "none", **real_kid}, claims),
            "unsupported_alg",
        ),
        CorpusCase(
            "alg_none_with_rsa_signature",
            key.sign(claims, headers={"alg": "none"}),
            "unsupported_alg",
        ),
        CorpusCase("alg_missing", key.sign(claims, headers={"alg": None}), "unsupported_alg"),
        CorpusCase(
            "hs256_with_public_key_pem",
            sign_hmac(claims, key.public_pem(), headers=real_kid),
            "unsupported_alg",
        ),
        CorpusCase(
            "hs256_with_public_key_der",
            sign_hmac(claims, key.public_der(), headers=real_kid),
            "unsupported_alg",
        ),
        CorpusCase(
            "hs256_with_public_jwk_json",
            sign_hmac(claims, public_jwk_json, headers=real_kid),
            "unsupported_alg",
        ),
        CorpusCase(
            "rs512_with_the_real_key", key.sign(claims, algorithm="RS512"), "unsupported_alg"
        ),
        # Keys
        CorpusCase(
            "rs256_by_another_key_with_real_kid",
            attacker.sign(claims, headers=real_kid),
            "bad_signature",
        ),
        CorpusCase(
            "tampered_payload",
            f"{head}.{_segment({**claims, 'sub': 'admin'})}.{signature}",
            "bad_signature",
        ),
        CorpusCase("truncated_signature", f"{head}.{body}.{signature[:-8]}", "bad_signature"),
        CorpusCase("unknown_kid", key.sign(claims, headers={"kid": "no-such-kid"}), "unknown_kid"),
        CorpusCase("kid_missing", key.sign(claims, headers={"kid": None}), "malformed"),
        CorpusCase(
            "kid_path_traversal", key.sign(claims, headers={"kid": "../../etc/passwd"}), "malformed"
        ),
        CorpusCase(
            "kid_url",
            key.sign(claims, headers={"kid": "https://evil.example/jwks.json"}),
            "malformed",
        ),
        CorpusCase("kid_query_string", key.sign(claims, headers={"kid": "k?x=1"}), "malformed"),
        CorpusCase(
            "kid_percent_encoded", key.sign(claims, headers={"kid": "%2e%2e%2fjwks"}), "malformed"
        ),
        CorpusCase("kid_backslash", key.sign(claims, headers={"kid": "..\\..\\x"}), "malformed"),
        CorpusCase("kid_too_long", key.sign(claims, headers={"kid": "k" * 129}), "malformed"),
        CorpusCase("kid_not_a_string", key.sign(claims, headers={"kid": 7}), "malformed"),
        CorpusCase(
            "crit_header", key.sign(claims, headers={"crit": ["b64"], "b64": False}), "malformed"
        ),
        # Time claims
        CorpusCase("expired", signed(now=at - 3601), "expired"),
        CorpusCase("exp_missing", signed(drop=("exp",)), "missing_claim"),
        CorpusCase("exp_a_string", signed(exp=str(at + 3600)), "malformed"),
        CorpusCase("exp_a_boolean", signed(exp=True), "malformed"),
        CorpusCase("nbf_a_string", signed(nbf=str(at)), "malformed"),
        CorpusCase("iat_a_string", signed(iat=str(at)), "malformed"),
        CorpusCase("exp_nan", key.sign(json.dumps({**claims, "exp": float("nan")})), "malformed"),
        CorpusCase(
            "exp_infinity", key.sign(json.dumps({**claims, "exp": float("inf")})), "malformed"
        ),
        CorpusCase("exp_beyond_year_9999", signed(exp=10**15), "malformed"),
        CorpusCase("nbf_in_the_future", signed(nbf=at + 600), "not_yet_valid"),
        CorpusCase(
            "iat_absurdly_in_the_future",
            signed(iat=at + 10 * 365 * 86400, exp=at + 11 * 365 * 86400),
            "issued_in_future",
        ),
        # Audience and issuer
        CorpusCase(
            "issuer_of_another_pool",
            signed(
                issuer=f"https://cognito-idp.{TEST_REGION}.amazonaws.com/{TEST_REGION}_OtherPool"
            ),
            "wrong_issuer",
        ),
        CorpusCase(
            "issuer_of_another_region",
            signed(issuer=f"https://cognito-idp.eu-west-1.amazonaws.com/{TEST_USER_POOL_ID}"),
            "wrong_issuer",
        ),
        CorpusCase("issuer_with_trailing_slash", signed(issuer=TEST_ISSUER + "/"), "wrong_issuer"),
        CorpusCase("issuer_missing", signed(drop=("iss",)), "wrong_issuer"),
        CorpusCase(
            "client_id_of_another_app_client", signed(client_id=OTHER_CLIENT_ID), "wrong_client"
        ),
        CorpusCase("client_id_missing", signed(drop=("client_id",)), "wrong_client"),
        CorpusCase(
            "id_token_where_access_required",
            key.sign(cognito_claims(token_use="id", now=at)),
            "wrong_token_use",
        ),
        CorpusCase(
            "access_token_without_token_use", signed(drop=("token_use",)), "wrong_token_use"
        ),
        CorpusCase("no_sub", signed(drop=("sub",)), "missing_claim"),
        CorpusCase("empty_sub", signed(sub=""), "missing_claim"),
        CorpusCase("payload_not_an_object", key.sign(b"[1,2,3]"), "malformed"),
        CorpusCase("payload_not_json", key.sign(b"not json"), "malformed"),
        CorpusCase(
            "payload_duplicate_sub",
            key.sign(json.dumps(claims)[:-1] + ',"sub":"admin"}'),
            "malformed",
        ),
        # Malformed structure
        CorpusCase("empty", "", "missing"),
        CorpusCase("two_segments", f"{head}.{body}", "malformed"),
        CorpusCase("four_segments", f"{valid}.{signature}", "malformed"),
        CorpusCase("five_segments_jwe", _jwe_shaped(), "malformed"),
        CorpusCase("rs256_with_empty_signature", f"{head}.{body}.", "malformed"),
        CorpusCase("empty_header_segment", f".{body}.{signature}", "malformed"),
        CorpusCase("bad_base64_character", f"{head}.{body}!.{signature}", "malformed"),
        CorpusCase(
            "bad_base64_length",  # a length of 4n+1 characters decodes to no byte string
            f"{head}{'x' * ((1 - len(head)) % 4)}.{body}.{signature}",
            "malformed",
        ),
        CorpusCase("base64_padding", f"{head}==.{body}.{signature}", "malformed"),
        CorpusCase("standard_base64_alphabet", f"{head}.{body}.{signature}+/", "malformed"),
        CorpusCase("header_not_json", f"{b64url(b'not json')}.{body}.{signature}", "malformed"),
        CorpusCase("header_a_json_array", f"{b64url(b'[1]')}.{body}.{signature}", "malformed"),
        CorpusCase(
            "header_duplicate_alg",
            f"{b64url(duplicate_alg_header)}.{body}.{signature}",
            "malformed",
        ),
        CorpusCase("non_ascii_bytes", f"{head}.{body}é.{signature}", "malformed"),
        CorpusCase("leading_whitespace", f" {valid}", "malformed"),
        CorpusCase("trailing_whitespace", f"{valid} ", "malformed"),
        CorpusCase("trailing_newline", f"{valid}\n", "malformed"),
        CorpusCase("inner_whitespace", f"{head}. {body}.{signature}", "malformed"),
        CorpusCase("token_of_16_kb", f"{head}.{'A' * (16 * 1024)}.{signature}", "too_large"),
    ]
    return cases


def _jwe_shaped() -> str:
    """Five segments like a compact JWE with ``zip: DEF`` (the decompression-bomb shape)."""
    header = b64url(b'{"alg":"RSA-OAEP","enc":"A256GCM","zip":"DEF"}')
    return ".".join(
        [header, b64url(b"k" * 256), b64url(b"iv" * 6), b64url(b"c" * 64), b64url(b"t" * 16)]
    )
