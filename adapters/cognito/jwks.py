"""Where the Cognito verifier gets its JSON Web Key Set (JWKS): over HTTP or from configuration.

A JWKS document is the JSON object ``{"keys": [<JWK>, ...]}`` that a Cognito user pool
publishes at ``https://cognito-idp.{region}.amazonaws.com/{userPoolId}/.well-known/jwks.json``
(https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-tokens-verifying-a-jwt.html).
Fetchers only deliver the document; choosing, validating and caching keys is the
verifier's job (``adapters/cognito/token_verifier.py``).

:class:`JwksFetcher` is a protocol internal to this adapter, not an application port: no use
case knows that tokens are JWTs.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Final, Protocol

if TYPE_CHECKING:
    import urllib.request

from domain.errors import VerifierUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS: Final = 2.0
"""A JWKS fetch gives up after 2 s: a ``$connect`` Lambda must answer well within API
Gateway's 29 s integration timeout, and one slow fetch holds every waiting verification."""

DEFAULT_MAX_BYTES: Final = 64 * 1024
"""A Cognito JWKS (two RSA-2048 keys) is under 1 KB; anything above 64 KB is not a JWKS."""

_READ_CHUNK_BYTES: Final = 16 * 1024

# AWS region names (us-east-1, eu-west-1, us-gov-west-1) and the local gateway's "local":
# lowercase letters, digits and hyphens only, so the name can never alter the issuer URL.
_REGION = re.compile(r"[a-z][a-z0-9-]{0,30}[a-z0-9]")
_USER_POOL_ID = re.compile(r"[\w-]+_[0-9A-Za-z]+")  # the pattern of CreateUserPool's Id


class JwksFetcher(Protocol):
    """Delivers the current JWKS document; raises ``VerifierUnavailableError`` on any failure."""

    def fetch(self) -> dict[str, Any]:
        """Return a JWKS document, a dict ``{"keys": [<JWK dict>, ...]}``.

        Raises:
            VerifierUnavailableError: the document could not be obtained or is not a JWKS.
        """
        ...


def cognito_issuer(region: str, user_pool_id: str) -> str:
    """The ``iss`` of a user pool's tokens: ``https://cognito-idp.{region}.amazonaws.com/{userPoolId}``.

    Follows https://docs.aws.amazon.com/cognito/latest/developerguide/amazon-cognito-user-pools-using-the-access-token.html.

    Raises:
        ValueError: ``region`` is not an AWS region name (``us-east-1``) or ``user_pool_id``
            is not a user pool id (``us-east-1_AbC123xyz``).
    """
    if not isinstance(region, str) or not _REGION.fullmatch(region):
        raise ValueError(f"not an AWS region name: {region!r}")
    if not isinstance(user_pool_id, str) or not _USER_POOL_ID.fullmatch(user_pool_id):
        raise ValueError(f"not a Cognito user pool id: {user_pool_id!r}")
    return f"https://cognito-idp.{region}.amazonaws.com/{user_pool_id}"


def cognito_jwks_url(issuer: str) -> str:
    """The JWKS location of an issuer: ``issuer + "/.well-known/jwks.json"``."""
    return f"{issuer}/.well-known/jwks.json"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_jwks(body: bytes | str) -> dict[str, Any]:
    """Parse a JWKS document from JSON text (strict JSON: no ``NaN``/``Infinity``).

    Returns the dict ``{"keys": [...]}``; individual keys are not validated here.

    Raises:
        ValueError: the text is not JSON, not an object, or has no ``keys`` list.
    """
    document = json.loads(body, parse_constant=_reject_constant)
    return _require_jwks_shape(document)


def _require_jwks_shape(document: object) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise ValueError("a JWKS must be a JSON object")
    keys = document.get("keys")
    if not isinstance(keys, list):
        raise ValueError('a JWKS must have a "keys" list')
    return document


class StaticJwksFetcher(JwksFetcher):
    """A JWKS preloaded from configuration (``COGNITO_JWKS``), for Lambdas cut off from Cognito.

    Raises:
        ValueError: at construction, when ``jwks`` is not ``{"keys": [...]}``.
    """

    def __init__(self, jwks: dict[str, Any]) -> None:
        self._jwks = copy.deepcopy(_require_jwks_shape(jwks))

    def fetch(self) -> dict[str, Any]:
        """Return a copy of the configured document; never fails."""
        return copy.deepcopy(self._jwks)


def _opener_refusing_redirects() -> urllib.request.OpenerDirector:
    """A urllib opener that treats any redirect as a failure (a JWKS is served in place).

    ``urllib.request`` and ``http.client`` are imported here, not at module level: with a
    preloaded JWKS (``COGNITO_JWKS``) a cold ``$connect`` never builds an HTTP fetcher and
    saves their ~10 ms of imports (tests/benchmarks/RESULTS.md, "Cold start").
    """
    import urllib.request

    class RefuseRedirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return urllib.request.build_opener(RefuseRedirects)


class HttpJwksFetcher(JwksFetcher):
    """Fetches the JWKS with one bounded HTTP GET (stdlib ``urllib``), no retries, no redirects.

    Args:
        url: an ``http://`` or ``https://`` URL (e.g. :func:`cognito_jwks_url`); HTTPS
            certificates are verified.
        timeout_seconds: budget of the fetch in seconds: each socket operation times out
            after it and the body must be complete within it (a server dripping bytes is cut
            off). DNS resolution is outside it (a stdlib limitation).
        max_bytes: the largest body accepted; a longer body is a failure, and is never
            read into memory beyond ``max_bytes + 1`` bytes.

    Raises:
        ValueError: at construction, on another scheme, a URL without a host, or a
            non-positive timeout or size.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the JWKS URL must be http(s)://host/..., got {url!r}")
        if not timeout_seconds > 0:
            raise ValueError("timeout_seconds must be positive")
        if not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError("max_bytes must be a positive int")
        self.url = url
        self._timeout_seconds = float(timeout_seconds)
        self._max_bytes = max_bytes
        self._opener = _opener_refusing_redirects()

    def fetch(self) -> dict[str, Any]:
        """GET the URL and return the JWKS document.

        Raises:
            VerifierUnavailableError: connection error, timeout, HTTP status other than 200,
                a body over ``max_bytes``, or a body that is not a JWKS document.
        """
        import http.client  # already imported by the opener: a dictionary lookup

        try:
            body = self._get()
            return parse_jwks(body)
        except VerifierUnavailableError:
            raise
        except (OSError, http.client.HTTPException, ValueError) as error:
            # URLError, HTTPError and socket timeouts are OSErrors; JSON errors are ValueErrors.
            logger.warning(
                "JWKS fetch failed", extra={"url": self.url, "error": type(error).__name__}
            )
            raise VerifierUnavailableError(
                f"JWKS fetch from {self.url} failed ({type(error).__name__})"
            ) from error

    def _get(self) -> bytes:
        import urllib.request  # already imported by the opener: a dictionary lookup

        deadline = time.monotonic() + self._timeout_seconds
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked in __init__
            self.url,
            headers={"Accept": "application/json", "User-Agent": "timeline-ws-jwks"},
        )
        with self._opener.open(request, timeout=self._timeout_seconds) as response:
            if response.status != 200:
                raise self._unavailable(f"HTTP {response.status}")
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > self._max_bytes:
                raise self._unavailable("body larger than max_bytes")
            chunks: list[bytes] = []
            received = 0
            while True:
                # read1: at most one socket read, so a server dripping bytes cannot hold us
                # past the deadline by keeping each read under the socket timeout.
                chunk = response.read1(_READ_CHUNK_BYTES)
                if not chunk:
                    break
                received += len(chunk)
                if received > self._max_bytes:
                    raise self._unavailable("body larger than max_bytes")
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise self._unavailable("timed out reading the body")
        return b"".join(chunks)

    def _unavailable(self, why: str) -> VerifierUnavailableError:
        logger.warning("JWKS fetch failed", extra={"url": self.url, "error": why})
        return VerifierUnavailableError(f"JWKS fetch from {self.url} failed ({why})")
