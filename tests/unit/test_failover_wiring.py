"""The container's store topology: Redis (records and limits), failing over to DynamoDB when configured."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest
from dependency_injector import providers

from adapters.connection_store.dynamodb import DynamoDbConnectionRepository
from adapters.connection_store.failover import FailoverConnectionRepository, FailoverEvent
from adapters.connection_store.redis import RedisConnectionRepository
from adapters.connection_store.single_store import SingleStoreReconciler
from adapters.in_memory import InMemoryMessageSender
from application.commands import HeartbeatCommand, HeartbeatOutcome
from application.ports import ConnectionDirectory
from domain.connection import Connection
from domain.errors import StoreUnavailableError
from entrypoints.bootstrap import bootstrap
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
    assert isinstance(container.connection_repository(), RedisConnectionRepository)


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

    store = container.connection_repository()
    assert isinstance(store, FailoverConnectionRepository)
    assert store is container.failover_repository()
    assert isinstance(container.dynamodb_repository(), DynamoDbConnectionRepository)
    assert container.dynamodb_repository().table_name == "timeline-ws-connections"
    assert store._primary is container.redis_repository(), "records and limits on Redis"
    assert container.redis_repository()._global_limit == 50
    breaker = container.redis_breaker()
    assert store.breaker is breaker
    assert (breaker.fail_max, breaker.reset_timeout) == (7, 2.5)
    assert container.connect()._repository is container.connection_repository()


def test_given_no_table_then_every_use_case_gets_the_redis_repository() -> None:
    container = Container(settings=Settings.from_environ(BASE))

    repository = container.connection_repository()

    assert isinstance(repository, RedisConnectionRepository)
    assert container.connect()._repository is repository
    assert container.heartbeat(sender=InMemoryMessageSender())._repository is repository


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
        "environ['CONNECTIONS_TABLE'] = 'connections'\n"
        "container = Container(settings=Settings.from_environ(environ))\n"
        "container.connect(); container.disconnect()\n"
        # Powertools imports the bare botocore package (for its version), not its client.
        "print(sorted(name for name in ('boto3', 'botocore.client') if name in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize(
    "environment",
    [
        {"REDIS_CLUSTER": "true"},
        {
            "REDIS_AUTH_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:redis-auth"
        },
    ],
)
def test_given_a_store_that_cannot_be_built_then_a_ping_still_pongs_and_a_save_is_store_unavailable(
    environment: dict[str, str],
) -> None:
    # Given a Redis client that cannot even be built (every cluster node down, or an AUTH
    # secret that cannot be read): building it raises StoreUnavailableError.
    def unbuildable() -> None:
        raise StoreUnavailableError("no node answered")

    container = bootstrap(
        Settings.from_environ({**BASE, **environment}),
        redis_client=providers.Callable(unbuildable),
    )
    sender = InMemoryMessageSender()

    # When a ping arrives, then the use case is still built and the pong goes out.
    result = container.heartbeat(sender=sender).execute(HeartbeatCommand(connection_id="c="))
    assert result.outcome is HeartbeatOutcome.PONG_UNRECORDED
    assert result.server_time is not None, "a pong all the same"
    assert sender.sent == {}
    # And storing a connection is the store's outage (503 at the edge), not a crash.
    connection = Connection(connection_id="c=", user_id="u", connected_at=datetime.now(UTC))
    with pytest.raises(StoreUnavailableError):
        container.connection_repository().save(connection, 600)


def test_given_redis_alone_then_the_reconcile_handler_replays_nothing_and_answers_200() -> None:
    container = Container(settings=Settings.from_environ(BASE))

    assert isinstance(container.store_reconciler(), SingleStoreReconciler)
    assert container.reconcile_handler()({"source": "aws.events"}, None) == {
        "statusCode": 200,
        "primaryDeletes": 0,
        "secondaryDeletes": 0,
        "leftInProcess": 0,
    }


def test_given_a_failover_table_then_the_failover_store_is_the_reconciler() -> None:
    container = Container(settings=Settings.from_environ({**BASE, "CONNECTIONS_TABLE": "conns"}))

    assert container.store_reconciler() is container.connection_repository()


@pytest.mark.parametrize(
    ("environ", "kind"),
    [
        (BASE, RedisConnectionRepository),
        ({**BASE, "CONNECTIONS_TABLE": "conns"}, FailoverConnectionRepository),
    ],
    ids=["redis", "failover"],
)
def test_the_connection_directory_is_the_topologys_store_itself(
    environ: dict[str, str], kind: type
) -> None:
    container = Container(settings=Settings.from_environ(environ))

    directory = container.connection_directory()

    assert isinstance(directory, kind)
    assert directory is container.connection_repository(), "one store, one object"
    assert ConnectionDirectory in type(directory).__mro__  # subclassed, so mypy checks it


def test_given_a_reconciler_that_fails_then_the_handler_answers_500_and_never_raises() -> None:
    class Broken(SingleStoreReconciler):
        def reconcile(self) -> Any:
            raise RuntimeError("boom")

    container = bootstrap(Settings.from_environ(BASE), store_reconciler=Broken())

    assert container.reconcile_handler()({}, None) == {"statusCode": 500}
