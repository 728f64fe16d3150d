"""Configuration from the environment and the composition root's wiring."""

from __future__ import annotations

import json

import pytest

from adapters.cognito import CognitoTokenVerifier, HttpJwksFetcher, StaticJwksFetcher
from adapters.connection_store import FailoverConnectionRepository, RedisConnectionRepository
from adapters.in_memory import FixedClock
from application.use_cases import Connect, Disconnect, Heartbeat
from entrypoints.bootstrap import bootstrap
from entrypoints.container import Container, jwks_fetcher_for
from entrypoints.edge.invocation import LambdaHandler
from entrypoints.settings import ConfigurationError, Settings

BASE = {
    "COGNITO_REGION": "eu-west-1",
    "COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
    "COGNITO_APP_CLIENT_IDS": "client-a, client-b ,",
}


def test_given_only_the_cognito_pool_then_every_default_applies() -> None:
    settings = Settings.from_environ(BASE)

    assert (
        settings.cognito_issuer == "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbCdEf123"
    )
    assert settings.cognito_jwks_url == settings.cognito_issuer + "/.well-known/jwks.json"
    assert settings.cognito_app_client_ids == ("client-a", "client-b")
    assert settings.cognito_token_use == "access"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    assert settings.redis_cluster is False
    assert settings.redis_connect_timeout_seconds == 0.25
    assert settings.connection_ttl_seconds == 600
    assert settings.management_api_endpoint is None
    assert settings.cognito_jwks is None
    assert settings.log_level == "INFO"


def test_given_every_variable_then_each_is_typed() -> None:
    jwks = {"keys": [{"kid": "k1", "kty": "RSA", "n": "AQAB", "e": "AQAB"}]}
    settings = Settings.from_environ(
        {
            **BASE,
            "REDIS_URL": "rediss://:secret@cache.example.com:6379/0",
            "REDIS_CLUSTER": "true",
            "REDIS_CONNECT_TIMEOUT_SECONDS": "0.5",
            "REDIS_READ_TIMEOUT_SECONDS": "1",
            "COGNITO_TOKEN_USE": "id",
            "COGNITO_JWKS_URL": "http://127.0.0.1:9/jwks.json",
            "COGNITO_JWKS": json.dumps(jwks),
            "COGNITO_LEEWAY_SECONDS": "5",
            "CONNECTION_TTL_SECONDS": "900",
            "MANAGEMENT_API_ENDPOINT": "https://ws.example.com/ws",
            "AWS_REGION": "eu-west-1",
            "LOG_LEVEL": "debug",
        }
    )
    assert settings.redis_cluster is True
    assert settings.redis_read_timeout_seconds == 1.0
    assert settings.cognito_token_use == "id"
    assert settings.cognito_jwks_url == "http://127.0.0.1:9/jwks.json"
    assert settings.cognito_jwks == jwks
    assert settings.cognito_leeway_seconds == 5
    assert settings.connection_ttl_seconds == 900
    assert settings.management_api_endpoint == "https://ws.example.com/ws"
    assert settings.aws_region == "eu-west-1"
    assert settings.log_level == "DEBUG"


def test_given_bad_values_then_one_error_names_every_problem_without_echoing_secrets() -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(
            {
                "COGNITO_APP_CLIENT_IDS": " , ",
                "COGNITO_TOKEN_USE": "refresh",
                "REDIS_URL": "http://user:hunter2@example.com",
                "REDIS_CLUSTER": "maybe",
                "REDIS_CONNECT_TIMEOUT_SECONDS": "soon",
                "REDIS_READ_TIMEOUT_SECONDS": "-1",
                "CONNECTION_TTL_SECONDS": "0",
                "COGNITO_LEEWAY_SECONDS": "lots",
                "COGNITO_JWKS": "{not json",
                "COGNITO_JWKS_URL": "ftp://example.com/jwks",
                "MANAGEMENT_API_ENDPOINT": "example.com",
            }
        )
    message = str(raised.value)
    for name in (
        "COGNITO_REGION: required",
        "COGNITO_USER_POOL_ID: required",
        "COGNITO_APP_CLIENT_IDS",
        "COGNITO_TOKEN_USE",
        "REDIS_URL",
        "REDIS_CLUSTER",
        "REDIS_CONNECT_TIMEOUT_SECONDS",
        "REDIS_READ_TIMEOUT_SECONDS",
        "CONNECTION_TTL_SECONDS",
        "COGNITO_LEEWAY_SECONDS",
        "COGNITO_JWKS:",
        "COGNITO_JWKS_URL",
        "MANAGEMENT_API_ENDPOINT",
    ):
        assert name in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("COGNITO_REGION", "not a region"),
        ("COGNITO_USER_POOL_ID", "../../evil"),
        ("COGNITO_LEEWAY_SECONDS", "600"),
        ("CONNECTION_TTL_SECONDS", "99999999"),
        ("REDIS_CONNECT_TIMEOUT_SECONDS", "inf"),
        ("REDIS_READ_TIMEOUT_SECONDS", "nan"),
        ("JWKS_REFETCH_COOLDOWN_SECONDS", "infinity"),
        ("LOG_LEVEL", "verbose"),
    ],
)
def test_given_an_out_of_range_value_then_configuration_error_naming_it(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environ({**BASE, name: value})


def test_given_a_jwks_that_is_not_a_key_set_then_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="JWKS document"):
        Settings.from_environ({**BASE, "COGNITO_JWKS": "[1, 2]"})


def test_the_container_wires_real_adapters_into_use_cases() -> None:
    container = Container(
        settings=Settings.from_environ({**BASE, "REDIS_URL": "redis://127.0.0.1:1/0"})
    )

    # Records and limits on Redis (no CONNECTIONS_TABLE); the failover topology is below.
    assert isinstance(container.connection_repository(), RedisConnectionRepository)
    assert container.connection_repository() is container.connection_repository()
    assert container.redis_client() is container.redis_client(), "one Redis client per process"
    assert isinstance(container.token_verifier(), CognitoTokenVerifier)
    assert container.token_verifier() is container.token_verifier(), (
        "the JWKS cache lives for the process"
    )
    assert isinstance(container.connect(), Connect)
    assert container.connect() is container.connect(), "stateless use cases: once per process"
    assert isinstance(container.disconnect(), Disconnect)
    (ping,) = container.actions()
    sender = container.message_sender(
        endpoint_url="https://abc.execute-api.eu-west-1.amazonaws.com/prod"
    )
    assert isinstance(ping.use_case(sender=sender), Heartbeat)
    # One handler per route, built once per process.
    assert isinstance(container.connect_handler(), LambdaHandler)
    assert isinstance(container.disconnect_handler(), LambdaHandler)
    assert container.default_handler() is container.default_handler()


def test_with_a_failover_table_the_store_is_redis_failing_over_to_dynamodb() -> None:
    container = Container(settings=Settings.from_environ({**BASE, "CONNECTIONS_TABLE": "conns"}))
    store = container.connection_repository()
    assert isinstance(store, FailoverConnectionRepository)
    assert store is container.failover_repository()
    assert container.dynamodb_repository().table_name == "conns"


def test_bootstrap_replaces_providers_by_name_and_refuses_unknown_names() -> None:
    clock = FixedClock()
    container = bootstrap(Settings.from_environ(BASE), clock=clock)
    assert container.clock() is clock
    assert container.connect()._clock is clock
    with pytest.raises(AttributeError, match="'clok'"):
        bootstrap(Settings.from_environ(BASE), clok=clock)


def test_the_jwks_comes_from_configuration_when_preloaded_else_from_http() -> None:
    jwks = {"keys": [{"kid": "k1", "kty": "RSA", "n": "AQAB", "e": "AQAB"}]}
    preloaded = Settings.from_environ({**BASE, "COGNITO_JWKS": json.dumps(jwks)})
    assert isinstance(jwks_fetcher_for(preloaded), StaticJwksFetcher)
    assert isinstance(jwks_fetcher_for(Settings.from_environ(BASE)), HttpJwksFetcher)


def test_the_settings_repr_never_shows_the_redis_url_and_its_password() -> None:
    settings = Settings.from_environ(
        {**BASE, "REDIS_URL": "rediss://:hunter2@cache.example.com:6379"}
    )
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"COGNITO_USER_POOL_ID": "us-east-1_AbCdEf123"}, "the pool is in us-east-1"),
        ({"COGNITO_JWKS": '{"keys": []}'}, "COGNITO_JWKS: holds no RSA key"),
        ({"COGNITO_JWKS": '{"keys": [{"kid": "k", "kty": "EC"}]}'}, "holds no RSA key"),
        ({"REDIS_URL": "redis://[::1:6379/0"}, "REDIS_URL: not a valid URL"),
        ({"REDIS_URL": "redis://127.0.0.1:99999/0"}, "REDIS_URL: not a valid URL"),
        ({"REDIS_URL": "redis://:pw@127.0.0.1:abc/0"}, "REDIS_URL: not a valid URL"),
        ({"REDIS_URL": "redis://"}, "REDIS_URL: names no host"),
        ({"REDIS_URL": "redis://127.0.0.1:6379/zero"}, "REDIS_URL: the database must be"),
        ({"REDIS_URL": "unix://"}, "REDIS_URL: a unix:// URL needs"),
        ({"REDIS_CONNECT_TIMEOUT_SECONDS": "1e20"}, "at most 30 seconds"),
        ({"REDIS_READ_TIMEOUT_SECONDS": "31"}, "at most 30 seconds"),
        ({"CONNECTIONS_TABLE": "bad name!"}, "CONNECTIONS_TABLE: a DynamoDB table name"),
        ({"CONNECTIONS_TABLE": "x"}, "CONNECTIONS_TABLE: a DynamoDB table name"),
        ({"REDIS_AUTH_SECRET_ARN": "notanarn"}, "REDIS_AUTH_SECRET_ARN: expected a secret's ARN"),
        ({"AWS_ENDPOINT_URL_DYNAMODB": "notaurl"}, "AWS_ENDPOINT_URL_DYNAMODB: must be an http"),
        ({"COGNITO_APP_CLIENT_IDS": " "}, "COGNITO_APP_CLIENT_IDS: required"),
    ],
)
def test_values_that_cannot_work_stop_the_start_with_one_clear_problem_each(
    variables: dict[str, str], problem: str
) -> None:
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ({**BASE, **variables})
    message = str(raised.value)
    assert problem in message
    assert message.count(";") == 0  # one problem, named once
    assert "pw@" not in message  # a URL is never quoted: it may carry the password


def test_valid_redis_urls_are_accepted() -> None:
    for url in (
        "redis://127.0.0.1:6379/0",
        "rediss://:secret@cache.example.com:6379",
        "redis://[::1]:6379/2",
        "redis://localhost",
        "unix:///run/redis.sock",
        "redis://127.0.0.1:6379?db=3",
    ):
        assert Settings.from_environ({**BASE, "REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("lots", "expected a number from 0 to 1"),
        ("1.5", "must be from 0 to 1"),
        ("nan", "must be from 0 to 1"),
    ],
)
def test_the_log_sample_rate_is_a_share_of_invocations(value: str, problem: str) -> None:
    assert Settings.from_environ(BASE).log_sample_rate == 0.01
    assert (
        Settings.from_environ({**BASE, "POWERTOOLS_LOGGER_SAMPLE_RATE": "0"}).log_sample_rate == 0
    )
    with pytest.raises(ConfigurationError, match=f"POWERTOOLS_LOGGER_SAMPLE_RATE: {problem}"):
        Settings.from_environ({**BASE, "POWERTOOLS_LOGGER_SAMPLE_RATE": value})


@pytest.mark.parametrize(("word", "value"), [("1", True), ("off", False), ("No", False)])
def test_switches_read_the_usual_words(word: str, value: bool) -> None:
    settings = Settings.from_environ({**BASE, "POWERTOOLS_METRICS_DISABLED": word})
    assert settings.metrics_disabled is value


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis://127.0.0.1:0/0", "the port must be within 1..65535"),
        ("redis://127.0.0.1:6379?db=x", "the database must be a number"),
    ],
)
def test_a_redis_url_redis_py_cannot_use_is_refused(url: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem):
        Settings.from_environ({**BASE, "REDIS_URL": url})


def test_the_lambda_runtime_is_recognised_by_its_function_name_variable() -> None:
    assert Settings.from_environ(BASE).in_lambda is False
    assert Settings.from_environ({**BASE, "AWS_LAMBDA_FUNCTION_NAME": "f"}).in_lambda is True


def test_the_handlers_module_builds_the_application_from_the_environment_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import importlib
    import sys

    from entrypoints.routes import ROUTES

    for name, value in {**BASE, "MANAGEMENT_API_ENDPOINT": "https://ws.example.com/ws"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delitem(sys.modules, "entrypoints.aws_lambda.handlers", raising=False)

    module = importlib.import_module("entrypoints.aws_lambda.handlers")

    assert module.container.settings().management_api_endpoint == "https://ws.example.com/ws"
    for route in ROUTES:  # the handler strings Terraform deploys name callables of the module
        assert callable(getattr(module, route.handler))
    assert module.default_handler is module.container.default_handler()


def test_every_route_has_its_handler_in_the_container() -> None:
    from entrypoints.routes import ROUTES
    from tests.support.app import make_container

    container = make_container()
    handlers = container.route_handlers()
    for route in ROUTES:
        handler = handlers[route.route_key]
        assert handler is getattr(container, route.handler)(), route
        assert handler.two_way == route.two_way, "a route response where API Gateway has one"
