"""A one-node Redis Cluster (cluster mode enabled, all 16384 slots on one redis-server).

Enough to prove that an adapter speaks the cluster protocol (``RedisCluster`` client,
single-key commands, no CROSSSLOT) without a six-process cluster.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from tests.support.servers import READY_TIMEOUT_SECONDS, RedisServer, running_redis_server

_SLOTS = 16384


@contextmanager
def running_redis_cluster() -> Iterator[RedisServer]:
    """A redis-server in cluster mode owning every slot, once it reports ``cluster_state:ok``."""
    with running_redis_server(
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"
    ) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        try:
            client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, _SLOTS - 1)
            deadline = time.monotonic() + READY_TIMEOUT_SECONDS
            while client.cluster("INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError("the one-node Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.02)  # polling interval of a bounded readiness loop
        finally:
            client.close()
        yield server
