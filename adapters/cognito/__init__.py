"""Amazon Cognito user pool token verification: RS256 JWTs, python-jose, JWKS by HTTP or config."""

from adapters.cognito.jwks import (
    HttpJwksFetcher,
    JwksFetcher,
    StaticJwksFetcher,
    cognito_issuer,
    cognito_jwks_url,
)
from adapters.cognito.token_verifier import CognitoTokenVerifier

__all__ = [
    "CognitoTokenVerifier",
    "HttpJwksFetcher",
    "JwksFetcher",
    "StaticJwksFetcher",
    "cognito_issuer",
    "cognito_jwks_url",
]
