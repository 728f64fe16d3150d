"""Fixtures of the E2E tier: the local gateway served in-process on a free loopback port.

``gateway`` serves the REAL Lambda handlers against the test's real ``redis-server`` and the
development Cognito stand-in (a key in a temporary state folder); ``stub_gateway`` serves
handlers a test supplies, to pin down API Gateway's own behaviour. Both wait for readiness
with a bounded poll of ``GET /health`` and shut down cleanly (1001 to every socket,
``$disconnect`` for each) at teardown.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs
import pytest
import redis

from entrypoints.local_gateway.dev_cognito import DevCognito, load_dev_cognito
from entrypoints.local_gateway.emulator.server import (
    GatewaySettings,
    Handler,
    Integration,
    create_app,
    listening_socket,
)
from entrypoints.local_gateway.wiring import prepare_gateway
from tests.support.gateway import BackgroundGateway, RestartableGateway, management_client
from tests.support.http import wait_for_health

# A JWT (three base64url segments, the first a JSON header) or a token query parameter.
SECRET_SHAPES = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.|token=[^&\s\"']{8,}")
# The test's own WebSocket client logs its request line (with ?token=) at DEBUG: that is the
# browser's side, not the service's, and SECURITY.md says so.
CLIENT_SIDE_LOGGERS = ("websockets.client",)


@pytest.fixture(autouse=True)
def no_secret_in_any_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every E2E test runs with all logs captured at DEBUG; no service line may carry a token.

    Issue 7: "run ... the E2E suite with all log output captured at DEBUG level; no line may
    contain a token ... or the raw query string".
    """
    caplog.set_level(logging.DEBUG)
    yield
    leaks = [
        f"{record.name}: {record.getMessage()[:120]}"
        for record in caplog.get_records("setup") + caplog.get_records("call")
        if not record.name.startswith(CLIENT_SIDE_LOGGERS)
        and SECRET_SHAPES.search(record.getMessage() + (record.exc_text or ""))
    ]
    assert not leaks, f"log lines carrying a token or query string: {leaks}"


@attrs.define
class RunningGateway:
    """A started gateway and how to reach it."""

    background: BackgroundGateway
    base_url: str
    dev_cognito: DevCognito | None = None

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://", 1) + "/ws"

    def url(self, token: str | None = None, query: str | None = None) -> str:
        """The WebSocket URL with ``?token=`` (and/or a raw query string)."""
        parts = [f"token={token}"] if token is not None else []
        if query:
            parts.append(query)
        return self.ws_url + ("?" + "&".join(parts) if parts else "")

    def token(self, sub: str = "e2e-user", expires_in_seconds: int = 3600) -> str:
        assert self.dev_cognito is not None
        return self.dev_cognito.access_token(sub=sub, expires_in_seconds=expires_in_seconds)

    def management(self, **replaced: Any) -> Any:
        """A real boto3 ``apigatewaymanagementapi`` client of this gateway's staged
        ``@connections``, signed as it requires unless ``replaced`` says otherwise (``stage``,
        ``access_key_id``, ``secret_access_key``, ``region``: see :func:`management_client`)."""
        return management_client(self.base_url, self.background.gateway.settings, **replaced)

    def stop(self) -> None:
        self.background.stop()


@pytest.fixture
def stub_gateway() -> Iterator[Callable[..., RunningGateway]]:
    """Start a gateway over the given handlers: ``stub_gateway(handlers, settings=None)``."""
    started: list[RunningGateway] = []

    def start(
        handlers: Mapping[str, Handler | Integration], settings: GatewaySettings | None = None
    ) -> RunningGateway:
        sock = listening_socket("127.0.0.1", 0)
        background = BackgroundGateway(create_app(handlers, settings), sock)
        background.start()
        running = RunningGateway(background, f"http://127.0.0.1:{background.port}")
        started.append(running)
        wait_for_health(running.base_url)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temporary state folder for the development key (never the user's)."""
    return tmp_path_factory.mktemp("timeline-ws-state")


@pytest.fixture(scope="session")
def dev_cognito(state_dir: Path) -> DevCognito:
    """The Cognito stand-in whose key lives in ``state_dir``."""
    return load_dev_cognito(state_dir)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test's (flushed) real Redis."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def gateway(redis_url: str, state_dir: Path) -> Iterator[Callable[..., RunningGateway]]:
    """Start the gateway over the REAL handlers: ``gateway(settings=None, overrides=None)``
    (``overrides``: container providers replaced by name).

    Handlers use the test's real Redis, the stand-in Cognito (JWKS served by the gateway)
    and answer pings with the two-way $default route response.
    """
    started: list[RunningGateway] = []

    def start(
        settings: GatewaySettings | None = None, overrides: Mapping[str, Any] | None = None
    ) -> RunningGateway:
        environ = dict(os.environ)
        for name in (
            "COGNITO_REGION",
            "COGNITO_USER_POOL_ID",
            "COGNITO_APP_CLIENT_IDS",
            "COGNITO_JWKS",
        ):
            environ.pop(name, None)  # the conftest's test pool: use the stand-in instead
        prepared = prepare_gateway(
            host="127.0.0.1",
            port=0,
            settings=settings or GatewaySettings(),
            redis_url=redis_url,
            state_dir=state_dir,
            environ=environ,
            overrides=overrides,
        )
        background = BackgroundGateway(prepared.app, prepared.sock)
        background.start()
        running = RunningGateway(background, prepared.base_url, prepared.dev_cognito)
        started.append(running)
        wait_for_health(running.base_url)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def server(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., RestartableGateway]]:
    """``server(**environ)``: a started gateway; stopped at teardown."""
    started: list[RestartableGateway] = []

    def start(**environ: str) -> RestartableGateway:
        gateway = RestartableGateway(
            state_dir=tmp_path / "state", redis_url=redis_url, environ=environ
        ).start()
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()
