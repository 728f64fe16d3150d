"""Configuration from environment variables, read once, typed and validated at cold start.

``domain/`` and ``application/`` never read the environment; this module is the only place
that does (with boto3, which reads its own ``AWS_*`` variables).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import attrs

from adapters.cognito import cognito_issuer, cognito_jwks_url

LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})

DEFAULT_LOG_SAMPLE_RATE: Final = 0.01
"""Share of invocations that log at DEBUG (Powertools' sampling): 1 % shows a successful
pong's line without paying for one line per ping."""

MAX_REDIS_TIMEOUT_SECONDS: Final = 30.0
"""Redis connect and read timeouts are capped at 30 s: a hung Redis must not hang a Lambda past
API Gateway's 29 s integration timeout (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""

# DynamoDB table names: 3-255 of letters, digits, "_", "-" and "."
# (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.NamingRulesDataTypes.html).
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
# A Secrets Manager secret's ARN (https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_iam-permissions.html).
_SECRET_ARN = re.compile(r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[\w/+=.@-]+")


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


class ConfigurationError(Exception):
    """The environment does not describe a usable configuration; the message lists every problem."""


@attrs.frozen(slots=True, kw_only=True)
class Settings:
    """Everything the composition root needs, with units in the names.

    Build it with :meth:`from_environ`; the README's configuration table documents each
    variable and its default.
    """

    redis_url: str = attrs.field(repr=False)  # may carry the AUTH password
    redis_cluster: bool
    redis_connect_timeout_seconds: float
    redis_read_timeout_seconds: float
    redis_auth_secret_arn: str | None
    cognito_region: str
    cognito_user_pool_id: str
    cognito_app_client_ids: tuple[str, ...]
    cognito_token_use: str
    cognito_issuer: str
    cognito_jwks_url: str
    cognito_jwks: Mapping[str, Any] | None
    cognito_leeway_seconds: int
    jwks_refetch_cooldown_seconds: float
    connection_ttl_seconds: int
    management_api_endpoint: str | None
    connections_table: str | None
    dynamodb_endpoint_url: str | None
    redis_breaker_fail_max: int
    redis_breaker_reset_seconds: float
    connection_limit_global: int
    connection_limit_per_user: int
    aws_region: str | None
    log_level: str
    log_sample_rate: float

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        """Read and validate the variables; collect every problem before failing.

        Raises:
            ConfigurationError: one or more variables are missing or malformed (the message
                names each, never echoing secret values).
        """
        problems: list[str] = []
        reader = _Reader(environ, problems)
        region = reader.text("COGNITO_REGION", required=True)
        pool_id = reader.text("COGNITO_USER_POOL_ID", required=True)
        client_ids = tuple(
            part.strip()
            for part in reader.text("COGNITO_APP_CLIENT_IDS", required=True).split(",")
            if part.strip()
        )
        if environ.get("COGNITO_APP_CLIENT_IDS", "").strip() and not client_ids:
            problems.append("COGNITO_APP_CLIENT_IDS: name at least one app client id")
        token_use = reader.text("COGNITO_TOKEN_USE", default="access")
        if token_use not in {"access", "id"}:
            problems.append("COGNITO_TOKEN_USE: must be 'access' or 'id'")
        issuer = ""
        if region and pool_id:
            try:
                issuer = cognito_issuer(region, pool_id)
            except ValueError as error:
                problems.append(f"COGNITO_REGION / COGNITO_USER_POOL_ID: {error}")
            else:
                pool_region = pool_id.partition("_")[0]
                if pool_region != region:
                    # A user pool's id starts with its region: eu-west-1_AbCdEf123
                    problems.append(
                        f"COGNITO_USER_POOL_ID: the pool is in {pool_region}, "
                        f"not in COGNITO_REGION {region}"
                    )
        jwks_url = reader.text("COGNITO_JWKS_URL", default="") or (
            cognito_jwks_url(issuer) if issuer else ""
        )
        if jwks_url and not jwks_url.startswith(("https://", "http://")):
            problems.append("COGNITO_JWKS_URL: must be an http(s) URL")
        inline_jwks: Mapping[str, Any] | None = None
        raw_jwks = reader.text("COGNITO_JWKS", default="")
        if raw_jwks:
            try:
                inline_jwks = json.loads(raw_jwks)
            except ValueError:
                problems.append("COGNITO_JWKS: not valid JSON")
            else:
                if not isinstance(inline_jwks, dict) or not isinstance(
                    inline_jwks.get("keys"), list
                ):
                    problems.append('COGNITO_JWKS: expected a JWKS document {"keys": [...]}')
                    inline_jwks = None
                elif not any(_is_rsa_jwk(key) for key in inline_jwks["keys"]):
                    problems.append(
                        "COGNITO_JWKS: holds no RSA key with kid, n and e (no token could verify)"
                    )
                    inline_jwks = None
        settings = cls(
            redis_url=reader.text("REDIS_URL", default="redis://127.0.0.1:6379/0"),
            redis_cluster=reader.boolean("REDIS_CLUSTER", default=False),
            redis_connect_timeout_seconds=reader.number(
                "REDIS_CONNECT_TIMEOUT_SECONDS", default=0.25, maximum=MAX_REDIS_TIMEOUT_SECONDS
            ),
            redis_read_timeout_seconds=reader.number(
                "REDIS_READ_TIMEOUT_SECONDS", default=0.25, maximum=MAX_REDIS_TIMEOUT_SECONDS
            ),
            redis_auth_secret_arn=reader.text("REDIS_AUTH_SECRET_ARN", default="") or None,
            cognito_region=region,
            cognito_user_pool_id=pool_id,
            cognito_app_client_ids=client_ids,
            cognito_token_use=token_use,
            cognito_issuer=issuer,
            cognito_jwks_url=jwks_url,
            cognito_jwks=inline_jwks,
            cognito_leeway_seconds=reader.integer(
                "COGNITO_LEEWAY_SECONDS", default=0, minimum=0, maximum=300
            ),
            jwks_refetch_cooldown_seconds=reader.number(
                "JWKS_REFETCH_COOLDOWN_SECONDS", default=60.0, maximum=86_400.0
            ),
            connection_ttl_seconds=reader.integer(
                "CONNECTION_TTL_SECONDS", default=600, minimum=1, maximum=7 * 24 * 3600
            ),
            management_api_endpoint=reader.text("MANAGEMENT_API_ENDPOINT", default="") or None,
            connections_table=reader.text("CONNECTIONS_TABLE", default="") or None,
            dynamodb_endpoint_url=reader.text("AWS_ENDPOINT_URL_DYNAMODB", default="") or None,
            redis_breaker_fail_max=reader.integer(
                "REDIS_BREAKER_FAIL_MAX", default=3, minimum=1, maximum=1000
            ),
            redis_breaker_reset_seconds=reader.number(
                "REDIS_BREAKER_RESET_SECONDS", default=10.0, maximum=86_400.0
            ),
            connection_limit_global=reader.integer(
                "CONNECTION_LIMIT_GLOBAL", default=1000, minimum=1, maximum=10_000_000
            ),
            connection_limit_per_user=reader.integer(
                "CONNECTION_LIMIT_PER_USER", default=10, minimum=1, maximum=10_000_000
            ),
            aws_region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
            log_level=reader.text("LOG_LEVEL", default="INFO").upper(),
            log_sample_rate=reader.fraction(
                "POWERTOOLS_LOGGER_SAMPLE_RATE", default=DEFAULT_LOG_SAMPLE_RATE
            ),
        )
        if settings.management_api_endpoint and not settings.management_api_endpoint.startswith(
            ("https://", "http://")
        ):
            problems.append("MANAGEMENT_API_ENDPOINT: must be an http(s) URL")
        redis_problem = redis_url_problem(settings.redis_url)
        if redis_problem:
            problems.append(f"REDIS_URL: {redis_problem}")
        if settings.connections_table and not _TABLE_NAME.fullmatch(settings.connections_table):
            problems.append(
                "CONNECTIONS_TABLE: a DynamoDB table name is 3-255 letters, digits, _ - or ."
            )
        if settings.redis_auth_secret_arn and not _SECRET_ARN.fullmatch(
            settings.redis_auth_secret_arn
        ):
            problems.append(
                "REDIS_AUTH_SECRET_ARN: expected a secret's ARN, "
                "arn:aws:secretsmanager:<region>:<account>:secret:<name>"
            )
        if settings.dynamodb_endpoint_url and not settings.dynamodb_endpoint_url.startswith(
            ("https://", "http://")
        ):
            problems.append("AWS_ENDPOINT_URL_DYNAMODB: must be an http(s) URL")
        if settings.redis_auth_secret_arn and _url_password(settings.redis_url):
            problems.append(
                "REDIS_AUTH_SECRET_ARN: REDIS_URL carries a password too; keep the AUTH token in one place"
            )
        if settings.log_level not in LOG_LEVELS:
            problems.append("LOG_LEVEL: one of " + ", ".join(sorted(LOG_LEVELS)))
        if problems:
            raise ConfigurationError("invalid configuration: " + "; ".join(problems))
        return settings


@attrs.define
class _Reader:
    environ: Mapping[str, str]
    problems: list[str]

    def text(self, name: str, *, default: str = "", required: bool = False) -> str:
        value = self.environ.get(name, "").strip()
        if not value:
            if required:
                self.problems.append(f"{name}: required")
            return default
        return value

    def boolean(self, name: str, *, default: bool) -> bool:
        value = self.environ.get(name)
        if value is None:
            return default
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        self.problems.append(f"{name}: expected true or false")
        return default

    def number(self, name: str, *, default: float, maximum: float = math.inf) -> float:
        value = self.environ.get(name, "").strip()
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{name}: expected a number of seconds")
            return default
        if not 0 < number < math.inf:  # also refuses nan
            self.problems.append(f"{name}: must be a finite number greater than 0")
            return default
        if number > maximum:
            self.problems.append(f"{name}: must be at most {maximum:g} seconds")
            return default
        return number

    def fraction(self, name: str, *, default: float) -> float:
        value = self.environ.get(name, "").strip()
        if not value:
            return default
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{name}: expected a number from 0 to 1")
            return default
        if not 0 <= number <= 1:  # also refuses nan
            self.problems.append(f"{name}: must be from 0 to 1")
            return default
        return number

    def integer(self, name: str, *, default: int, minimum: int, maximum: int = 2**31 - 1) -> int:
        value = self.environ.get(name, "").strip()
        if not value:
            return default
        try:
            number = int(value)
        except ValueError:
            self.problems.append(f"{name}: expected a whole number")
            return default
        if not minimum <= number <= maximum:
            self.problems.append(f"{name}: must be between {minimum} and {maximum}")
            return default
        return number


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
