"""Cluster mode as ElastiCache runs it in production: TLS (``rediss://``) and an AUTH token.

Three masters speak TLS only (``--port 0 --tls-port N``, ``--tls-cluster yes``) with a
certificate from a throwaway CA, and require a password. The production client factory
(``create_redis_client(url, cluster=True)``) follows the slot map to every node with the same
TLS settings and password, and the repository contract holds; a wrong password or plain
text fails as ``StoreUnavailableError`` without echoing the secret.
"""

from __future__ import annotations

import secrets
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from adapters.connection_store.record import record_key
from adapters.connection_store.redis import RedisConnectionRepository, create_redis_client
from domain.errors import StoreUnavailableError
from tests.support.cluster import (
    CLUSTER_ARGS,
    RedisClusterNodes,
    node_port_of,
    running_redis_cluster_of_three,
)
from tests.support.repository_contract import (
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
    a_connection,
)
from tests.support.servers import RedisServer
from tests.support.stores import redis_repository
from tests.support.tls import TlsFiles

PASSWORD = "auth-" + secrets.token_urlsafe(16)


class SecuredNode(RedisServer):
    """A cluster node reached (and probed while starting) through a ``rediss://`` URL."""

    def __init__(self, port: int, workdir: Path, extra_args: list[str], url: str) -> None:
        super().__init__(port, workdir, extra_args)
        self._url = url

    @property
    def url(self) -> str:
        return self._url


class SecuredCluster:
    def __init__(self, nodes: RedisClusterNodes, tls: TlsFiles) -> None:
        self.nodes = nodes
        self.tls = tls

    def url(self, *, password: str = PASSWORD, scheme: str = "rediss") -> str:
        secret = urllib.parse.quote(password, safe="")
        ca = urllib.parse.quote(str(self.tls.ca_cert), safe="")
        return f"{scheme}://:{secret}@127.0.0.1:{self.nodes.ports[0]}/0?ssl_ca_certs={ca}"


@pytest.fixture(scope="module")
def secured_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredCluster]:
    tls = TlsFiles(tmp_path_factory.mktemp("cluster-tls"), hosts=("127.0.0.1",), client_auth=True)
    secret = urllib.parse.quote(PASSWORD, safe="")
    ca = urllib.parse.quote(str(tls.ca_cert), safe="")

    def node(port: int, workdir: Path) -> SecuredNode:
        args = [
            *CLUSTER_ARGS,
            "--requirepass", PASSWORD,
            "--masterauth", PASSWORD,
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cluster", "yes",
            "--tls-cert-file", str(tls.server_cert),
            "--tls-key-file", str(tls.server_key),
            "--tls-ca-cert-file", str(tls.ca_cert),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
        url = f"rediss://:{secret}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
        return SecuredNode(port, workdir, args, url)

    cli_args = ["--tls", "--cacert", str(tls.ca_cert), "-a", PASSWORD, "--no-auth-warning"]
    with running_redis_cluster_of_three(node=node, cli_args=cli_args) as nodes:
        yield SecuredCluster(nodes, tls)


@pytest.fixture(scope="module")
def tls_client(secured_cluster: SecuredCluster) -> Iterator[Any]:
    """The production client factory's cluster client (TLS handshakes are paid once)."""
    client = create_redis_client(secured_cluster.url(), cluster=True)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def cluster_client(tls_client: Any) -> Any:
    tls_client.flushall(target_nodes=tls_client.PRIMARIES)
    return tls_client


@pytest.fixture
def repository(cluster_client: Any) -> RedisConnectionRepository:
    return redis_repository(cluster_client)


@pytest.fixture
def remaining_ttl(cluster_client: Any) -> RemainingTtl:
    def remaining(connection_id: str) -> float | None:
        ttl = int(cluster_client.ttl(record_key(connection_id)))
        return float(ttl) if ttl > 0 else None

    return remaining


@pytest.fixture
def expire_record(cluster_client: Any) -> ExpireRecord:
    def expire(connection_id: str) -> None:
        cluster_client.expire(record_key(connection_id), 0)  # a TTL that ends now

    return expire


class TestTlsAuthClusterContract(ConnectionRepositoryContract, ConnectionDirectoryContract):
    """The shared repository suite over TLS with AUTH, on three masters."""


def test_given_tls_and_auth_then_ids_on_every_master_round_trip(
    secured_cluster: SecuredCluster, cluster_client: Any, repository: RedisConnectionRepository
) -> None:
    ids = [f"tls-{index}=" for index in range(30)]
    owners = {node_port_of(cluster_client, record_key(connection_id)) for connection_id in ids}
    assert owners == set(secured_cluster.nodes.ports)
    for connection_id in ids:
        repository.save(a_connection(connection_id), 600)
        assert repository.get(connection_id) == a_connection(connection_id)
        repository.delete(connection_id)


@pytest.mark.parametrize(
    ("password", "scheme"), [("wrong-" + secrets.token_urlsafe(8), "rediss"), (PASSWORD, "redis")]
)
def test_given_a_wrong_password_or_plain_text_then_store_unavailable_without_the_secret(
    secured_cluster: SecuredCluster, password: str, scheme: str
) -> None:
    url = secured_cluster.url(password=password, scheme=scheme)
    with pytest.raises(StoreUnavailableError) as raised:
        redis_repository(create_redis_client(url, cluster=True)).save(a_connection(), 600)
    assert password not in str(raised.value) and PASSWORD not in repr(raised.value)
