"""An in-process ``serve`` (real handlers) that can be stopped and started again on its port.

The E2E fixtures in ``tests/e2e/conftest.py`` start gateways on a fresh port each; the client
tests need a restart on the *same* port (a client must survive it) and environment overrides
(``CONNECTION_LIMIT_PER_USER=1``). Waits are bounded polls of ``GET /health``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3

from entrypoints.local_gateway.runner import PreparedGateway, prepare_gateway
from entrypoints.local_gateway.server import BackgroundGateway, GatewaySettings
from tests.e2e.conftest import wait_for_health

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
        if self._prepared is not None:
            self._prepared.loaded.restore()
            self._prepared = None

    def token(self, sub: str = "client-user", expires_in_seconds: int = 3600) -> str:
        assert self._prepared is not None and self._prepared.dev_cognito is not None
        return self._prepared.dev_cognito.access_token(
            sub=sub, expires_in_seconds=expires_in_seconds
        )

    def management(self) -> Any:
        """A real boto3 ``apigatewaymanagementapi`` client pointed at this gateway."""
        return boto3.client(
            "apigatewaymanagementapi", endpoint_url=self.base_url, region_name="us-east-1"
        )
