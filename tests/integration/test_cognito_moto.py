"""CognitoTokenVerifier accepts real Cognito-shaped tokens: issued by moto's cognito-idp in
server mode, keys fetched over HTTP from moto's ``/{pool_id}/.well-known/jwks.json``.

moto signs with one RSA key (kid ``dummy``) and sets ``iss`` to the AWS-style URL
``https://cognito-idp.{region}.amazonaws.com/{pool_id}`` while serving the JWKS from its own
endpoint, which is exactly the ``COGNITO_JWKS_URL`` override the container supports.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import boto3
import pytest

from adapters.cognito import CognitoTokenVerifier, HttpJwksFetcher, cognito_issuer
from adapters.system_clock import SystemClock
from domain.errors import InvalidTokenError

REGION = "us-east-1"
USERNAME = "alice"
PASSWORD = "Corr3ct-Horse-Battery!"  # a throwaway moto user


@attrs.frozen
class MotoPool:
    endpoint: str
    pool_id: str
    client_id: str
    other_client_id: str
    sub: str
    access_token: str
    id_token: str

    @property
    def issuer(self) -> str:
        return cognito_issuer(REGION, self.pool_id)

    @property
    def jwks_url(self) -> str:
        return f"{self.endpoint}/{self.pool_id}/.well-known/jwks.json"


@pytest.fixture(scope="module")
def moto_pool(moto_endpoint: str) -> Iterator[MotoPool]:
    """A user pool with two app clients and one confirmed user, signed in with USER_PASSWORD_AUTH."""
    cognito = boto3.client("cognito-idp", endpoint_url=moto_endpoint, region_name=REGION)
    pool_id = cognito.create_user_pool(PoolName="timeline-ws-it")["UserPool"]["Id"]
    flows = ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="timeline-web", ExplicitAuthFlows=flows
    )["UserPoolClient"]["ClientId"]
    other_client_id = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="other-app", ExplicitAuthFlows=flows
    )["UserPoolClient"]["ClientId"]
    cognito.admin_create_user(UserPoolId=pool_id, Username=USERNAME, MessageAction="SUPPRESS")
    cognito.admin_set_user_password(
        UserPoolId=pool_id, Username=USERNAME, Password=PASSWORD, Permanent=True
    )
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=USERNAME)
    sub = next(a["Value"] for a in user["UserAttributes"] if a["Name"] == "sub")
    result = cognito.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": USERNAME, "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    try:
        yield MotoPool(
            endpoint=moto_endpoint,
            pool_id=pool_id,
            client_id=client_id,
            other_client_id=other_client_id,
            sub=sub,
            access_token=result["AccessToken"],
            id_token=result["IdToken"],
        )
    finally:
        cognito.delete_user_pool(UserPoolId=pool_id)


def make_verifier(pool: MotoPool, **changes: Any) -> CognitoTokenVerifier:
    arguments: dict[str, Any] = {
        "issuer": pool.issuer,
        "app_client_ids": [pool.client_id],
        "jwks_fetcher": HttpJwksFetcher(pool.jwks_url, timeout_seconds=2.0),
        "clock": SystemClock(),
        **changes,
    }
    return CognitoTokenVerifier(**arguments)


def test_given_a_moto_access_token_when_verified_against_motos_jwks_then_the_user_is_identified(
    moto_pool: MotoPool,
) -> None:
    identity = make_verifier(moto_pool).verify(moto_pool.access_token)

    assert identity.user_id == moto_pool.sub
    assert identity.client_id == moto_pool.client_id
    assert identity.token_use == "access"


def test_given_a_moto_id_token_when_configured_for_id_tokens_then_the_user_is_identified(
    moto_pool: MotoPool,
) -> None:
    identity = make_verifier(moto_pool, token_use="id").verify(moto_pool.id_token)

    assert (identity.user_id, identity.client_id, identity.token_use) == (
        moto_pool.sub,
        moto_pool.client_id,
        "id",
    )


def test_given_a_moto_id_token_when_access_tokens_are_required_then_wrong_token_use(
    moto_pool: MotoPool,
) -> None:
    with pytest.raises(InvalidTokenError) as caught:
        make_verifier(moto_pool).verify(moto_pool.id_token)

    assert caught.value.reason == "wrong_token_use"


def test_given_a_moto_token_when_only_another_app_client_is_allowed_then_wrong_client(
    moto_pool: MotoPool,
) -> None:
    verifier = make_verifier(moto_pool, app_client_ids=[moto_pool.other_client_id])

    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(moto_pool.access_token)

    assert caught.value.reason == "wrong_client"


def test_given_a_moto_token_when_the_verifier_expects_another_region_then_wrong_issuer(
    moto_pool: MotoPool,
) -> None:
    other_region = moto_pool.issuer.replace(f"cognito-idp.{REGION}.", "cognito-idp.eu-west-1.")
    verifier = make_verifier(moto_pool, issuer=other_region)

    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(moto_pool.access_token)

    assert caught.value.reason == "wrong_issuer"


def test_given_a_moto_token_with_a_flipped_signature_byte_when_verified_then_bad_signature(
    moto_pool: MotoPool,
) -> None:
    head, body, signature = moto_pool.access_token.split(".")
    flipped = ("B" if signature[10] == "A" else "A").join([signature[:10], signature[11:]])

    with pytest.raises(InvalidTokenError) as caught:
        make_verifier(moto_pool).verify(f"{head}.{body}.{flipped}")

    assert caught.value.reason == "bad_signature"
