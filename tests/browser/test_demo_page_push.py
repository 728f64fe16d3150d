"""The demo page shows what is pushed to it: a push through the gateway's Lambda Invoke
emulation (real boto3) reaches the page's user in Chromium.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from entrypoints.local_gateway.emulator.server import GatewaySettings
from entrypoints.local_gateway.wiring import PreparedGateway, prepare_gateway
from tests.support.gateway import BackgroundGateway
from tests.support.http import wait_for_health

pytestmark = pytest.mark.slow
TIMEOUT_MS = 20_000


@pytest.fixture
def served(redis_url: str, tmp_path: Path) -> Iterator[PreparedGateway]:
    prepared = prepare_gateway(
        host="127.0.0.1",
        port=0,
        settings=GatewaySettings(),
        redis_url=redis_url,
        state_dir=tmp_path / "state",
        environ={k: v for k, v in os.environ.items() if not k.startswith("COGNITO_")},
    )
    background = BackgroundGateway(prepared.app, prepared.sock)
    background.start()
    try:
        wait_for_health(prepared.base_url)
        yield prepared
    finally:
        background.stop()


def test_given_the_demo_page_when_its_user_is_pushed_to_then_the_page_shows_the_message(
    page: Any, served: PreparedGateway, artifacts: Path
) -> None:
    page.goto(f"{served.base_url}/")
    page.wait_for_function(
        "window.demoEvents && window.demoEvents.some(e => e.type === 'open')", timeout=TIMEOUT_MS
    )
    user = page.text_content("#user-id")
    assert user == "demo-user"
    assert (
        page.text_content("#push-hint")
        == 'timeline-ws push --user demo-user \'{"hello": "world"}\''
    )

    response = boto3.client(
        "lambda",
        endpoint_url=served.base_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    ).invoke(
        FunctionName="push",
        Payload=json.dumps({"userIds": [user], "message": {"post": "hello from a push"}}),
    )
    assert json.loads(response["Payload"].read())["delivered"] == 1

    page.wait_for_function(
        "document.querySelectorAll('#pushed li').length === 1", timeout=TIMEOUT_MS
    )
    assert page.text_content("#pushed li").endswith('{"post":"hello from a push"}')
    page.screenshot(path=str(artifacts / "demo-page-push.png"), full_page=True)
