"""The development Cognito stand-in: key storage, JWKS, and tokens the real verifier accepts."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from adapters.cognito import CognitoTokenVerifier, StaticJwksFetcher, cognito_issuer
from adapters.system_clock import SystemClock
from domain.errors import InvalidTokenError
from entrypoints.local_gateway.dev_cognito import (
    DEV_APP_CLIENT_ID,
    DEV_REGION,
    DEV_USER_POOL_ID,
    KEY_FILE_NAME,
    DevCognito,
    default_state_dir,
    load_dev_cognito,
    load_or_create_key,
)


def decode_segment(segment: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return document


def verifier_for(dev: DevCognito) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(
        issuer=cognito_issuer(DEV_REGION, DEV_USER_POOL_ID),
        app_client_ids=[DEV_APP_CLIENT_ID],
        jwks_fetcher=StaticJwksFetcher(dev.key.jwks()),
        clock=SystemClock(),
    )


def test_the_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = load_or_create_key(state)
    second = load_or_create_key(state)
    assert first.kid == second.kid
    assert stat.S_IMODE((state / KEY_FILE_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert [p.name for p in state.iterdir()] == [KEY_FILE_NAME]  # no temporary file left


def test_a_key_file_that_is_not_rsa_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / KEY_FILE_NAME).write_bytes(pem)
    with pytest.raises(ValueError, match="RSA"):
        load_or_create_key(tmp_path)


def test_tokens_are_cognito_shaped_and_the_real_verifier_accepts_them(tmp_path: Path) -> None:
    dev = load_dev_cognito(tmp_path)
    token = dev.access_token(sub="alice", expires_in_seconds=120)
    header, payload, _ = token.split(".")
    assert decode_segment(header) == {"kid": dev.key.kid, "alg": "RS256"}
    claims = decode_segment(payload)
    assert set(claims) == {
        "sub", "iss", "client_id", "origin_jti", "event_id", "token_use", "scope",
        "auth_time", "exp", "iat", "jti", "username", "version",
    }  # fmt: skip
    assert claims["iss"] == "https://cognito-idp.local.amazonaws.com/local_timelinews"
    assert claims["iss"] == cognito_issuer(DEV_REGION, DEV_USER_POOL_ID)
    assert claims["exp"] - claims["iat"] == 120
    assert claims["token_use"] == "access" and claims["client_id"] == DEV_APP_CLIENT_ID
    assert verifier_for(dev).verify(token).user_id == "alice"


def test_an_expired_stand_in_token_is_rejected_by_the_real_verifier(tmp_path: Path) -> None:
    dev = load_dev_cognito(tmp_path)
    expired = dev.key.sign(dev.access_token_claims(sub="bob", now=1_000_000_000))
    with pytest.raises(InvalidTokenError) as rejected:
        verifier_for(dev).verify(expired)
    assert rejected.value.reason == "expired"


@pytest.mark.parametrize(("sub", "expires_in"), [("", 60), ("x", 0), ("x", 86_401)])
def test_token_arguments_are_validated(tmp_path: Path, sub: str, expires_in: int) -> None:
    with pytest.raises(ValueError):
        load_dev_cognito(tmp_path).access_token(sub=sub, expires_in_seconds=expires_in)


def test_the_jwks_is_published_where_cognito_publishes_it(tmp_path: Path) -> None:
    dev = load_dev_cognito(tmp_path)
    assert dev.jwks_path == "/local_timelinews/.well-known/jwks.json"
    (key,) = dev.key.jwks()["keys"]
    assert set(key) == {"alg", "e", "kid", "kty", "n", "use"}
    assert (
        dev.environment("http://127.0.0.1:1/jwks")["COGNITO_JWKS_URL"] == "http://127.0.0.1:1/jwks"
    )


def test_the_state_folder_follows_the_environment(tmp_path: Path) -> None:
    assert default_state_dir({"TIMELINE_WS_STATE_DIR": str(tmp_path)}) == tmp_path
    assert default_state_dir({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "timeline-ws"
    assert default_state_dir({"HOME": str(tmp_path)}).name == "timeline-ws"
