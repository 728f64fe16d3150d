"""Verifies Amazon Cognito user pool JWTs (RS256 access or ID tokens) with python-jose.

Follows https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html
and RFC 7515/7519. The order of the checks is deliberate: the cheapest, most hostile-input
tolerant checks run first, so a 16 KB token or a JWE never reaches base64, JSON or crypto.

1. Shape (no decoding): a ``str`` of at most 8 KB, ASCII, exactly three dot-separated
   base64url segments (two segments is not a JWS; five is a JWE, which we never decrypt).
2. Header (our own strict JSON): an object without ``crit``; ``alg`` exactly ``RS256``
   (``none``, ``HS256`` key confusion, ``RS512``, … are ``unsupported_alg``); ``kid`` a short
   string of base64 characters. The kid is only ever a dictionary key, never part of a URL.
3. Key: from a per-process cache of keys constructed once from the JWKS. An unknown kid
   triggers at most one JWKS fetch per cooldown, failed fetches included.
4. Signature: the constructed python-jose RSA key's ``verify`` over the signing input (what
   ``jose.jws.verify`` calls after parsing the token a second time; the header is already
   parsed and its ``alg`` checked), then the payload decoded as our own strict JSON.
5. Claims (our own code, exact reason codes): ``exp``, ``nbf``, ``iat``, ``iss``,
   ``token_use``, ``client_id``/``aud``, ``sub``.

Why ``ecdsa`` is never imported (CVE-2024-23342, Minerva timing attack on ECDSA signing, no
fixed release): python-jose lists ``ecdsa`` as a hard dependency, but only
``jose.backends.ecdsa_backend`` imports it, and ``jose.backends`` falls back to that module
only when the cryptography backend cannot be imported. We import
``jose.backends.cryptography_backend`` explicitly (an ImportError here fails loudly at cold
start instead of silently degrading to the pure-Python ``rsa``/``ecdsa`` backends), construct
only ``CryptographyRSAKey`` objects, and verify with those keys' own ``verify``, so python-jose
never constructs a key itself. ``jose.jwt``/``jose.jwe`` are not imported at all. The CVE concerns
signing with ECDSA keys, which we never do; still, the library never being loaded is the
proof we can test: ``tests/unit/test_cognito_no_ecdsa.py`` verifies the whole token corpus
in a fresh interpreter and asserts ``"ecdsa" not in sys.modules``.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from jose import jwk
from jose.backends.cryptography_backend import CryptographyRSAKey
from jose.exceptions import JOSEError

from adapters.cognito.jwks import JwksFetcher
from application.ports import Clock, TokenVerifier
from domain.connection import VerifiedIdentity
from domain.errors import InvalidTokenError, VerifierUnavailableError

logger = logging.getLogger(__name__)

MAX_TOKEN_LENGTH: Final = 8 * 1024
"""Longest token accepted, in characters (= bytes, tokens are ASCII). Cognito access tokens
are about 1 KB; ID tokens with many custom attributes stay well below 8 KB."""

MAX_KID_LENGTH: Final = 128

MAX_IAT_SKEW_SECONDS: Final = 60
"""``iat`` may lie this far (plus the leeway) in the future before ``issued_in_future``."""

MAX_LEEWAY_SECONDS: Final = 300

MIN_RSA_BITS: Final = 2048
MAX_RSA_BITS: Final = 8192

TOKEN_USES: Final = frozenset({"access", "id"})

ALGORITHM: Final = "RS256"

_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Cognito kids are standard base64 (e.g. "vyVQH7UMjwYboVvyFf+zd4KHZfgc+RtmU/A2vHhgITI="), so
# "/", "+" and "=" must pass; base64url's "-" and "_" too. Dots, "?", "%", ":", "\" and
# whitespace cannot: no "..", no scheme, no query, no percent-encoding.
_SAFE_KID = re.compile(rf"[A-Za-z0-9+/=_-]{{1,{MAX_KID_LENGTH}}}")


def _invalid(reason: str, message: str) -> NoReturn:
    # Messages are fixed strings: nothing from the token (not even its alg or kid) goes in.
    raise InvalidTokenError(reason, f"invalid token ({reason}): {message}")


def _reject_json_constant(name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _reject_duplicate_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # {"alg":"none","alg":"RS256"}: parsers disagree on which one wins, so neither does.
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate member")
    return result


_STRICT_JSON: Final = json.JSONDecoder(
    object_pairs_hook=_reject_duplicate_members, parse_constant=_reject_json_constant
)
"""Built once: ``json.loads`` with these options builds a new decoder on every call."""


def _strict_json_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object in ``data``, or ``None`` when it is anything else."""
    try:
        value = _STRICT_JSON.decode(data.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    return value if isinstance(value, dict) else None


def _b64url_decode(segment: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        return None


def _signature_matches(key: CryptographyRSAKey, signing_input: str, signature: bytes) -> bool:
    """python-jose's RS256 check of ``signature`` over ``signing_input`` (RFC 7515 section 5.2,
    step 8), what ``jws.verify`` runs once it has parsed the token again: the header's
    ``alg`` is already checked, so the key verifies directly."""
    try:
        return bool(key.verify(signing_input.encode("ascii"), signature))
    except JOSEError:
        return False


def _is_number(value: object) -> bool:
    # bool is an int subclass, and JSON true is not a timestamp.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class CognitoTokenVerifier(TokenVerifier):
    """A :class:`~application.ports.TokenVerifier` for one Cognito user pool's RS256 JWTs.

    Args:
        issuer: the exact expected ``iss`` (see ``cognito_issuer``).
        app_client_ids: accepted app client ids (``client_id`` of access tokens, ``aud`` of
            ID tokens); a non-empty collection of strings, not a single string.
        jwks_fetcher: where the signing keys come from (HTTP or configuration).
        clock: wall clock for ``exp``/``nbf``/``iat`` (aware UTC).
        token_use: ``"access"`` (default) or ``"id"``: the only kind accepted.
        leeway_seconds: clock-skew allowance for ``exp``, ``nbf`` and ``iat``, 0 to 300 s.
        refetch_cooldown_seconds: minimum time between two JWKS fetch attempts after the
            first, successful or not (seconds of ``monotonic``).
        monotonic: monotonic seconds, injectable so tests can step the cooldown.

    ``verify`` is thread-safe: the key cache is read without a lock (a dict replaced whole),
    and fetches happen under one lock, so concurrent unknown kids cause a single fetch.

    Raises:
        ValueError / TypeError: at construction, on an invalid configuration.
    """

    def __init__(
        self,
        *,
        issuer: str,
        app_client_ids: Collection[str],
        jwks_fetcher: JwksFetcher,
        clock: Clock,
        token_use: str = "access",  # noqa: S107 - a claim value, not a password
        leeway_seconds: int = 0,
        refetch_cooldown_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(issuer, str) or not issuer:
            raise ValueError("issuer must be a non-empty string")
        if isinstance(app_client_ids, str | bytes):
            raise TypeError("app_client_ids must be a collection of ids, not a single string")
        client_ids = frozenset(app_client_ids)
        if not client_ids or not all(isinstance(c, str) and c for c in client_ids):
            raise ValueError("app_client_ids must hold at least one non-empty string")
        if token_use not in TOKEN_USES:
            raise ValueError(f"token_use must be one of {sorted(TOKEN_USES)}, got {token_use!r}")
        if (
            not isinstance(leeway_seconds, int)
            or isinstance(leeway_seconds, bool)
            or not 0 <= leeway_seconds <= MAX_LEEWAY_SECONDS
        ):
            raise ValueError(f"leeway_seconds must be an int from 0 to {MAX_LEEWAY_SECONDS}")
        if not refetch_cooldown_seconds >= 0:
            raise ValueError("refetch_cooldown_seconds must be >= 0")
        self._issuer = issuer
        self._client_ids = client_ids
        self._fetcher = jwks_fetcher
        self._clock = clock
        self._token_use = token_use
        self._leeway = leeway_seconds
        self._cooldown = float(refetch_cooldown_seconds)
        self._monotonic = monotonic
        self._keys: dict[str, CryptographyRSAKey] = {}
        self._jwks_by_kid: dict[str, dict[str, Any]] = {}
        self._last_fetch_attempt: float | None = None
        self._fetch_lock = threading.Lock()

    def verify(self, token: str) -> VerifiedIdentity:
        """Return the identity a valid token proves (``user_id`` = ``sub``).

        Raises:
            InvalidTokenError: with ``reason`` one of ``missing``, ``too_large``,
                ``malformed``, ``unsupported_alg``, ``unknown_kid``, ``bad_signature``,
                ``expired``, ``not_yet_valid``, ``issued_in_future``, ``wrong_issuer``,
                ``wrong_token_use``, ``wrong_client``, ``missing_claim``.
            VerifierUnavailableError: no usable key is cached and the JWKS cannot be fetched.
        """
        header = self._check_shape_and_header(token)
        key = self._key_for(header["kid"])
        signing_input, _, signature_segment = token.rpartition(".")
        signature = _b64url_decode(signature_segment)
        if signature is None or not _signature_matches(key, signing_input, signature):
            _invalid("bad_signature", "the signature does not match the key")
        payload = _b64url_decode(signing_input.partition(".")[2])
        claims = None if payload is None else _strict_json_object(payload)
        if claims is None:
            _invalid("malformed", "the payload is not a JSON object")
        return self._check_claims(claims)

    # -- 1 and 2: shape and header -------------------------------------------------------

    def _check_shape_and_header(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            _invalid("missing", "no token")
        if len(token) > MAX_TOKEN_LENGTH:
            _invalid("too_large", f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        if not token.isascii():
            _invalid("malformed", "the token is not ASCII")
        if token.count(".") != 2:
            _invalid("malformed", "the token is not three dot-separated segments")
        if not _TOKEN_SHAPE.fullmatch(token):
            _invalid("malformed", "a segment is empty or not base64url")
        header_segment, _, rest = token.partition(".")
        header_bytes = _b64url_decode(header_segment)
        header = None if header_bytes is None else _strict_json_object(header_bytes)
        if header is None:
            _invalid("malformed", "the header is not a base64url JSON object")
        if header.get("alg") != ALGORITHM:
            _invalid("unsupported_alg", f"only {ALGORITHM} is accepted")
        if rest.endswith("."):
            _invalid("malformed", "the signature is empty")
        if "crit" in header:
            _invalid("malformed", "critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not _SAFE_KID.fullmatch(kid):
            _invalid("malformed", "the kid is missing or has unsafe characters")
        return header

    # -- 3: keys --------------------------------------------------------------------------

    def _key_for(self, kid: str) -> CryptographyRSAKey:
        key = self._keys.get(kid)
        if key is not None:
            return key
        with self._fetch_lock:
            key = self._keys.get(kid)  # another thread's fetch may have brought it
            if key is not None:
                return key
            fetch_error = self._refresh_if_allowed()
            key = self._keys.get(kid)
        if key is not None:
            return key
        if not self._keys:
            raise VerifierUnavailableError(
                "no usable signing key is cached and the JWKS could not be obtained"
            ) from fetch_error
        _invalid("unknown_kid", "no key with this kid in the JWKS")

    def _refresh_if_allowed(self) -> VerifierUnavailableError | None:
        """Fetch the JWKS unless the last attempt is within the cooldown. Holds the lock."""
        now = self._monotonic()
        last = self._last_fetch_attempt
        if last is not None and now - last < self._cooldown:
            return None
        self._last_fetch_attempt = now
        try:
            document = self._fetcher.fetch()
        except Exception as error:
            # The contract says VerifierUnavailableError; a fetcher breaking it must still not
            # break verification with the keys we hold.
            logger.warning("JWKS fetch failed; keeping %d cached keys", len(self._keys))
            if isinstance(error, VerifierUnavailableError):
                return error
            return VerifierUnavailableError(f"JWKS fetch failed ({type(error).__name__})")
        keys, jwks_by_kid = self._usable_keys(document)
        if not keys:
            logger.warning("JWKS has no usable RS256 key; keeping %d cached keys", len(self._keys))
            return VerifierUnavailableError("the JWKS holds no usable RS256 signing key")
        self._keys, self._jwks_by_kid = keys, jwks_by_kid
        logger.info("JWKS loaded", extra={"kids": sorted(keys)})
        return None

    def _usable_keys(
        self, document: Mapping[str, Any]
    ) -> tuple[dict[str, CryptographyRSAKey], dict[str, dict[str, Any]]]:
        """The document's usable keys by kid, reusing keys already constructed."""
        entries = document.get("keys") if isinstance(document, Mapping) else None
        if not isinstance(entries, list):
            return {}, {}
        candidates: dict[str, dict[str, Any]] = {}
        duplicated: set[str] = set()
        for entry in entries:
            public = _public_rs256_jwk(entry)
            if public is None:
                continue
            kid = public["kid"]
            if kid in candidates:
                duplicated.add(kid)  # two keys, one kid: we cannot tell which signed a token
            candidates[kid] = public
        keys: dict[str, CryptographyRSAKey] = {}
        for kid, public in candidates.items():
            if kid in duplicated:
                continue
            known = self._keys.get(kid)
            if known is not None and self._jwks_by_kid.get(kid) == public:
                keys[kid] = known  # constructed once per process, not once per fetch
                continue
            constructed = _construct(public)
            if constructed is not None:
                keys[kid] = constructed
        return keys, {kid: candidates[kid] for kid in keys}

    # -- 5: claims ------------------------------------------------------------------------

    def _check_claims(self, claims: dict[str, Any]) -> VerifiedIdentity:
        now = self._clock.now().timestamp()
        leeway = self._leeway

        exp = claims.get("exp")
        if exp is None:
            _invalid("missing_claim", "exp is required")
        if not _is_number(exp):
            _invalid("malformed", "exp is not a number")
        try:
            expires_at = datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            _invalid("malformed", "exp is out of range")
        if now >= exp + leeway:
            _invalid("expired", "the token has expired")

        nbf = claims.get("nbf")
        if nbf is not None:
            if not _is_number(nbf):
                _invalid("malformed", "nbf is not a number")
            if now < nbf - leeway:
                _invalid("not_yet_valid", "the token is not valid yet (nbf)")

        iat = claims.get("iat")
        if iat is not None:
            if not _is_number(iat):
                _invalid("malformed", "iat is not a number")
            if iat > now + leeway + MAX_IAT_SKEW_SECONDS:
                _invalid("issued_in_future", "iat lies in the future")

        if claims.get("iss") != self._issuer:
            _invalid("wrong_issuer", "iss is not the configured user pool")

        if claims.get("token_use") != self._token_use:
            _invalid("wrong_token_use", f"only {self._token_use} tokens are accepted")

        client_id = self._accepted_client(claims)

        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            _invalid("missing_claim", "sub is missing or empty")

        return VerifiedIdentity(
            user_id=sub, client_id=client_id, token_use=self._token_use, expires_at=expires_at
        )

    def _accepted_client(self, claims: Mapping[str, Any]) -> str:
        if self._token_use == "access":  # noqa: S105 - a claim value, not a password
            client_id = claims.get("client_id")
            if isinstance(client_id, str) and client_id in self._client_ids:
                return client_id
            _invalid("wrong_client", "client_id is not a configured app client")
        audience = claims.get("aud")
        # RFC 7519 section 4.1.3: aud is a string or an array of strings.
        audiences = [audience] if isinstance(audience, str) else audience
        if isinstance(audiences, list):
            for candidate in audiences:
                if isinstance(candidate, str) and candidate in self._client_ids:
                    return candidate
        _invalid("wrong_client", "aud holds no configured app client")


def _public_rs256_jwk(entry: object) -> dict[str, Any] | None:
    """The public members of an RSA signing JWK usable with RS256, or ``None`` to skip it."""
    if not isinstance(entry, dict) or entry.get("kty") != "RSA":
        return None
    if entry.get("use", "sig") != "sig" or entry.get("alg", ALGORITHM) != ALGORITHM:
        return None
    kid, n, e = entry.get("kid"), entry.get("n"), entry.get("e")
    if not isinstance(kid, str) or not _SAFE_KID.fullmatch(kid):
        return None
    if not isinstance(n, str) or not isinstance(e, str):
        return None
    # Only the public members: a JWKS leaking "d" must not make us hold a private key.
    return {"kty": "RSA", "kid": kid, "n": n, "e": e}


def _construct(public: dict[str, Any]) -> CryptographyRSAKey | None:
    try:
        key = jwk.construct(public, ALGORITHM)
    except (JOSEError, ValueError, TypeError):
        logger.warning("skipping a JWKS key that does not construct", extra={"kid": public["kid"]})
        return None
    if not isinstance(key, CryptographyRSAKey):  # pragma: no cover - guarded by the import above
        raise RuntimeError("python-jose did not use its cryptography backend")
    bits = key.prepared_key.key_size
    if not MIN_RSA_BITS <= bits <= MAX_RSA_BITS:
        logger.warning("skipping a JWKS key of %d bits", bits, extra={"kid": public["kid"]})
        return None
    return key
