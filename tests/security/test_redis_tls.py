"""Redis transport security: ``rediss://`` with a private CA and an AUTH password.

Given a real ``redis-server`` that speaks TLS only (``--port 0 --tls-port N``) with a
certificate issued by a throwaway CA made here, and ``--requirepass``, the production
client factory (``adapters.connection_store.redis.create_redis_client``) reaches it
with ``rediss://:<password>@host:port/0?ssl_ca_certs=<CA file>`` (redis-py reads
``ssl_ca_certs`` from the URL query; the certificate and the host name are verified by
default). A wrong or missing password, an untrusted CA, a certificate for another host and
plain text to the TLS port all fail as ``StoreUnavailableError``, and the password never
appears in an exception (message, repr or chained trace) or a log line.
"""

from __future__ import annotations

import secrets
import subprocess
import traceback
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from adapters.cognito import StaticJwksFetcher
from adapters.connection_store.redis import (
    create_redis_client,
)
from adapters.in_memory import FixedClock
from domain.connection import Connection
from domain.errors import StoreUnavailableError
from entrypoints.container import Container
from entrypoints.settings import Settings
from tests.security.harness import (
    CONNECTION_ID,
    SecuredRedisServer,
    capture_all_output,
    cognito_verifier,
    connect_event,
    running_secured_redis,
    wired_handlers,
)
from tests.support.servers import free_port, redis_server_binary
from tests.support.stores import redis_repository
from tests.support.tls import TlsFiles
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_NOW,
    jwks_document,
    mint_access_token,
    shared_key_pair,
)

PASSWORD = "pw-" + secrets.token_urlsafe(24) + "@:/%?#"
"""AUTH password with URL-special characters: the URL must percent-encode them."""

CONNECTION = Connection(
    connection_id=CONNECTION_ID,
    user_id="8f2b6c1e-1d4a-4a8e-9c2d-0123456789ab",
    connected_at=datetime(2026, 1, 3, tzinfo=UTC),
)


def redis_server_version() -> tuple[int, ...]:
    """``redis-server --version`` as a tuple, e.g. ``(7, 0, 15)``."""
    output = subprocess.run(  # the binary found on PATH, fixed arguments
        [redis_server_binary(), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return tuple(int(part) for part in output.split("v=")[1].split()[0].split("."))


@pytest.fixture(scope="module", autouse=True)
def redis_with_tls() -> None:
    # Fail, not skip: a silently skipped TLS test is a gap nobody sees. TLS arrived in
    # Redis 6; Debian's and Ubuntu's packages (what `make test` installs) build it in.
    version = redis_server_version()
    if version < (6,):
        pytest.fail(f"redis-server {version} cannot speak TLS; install redis-server >= 6")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return TlsFiles(tmp_path_factory.mktemp("pki"), hosts=("127.0.0.1", "localhost"))


@pytest.fixture(scope="module")
def tls_redis(
    pki: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecuredRedisServer]:
    with running_secured_redis(
        tmp_path_factory.mktemp("redis-tls"), port=free_port(), password=PASSWORD, tls=pki
    ) as server:
        yield server


def url_with(
    server: SecuredRedisServer,
    *,
    password: str | None = PASSWORD,
    ca: Path | None = None,
    scheme: str = "rediss",
) -> str:
    parts = urllib.parse.urlsplit(server.url)
    auth = f":{urllib.parse.quote(password, safe='')}@" if password is not None else ""
    query = parts.query
    if ca is not None:
        query = "ssl_ca_certs=" + urllib.parse.quote(str(ca), safe="")
    if scheme == "redis":
        query = ""
    return f"{scheme}://{auth}127.0.0.1:{parts.port}/0" + (f"?{query}" if query else "")


def assert_secret_free(error: BaseException) -> None:
    trace = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), trace):
        assert PASSWORD not in text
        assert urllib.parse.quote(PASSWORD, safe="") not in text


def test_given_rediss_with_the_ca_and_the_password_then_the_repository_round_trips(
    tls_redis: SecuredRedisServer,
) -> None:
    client = create_redis_client(tls_redis.url)
    repository = redis_repository(client)
    try:
        repository.save(CONNECTION, 600)
        assert repository.get(CONNECTION_ID) == CONNECTION
        repository.refresh(CONNECTION_ID, 600)
        repository.delete(CONNECTION_ID)
        assert isinstance(client, redis.Redis)
        assert client.connection_pool.connection_class is redis.SSLConnection
    finally:
        client.close()


def test_given_plain_text_to_the_tls_port_then_store_unavailable(
    tls_redis: SecuredRedisServer,
) -> None:
    # The server has no plain-text port at all (--port 0): TLS is not optional.
    client = create_redis_client(url_with(tls_redis, scheme="redis"))
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            redis_repository(client).save(CONNECTION, 600)
        assert_secret_free(raised.value)
    finally:
        client.close()


@pytest.mark.parametrize(
    "password", ["wrong-" + secrets.token_hex(8), None], ids=["wrong_password", "no_password"]
)
def test_given_a_bad_password_then_store_unavailable_and_the_password_nowhere(
    tls_redis: SecuredRedisServer, pki: TlsFiles, password: str | None
) -> None:
    client = create_redis_client(url_with(tls_redis, password=password, ca=pki.ca_cert))
    try:
        with capture_all_output() as output, pytest.raises(StoreUnavailableError) as raised:
            redis_repository(client).save(CONNECTION, 600)
        assert_secret_free(raised.value)
        assert isinstance(raised.value.__cause__, redis.exceptions.AuthenticationError)
        assert PASSWORD not in output.text()
    finally:
        client.close()


def test_given_a_ca_that_did_not_issue_the_certificate_then_store_unavailable(
    tls_redis: SecuredRedisServer, tmp_path: Path
) -> None:
    stranger = TlsFiles(tmp_path / "other-ca", hosts=("127.0.0.1",))
    client = create_redis_client(url_with(tls_redis, ca=stranger.ca_cert))
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            redis_repository(client).get(CONNECTION_ID)
        assert_secret_free(raised.value)
        assert "CERTIFICATE_VERIFY_FAILED" in "".join(traceback.format_exception(raised.value))
    finally:
        client.close()


def test_given_a_certificate_for_another_host_then_store_unavailable(tmp_path: Path) -> None:
    elsewhere = TlsFiles(tmp_path / "pki", hosts=("redis.internal.example",))
    with running_secured_redis(
        tmp_path / "redis", port=free_port(), password=PASSWORD, tls=elsewhere
    ) as server:
        client = create_redis_client(server.url)
        try:
            with pytest.raises(StoreUnavailableError) as raised:
                redis_repository(client).get(CONNECTION_ID)
            assert_secret_free(raised.value)
            assert "CERTIFICATE_VERIFY_FAILED" in "".join(traceback.format_exception(raised.value))
        finally:
            client.close()


def test_given_redis_url_with_rediss_and_the_ca_in_the_environment_then_the_container_uses_tls(
    tls_redis: SecuredRedisServer,
) -> None:
    # The configuration path: REDIS_URL alone carries scheme, password and CA file.
    settings = Settings.from_environ(
        {
            "REDIS_URL": tls_redis.url,
            "COGNITO_REGION": "us-east-1",
            "COGNITO_USER_POOL_ID": "us-east-1_TimelineWs",
            "COGNITO_APP_CLIENT_IDS": TEST_CLIENT_ID,
        }
    )
    container = Container(settings=settings)
    repository = container.connection_repository()
    try:
        repository.save(CONNECTION, 600)
        assert repository.get(CONNECTION_ID) == CONNECTION
        repository.delete(CONNECTION_ID)
    finally:
        container.redis_client().close()


def test_given_the_handlers_on_tls_redis_then_a_valid_token_connects_and_is_stored(
    tls_redis: SecuredRedisServer,
) -> None:
    key = shared_key_pair("test-kid-1")
    clock = FixedClock(TEST_NOW)
    client = create_redis_client(tls_redis.url)
    verifier = cognito_verifier(StaticJwksFetcher(jwks_document(key)), clock)
    try:
        with wired_handlers(verifier=verifier, redis_client=client, clock=clock) as app:
            event = connect_event(mint_access_token(key, now=TEST_NOW))
            assert app.connect_handler(event, None)["statusCode"] == 200
        assert client.ttl(f"ws:connection:{CONNECTION_ID}") == 600
    finally:
        client.delete(f"ws:connection:{CONNECTION_ID}")
        client.close()


def test_given_the_handlers_on_tls_redis_with_a_wrong_password_then_503_and_no_password_logged(
    tls_redis: SecuredRedisServer, pki: TlsFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    key = shared_key_pair("test-kid-1")
    clock = FixedClock(TEST_NOW)
    client = create_redis_client(url_with(tls_redis, password="not-" + PASSWORD, ca=pki.ca_cert))
    verifier = cognito_verifier(StaticJwksFetcher(jwks_document(key)), clock)
    try:
        with (
            capture_all_output() as output,
            wired_handlers(verifier=verifier, redis_client=client, clock=clock) as app,
        ):
            event = connect_event(mint_access_token(key, now=TEST_NOW))
            response = app.connect_handler(event, None)
        assert response["statusCode"] == 503
        printed = capsys.readouterr()
        text = output.text(printed.out, printed.err)
        assert "store_unavailable" in text, "the capture saw the handler's log line"
        assert PASSWORD not in text
        assert urllib.parse.quote(PASSWORD, safe="") not in text
    finally:
        client.close()


@pytest.mark.parametrize("cluster", [False, True], ids=["single_node", "cluster"])
def test_given_an_unreachable_redis_then_neither_the_client_nor_the_error_shows_the_password(
    cluster: bool,
) -> None:
    # Port 1 on loopback: nothing listens there.
    url = f"redis://user:{urllib.parse.quote(PASSWORD, safe='')}@127.0.0.1:1/0"
    with pytest.raises(StoreUnavailableError) as raised:
        client = create_redis_client(url, cluster=cluster)
        try:
            assert PASSWORD not in repr(client)
            redis_repository(client).get(CONNECTION_ID)
        finally:
            client.close()
    assert_secret_free(raised.value)
