"""Amazon Cognito user pool token verification: RS256 JWTs, python-jose, JWKS by HTTP or config.

``CognitoTokenVerifier`` (and with it python-jose, ~100 ms of imports) loads on first use
(PEP 562), so a process that never verifies a token (``$default``, ``$disconnect``) never
pays for it.
"""

from typing import TYPE_CHECKING, Any

from adapters.cognito.jwks import (
    HttpJwksFetcher,
    JwksFetcher,
    StaticJwksFetcher,
    cognito_issuer,
    cognito_jwks_url,
)

if TYPE_CHECKING:
    from adapters.cognito.token_verifier import CognitoTokenVerifier

__all__ = [
    "CognitoTokenVerifier",
    "HttpJwksFetcher",
    "JwksFetcher",
    "StaticJwksFetcher",
    "cognito_issuer",
    "cognito_jwks_url",
]


def __getattr__(name: str) -> Any:
    if name == "CognitoTokenVerifier":
        from adapters.cognito.token_verifier import CognitoTokenVerifier

        return CognitoTokenVerifier
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
