"""The one composition root: a dependency-injector container built once per process.

Clients (redis, boto3) and the token verifier (with its JWKS cache) are thread-safe
singletons, built on first use and reused by warm invocations; use cases are factories.
The Lambda handlers build the container at module scope from :class:`Settings`; tests and
the local gateway override providers (``container.redis_client.override(...)``).
"""

from __future__ import annotations

from collections.abc import Callable

from dependency_injector import containers, providers

from adapters.api_gateway_message_sender import ApiGatewayMessageSender, ManagementApiClients
from adapters.cognito import CognitoTokenVerifier, HttpJwksFetcher, JwksFetcher, StaticJwksFetcher
from adapters.dynamodb_connection_repository import (
    DynamoDbConnectionRepository,
    create_dynamodb_client,
)
from adapters.failover_connection_repository import (
    FailoverConnectionRepository,
    FailoverEvent,
    create_circuit_breaker,
)
from adapters.lazy_connection_repository import LazyConnectionRepository
from adapters.limited_connection_repository import LimitedConnectionRepository
from adapters.redis_connection_limiter import RedisConnectionLimiter
from adapters.redis_connection_repository import RedisConnectionRepository, create_redis_client
from adapters.redis_limited_connection_repository import RedisLimitedConnectionRepository
from adapters.secrets_manager_redis_auth import read_redis_auth_token
from adapters.system_clock import SystemClock
from application.ports import ConnectionRepository
from application.use_cases import Connect, Disconnect, Heartbeat, RejectMessage
from entrypoints.observability import STORE_FAILOVERS, emit_metrics
from entrypoints.settings import Settings


def jwks_fetcher_for(settings: Settings) -> JwksFetcher:
    """The preloaded JWKS (``COGNITO_JWKS``) when configured, else HTTP from ``COGNITO_JWKS_URL``."""
    if settings.cognito_jwks is not None:
        return StaticJwksFetcher(dict(settings.cognito_jwks))
    return HttpJwksFetcher(settings.cognito_jwks_url)


def sender_for(clients: ManagementApiClients, endpoint_url: str) -> ApiGatewayMessageSender:
    """The sender bound to one Management API endpoint (one boto3 client per endpoint)."""
    return clients.sender_for(endpoint_url)


def store_for(
    settings: Settings,
    redis_repository: Callable[[], ConnectionRepository],
    failover_repository: Callable[[], ConnectionRepository],
) -> ConnectionRepository:
    """Redis alone, or Redis failing over to DynamoDB when ``CONNECTIONS_TABLE`` is set.

    Takes providers, not instances, so the unused composition is never built.
    """
    return failover_repository() if settings.connections_table else redis_repository()


def limited_store_for(
    settings: Settings,
    one_round_trip: Callable[[], ConnectionRepository],
    composed: Callable[[], ConnectionRepository],
) -> ConnectionRepository:
    """The store with connection limits that the use cases get.

    Standalone Redis alone: one adapter doing each operation and its limit in one script
    (one round trip). With failover (``CONNECTIONS_TABLE``) or cluster mode: the limiter
    over the store, two round trips (the record and the limits cannot share a script).
    Takes providers, not instances, so the unused composition is never built.
    """
    if settings.connections_table or settings.redis_cluster:
        return composed()
    return one_round_trip()


def report_failover(event: FailoverEvent) -> None:
    """One ``StoreFailovers`` count (the alarm's metric; the log line carries the details)."""
    emit_metrics({STORE_FAILOVERS: 1})


class Container(containers.DeclarativeContainer):
    """Wires adapters into use cases. Provide ``settings`` when building it."""

    settings = providers.Dependency(instance_of=Settings)

    clock = providers.ThreadSafeSingleton(SystemClock)
    # Resolved once: ``settings.provided.x`` walks the Dependency on every call (~2 us).
    connection_ttl_seconds = providers.ThreadSafeSingleton(
        lambda settings: settings.connection_ttl_seconds, settings
    )

    # Read from Secrets Manager when REDIS_AUTH_SECRET_ARN is set, on first use of Redis.
    redis_auth_token = providers.ThreadSafeSingleton(
        read_redis_auth_token,
        secret_arn=settings.provided.redis_auth_secret_arn,
        region_name=settings.provided.aws_region,
    )
    redis_client = providers.ThreadSafeSingleton(
        create_redis_client,
        password=redis_auth_token,
        url=settings.provided.redis_url,
        connect_timeout_seconds=settings.provided.redis_connect_timeout_seconds,
        read_timeout_seconds=settings.provided.redis_read_timeout_seconds,
        cluster=settings.provided.redis_cluster,
    )
    redis_repository = providers.ThreadSafeSingleton(RedisConnectionRepository, client=redis_client)
    redis_breaker = providers.ThreadSafeSingleton(
        create_circuit_breaker,
        fail_max=settings.provided.redis_breaker_fail_max,
        reset_timeout_seconds=settings.provided.redis_breaker_reset_seconds,
    )
    # boto3 is imported and its client built only when a call first fails over.
    dynamodb_client = providers.ThreadSafeSingleton(
        create_dynamodb_client,
        endpoint_url=settings.provided.dynamodb_endpoint_url,
        region_name=settings.provided.aws_region,
    )
    dynamodb_repository = providers.ThreadSafeSingleton(
        DynamoDbConnectionRepository,
        table_name=settings.provided.connections_table,
        clock=clock,
        client_factory=dynamodb_client.provider,
    )
    failover_repository = providers.ThreadSafeSingleton(
        FailoverConnectionRepository,
        # Lazy: a Redis Cluster client cannot be built while every node is down.
        primary=providers.Factory(LazyConnectionRepository, factory=redis_repository.provider),
        secondary=dynamodb_repository,
        breaker=redis_breaker,
        on_failover=providers.Object(report_failover),
    )
    store_repository = providers.ThreadSafeSingleton(
        store_for,
        settings=settings,
        redis_repository=redis_repository.provider,
        failover_repository=failover_repository.provider,
    )
    connection_limiter = providers.ThreadSafeSingleton(
        RedisConnectionLimiter,
        client=redis_client.provider,
        clock=clock,
        global_limit=settings.provided.connection_limit_global,
        per_user_limit=settings.provided.connection_limit_per_user,
        breaker=redis_breaker,
    )
    limited_store_repository = providers.ThreadSafeSingleton(
        LimitedConnectionRepository, repository=store_repository, limiter=connection_limiter
    )
    redis_limited_repository = providers.ThreadSafeSingleton(
        RedisLimitedConnectionRepository,
        client=redis_client,
        clock=clock,
        global_limit=settings.provided.connection_limit_global,
        per_user_limit=settings.provided.connection_limit_per_user,
    )
    limited_repository = providers.ThreadSafeSingleton(
        limited_store_for,
        settings=settings,
        one_round_trip=redis_limited_repository.provider,
        composed=limited_store_repository.provider,
    )
    """Records with connection limits: in one standalone Redis, or limits over Redis failing
    over to DynamoDB / over Redis Cluster."""
    connection_repository = providers.ThreadSafeSingleton(
        LazyConnectionRepository, factory=limited_repository.provider
    )
    """The ConnectionRepository the use cases get: ``limited_repository``, built on its first
    operation, so a store that cannot even be built (a Redis Cluster with every node down, an
    AUTH secret that cannot be read) is a ``StoreUnavailableError`` from that operation (503
    on ``$connect``, a pong anyway on a ping) instead of an error building the use case."""

    jwks_fetcher = providers.ThreadSafeSingleton(jwks_fetcher_for, settings=settings)
    token_verifier = providers.ThreadSafeSingleton(
        CognitoTokenVerifier,
        issuer=settings.provided.cognito_issuer,
        app_client_ids=settings.provided.cognito_app_client_ids,
        jwks_fetcher=jwks_fetcher,
        clock=clock,
        token_use=settings.provided.cognito_token_use,
        leeway_seconds=settings.provided.cognito_leeway_seconds,
        refetch_cooldown_seconds=settings.provided.jwks_refetch_cooldown_seconds,
    )

    management_api_clients = providers.ThreadSafeSingleton(
        ManagementApiClients, region_name=settings.provided.aws_region
    )
    message_sender = providers.Factory(sender_for, clients=management_api_clients)

    connect = providers.Factory(
        Connect,
        verifier=token_verifier,
        repository=connection_repository,
        clock=clock,
        ttl_seconds=connection_ttl_seconds,
    )
    disconnect = providers.Factory(Disconnect, repository=connection_repository)
    heartbeat = providers.Factory(
        Heartbeat,
        repository=connection_repository,
        clock=clock,
        ttl_seconds=connection_ttl_seconds,
    )
    reject_message = providers.Factory(RejectMessage)
