"""The Redis AUTH token from Secrets Manager (moto server) against a redis-server with requirepass.

This is how the AWS deployment runs: ``REDIS_URL`` without a password plus
``REDIS_AUTH_SECRET_ARN`` (infra/lambda.tf).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis

from adapters.secrets_manager_redis_auth import read_redis_auth_token
from domain.errors import StoreUnavailableError
from entrypoints.bootstrap import bootstrap
from entrypoints.settings import ConfigurationError, Settings
from tests.support.servers import RedisServer, running_redis_server
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_REGION,
    TEST_USER_POOL_ID,
    TestKeyPair,
    jwks_document,
    mint_access_token,
)

AUTH_TOKEN = "s3cr3t-auth-token-0123456789abcdef"
EVENTS = Path(__file__).parent.parent / "events"


@pytest.fixture(scope="module")
def protected_redis() -> Iterator[RedisServer]:
    with running_redis_server("--requirepass", AUTH_TOKEN) as server:
        yield server


@pytest.fixture
def secrets(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    return boto3.client("secretsmanager", endpoint_url=moto_endpoint, region_name="us-east-1")


def settings_for(redis_url: str, secret_arn: str, key: TestKeyPair) -> Settings:
    return Settings.from_environ(
        {
            "COGNITO_REGION": TEST_REGION,
            "COGNITO_USER_POOL_ID": TEST_USER_POOL_ID,
            "COGNITO_APP_CLIENT_IDS": TEST_CLIENT_ID,
            "COGNITO_JWKS": json.dumps(jwks_document(key)),
            "REDIS_URL": redis_url,
            "REDIS_AUTH_SECRET_ARN": secret_arn,
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )


def connect(settings: Settings, token: str) -> dict[str, Any]:
    """A cold start with ``settings``, then one ``$connect`` with ``token``."""
    event: dict[str, Any] = json.loads((EVENTS / "connect.json").read_text())
    event["queryStringParameters"] = {"token": token}
    event["multiValueQueryStringParameters"] = {"token": [token]}
    response: dict[str, Any] = bootstrap(settings).connect_handler()(event, None)
    return response


@pytest.fixture
def key() -> TestKeyPair:
    return TestKeyPair.generate("kid-auth")


def test_given_the_auth_token_in_secrets_manager_when_connect_then_redis_accepts_and_stores(
    protected_redis: RedisServer, secrets: Any, key: TestKeyPair, caplog: pytest.LogCaptureFixture
) -> None:
    arn = secrets.create_secret(Name="timeline-ws/redis-auth", SecretString=AUTH_TOKEN)["ARN"]
    caplog.set_level(logging.DEBUG)

    response = connect(settings_for(protected_redis.url, arn, key), mint_access_token(key))

    assert response["statusCode"] == 200
    client = redis.Redis.from_url(protected_redis.url, password=AUTH_TOKEN)
    try:
        assert client.exists("ws:connection:L0SM9cOFvHcCIhw=") == 1
        client.flushall()
    finally:
        client.close()
    assert AUTH_TOKEN not in caplog.text


@pytest.mark.parametrize("secret_value", ["wrong-token-0123456789", None])
def test_given_a_wrong_or_missing_secret_when_connect_then_503_and_the_token_never_logged(
    protected_redis: RedisServer,
    secrets: Any,
    key: TestKeyPair,
    caplog: pytest.LogCaptureFixture,
    secret_value: str | None,
) -> None:
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing-AbCdEf"
    if secret_value is not None:
        arn = secrets.create_secret(Name=f"wrong-{id(caplog)}", SecretString=secret_value)["ARN"]
    caplog.set_level(logging.DEBUG)

    response = connect(settings_for(protected_redis.url, arn, key), mint_access_token(key))

    assert response["statusCode"] == 503
    assert AUTH_TOKEN not in caplog.text
    if secret_value:
        assert secret_value not in caplog.text


def test_read_redis_auth_token_without_an_arn_is_none_and_rejects_unusable_secrets(
    secrets: Any,
) -> None:
    assert read_redis_auth_token(None) is None
    arn = secrets.create_secret(Name="too-long", SecretString="x" * 129)["ARN"]
    with pytest.raises(StoreUnavailableError, match="not a usable token"):
        read_redis_auth_token(arn, region_name="us-east-1")


def test_a_password_in_the_url_and_a_secret_arn_together_are_a_configuration_error(
    key: TestKeyPair,
) -> None:
    with pytest.raises(ConfigurationError, match="REDIS_AUTH_SECRET_ARN") as raised:
        settings_for(
            "rediss://:hunter2@cache:6379", "arn:aws:secretsmanager:us-east-1:1:secret:x", key
        )
    assert "hunter2" not in str(raised.value)
