"""The real handlers, end to end in process: moto-issued Cognito tokens, real redis-server,
the real boto3 Management API client against a local endpoint.

Given/When/Then: a user signs in to a (moto) Cognito user pool; the tokens it gets are the
ones the handlers verify, through the JWKS moto serves over HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import boto3
import pytest
import redis

from entrypoints.bootstrap import bootstrap
from entrypoints.settings import Settings
from tests.support.lambda_context import CONTEXT
from tests.support.management_api_stub import ManagementApiStub, running_management_api_stub

EVENTS = Path(__file__).parent.parent / "events"
PASSWORD = "Correct-Horse-Battery-9"


@attrs.frozen
class CognitoPool:
    pool_id: str
    client_id: str
    access_token: str
    id_token: str
    sub: str
    jwks_url: str


@pytest.fixture(scope="module")
def cognito(moto_endpoint: str) -> CognitoPool:
    client = boto3.client("cognito-idp", endpoint_url=moto_endpoint, region_name="us-east-1")
    pool_id = client.create_user_pool(PoolName="timeline")["UserPool"]["Id"]
    client_id = client.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="timeline-web",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]["ClientId"]
    client.admin_create_user(UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS")
    client.admin_set_user_password(
        UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True
    )
    sub = next(
        attribute["Value"]
        for attribute in client.admin_get_user(UserPoolId=pool_id, Username="alice")[
            "UserAttributes"
        ]
        if attribute["Name"] == "sub"
    )
    tokens = client.initiate_auth(
        ClientId=client_id,
        AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "alice", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    return CognitoPool(
        pool_id=pool_id,
        client_id=client_id,
        access_token=tokens["AccessToken"],
        id_token=tokens["IdToken"],
        sub=sub,
        jwks_url=f"{moto_endpoint}/{pool_id}/.well-known/jwks.json",
    )


@pytest.fixture
def management_api() -> Iterator[ManagementApiStub]:
    with running_management_api_stub() as stub:
        yield stub


def configure(
    cognito: CognitoPool, redis_url: str, management: ManagementApiStub, **extra: str
) -> Settings:
    return Settings.from_environ(
        {
            "COGNITO_REGION": "us-east-1",
            "COGNITO_USER_POOL_ID": cognito.pool_id,
            "COGNITO_APP_CLIENT_IDS": cognito.client_id,
            "COGNITO_JWKS_URL": cognito.jwks_url,
            "REDIS_URL": redis_url,
            "MANAGEMENT_API_ENDPOINT": management.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            **extra,
        }
    )


class App:
    """The three handlers as the Lambda handlers module builds them, from ``settings``."""

    def __init__(self, settings: Settings) -> None:
        container = bootstrap(settings)
        self.connect_handler = container.connect_handler()
        self.disconnect_handler = container.disconnect_handler()
        self.default_handler = container.default_handler()


@pytest.fixture
def app(cognito: CognitoPool, redis_url: str, management_api: ManagementApiStub) -> App:
    """The application pointed at the real services."""
    return App(configure(cognito, redis_url, management_api))


@pytest.fixture
def live(app: App, redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's (flushed) real Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def event(name: str, **changes: Any) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    loaded.update(changes)
    return loaded


def connect_event(token: str) -> dict[str, Any]:
    return event(
        "connect",
        queryStringParameters={"token": token},
        multiValueQueryStringParameters={"token": [token]},
    )


CONNECTION_ID = "L0SM9cOFvHcCIhw="
KEY = f"ws:connection:{CONNECTION_ID}"


def test_given_a_moto_access_token_when_connect_then_the_exact_record_is_in_redis(
    live: redis.Redis, cognito: CognitoPool, app: App
) -> None:
    response = app.connect_handler(connect_event(cognito.access_token), CONTEXT)

    assert response["statusCode"] == 200
    record = json.loads(live.get(KEY) or "{}")
    assert list(record) == ["connectionId", "userId", "connectedAt"]
    assert record["connectionId"] == CONNECTION_ID
    assert record["userId"] == cognito.sub
    assert record["connectedAt"].endswith("Z")
    assert 590 < live.ttl(KEY) <= 600


def test_given_a_moto_id_token_where_access_is_required_then_401_and_nothing_stored(
    live: redis.Redis, cognito: CognitoPool, app: App
) -> None:
    assert app.connect_handler(connect_event(cognito.id_token), CONTEXT)["statusCode"] == 401
    assert live.exists(KEY) == 0


def test_given_id_tokens_are_configured_then_the_moto_id_token_connects(
    cognito: CognitoPool, redis_url: str, management_api: ManagementApiStub
) -> None:
    app = App(configure(cognito, redis_url, management_api, COGNITO_TOKEN_USE="id"))
    assert app.connect_handler(connect_event(cognito.id_token), CONTEXT)["statusCode"] == 200
    assert app.connect_handler(connect_event(cognito.access_token), CONTEXT)["statusCode"] == 401


def test_given_a_tampered_moto_token_then_401(
    live: redis.Redis, cognito: CognitoPool, app: App
) -> None:
    header, payload, signature = cognito.access_token.split(".")
    tampered = f"{header}.{payload}.{signature[:-4]}AAAA"
    assert app.connect_handler(connect_event(tampered), CONTEXT)["statusCode"] == 401
    assert live.exists(KEY) == 0


def test_given_a_stored_connection_when_ping_then_ttl_reset_and_the_pong_is_the_route_response(
    live: redis.Redis, cognito: CognitoPool, management_api: ManagementApiStub, app: App
) -> None:
    app.connect_handler(connect_event(cognito.access_token), CONTEXT)
    live.expire(KEY, 100)

    response = app.default_handler(event("message_ping"), CONTEXT)

    assert response["statusCode"] == 200
    assert 590 < live.ttl(KEY) <= 600
    pong = json.loads(response["body"])
    assert (pong["action"], pong["connectionId"], pong["id"]) == ("pong", CONNECTION_ID, "42")
    assert management_api.requests == [], "a pong makes no Management API call"


def test_given_an_expired_record_when_ping_then_error_posted_and_connection_deleted_at_the_gateway(
    live: redis.Redis, management_api: ManagementApiStub, app: App
) -> None:
    app.default_handler(event("message_ping"), CONTEXT)

    methods = [request.method for request in management_api.requests]
    assert methods == ["POST", "DELETE"]
    assert json.loads(management_api.requests[0].body)["code"] == "connection_expired"
    assert live.exists(KEY) == 0, "a ping never recreates a record"


def test_given_a_stored_connection_when_disconnect_then_the_key_is_gone(
    live: redis.Redis, cognito: CognitoPool, app: App
) -> None:
    app.connect_handler(connect_event(cognito.access_token), CONTEXT)
    assert app.disconnect_handler(event("disconnect"), CONTEXT)["statusCode"] == 200
    assert live.exists(KEY) == 0
