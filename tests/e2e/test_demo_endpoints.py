"""The demo page's development endpoints on ``serve``: there with the Cognito stand-in only.

With the stand-in: ``GET /`` is the page (saying it is a development page), the module is
served, ``POST /dev/token`` mints a token the gateway accepts, ``/dev/handshake-status``
reports the real handshake status, ``/dev/connections/{id}/drop`` deletes through
``@connections``. With a real user pool none of them exists.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from entrypoints.local_gateway.emulator.server import GatewaySettings
from entrypoints.local_gateway.wiring import prepare_gateway
from tests.support.gateway import BackgroundGateway, RestartableGateway
from tests.support.http import wait_for_health
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_REGION,
    TEST_USER_POOL_ID,
    jwks_document,
    shared_key_pair,
)


@pytest.fixture
def demo(redis_url: str, tmp_path: Path) -> Iterator[RestartableGateway]:
    gateway = RestartableGateway(state_dir=tmp_path / "state", redis_url=redis_url).start()
    try:
        yield gateway
    finally:
        gateway.stop()


def request(method: str, url: str, body: Any = None) -> tuple[int, str, str]:
    """``(status, content type, text)`` of one HTTP request to the gateway."""
    data = (
        None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    )
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, data=data, method=method), timeout=10
        ) as reply:
            return reply.status, reply.headers.get("Content-Type", ""), reply.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read().decode()


def test_given_the_stand_in_then_the_page_and_the_module_are_served(
    demo: RestartableGateway,
) -> None:
    status, content_type, page = request("GET", demo.base_url + "/")
    assert (status, content_type.split(";")[0]) == (200, "text/html")
    assert "Development page" in page and "/client/timeline-ws.js" in page
    status, content_type, module = request("GET", demo.base_url + "/client/timeline-ws.js")
    assert (status, content_type.split(";")[0]) == (200, "text/javascript")
    assert "export function connect" in module
    # Other paths get what API Gateway answers for a path it does not serve
    assert request("GET", demo.base_url + "/nothing")[0] == 403


def test_given_the_stand_in_then_dev_tokens_pass_the_handshake_and_bad_ones_get_their_status(
    demo: RestartableGateway,
) -> None:
    status, _, body = request(
        "POST", demo.base_url + "/dev/token", {"sub": "demo-a", "expiresIn": 60}
    )
    assert status == 200
    token = json.loads(body)["token"]
    assert (
        request("POST", demo.base_url + "/dev/handshake-status", {"token": token})[2]
        == '{"status": 101}'
    )
    assert (
        request("POST", demo.base_url + "/dev/handshake-status", {"token": "forged"})[2]
        == '{"status": 401}'
    )
    # An empty body mints for the demo user
    assert request("POST", demo.base_url + "/dev/token", b"")[0] == 200
    for bad in ({"sub": ""}, {"expiresIn": 0}, {"expiresIn": True}, [1], b"not json"):
        assert request("POST", demo.base_url + "/dev/token", bad)[0] == 400
    assert request("POST", demo.base_url + "/dev/handshake-status", {"token": 1})[0] == 400


def test_given_the_stand_in_then_drop_deletes_through_the_management_api(
    demo: RestartableGateway,
) -> None:
    # A connection that does not exist: the DELETE's own answer, 410 GoneException
    status, _, body = request("POST", demo.base_url + "/dev/connections/bm90LWhlcmUAAAA%3D/drop")
    assert (status, json.loads(body)) == (200, {"status": 410})


def test_given_a_real_user_pool_then_no_demo_endpoint_exists(
    tmp_path: Path, redis_url: str
) -> None:
    environ = dict(os.environ)
    environ.update(
        COGNITO_REGION=TEST_REGION,
        COGNITO_USER_POOL_ID=TEST_USER_POOL_ID,
        COGNITO_APP_CLIENT_IDS=TEST_CLIENT_ID,
        COGNITO_JWKS=json.dumps(jwks_document(shared_key_pair("demo-real-pool"))),
    )
    prepared = prepare_gateway(
        host="127.0.0.1",
        port=0,
        settings=GatewaySettings(),
        redis_url=redis_url,
        state_dir=tmp_path,
        environ=environ,
    )
    background = BackgroundGateway(prepared.app, prepared.sock)
    background.start()
    try:
        wait_for_health(prepared.base_url)
        for method, path in (
            ("GET", "/"),
            ("GET", "/client/timeline-ws.js"),
            ("POST", "/dev/token"),
            ("POST", "/dev/handshake-status"),
            ("POST", "/dev/connections/abc/drop"),
        ):
            status, _, body = request(method, prepared.base_url + path, b"{}")
            assert status in {403, 404}, (path, status)
            assert "Development page" not in body and "token" not in body
    finally:
        background.stop()
