"""The local gateway in-process for tests: served from a thread, and restartable on its port.

:class:`BackgroundGateway` serves an emulator app from a daemon thread with its own event
loop. :class:`RestartableGateway` is ``serve`` (the real handlers) that can be stopped and
started again on the *same* port (a client must survive a restart), with environment
overrides (``CONNECTION_LIMIT_PER_USER=1``). Waits are bounded polls of ``GET /health``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
from aiohttp import web

from entrypoints.local_gateway.emulator.server import (
    GATEWAY_KEY,
    Gateway,
    GatewayRunner,
    GatewaySettings,
)
from entrypoints.local_gateway.wiring import PreparedGateway, prepare_gateway
from tests.support.http import wait_for_health


class BackgroundGateway:
    """The gateway served from a daemon thread with its own event loop (tests, embedding).

    ``start()`` returns once the socket listens; ``stop()`` runs the shutdown sequence (1001
    to every socket, ``$disconnect`` for each) and joins the thread.
    """

    def __init__(self, app: web.Application, sock: socket.socket) -> None:
        self.app = app
        self.sock = sock
        self.port = int(sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="local-gateway", daemon=True
        )
        self._runner: web.AppRunner | None = None

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY_KEY]

    def start(self) -> None:
        """Start serving; raises whatever the site's start raised."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)

    async def _start(self) -> None:
        self._runner = GatewayRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=5
        )
        await self._runner.setup()
        await web.SockSite(self._runner, self.sock).start()

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        """Run a coroutine on the gateway's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=timeout)

    def stop(self) -> None:
        """Shut down (bounded) and join the thread; idempotent."""
        if self._loop.is_closed():
            return
        if self._runner is not None:
            self.run(self._stop(self._runner), timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self.sock.close()

    async def _stop(self, runner: web.AppRunner) -> None:
        # Close the sockets while the listener still serves @connections and the JWKS.
        await self.gateway.shutdown()
        await runner.cleanup()


def management_client(
    base_url: str,
    settings: GatewaySettings,
    *,
    stage: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    region: str | None = None,
) -> Any:
    """A real boto3 ``apigatewaymanagementapi`` client of a gateway's staged ``@connections``.

    By default it signs as the gateway requires (its stage, region and first credentials);
    each argument replaces one of them, to see what a mistaken client gets.
    """
    credentials = settings.credentials[0]
    return boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=f"{base_url}/{stage if stage is not None else settings.api.stage}",
        region_name=region or settings.region,
        aws_access_key_id=access_key_id or credentials.access_key_id,
        aws_secret_access_key=secret_access_key or credentials.secret_access_key,
    )


COGNITO_VARIABLES = (
    "COGNITO_REGION",
    "COGNITO_USER_POOL_ID",
    "COGNITO_APP_CLIENT_IDS",
    "COGNITO_JWKS",
)


class RestartableGateway:
    """``serve`` with the development Cognito stand-in on 127.0.0.1; ``port`` stays the same
    across :meth:`stop` / :meth:`start`."""

    def __init__(
        self,
        *,
        state_dir: Path,
        redis_url: str | None,
        environ: Mapping[str, str] | None = None,
        settings: GatewaySettings | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.redis_url = redis_url
        self.extra_environ = dict(environ or {})
        self.settings = settings or GatewaySettings()
        self.port = 0
        self._prepared: PreparedGateway | None = None
        self._background: BackgroundGateway | None = None

    @property
    def running(self) -> bool:
        return self._background is not None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> RestartableGateway:
        """Start (again, on the same port once one was picked) and wait until healthy."""
        environ = {k: v for k, v in os.environ.items() if k not in COGNITO_VARIABLES}
        environ.update(self.extra_environ)
        prepared = prepare_gateway(
            host="127.0.0.1",
            port=self.port,
            settings=self.settings,
            redis_url=self.redis_url,
            state_dir=self.state_dir,
            environ=environ,
        )
        background = BackgroundGateway(prepared.app, prepared.sock)
        background.start()
        self._prepared, self._background = prepared, background
        self.port = background.port
        wait_for_health(self.base_url)
        return self

    def stop(self) -> None:
        """Shut down like Ctrl-C (1001 to every socket, ``$disconnect`` for each); idempotent."""
        if self._background is not None:
            self._background.stop()
            self._background = None
        self._prepared = None

    def token(self, sub: str = "client-user", expires_in_seconds: int = 3600) -> str:
        assert self._prepared is not None and self._prepared.dev_cognito is not None
        return self._prepared.dev_cognito.access_token(
            sub=sub, expires_in_seconds=expires_in_seconds
        )

    def expired_token(self, sub: str = "client-user", expired_seconds_ago: int = 3600) -> str:
        """A token signed by the pool's key whose ``exp`` passed ``expired_seconds_ago``."""
        assert self._prepared is not None and self._prepared.dev_cognito is not None
        dev = self._prepared.dev_cognito
        issued_at = int(time.time()) - expired_seconds_ago - 3600
        return dev.key.sign(
            dev.access_token_claims(sub=sub, expires_in_seconds=3600, now=issued_at)
        )

    def management(self) -> Any:
        """A real boto3 ``apigatewaymanagementapi`` client of this gateway (see
        :func:`management_client`)."""
        return management_client(self.base_url, self.settings)
