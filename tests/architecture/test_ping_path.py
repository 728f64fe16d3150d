"""How deep a ping goes: frames of our code from the Lambda handler to its Redis call.

A reader follows a ping through these frames; the layout keeps them few (issue "The edges as
clear as the core": at most 8, with or without the DynamoDB failover). Measured on a real
ping against a real redis-server: the stack at redis-py's ``execute_command``.
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client

from tests.support.app import make_container, make_settings

PROJECT_ROOT = Path(__file__).resolve().parents[2]
EVENTS = PROJECT_ROOT / "tests" / "events"
MAX_FRAMES = 8


def frames_to_redis(monkeypatch: pytest.MonkeyPatch, redis_url: str, **variables: str) -> list[str]:
    """``file:function`` of our frames, from the ``$default`` handler to the ping's Redis call."""
    handler = make_container(make_settings(REDIS_URL=redis_url, **variables)).default_handler()
    event = json.loads((EVENTS / "message_ping.json").read_text())
    connection_id = event["requestContext"]["connectionId"]
    record = {"connectionId": connection_id, "userId": "u", "connectedAt": "2026-01-03T00:00:00Z"}
    redis.Redis.from_url(redis_url).set(
        f"ws:connection:{connection_id}", json.dumps(record), ex=600
    )
    stacks: list[traceback.StackSummary] = []
    execute = redis.client.Redis.execute_command

    def spy(self: Any, *args: Any, **options: Any) -> Any:
        stacks.append(traceback.extract_stack())
        return execute(self, *args, **options)

    monkeypatch.setattr(redis.client.Redis, "execute_command", spy)
    response = handler(event, None)
    assert json.loads(response["body"])["action"] == "pong"
    ours = [
        f"{Path(frame.filename).relative_to(PROJECT_ROOT)}:{frame.name}"
        for frame in stacks[0]
        if frame.filename.startswith(str(PROJECT_ROOT))
        and "/.venv/" not in frame.filename
        and "/tests/" not in frame.filename
    ]
    return ours


def assert_each_module_entered_once(frames: list[str]) -> None:
    """On its way down a ping enters each module once: no module is left and entered again."""
    modules = [frame.partition(":")[0] for frame in frames]
    entered = [module for i, module in enumerate(modules) if i == 0 or modules[i - 1] != module]
    assert len(entered) == len(set(entered)), frames


def test_a_ping_reaches_redis_in_at_most_8_frames_of_our_code(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    frames = frames_to_redis(monkeypatch, redis_url)
    assert frames[0] == "entrypoints/edge/invocation.py:__call__"
    assert frames[-1] == "adapters/connection_store/redis_scripts.py:refresh"
    assert len(frames) <= MAX_FRAMES, frames
    assert_each_module_entered_once(frames)


def test_with_the_dynamodb_failover_a_ping_still_reaches_redis_in_at_most_8_frames(
    monkeypatch: pytest.MonkeyPatch, redis_url: str
) -> None:
    frames = frames_to_redis(
        monkeypatch,
        redis_url,
        CONNECTIONS_TABLE="connections",
        AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:9",  # never called: Redis answers
    )
    assert "adapters/connection_store/failover.py:refresh" in frames
    assert frames[-1] == "adapters/connection_store/redis_scripts.py:refresh"
    assert len(frames) <= MAX_FRAMES, frames
    assert_each_module_entered_once(frames)
