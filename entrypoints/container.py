"""The one composition root: a dependency-injector container, built by :func:`~entrypoints.bootstrap.bootstrap`.

Clients (redis, boto3) and the token verifier (with its JWKS cache) are thread-safe
singletons built on first use, and reused by warm invocations. Use cases are stateless and
built once per process: ``Connect`` and ``Disconnect`` are singletons, and each ``$default``
action's use case is built on its first message, given the ``MessageSender`` of the API the
message came through (a sender's boto3 client is built on its first send). Each route's
handler is a singleton: the one invocation wrapper around the route. Adapters that cannot
build their client at once (boto3's import, a Redis Cluster with every node down, the AUTH
secret) build it on their first operation.

Tests and the local gateway replace providers with ``container.override_providers(...)``
(through :func:`~entrypoints.bootstrap.bootstrap`); nothing outside this module names one.
"""

from __future__ import annotations

import logging
from typing import Any

from dependency_injector import containers, providers

from adapters.api_gateway_message_sender import ManagementApiClients
from adapters.cognito.jwks import HttpJwksFetcher, JwksFetcher, StaticJwksFetcher
from adapters.connection_store import (
    DynamoDbConnectionRepository,
    FailoverConnectionRepository,
    FailoverEvent,
    RedisConnectionRepository,
    RedisPendingDeletes,
    SingleStoreReconciler,
    create_circuit_breaker,
    create_dynamodb_client,
    create_redis_client,
)
from adapters.secrets_manager_redis_auth import read_redis_auth_token
from adapters.system_clock import SystemClock, SystemSleeper
from adapters.thread_pool_fan_out import ThreadPoolFanOut
from application.commands import HeartbeatCommand, HeartbeatOutcome
from application.ports import MessageSender, TokenVerifier
from application.use_cases import PUSH_CONCURRENCY, Connect, Disconnect, Heartbeat, Push, Reconcile
from domain.protocol import PING
from entrypoints.edge.invocation import LambdaHandler, Report
from entrypoints.edge.push import PushRoute
from entrypoints.edge.reconcile import ReconcileHandler
from entrypoints.edge.responses import pong_frame
from entrypoints.edge.websocket_routes import Action, ConnectRoute, DisconnectRoute, MessageRoute
from entrypoints.observability import (
    HEARTBEATS_UNRECORDED,
    STALE_CONNECTIONS_REMOVED,
    STORE_FAILOVERS,
    emit_metrics,
)
from entrypoints.settings import Settings


def jwks_fetcher_for(settings: Settings) -> JwksFetcher:
    """The preloaded JWKS (``COGNITO_JWKS``) when configured, else HTTP from ``COGNITO_JWKS_URL``."""
    if settings.cognito_jwks is not None:
        return StaticJwksFetcher(dict(settings.cognito_jwks))
    return HttpJwksFetcher(settings.cognito_jwks_url)


def cognito_token_verifier(**arguments: Any) -> TokenVerifier:
    """A ``CognitoTokenVerifier``; python-jose (~100 ms of imports) loads only when one is
    built, so only ``$connect`` pays for it at a cold start."""
    from adapters.cognito.token_verifier import CognitoTokenVerifier

    return CognitoTokenVerifier(**arguments)


def sender_for(clients: ManagementApiClients, endpoint_url: str) -> MessageSender:
    """The sender of one Management API endpoint (one boto3 client per endpoint, built on use)."""
    return clients.sender_for(endpoint_url)


def report_failover(event: FailoverEvent) -> None:
    """One ``StoreFailovers`` count (the alarm's metric; the log line carries the details)."""
    emit_metrics({STORE_FAILOVERS: 1})


def store_topology(settings: Settings) -> str:
    """``"failover"`` when ``CONNECTIONS_TABLE`` names a DynamoDB table to fail over to, else ``"redis"``."""
    return "failover" if settings.connections_table else "redis"


class Container(containers.DeclarativeContainer):
    """Wires adapters into use cases and use cases into route handlers. Provide ``settings``."""

    settings = providers.Dependency(instance_of=Settings)

    clock = providers.ThreadSafeSingleton(SystemClock)
    # Resolved once: ``settings.provided.x`` walks the Dependency on every call (~2 us).
    connection_ttl_seconds = providers.ThreadSafeSingleton(
        lambda settings: settings.connection_ttl_seconds, settings
    )

    # -- the connection store: Redis, alone or failing over to DynamoDB ---------------------

    # Read from Secrets Manager when REDIS_AUTH_SECRET_ARN is set, when the client is built.
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
    redis_repository = providers.ThreadSafeSingleton(
        RedisConnectionRepository,
        client=redis_client.provider,  # built on the repository's first operation
        clock=clock,
        global_limit=settings.provided.connection_limit_global,
        per_user_limit=settings.provided.connection_limit_per_user,
    )
    # boto3 is imported and its client built only when a call first fails over.
    dynamodb_client = providers.ThreadSafeSingleton(
        create_dynamodb_client,
        endpoint_url=settings.provided.dynamodb_endpoint_url,
        region_name=settings.provided.aws_region,
        max_pool_connections=settings.provided.dynamodb_max_pool_connections,
        credentials=settings.provided.aws_credentials,
    )
    dynamodb_repository = providers.ThreadSafeSingleton(
        DynamoDbConnectionRepository,
        table_name=settings.provided.connections_table,
        clock=clock,
        client_factory=dynamodb_client.provider,
    )
    redis_breaker = providers.ThreadSafeSingleton(
        create_circuit_breaker,
        fail_max=settings.provided.redis_breaker_fail_max,
        reset_timeout_seconds=settings.provided.redis_breaker_reset_seconds,
    )
    dynamodb_breaker = providers.ThreadSafeSingleton(
        create_circuit_breaker,
        fail_max=settings.provided.dynamodb_breaker_fail_max,
        reset_timeout_seconds=settings.provided.dynamodb_breaker_reset_seconds,
        name="dynamodb",
    )
    failover_repository = providers.ThreadSafeSingleton(
        FailoverConnectionRepository,
        primary=redis_repository,
        secondary=dynamodb_repository,
        pending_deletes=providers.ThreadSafeSingleton(
            RedisPendingDeletes, client=redis_client.provider, clock=clock
        ),
        breaker=redis_breaker,
        secondary_breaker=dynamodb_breaker,
        tombstone_ttl_seconds=connection_ttl_seconds,
        on_failover=providers.Object(report_failover),
    )
    topology = providers.Callable(store_topology, settings)
    connection_repository = providers.Selector(
        topology, redis=redis_repository, failover=failover_repository
    )
    """The ConnectionRepository the use cases get: the topology is chosen here, once."""
    connection_directory = providers.Selector(
        topology, redis=redis_repository, failover=failover_repository
    )
    """The ConnectionDirectory (a user's live connections): the same store object."""
    store_reconciler = providers.Selector(
        topology,
        redis=providers.ThreadSafeSingleton(SingleStoreReconciler),
        failover=failover_repository,
    )
    """What replays the deletes a store could not take (nothing, with Redis alone)."""

    # -- the other ports ----------------------------------------------------------------

    jwks_fetcher = providers.ThreadSafeSingleton(jwks_fetcher_for, settings=settings)
    token_verifier = providers.ThreadSafeSingleton(
        cognito_token_verifier,
        issuer=settings.provided.cognito_issuer,
        app_client_ids=settings.provided.cognito_app_client_ids,
        jwks_fetcher=jwks_fetcher,
        clock=clock,
        token_use=settings.provided.cognito_token_use,
        leeway_seconds=settings.provided.cognito_leeway_seconds,
        refetch_cooldown_seconds=settings.provided.jwks_refetch_cooldown_seconds,
    )
    management_api_clients = providers.ThreadSafeSingleton(
        ManagementApiClients,
        region_name=settings.provided.aws_region,
        max_pool_connections=settings.provided.management_api_max_pool_connections,
        credentials=settings.provided.management_api_credentials,
    )
    message_sender = providers.Factory(sender_for, clients=management_api_clients)
    # The push's own clients: no botocore retry (its standard mode retries a 429
    # LimitExceededException too); the use case retries throttled posts itself, once over.
    push_management_api_clients = providers.ThreadSafeSingleton(
        ManagementApiClients,
        region_name=settings.provided.aws_region,
        max_pool_connections=settings.provided.management_api_max_pool_connections,
        credentials=settings.provided.management_api_credentials,
        max_attempts=1,
    )
    fan_out = providers.ThreadSafeSingleton(ThreadPoolFanOut, max_workers=PUSH_CONCURRENCY)
    """A sender per endpoint: ``message_sender(endpoint_url=...)`` (cached by the clients)."""

    # -- use cases: one provider each ----------------------------------------------------

    connect = providers.ThreadSafeSingleton(
        Connect,
        verifier=token_verifier,
        repository=connection_repository,
        clock=clock,
        ttl_seconds=connection_ttl_seconds,
    )
    disconnect = providers.ThreadSafeSingleton(Disconnect, repository=connection_repository)
    reconcile = providers.ThreadSafeSingleton(Reconcile, reconciler=store_reconciler)
    push = providers.ThreadSafeSingleton(
        Push,
        directory=connection_directory,
        repository=connection_repository,
        sender=providers.Factory(
            sender_for,
            clients=push_management_api_clients,
            endpoint_url=settings.provided.management_api_endpoint,
        ),
        fan_out=fan_out,
        sleeper=providers.ThreadSafeSingleton(SystemSleeper),
    )
    """Needs ``MANAGEMENT_API_ENDPOINT``: nothing in a direct invocation names the API."""
    heartbeat = providers.Factory(
        Heartbeat, repository=connection_repository, clock=clock, ttl_seconds=connection_ttl_seconds
    )
    """Called with ``sender=``: the Management API of the message's endpoint."""

    # -- $default's actions: one row each (README, "Adding a route") --------------------

    actions = providers.List(
        providers.Factory(
            Action,
            name=PING,
            command=HeartbeatCommand,
            use_case=heartbeat.provider,
            reply=providers.Object(pong_frame),
            message="heartbeat",
            sends=True,  # closes an expired connection
            fields={"id": "ping_id"},
            reports={
                HeartbeatOutcome.PONG_UNRECORDED: Report(
                    logging.ERROR, "heartbeat", HEARTBEATS_UNRECORDED
                ),
                HeartbeatOutcome.EXPIRED: Report(
                    logging.INFO, "heartbeat", STALE_CONNECTIONS_REMOVED
                ),
            },
        ),
    )

    # -- the route handlers (what the Lambda handler strings name) -----------------------

    connect_handler = providers.ThreadSafeSingleton(
        LambdaHandler, route=providers.Factory(ConnectRoute, connect=connect.provider)
    )
    disconnect_handler = providers.ThreadSafeSingleton(
        LambdaHandler, route=providers.Factory(DisconnectRoute, disconnect=disconnect.provider)
    )
    default_handler = providers.ThreadSafeSingleton(
        LambdaHandler,
        route=providers.Factory(
            MessageRoute,
            actions=actions,
            senders=message_sender.provider,
            management_api_endpoint=settings.provided.management_api_endpoint,
        ),
    )
    reconcile_handler = providers.ThreadSafeSingleton(
        ReconcileHandler, reconcile=reconcile.provider
    )
    push_handler = providers.ThreadSafeSingleton(
        LambdaHandler, route=providers.Factory(PushRoute, push=push.provider)
    )
    function_handlers = providers.Dict({"push": push_handler})
    """Function name -> its handler, for the functions other services invoke directly."""
    route_handlers = providers.Dict(
        {
            "$connect": connect_handler,
            "$disconnect": disconnect_handler,
            "$default": default_handler,
        }
    )
    """Route key -> its handler, for a gateway that invokes them by route (the local one)."""
