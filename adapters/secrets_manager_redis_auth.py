"""The Redis AUTH token, read once from AWS Secrets Manager (boto3).

In AWS the ElastiCache AUTH token never sits in an environment variable or in Terraform
state as a literal: Terraform passes ``REDIS_AUTH_SECRET_ARN`` and the secret's
``SecretString`` is the raw token (https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_GetSecretValue.html,
https://docs.aws.amazon.com/AmazonElastiCache/latest/dg/auth.html). The container reads it
when the Redis client is first built, not at import, so a Secrets Manager outage is a store
outage (503, or failover to DynamoDB) instead of a failed cold start.
"""

from __future__ import annotations

from typing import Any

from domain.errors import StoreUnavailableError

MAX_AUTH_TOKEN_LENGTH = 128
"""ElastiCache AUTH tokens are 16 to 128 printable characters."""


def read_redis_auth_token(
    secret_arn: str | None,
    *,
    region_name: str | None = None,
    endpoint_url: str | None = None,
    connect_timeout_seconds: float = 1.0,
    read_timeout_seconds: float = 2.0,
    client: Any = None,
) -> str | None:
    """Return the AUTH token stored as the secret's ``SecretString``, or ``None`` without an ARN.

    Args:
        secret_arn: the secret's ARN (or name); ``None`` or empty means no AUTH token.
        region_name: the AWS region; ``None`` lets boto3 read ``AWS_REGION``.
        endpoint_url: a local endpoint (moto) for tests; ``None`` lets boto3 choose (it also
            honours ``AWS_ENDPOINT_URL_SECRETS_MANAGER``).
        connect_timeout_seconds, read_timeout_seconds: per HTTP attempt, seconds.
        client: a ready boto3 ``secretsmanager`` client (tests); built here when ``None``.

    Raises:
        StoreUnavailableError: the secret cannot be read, or is not a usable token (the
            message names the error class only, never the secret).
    """
    if not secret_arn:
        return None
    if client is None:
        import boto3  # lazily: only deployments with a secret pay for boto3 here
        from botocore.config import Config

        client = boto3.session.Session().client(
            "secretsmanager",
            region_name=region_name,
            endpoint_url=endpoint_url,
            config=Config(
                connect_timeout=connect_timeout_seconds,
                read_timeout=read_timeout_seconds,
                retries={"mode": "standard", "total_max_attempts": 2},
            ),
        )
    try:
        token = client.get_secret_value(SecretId=secret_arn).get("SecretString")
    except Exception as error:  # botocore's ClientError and BotoCoreError alike
        raise StoreUnavailableError(
            f"the Redis AUTH token could not be read from Secrets Manager: {type(error).__name__}"
        ) from None
    if not isinstance(token, str) or not token or len(token) > MAX_AUTH_TOKEN_LENGTH:
        raise StoreUnavailableError(
            "the Redis AUTH secret is not a usable token (expected 1-128 characters of SecretString)"
        )
    return token
