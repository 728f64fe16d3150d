"""Where connection records live: Redis (records and connection limits), DynamoDB, and the
failover between them; one module per backend and job, the record format once (``record.py``).

By job: ``redis.py`` (the client and the store's operations) over ``redis_scripts.py`` (keys,
Lua, one command set per topology), ``redis_pending_deletes.py`` (the secondary's deletes
Redis remembers for the failover); ``dynamodb.py``; ``failover.py`` (routing between the
two) with ``breakers.py`` (a breaker per store), ``journal.py`` (the deletes this process
remembers) and ``reconciler.py`` (their replay, the ``StoreReconciler``);
``single_store.py`` (Redis alone: nothing to replay). The failover table's definition is
``connections_table.json`` (Terraform and ``serve`` build the table from it).

Topologies (chosen in one place, the container's ``connection_repository`` selector):

- Redis alone (standalone or cluster): :class:`RedisConnectionRepository`, and
  :class:`SingleStoreReconciler` (nothing to replay);
- Redis failing over to DynamoDB (``CONNECTIONS_TABLE``): :class:`FailoverConnectionRepository`
  over :class:`RedisConnectionRepository` and :class:`DynamoDbConnectionRepository`; it is
  also the ``StoreReconciler`` that replays the deletes a store could not take.
"""

from adapters.connection_store.dynamodb import DynamoDbConnectionRepository, create_dynamodb_client
from adapters.connection_store.failover import (
    FailoverConnectionRepository,
    FailoverEvent,
    create_circuit_breaker,
)
from adapters.connection_store.redis import RedisConnectionRepository, create_redis_client
from adapters.connection_store.redis_pending_deletes import RedisPendingDeletes
from adapters.connection_store.single_store import SingleStoreReconciler

__all__ = [
    "DynamoDbConnectionRepository",
    "FailoverConnectionRepository",
    "FailoverEvent",
    "RedisConnectionRepository",
    "RedisPendingDeletes",
    "SingleStoreReconciler",
    "create_circuit_breaker",
    "create_dynamodb_client",
    "create_redis_client",
]
