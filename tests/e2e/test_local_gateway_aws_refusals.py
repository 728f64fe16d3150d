"""The local gateway refuses what AWS refuses (issue 22), tried with real clients.

boto3's ``apigatewaymanagementapi`` client with good and bad credentials, raw requests signed
by botocore's signer, the ``websockets`` client and a bare RFC 6455 client that sees frames.
Every refusal is AWS's status and error type, changes nothing (no record, no frame) and is
one log line saying why, without the signature.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import boto3
import pytest
import redis
from botocore.exceptions import ClientError
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from entrypoints.local_gateway.emulator.server import GatewaySettings, Integration
from tests.e2e.conftest import RunningGateway
from tests.e2e.test_local_gateway_protocol import Recorder, closed, run
from tests.support.http import wait_until
from tests.support.raw_websocket import CONTINUATION, TEXT, RawWebSocket
from tests.support.sigv4 import signed_request

RECEIVE_TIMEOUT_SECONDS = 10.0
RELEASE_TIMEOUT_SECONDS = 10.0
KB = 1024
SIGNATURE = re.compile(r"[0-9a-f]{64}")


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The gateway's WARNING lines (each refusal is one)."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name.startswith("timeline_ws.gateway") and record.levelno == logging.WARNING
    ]


def redis_state(client: redis.Redis) -> dict[str, str]:
    return {
        key: str(client.get(key)) for key in client.scan_iter("*") if client.type(key) == "string"
    }


def two_way(recorder: Recorder) -> dict[str, Any]:
    """The recorder's handlers with ``$default`` two-way: its ``body`` goes back to the client."""
    return {**recorder.handlers, "$default": Integration(handler=recorder.default, two_way=True)}


def echo(event: dict[str, Any]) -> Any:
    return {"statusCode": 200, "body": f"echo:{event['body']}"}


# -- @connections: stage and SigV4 ---------------------------------------------------------------


def test_given_bad_credentials_when_boto3_calls_connections_then_aws_refuses_and_nothing_changes(
    gateway: Callable[..., RunningGateway],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = gateway()
    ten_minutes_ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        minutes=10
    )
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"secret_access_key": "not-the-secret"}, "InvalidSignatureException", "does not match"),
        ({"access_key_id": "AKIDUNKNOWN"}, "UnrecognizedClientException", "security token"),
        ({"region": "eu-west-1"}, "InvalidSignatureException", "not 'eu-west-1'"),
        ({"stage": "prod"}, "ForbiddenException", "Forbidden"),
        ({}, "InvalidSignatureException", "Signature expired"),  # signed ten minutes ago
    ]

    async def scenario() -> tuple[list[tuple[str, int, str]], Any, dict[str, str], dict[str, str]]:
        async with connect(running.url(running.token())) as ws:
            await ws.send('{"action":"ping","id":"1"}')
            connection_id = json.loads(await ws.recv())["connectionId"]
            before = redis_state(redis_client)
            seen = []
            for replaced, _, _ in cases:
                client = running.management(**replaced)
                expired = replaced == {}
                for call in (client.post_to_connection, client.delete_connection):
                    kwargs = {"ConnectionId": connection_id}
                    if call == client.post_to_connection:
                        kwargs["Data"] = b"must not arrive"
                    with (
                        mock.patch(
                            "botocore.auth.get_current_datetime", return_value=ten_minutes_ago
                        )
                        if expired
                        else contextlib.nullcontext()
                    ):
                        try:
                            await asyncio.to_thread(call, **kwargs)
                        except ClientError as error:
                            seen.append(
                                (
                                    error.response["Error"]["Code"],
                                    error.response["ResponseMetadata"]["HTTPStatusCode"],
                                    error.response["Error"]["Message"],
                                )
                            )
            # Nothing was sent and nothing closed: the first frame is the one a good call posts
            await asyncio.to_thread(
                running.management().post_to_connection,
                ConnectionId=connection_id,
                Data=b"marker",
            )
            first = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            return seen, first, before, redis_state(redis_client)

    seen, first, before, after = run(scenario())
    expected = [(code, 403) for _, code, _ in cases for _ in range(2)]
    assert [(code, status) for code, status, _ in seen] == expected
    for (_, code, fragment), index in zip(cases, range(0, len(seen), 2), strict=True):
        assert fragment in seen[index][2], (code, seen[index][2])
    assert first == "marker"
    assert after == before, "no record was touched"
    # A wrong stage is no @connections call: its line names the method and the path asked
    lines = [
        line
        for line in refusals(caplog)
        if line.startswith(("@connections", "POST /prod/", "DELETE /prod/"))
    ]
    assert len(lines) == len(expected)
    assert all("status=403 refused" in line for line in lines)
    assert any(
        line.startswith("POST /prod/@connections/") and "refused ForbiddenException" in line
        for line in lines
    )
    assert any("unknown access key id 'AKIDUNKNOWN'" in line for line in lines)
    assert any("Signature expired" in line for line in lines)
    served = [r.getMessage() for r in caplog.records if r.name.startswith("timeline_ws")]
    assert not any(SIGNATURE.search(line) or "Signature=" in line for line in served), (
        "the gateway logs no signature (botocore's own client-side DEBUG lines do)"
    )


def test_given_a_stage_less_endpoint_when_boto3_posts_then_403_forbidden(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    # The README used to show endpoint_url without the stage; AWS answers that 403
    running = stub_gateway(Recorder().handlers)
    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=running.base_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    with pytest.raises(ClientError) as refused:
        client.post_to_connection(ConnectionId="AAAAAAAAAAAAAAA=", Data=b"x")
    assert refused.value.response["Error"]["Code"] == "ForbiddenException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_given_deny_manage_connections_then_signed_calls_get_access_denied_and_unsigned_stay_forbidden(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    recorder.default_hook = echo
    running = stub_gateway(two_way(recorder), GatewaySettings(deny_manage_connections=True))
    management = running.management()

    async def scenario() -> tuple[ClientError, tuple[int, dict[str, str], bytes], Any]:
        async with connect(running.url("t")) as ws:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            with pytest.raises(ClientError) as denied:
                await asyncio.to_thread(
                    management.post_to_connection, ConnectionId=connection_id, Data=b"x"
                )
            url = f"{running.base_url}/local/@connections/{connection_id.replace('=', '%3D')}"
            unsigned = await asyncio.to_thread(signed_request, url, "DELETE", signed=False)
            await ws.send("after")
            return (
                denied.value,
                unsigned,
                await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS),
            )

    denied, unsigned, first = run(scenario())
    assert denied.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert (
        "is not authorized to perform: execute-api:ManageConnections"
        in (denied.response["Error"]["Message"])
    )
    assert (unsigned[0], unsigned[1]["x-amzn-ErrorType"]) == (403, "ForbiddenException")
    assert first == "echo:after", "no frame was posted and the socket stayed open"
    assert any("AccessDeniedException" in line for line in refusals(caplog))


def test_given_a_malformed_connection_id_when_boto3_posts_then_400_bad_request(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    management = stub_gateway(Recorder().handlers).management()
    with pytest.raises(ClientError) as refused:
        management.post_to_connection(ConnectionId="not-an-id", Data=b"x")
    assert refused.value.response["Error"]["Code"] == "BadRequestException"
    assert refused.value.response["Error"]["Message"] == "Invalid connectionId"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    # A well-formed unknown id: 410, whose empty body boto3 still reads as GoneException
    with pytest.raises(management.exceptions.GoneException):
        management.get_connection(ConnectionId="AAAAAAAAAAAAAAA=")


def test_a_request_signed_by_botocore_at_a_fixed_time_is_judged_by_its_date(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    running = stub_gateway(Recorder().handlers)
    url = f"{running.base_url}/local/@connections/AAAAAAAAAAAAAAA%3D"
    now = datetime.datetime.now(datetime.UTC)
    assert signed_request(url, signed_at=now - datetime.timedelta(minutes=4))[0] == 410
    status, headers, body = signed_request(url, signed_at=now - datetime.timedelta(minutes=6))
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")
    assert json.loads(body)["message"].startswith("Signature expired: ")
    status, _, body = signed_request(url, signed_at=now + datetime.timedelta(minutes=6))
    assert status == 403 and json.loads(body)["message"].startswith("Signature not yet current")
    status, headers, _ = signed_request(url, service="lambda")
    assert (status, headers["x-amzn-ErrorType"]) == (403, "InvalidSignatureException")


# -- frames ----------------------------------------------------------------------------------------


def test_a_single_client_frame_over_32_kb_closes_with_1009_and_invokes_nothing(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> int | None:
        async with connect(running.url("t"), max_size=None) as ws:
            await ws.send("x" * (40 * KB))  # one frame
            return await closed(ws)

    assert run(scenario()) == 1009
    context = recorder.disconnected()["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        1009,
        "Message too big",
    )
    assert recorder.of_type("MESSAGE") == []
    assert any("sent a frame over 32768 bytes" in line for line in refusals(caplog))


def test_a_fragmented_message_of_100_kb_in_32_kb_frames_is_accepted(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    message = "".join(chr(0x61 + n % 26) for n in range(100 * KB))

    async def scenario() -> int | None:
        async with connect(running.url("t"), max_size=None) as ws:
            await ws.send([message[i : i + 32 * KB] for i in range(0, len(message), 32 * KB)])
            await asyncio.to_thread(
                wait_until, lambda: recorder.of_type("MESSAGE"), 10.0, "the message"
            )
            assert ws.close_code is None
        return ws.close_code

    assert run(scenario()) == 1000
    assert [e["body"] for e in recorder.of_type("MESSAGE")] == [message]


def test_a_128_kb_post_reaches_the_client_in_frames_of_at_most_32_kb(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    payload = bytes(0x41 + n % 26 for n in range(128 * KB))
    raw = RawWebSocket(running.url("t"))
    try:
        connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
        running.management().post_to_connection(ConnectionId=connection_id, Data=payload)
        frames = raw.receive_message()
    finally:
        raw.close()
    assert [f.opcode for f in frames] == [TEXT, CONTINUATION, CONTINUATION, CONTINUATION]
    assert all(len(f.payload) <= 32 * KB for f in frames)
    assert b"".join(f.payload for f in frames) == payload


def test_a_route_response_over_32_kb_reaches_the_client_in_frames_of_at_most_32_kb(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    body = "".join(chr(0x61 + n % 26) for n in range(100 * KB))
    recorder.default_hook = lambda event: {"statusCode": 200, "body": body}
    running = stub_gateway(two_way(recorder))
    raw = RawWebSocket(running.url("t"))
    try:
        raw.send(TEXT, b"big please")
        frames = raw.receive_message()
    finally:
        raw.close()
    assert [f.opcode for f in frames] == [TEXT, CONTINUATION, CONTINUATION, CONTINUATION]
    assert all(len(f.payload) <= 32 * KB for f in frames)
    assert b"".join(f.payload for f in frames).decode() == body


# -- concurrency -----------------------------------------------------------------------------------


def test_a_slow_message_does_not_delay_the_reply_to_a_fast_one_on_the_same_connection(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    fast_answered = threading.Event()

    def hook(event: dict[str, Any]) -> Any:
        if event["body"] == "slow":
            fast_answered.wait(RELEASE_TIMEOUT_SECONDS)  # released once "fast" was answered
        return echo(event)

    recorder.default_hook = hook
    running = stub_gateway(two_way(recorder))

    async def scenario() -> list[Any]:
        async with connect(running.url("t")) as ws:
            await ws.send("slow")
            await ws.send("fast")
            first = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            fast_answered.set()
            second = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            return [first, second]

    assert run(scenario()) == ["echo:fast", "echo:slow"]


# -- throttling ------------------------------------------------------------------------------------


def test_a_handshake_burst_over_the_connect_rate_gets_429_and_stores_nothing(
    gateway: Callable[..., RunningGateway],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # One new connection every 2 s (a bucket of 1): a burst of 12 cannot all pass, however slow
    running = gateway(GatewaySettings(connect_rate=0.5))

    async def attempt(n: int) -> Any:
        try:
            ws = await connect(running.url(running.token(sub=f"burst-{n}")))
        except InvalidStatus as refused:
            return refused.response.status_code
        return ws

    async def scenario() -> tuple[list[Any], float, int]:
        started = time.monotonic()
        outcomes = await asyncio.gather(*(attempt(n) for n in range(12)))
        elapsed = time.monotonic() - started
        stored = len([k for k in redis_client.scan_iter("ws:connection:*")])
        for ws in outcomes:
            if not isinstance(ws, int):
                await ws.close()
        return outcomes, elapsed, stored

    outcomes, elapsed, stored = run(scenario())
    opened = [o for o in outcomes if not isinstance(o, int)]
    refused = [o for o in outcomes if isinstance(o, int)]
    assert set(refused) == {429}
    assert 1 <= len(opened) <= 1 + int(0.5 * elapsed) + 1  # the bucket, what refilled meanwhile
    assert stored == len(opened), "a refused handshake ran no $connect"
    assert sum("handshake refused with 429" in line for line in refusals(caplog)) == len(refused)


def test_the_request_bucket_throttles_messages_and_connections_calls(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    recorder.default_hook = echo
    # A burst of 3 and next to no refill: the 4th request and later are over it
    running = stub_gateway(two_way(recorder), GatewaySettings(request_rate=0.001, request_burst=3))

    async def scenario() -> tuple[list[str], tuple[int, dict[str, str], bytes]]:
        async with connect(running.url("t")) as ws:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            for n in range(5):
                await ws.send(f"m{n}")
            replies = [await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS) for _ in range(5)]
            url = f"{running.base_url}/local/@connections/{connection_id.replace('=', '%3D')}"
            post = await asyncio.to_thread(signed_request, url, "POST", b"x")
            return [str(r) for r in replies], post

    replies, post = run(scenario())
    echoed = sorted(r for r in replies if r.startswith("echo:"))
    throttled = [json.loads(r) for r in replies if not r.startswith("echo:")]
    assert echoed == ["echo:m0", "echo:m1", "echo:m2"]
    assert [t["message"] for t in throttled] == ["Too Many Requests"] * 2
    assert len(recorder.of_type("MESSAGE")) == 3, "a throttled message is not invoked"
    assert (post[0], post[1]["x-amzn-ErrorType"]) == (429, "LimitExceededException")
    assert sum("throttled" in line for line in refusals(caplog)) == 2


# -- $disconnect best-effort -----------------------------------------------------------------------


def test_given_disconnect_loss_1_then_disconnect_is_skipped_logged_and_the_record_left_to_its_ttl(
    gateway: Callable[..., RunningGateway],
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = gateway(GatewaySettings(disconnect_loss=1.0))

    async def scenario() -> str:
        async with connect(running.url(running.token())) as ws:
            await ws.send('{"action":"ping","id":"1"}')
            return str(json.loads(await ws.recv())["connectionId"])

    connection_id = run(scenario())
    wait_until(
        lambda: any(
            f"$disconnect of connectionId={connection_id} skipped" in line
            for line in refusals(caplog)
        ),
        10.0,
        "the skip's log line",
    )
    keys = list(redis_client.scan_iter("ws:connection:*"))
    assert [k.split(":")[-1] for k in keys] == [connection_id]
    assert 0 < redis_client.ttl(keys[0]) <= 600, "left to its TTL"
    assert not any(
        r.name == "timeline_ws.gateway.access" and "route=$disconnect" in r.getMessage()
        for r in caplog.records
    )
