"""A one-node Redis Cluster (cluster mode enabled, all 16384 slots on one redis-server).

Enough to prove that an adapter speaks the cluster protocol (``RedisCluster`` client,
single-key commands, no CROSSSLOT) without a six-process cluster.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.cluster import free_cluster_port
from tests.support.servers import READY_TIMEOUT_SECONDS, RedisServer

_SLOTS = 16384


@contextmanager
def running_redis_cluster() -> Iterator[RedisServer]:
    """A redis-server in cluster mode owning every slot, once it reports ``cluster_state:ok``."""
    # The cluster bus listens on port + 10000: a port above 55535 would make redis-server exit.
    with (
        tempfile.TemporaryDirectory(prefix="timeline-ws-redis-") as workdir,
        _started(
            RedisServer(
                free_cluster_port(set()),
                Path(workdir),
                ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"],
            )
        ) as server,
    ):
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


@contextmanager
def _started(server: RedisServer) -> Iterator[RedisServer]:
    server.start()
    try:
        yield server
    finally:
        server.stop()
