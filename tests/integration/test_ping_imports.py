"""What a ping costs at a cold start: no boto3 on a healthy ping, nor on a bad message.

Each case is a fresh interpreter (as a new Lambda environment) that imports the handlers
module, serves one ``$default`` event against a real ``redis-server`` and reports which
modules it imported. The control case, a ping whose record has expired, must import boto3
(it closes the connection through the Management API), so the check can fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.management_api_stub import ManagementApiStub, running_management_api_stub

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS = PROJECT_ROOT / "tests" / "events"
CONNECTION_ID = "L0SM9cOFvHcCIhw="

CHILD = """
import json, sys
from entrypoints.aws_lambda import handlers
event = json.loads(sys.argv[1])
response = handlers.default_handler(event, None)
print(json.dumps({
    "response": response,
    "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("boto3", "botocore")),
}))
"""


@pytest.fixture
def stub() -> Iterator[ManagementApiStub]:
    with running_management_api_stub() as running:
        yield running


def serve_once(body: str, redis_url: str, endpoint: str) -> dict[str, object]:
    event = json.loads((EVENTS / "message_ping.json").read_text())
    event["body"] = body
    environ = {
        "PATH": os.environ.get("PATH", ""),
        "COGNITO_REGION": "us-east-1",
        "COGNITO_USER_POOL_ID": "us-east-1_TestPool1",
        "COGNITO_APP_CLIENT_IDS": "testappclient00000000000001",
        "REDIS_URL": redis_url,
        "MANAGEMENT_API_ENDPOINT": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    completed = subprocess.run(
        [sys.executable, "-I", "-c", CHILD, json.dumps(event)],
        capture_output=True,
        text=True,
        env=environ,
        cwd=PROJECT_ROOT,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(completed.stdout.splitlines()[-1])
    return result


# Powertools' package __init__ imports the bare ``botocore`` package (for its user-agent hook):
# 0.8 ms, no client, no boto3. Anything beyond it is the SDK itself.
POWERTOOLS_ONLY = ["botocore"]


def test_given_a_healthy_ping_in_a_fresh_interpreter_then_no_boto3_or_botocore_client_code_is_imported(
    redis_url: str, stub: ManagementApiStub
) -> None:
    record = {"connectionId": CONNECTION_ID, "userId": "u", "connectedAt": "2026-01-03T00:00:00Z"}
    redis.Redis.from_url(redis_url).set(
        f"ws:connection:{CONNECTION_ID}", json.dumps(record), ex=600
    )

    result = serve_once('{"action":"ping","id":"1"}', redis_url, stub.endpoint)

    response = result["response"]
    assert isinstance(response, dict)
    assert json.loads(response["body"])["action"] == "pong"
    assert result["modules"] == POWERTOOLS_ONLY
    assert stub.requests == []


def test_given_a_bad_message_in_a_fresh_interpreter_then_no_boto3_is_imported(
    redis_url: str, stub: ManagementApiStub
) -> None:
    result = serve_once("not json", redis_url, stub.endpoint)

    response = result["response"]
    assert isinstance(response, dict)
    assert json.loads(response["body"])["code"] == "bad_request"
    assert result["modules"] == POWERTOOLS_ONLY


def test_control_a_ping_whose_record_expired_imports_boto3_to_close_the_connection(
    redis_url: str, stub: ManagementApiStub
) -> None:
    result = serve_once('{"action":"ping"}', redis_url, stub.endpoint)

    assert result["response"] == {"statusCode": 200}
    modules = result["modules"]
    assert isinstance(modules, list)
    assert "boto3" in modules and "botocore.client" in modules
    assert [request.method for request in stub.requests] == ["POST", "DELETE"]
