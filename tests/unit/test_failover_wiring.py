"""The container's store composition: limits over Redis, failing over to DynamoDB when configured."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from dependency_injector import providers

from adapters.dynamodb_connection_repository import DynamoDbConnectionRepository
from adapters.failover_connection_repository import FailoverConnectionRepository, FailoverEvent
from adapters.limited_connection_repository import LimitedConnectionRepository
from adapters.redis_connection_limiter import RedisConnectionLimiter
from adapters.redis_limited_connection_repository import RedisLimitedConnectionRepository
from entrypoints.container import Container, report_failover
from entrypoints.settings import ConfigurationError, Settings

BASE = {
    "COGNITO_REGION": "eu-west-1",
    "COGNITO_USER_POOL_ID": "eu-west-1_AbCdEf123",
    "COGNITO_APP_CLIENT_IDS": "client-a",
    "REDIS_URL": "redis://127.0.0.1:1/0",
}


def test_given_no_table_then_defaults_and_no_failover() -> None:
    settings = Settings.from_environ(BASE)

    assert settings.connections_table is None and settings.dynamodb_endpoint_url is None
    assert (settings.connection_limit_global, settings.connection_limit_per_user) == (1000, 10)
    assert (settings.redis_breaker_fail_max, settings.redis_breaker_reset_seconds) == (3, 10.0)
    container = Container(settings=settings)
    assert not isinstance(container.store_repository(), FailoverConnectionRepository)


def test_given_a_table_then_redis_fails_over_to_dynamodb_with_one_shared_breaker() -> None:
    container = Container(
        settings=Settings.from_environ(
            {
                **BASE,
                "CONNECTIONS_TABLE": "timeline-ws-connections",
                "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:1",
                "REDIS_BREAKER_FAIL_MAX": "7",
                "REDIS_BREAKER_RESET_SECONDS": "2.5",
                "CONNECTION_LIMIT_GLOBAL": "50",
                "CONNECTION_LIMIT_PER_USER": "2",
            }
        )
    )

    repository = container.connection_repository()
    store = container.store_repository()
    assert isinstance(repository, LimitedConnectionRepository)
    assert isinstance(store, FailoverConnectionRepository)
    assert store is container.failover_repository()
    assert isinstance(container.dynamodb_repository(), DynamoDbConnectionRepository)
    assert container.dynamodb_repository().table_name == "timeline-ws-connections"
    assert isinstance(container.connection_limiter(), RedisConnectionLimiter)
    breaker = container.redis_breaker()
    assert store.breaker is breaker
    assert (breaker.fail_max, breaker.reset_timeout) == (7, 2.5)
    assert container.connect()._repository is repository


def test_given_no_table_and_standalone_redis_then_records_and_limits_share_one_round_trip() -> None:
    container = Container(settings=Settings.from_environ(BASE))

    repository = container.connection_repository()

    assert isinstance(repository, RedisLimitedConnectionRepository)
    assert container.connect()._repository is repository
    assert container.heartbeat(sender=None)._repository is repository


def test_given_cluster_mode_then_the_limiter_wraps_the_redis_repository() -> None:
    # Cluster mode: the record and limit keys live in different slots, so no shared script.
    container = Container(settings=Settings.from_environ({**BASE, "REDIS_CLUSTER": "true"}))
    # A cluster client reads the slot map when built; no cluster runs in unit tests.
    container.redis_client.override(providers.Object(object()))

    repository = container.connection_repository()

    assert isinstance(repository, LimitedConnectionRepository)
    assert container.store_repository() is container.redis_repository()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_BREAKER_FAIL_MAX", "0"),
        ("REDIS_BREAKER_RESET_SECONDS", "-1"),
        ("CONNECTION_LIMIT_GLOBAL", "0"),
        ("CONNECTION_LIMIT_PER_USER", "many"),
    ],
)
def test_given_bad_resilience_settings_then_configuration_error_naming_them(
    name: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=name):
        Settings.from_environ({**BASE, name: value})


def test_a_failover_is_counted_as_the_alarms_metric(capsys: pytest.CaptureFixture[str]) -> None:
    report_failover(FailoverEvent(operation="save", reason="circuit_open", connection_id="a="))

    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    assert any(
        document.get("StoreFailovers") == [1.0] or document.get("StoreFailovers") == 1.0
        for document in documents
    )


def test_building_the_failover_composition_does_not_import_boto3() -> None:
    # The $connect cold start pays for boto3 only when a call actually fails over (issue 6).
    probe = (
        "import sys\n"
        "from entrypoints.container import Container\n"
        "from entrypoints.settings import Settings\n"
        f"environ = {BASE!r}\n"
        "environ['CONNECTIONS_TABLE'] = 't'\n"
        "container = Container(settings=Settings.from_environ(environ))\n"
        "container.connect(); container.disconnect()\n"
        # Powertools imports the bare botocore package (for its version), not its client.
        "print(sorted(name for name in ('boto3', 'botocore.client') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
