"""A real 3-master Redis Cluster on loopback, as ElastiCache cluster mode runs it (no replicas).

Three ``redis-server --cluster-enabled yes`` processes on free ports, joined with
``redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes``; every wait is a bounded
loop until each node reports ``cluster_state:ok``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Final

import attrs
import redis
import redis.cluster

from tests.support.servers import READY_TIMEOUT_SECONDS, RedisServer

CLUSTER_BUS_OFFSET = 10000
"""Redis Cluster's node-to-node bus listens on the client port + 10000."""


@attrs.frozen
class RedisClusterNodes:
    """The running cluster: its nodes and ``redis://`` URL of the first (a seed node)."""

    servers: tuple[RedisServer, ...]

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def ports(self) -> tuple[int, ...]:
        return tuple(server.port for server in self.servers)


def _is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port whose cluster bus port (+10000) is free as well."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        bus = port + CLUSTER_BUS_OFFSET
        if bus < 65536 and not ({port, bus} & taken) and _is_free(bus):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _wait_for_cluster_ok(servers: tuple[RedisServer, ...]) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    clients = [redis.Redis.from_url(server.url, socket_timeout=2) for server in servers]
    try:
        while True:
            states = [client.cluster("INFO").get("cluster_state") for client in clients]
            if all(state == "ok" for state in states):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Redis Cluster did not reach cluster_state:ok: {states}")
            time.sleep(0.05)  # polling interval of a bounded readiness loop
    finally:
        for client in clients:
            client.close()


CLUSTER_ARGS: Final = ("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
"""The options that make a redis-server a cluster node (its state file in its own folder)."""

NodeFactory = Callable[[int, Path], RedisServer]


def plain_node(port: int, workdir: Path) -> RedisServer:
    """A cluster node speaking plain TCP without a password."""
    return RedisServer(port, workdir, list(CLUSTER_ARGS))


@contextmanager
def running_redis_cluster_of_three(
    *, node: NodeFactory = plain_node, cli_args: Sequence[str] = ()
) -> Iterator[RedisClusterNodes]:
    """Start three cluster-enabled redis-servers, create the cluster, yield it, stop it.

    ``node`` builds each (not yet started) server from its port and folder, e.g. with TLS
    and a password; ``cli_args`` are the matching ``redis-cli`` options (``--tls``,
    ``--cacert``, ``-a``) for ``redis-cli --cluster create``.
    """
    redis_cli = shutil.which("redis-cli")
    if redis_cli is None:
        raise RuntimeError("redis-cli is not installed (it comes with the redis-server package)")
    with ExitStack() as stack:
        taken: set[int] = set()
        servers: list[RedisServer] = []
        for _ in range(3):
            port = free_cluster_port(taken)
            taken |= {port, port + CLUSTER_BUS_OFFSET}
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="timeline-ws-cluster-"))
            )
            server = node(port, workdir)
            server.start()
            stack.callback(server.stop)
            servers.append(server)
        subprocess.run(
            [
                redis_cli,
                *cli_args,
                "--cluster",
                "create",
                *(f"127.0.0.1:{server.port}" for server in servers),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=READY_TIMEOUT_SECONDS * 2,
        )
        nodes = RedisClusterNodes(tuple(servers))
        _wait_for_cluster_ok(nodes.servers)
        yield nodes


def node_port_of(client: redis.cluster.RedisCluster, key: str) -> int:
    """The port of the master that owns ``key``'s hash slot."""
    node = client.get_node_from_key(key)
    return int(node.port)
