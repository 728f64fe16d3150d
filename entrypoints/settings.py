"""Configuration from environment variables, read once, typed and validated at cold start.

Each setting is declared once, on its field: the variable, the parser (which states the
bounds) and the default. ``Settings.from_environ`` reads them all, then checks the few rules
that join two settings, and reports every problem in one error. ``domain/`` and
``application/`` never read the environment; nothing else does but ``Settings.from_environ``
(and boto3, which reads its own ``AWS_*`` variables).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import attrs

from adapters.cognito.jwks import cognito_issuer, cognito_jwks_url

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

MAX_REDIS_TIMEOUT_SECONDS: Final = 30.0
"""Redis connect and read timeouts are capped at 30 s: a hung Redis must not hang a Lambda past
API Gateway's 29 s integration timeout (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""

DEFAULT_LOG_SAMPLE_RATE: Final = 0.01
"""Share of invocations that log at DEBUG (Powertools' sampling): 1 % shows a successful
pong's line without paying for one line per ping."""

# DynamoDB table names: 3-255 of letters, digits, "_", "-" and "."
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
_TABLE_NAME: Final = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# A Secrets Manager secret's ARN (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html).
_SECRET_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+"
)
_TRUE_WORDS: Final = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS: Final = frozenset({"0", "false", "no", "off"})
_REQUIRED: Final = object()


class ConfigurationError(Exception):
    """The environment does not describe a usable configuration; the message lists every problem."""


# -- parsers: text -> value, or ValueError with the problem (never quoting a secret) --------


def text(value: str) -> str:
    """Any non-empty text."""
    return value


def boolean(value: str) -> bool:
    """``true``/``false`` (also ``1``/``0``, ``yes``/``no``, ``on``/``off``)."""
    word = value.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    raise ValueError("expected true or false")


def seconds(maximum: float) -> Callable[[str], float]:
    """A finite number of seconds, greater than 0 and at most ``maximum``."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise ValueError("expected a number of seconds") from None
        if not 0 < number < math.inf:  # also refuses nan
            raise ValueError("must be a finite number greater than 0")
        if number > maximum:
            raise ValueError(f"must be at most {maximum:g} seconds")
        return number

    return parse


def whole(minimum: int, maximum: int) -> Callable[[str], int]:
    """A whole number within ``minimum..maximum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError("expected a whole number") from None
        if not minimum <= number <= maximum:
            raise ValueError(f"must be between {minimum} and {maximum}")
        return number

    return parse


def fraction(value: str) -> float:
    """A number from 0 to 1."""
    try:
        number = float(value)
    except ValueError:
        raise ValueError("expected a number from 0 to 1") from None
    if not 0 <= number <= 1:  # also refuses nan
        raise ValueError("must be from 0 to 1")
    return number


def one_of(*choices: str, upper: bool = False) -> Callable[[str], str]:
    """One of ``choices`` (compared upper-cased when ``upper``)."""

    def parse(value: str) -> str:
        chosen = value.upper() if upper else value
        if chosen not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return chosen

    return parse


def http_url(value: str) -> str:
    """An ``http://`` or ``https://`` URL."""
    if not value.startswith(("https://", "http://")):
        raise ValueError("must be an http(s) URL")
    return value


def client_ids(value: str) -> tuple[str, ...]:
    """Comma-separated app client ids, at least one."""
    ids = tuple(part.strip() for part in value.split(",") if part.strip())
    if not ids:
        raise ValueError("name at least one app client id")
    return ids


def table_name(value: str) -> str:
    """A DynamoDB table name."""
    if not _TABLE_NAME.fullmatch(value):
        raise ValueError("a DynamoDB table name is 3-255 letters, digits, _ - or .")
    return value


def secret_arn(value: str) -> str:
    """A Secrets Manager secret's ARN."""
    if not _SECRET_ARN.fullmatch(value):
        raise ValueError(
            "expected a secret's ARN, arn:aws:secretsmanager:<region>:<account>:secret:<name>"
        )
    return value


def redis_url(value: str) -> str:
    """A Redis URL redis-py can use (see :func:`redis_url_problem`)."""
    problem = redis_url_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def jwks_document(value: str) -> Mapping[str, Any]:
    """A JWKS document holding at least one RSA key (``kid``, ``n``, ``e``)."""
    try:
        document = json.loads(value)
    except ValueError:
        raise ValueError("not valid JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('expected a JWKS document {"keys": [...]}')
    if not any(_is_rsa_jwk(key) for key in document["keys"]):
        raise ValueError("holds no RSA key with kid, n and e (no token could verify)")
    return document


def redis_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a Redis URL for redis-py, or None when it can.

    Accepts ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` and
    ``unix:///path``. The answer never quotes the URL (it may carry the AUTH password).
    """
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return "must start with redis://, rediss:// or unix://"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "not a valid URL (its host or port cannot be read)"
    if parts.scheme == "unix":
        return None if parts.path else "a unix:// URL needs the socket's path"
    if not parts.hostname:
        return "names no host"
    if port == 0:
        return "the port must be within 1..65535"
    database = parts.path.lstrip("/")
    if database and not database.isdigit():
        return "the database must be a number, e.g. /0"
    query = parse_qs(parts.query)
    if "db" in query and not all(value.isdigit() for value in query["db"]):
        return "the database must be a number, e.g. /0"
    return None


def setting(variable: str, parse: Callable[[str], Any], default: Any = _REQUIRED) -> Any:
    """Declare a field read from ``variable`` with ``parse``; ``default`` when unset or empty."""
    return attrs.field(metadata={"variable": variable, "parse": parse, "default": default})


@attrs.frozen(slots=True, kw_only=True)
class Settings:
    """Everything the composition root needs, with units in the names.

    Build it with :meth:`from_environ`; the README's configuration table documents each
    variable. The last seven fields are derived, not read: the issuer from the region and
    the pool, the JWKS URL's default from the issuer, the AWS region, whether the
    process is a Lambda function, the HTTP connections each boto3 client keeps
    (botocore's default, 10, fits a Lambda, which runs one invocation at a time; the local
    gateway sets them to its handler threads with ``attrs.evolve``), and the credentials
    the boto3 clients sign with instead of boto3's own chain (``None``: boto3's; the local
    gateway's stand-ins when the environment has none).
    """

    cognito_region: str = setting("COGNITO_REGION", text)
    cognito_user_pool_id: str = setting("COGNITO_USER_POOL_ID", text)
    cognito_app_client_ids: tuple[str, ...] = setting("COGNITO_APP_CLIENT_IDS", client_ids)
    cognito_token_use: str = setting("COGNITO_TOKEN_USE", one_of("access", "id"), "access")
    cognito_jwks_url: str = setting("COGNITO_JWKS_URL", http_url, "")
    cognito_jwks: Mapping[str, Any] | None = setting("COGNITO_JWKS", jwks_document, None)
    cognito_leeway_seconds: int = setting("COGNITO_LEEWAY_SECONDS", whole(0, 300), 0)
    jwks_refetch_cooldown_seconds: float = setting(
        "JWKS_REFETCH_COOLDOWN_SECONDS", seconds(86_400.0), 60.0
    )
    # repr=False: the URL may carry the AUTH password.
    redis_url: str = attrs.field(
        repr=False,
        metadata={
            "variable": "REDIS_URL",
            "parse": redis_url,
            "default": "redis://127.0.0.1:6379/0",
        },
    )
    redis_cluster: bool = setting("REDIS_CLUSTER", boolean, False)
    redis_connect_timeout_seconds: float = setting(
        "REDIS_CONNECT_TIMEOUT_SECONDS", seconds(MAX_REDIS_TIMEOUT_SECONDS), 0.25
    )
    redis_read_timeout_seconds: float = setting(
        "REDIS_READ_TIMEOUT_SECONDS", seconds(MAX_REDIS_TIMEOUT_SECONDS), 0.25
    )
    redis_auth_secret_arn: str | None = setting("REDIS_AUTH_SECRET_ARN", secret_arn, None)
    connection_ttl_seconds: int = setting("CONNECTION_TTL_SECONDS", whole(1, 7 * 24 * 3600), 600)
    connections_table: str | None = setting("CONNECTIONS_TABLE", table_name, None)
    dynamodb_endpoint_url: str | None = setting("AWS_ENDPOINT_URL_DYNAMODB", http_url, None)
    redis_breaker_fail_max: int = setting("REDIS_BREAKER_FAIL_MAX", whole(1, 1000), 3)
    redis_breaker_reset_seconds: float = setting(
        "REDIS_BREAKER_RESET_SECONDS", seconds(86_400.0), 10.0
    )
    dynamodb_breaker_fail_max: int = setting("DYNAMODB_BREAKER_FAIL_MAX", whole(1, 1000), 3)
    dynamodb_breaker_reset_seconds: float = setting(
        "DYNAMODB_BREAKER_RESET_SECONDS", seconds(86_400.0), 10.0
    )
    connection_limit_global: int = setting("CONNECTION_LIMIT_GLOBAL", whole(1, 10_000_000), 1000)
    connection_limit_per_user: int = setting("CONNECTION_LIMIT_PER_USER", whole(1, 10_000_000), 10)
    management_api_endpoint: str | None = setting("MANAGEMENT_API_ENDPOINT", http_url, None)
    log_level: str = setting("LOG_LEVEL", one_of(*LOG_LEVELS, upper=True), "INFO")
    log_sample_rate: float = setting(
        "POWERTOOLS_LOGGER_SAMPLE_RATE", fraction, DEFAULT_LOG_SAMPLE_RATE
    )
    metrics_disabled: bool = setting("POWERTOOLS_METRICS_DISABLED", boolean, False)
    service_name: str = setting("POWERTOOLS_SERVICE_NAME", text, "timeline-ws")
    metrics_namespace: str = setting("POWERTOOLS_METRICS_NAMESPACE", text, "TimelineWs")
    cognito_issuer: str = ""
    aws_region: str | None = None
    in_lambda: bool = False
    dynamodb_max_pool_connections: int = 10
    management_api_max_pool_connections: int = 10
    aws_credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)
    management_api_credentials: tuple[str, str] | None = attrs.field(default=None, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate every declared variable; collect every problem before failing.

        Raises:
            ConfigurationError: one or more variables are missing or malformed (the message
                names each, never echoing secret values).
        """
        values: dict[str, Any] = {}
        problems: list[str] = []
        for field in attrs.fields(cls):
            if "variable" not in field.metadata:
                continue
            variable, parse, default = (field.metadata[k] for k in ("variable", "parse", "default"))
            raw = environ.get(variable, "").strip()
            if not raw:
                if default is _REQUIRED:
                    problems.append(f"{variable}: required")
                values[field.name] = None if default is _REQUIRED else default
                continue
            try:
                values[field.name] = parse(raw)
            except ValueError as error:
                problems.append(f"{variable}: {error}")
                values[field.name] = None if default is _REQUIRED else default
        values["cognito_issuer"] = _issuer(values, problems)
        if not values["cognito_jwks_url"] and values["cognito_issuer"]:
            values["cognito_jwks_url"] = cognito_jwks_url(values["cognito_issuer"])
        if values["redis_auth_secret_arn"] and _url_password(values["redis_url"]):
            problems.append(
                "REDIS_AUTH_SECRET_ARN: REDIS_URL carries a password too; keep the AUTH token in one place"
            )
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))
        values["aws_region"] = (
            environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
        )
        values["in_lambda"] = "AWS_LAMBDA_FUNCTION_NAME" in environ
        return cls(**values)


def _issuer(values: Mapping[str, Any], problems: list[str]) -> str:
    """The pool's issuer, or "" (and a problem) when the region and pool do not make one."""
    region, pool_id = values["cognito_region"], values["cognito_user_pool_id"]
    if not region or not pool_id:
        return ""
    try:
        issuer = cognito_issuer(region, pool_id)
    except ValueError as error:
        problems.append(f"COGNITO_REGION / COGNITO_USER_POOL_ID: {error}")
        return ""
    pool_region = pool_id.partition("_")[0]
    if pool_region != region:  # a user pool's id starts with its region: eu-west-1_AbCdEf123
        problems.append(
            f"COGNITO_USER_POOL_ID: the pool is in {pool_region}, not in COGNITO_REGION {region}"
        )
    return issuer


def _is_rsa_jwk(key: object) -> bool:
    return (
        isinstance(key, dict)
        and key.get("kty") == "RSA"
        and all(isinstance(key.get(field), str) and key[field] for field in ("kid", "n", "e"))
    )


def _url_password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
