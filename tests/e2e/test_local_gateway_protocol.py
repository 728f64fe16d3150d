"""The gateway's own API Gateway behaviour, pinned down with handlers the tests supply.

A real websockets client and a real boto3 client talk to the in-process gateway; the stub
handlers record every event, so the tests can check event shapes against the fixtures in
``tests/events`` and the order and close codes API Gateway reports.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from entrypoints.local_gateway.emulator.events import ApiIdentity
from entrypoints.local_gateway.emulator.management_api import MAX_CLIENT_BUFFER_BYTES
from entrypoints.local_gateway.emulator.server import (
    GatewaySettings,
    Integration,
    gateway_error_frame,
)
from tests.e2e.conftest import RunningGateway
from tests.support.http import wait_until
from tests.support.sigv4 import signed_request

EVENTS = Path(__file__).parent.parent / "events"
RECEIVE_TIMEOUT_SECONDS = 10.0
RELEASE_TIMEOUT_SECONDS = 10.0


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


class Recorder:
    """Stub handlers: record every event; ``$connect`` answers ``connect_response``."""

    def __init__(self, connect_response: dict[str, Any] | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.connect_response = connect_response or {"statusCode": 200}
        self.lock = threading.Lock()
        self.default_hook: Callable[[dict[str, Any]], Any] | None = None

    def record(self, event: dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)

    def connect(self, event: dict[str, Any], context: Any) -> Any:
        self.record(event)
        return self.connect_response

    def default(self, event: dict[str, Any], context: Any) -> Any:
        self.record(event)
        if self.default_hook is not None:
            return self.default_hook(event)
        return {"statusCode": 200}

    def disconnect(self, event: dict[str, Any], context: Any) -> Any:
        self.record(event)
        return {"statusCode": 200}

    @property
    def handlers(self) -> dict[str, Any]:
        return {"$connect": self.connect, "$default": self.default, "$disconnect": self.disconnect}

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["requestContext"]["eventType"] == event_type]

    def disconnected(self) -> dict[str, Any]:
        found = wait_until(lambda: self.of_type("DISCONNECT"), what="$disconnect")
        assert len(found) == 1
        event: dict[str, Any] = found[0]
        return event


def shape(value: Any) -> Any:
    """Keys and value types, recursively (what must agree with the fixtures)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return type(value).__name__


def fixture(name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return document


async def receive_json(ws: ClientConnection) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(
        await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
    )
    return document


async def rejected_handshake(url: str) -> InvalidStatus:
    """The refusal of a handshake that must fail with an HTTP status."""
    with pytest.raises(InvalidStatus) as rejected:
        async with connect(url):
            pass
    return rejected.value


async def closed(ws: ClientConnection) -> int | None:
    await asyncio.wait_for(ws.wait_closed(), RECEIVE_TIMEOUT_SECONDS)
    return ws.close_code


# -- event shapes -----------------------------------------------------------------------------


def test_events_have_the_keys_and_types_of_the_api_gateway_fixtures(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> None:
        async with connect(running.url("TOKEN_PLACEHOLDER")) as ws:
            await ws.send('{"action":"ping","id":"42"}')
            wait_until(lambda: recorder.of_type("MESSAGE"), what="the MESSAGE event")
        async with connect(running.ws_url):
            pass

    run(scenario())
    wait_until(lambda: len(recorder.of_type("DISCONNECT")) == 2, what="both $disconnect events")
    with_query, without_query = recorder.of_type("CONNECT")
    message = recorder.of_type("MESSAGE")[0]
    disconnect = recorder.of_type("DISCONNECT")[0]
    for built, name in [
        (with_query, "connect"),
        (without_query, "connect_without_query_string"),
        (message, "message_ping"),
        (disconnect, "disconnect"),
    ]:
        expected = fixture(name)
        assert set(built) == set(expected), name
        assert shape(built["requestContext"]) == shape(expected["requestContext"]), name
        for key in set(expected) - {"requestContext", "headers", "multiValueHeaders"}:
            assert shape(built[key]) == shape(expected[key]), (name, key)
        if "headers" in expected:
            assert all(isinstance(v, str) for v in built["headers"].values())
            assert all(isinstance(v, list) for v in built["multiValueHeaders"].values())
    assert set(disconnect["headers"]) == set(fixture("disconnect")["headers"])
    assert with_query["queryStringParameters"] == {"token": "TOKEN_PLACEHOLDER"}
    assert message["body"] == '{"action":"ping","id":"42"}'
    assert message["isBase64Encoded"] is False


def test_connect_event_values_follow_api_gateway(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(
        recorder.handlers, GatewaySettings(api=ApiIdentity(api_id="abcdef1234", stage="dev"))
    )

    async def scenario() -> None:
        async with connect(running.url("a", "token=b&other=%20x"), user_agent_header="agent/2"):
            pass

    run(scenario())
    event = recorder.of_type("CONNECT")[0]
    context = event["requestContext"]
    assert event["queryStringParameters"] == {"token": "b", "other": " x"}  # the last value wins
    assert event["multiValueQueryStringParameters"] == {"token": ["a", "b"], "other": [" x"]}
    assert context["routeKey"] == "$connect"
    assert context["stage"] == "dev" and context["apiId"] == "abcdef1234"
    assert context["identity"] == {"userAgent": "agent/2", "sourceIp": "127.0.0.1"}
    assert context["requestId"] == context["extendedRequestId"]
    assert len(context["connectionId"]) == 16 and context["connectionId"].endswith("=")
    assert context["requestTimeEpoch"] >= context["connectedAt"]
    assert context["domainName"] == running.base_url.removeprefix("http://")
    assert "Connection" not in event["headers"] and "Upgrade" not in event["headers"]
    assert event["headers"]["X-Forwarded-For"] == "127.0.0.1"
    assert event["headers"]["X-Forwarded-Proto"] == "http"
    assert event["headers"]["X-Amzn-Trace-Id"].startswith("Root=1-")
    assert event["isBase64Encoded"] is False
    assert "body" not in event


# -- $connect outcomes ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 403, 429, 503])
def test_given_connect_answers_non_2xx_then_the_handshake_fails_with_that_status(
    stub_gateway: Callable[..., RunningGateway], status: int
) -> None:
    recorder = Recorder({"statusCode": status, "body": "internal detail"})
    running = stub_gateway(recorder.handlers)

    rejected = run(rejected_handshake(running.url("t")))
    assert rejected.response.status_code == status
    assert b"internal detail" not in rejected.response.body
    assert recorder.of_type("DISCONNECT") == []
    assert len(running.background.gateway.registry) == 0


@pytest.mark.parametrize(
    ("behaviour", "status"),
    [("raise", 502), ("garbage", 502), ("boolean_status", 502), ("informational_status", 502)],
)
def test_given_a_broken_connect_handler_then_502_without_details(
    stub_gateway: Callable[..., RunningGateway], behaviour: str, status: int
) -> None:
    def broken(event: dict[str, Any], context: Any) -> Any:
        if behaviour == "raise":
            raise RuntimeError("secret internals")
        if behaviour == "garbage":
            return "not a dict"
        if behaviour == "informational_status":
            return {"statusCode": 101}
        return {"statusCode": True}

    recorder = Recorder()
    running = stub_gateway({**recorder.handlers, "$connect": broken})

    rejected = run(rejected_handshake(running.url("t")))
    assert rejected.response.status_code == status
    assert b"secret" not in rejected.response.body


def test_given_a_connect_handler_slower_than_the_integration_timeout_then_504(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    release = threading.Event()

    def slow(event: dict[str, Any], context: Any) -> Any:
        release.wait(RELEASE_TIMEOUT_SECONDS)
        return {"statusCode": 200}

    recorder = Recorder()
    running = stub_gateway(
        {**recorder.handlers, "$connect": slow}, GatewaySettings(integration_timeout_seconds=0.2)
    )

    try:
        assert run(rejected_handshake(running.url("t"))).response.status_code == 504
    finally:
        release.set()


def test_given_connect_returns_a_subprotocol_then_the_handshake_selects_it(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder({"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "v2"}})
    running = stub_gateway(recorder.handlers)

    async def scenario() -> str | None:
        async with connect(running.url("t"), subprotocols=["v1", "v2"]) as ws:  # type: ignore[list-item]
            return ws.subprotocol

    assert run(scenario()) == "v2"


def test_posting_to_a_connection_before_connect_returns_is_gone(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    outcomes: list[str] = []
    management: list[Any] = []

    def connect_and_post(event: dict[str, Any], context: Any) -> Any:
        client = management[0]
        try:
            client.post_to_connection(
                ConnectionId=event["requestContext"]["connectionId"], Data=b"early"
            )
            outcomes.append("delivered")
        except client.exceptions.GoneException:
            outcomes.append("gone")
        return {"statusCode": 200}

    running = stub_gateway({**recorder.handlers, "$connect": connect_and_post})
    management.append(running.management())

    async def scenario() -> None:
        async with connect(running.url("t")):
            pass

    run(scenario())
    assert outcomes == ["gone"]


def test_given_a_plain_http_get_on_the_websocket_path_then_426(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    running = stub_gateway(Recorder().handlers)
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(running.base_url + "/ws", timeout=5)
    assert refused.value.code == 426


def test_given_shutdown_began_then_new_upgrades_get_503(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    running.background.gateway.shutting_down = True

    async def scenario() -> int:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(running.url("t")):
                pass
        return int(refused.value.response.status_code)

    assert run(scenario()) == 503
    assert recorder.of_type("CONNECT") == []


# -- messages -----------------------------------------------------------------------------------


def test_messages_of_a_connection_are_invoked_concurrently_and_disconnect_comes_last(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    # API Gateway invokes a connection's messages as they come, not one after the other.
    recorder = Recorder()
    others_invoked = threading.Event()

    def hook(event: dict[str, Any]) -> Any:
        if event["body"] == "m0":  # held until the four others were invoked beside it
            others_invoked.wait(RELEASE_TIMEOUT_SECONDS)
        elif len(recorder.of_type("MESSAGE")) == 5:
            others_invoked.set()
        return {"statusCode": 200}

    recorder.default_hook = hook
    running = stub_gateway(recorder.handlers)

    async def scenario() -> None:
        async with connect(running.url("t")) as ws:
            for n in range(5):
                await ws.send(f"m{n}")
            await asyncio.to_thread(others_invoked.wait, RELEASE_TIMEOUT_SECONDS)

    run(scenario())
    recorder.disconnected()
    assert others_invoked.is_set(), "m1..m4 were invoked while m0 was still running"
    kinds = [e["requestContext"]["eventType"] for e in recorder.events]
    bodies = {e.get("body") for e in recorder.of_type("MESSAGE")}
    assert kinds == ["CONNECT", *["MESSAGE"] * 5, "DISCONNECT"]
    assert bodies == {"m0", "m1", "m2", "m3", "m4"}


def test_a_slow_handler_does_not_block_other_connections(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    release = threading.Event()

    def hook(event: dict[str, Any]) -> Any:
        if event["body"] == "slow":
            release.wait(RELEASE_TIMEOUT_SECONDS)
        return {"statusCode": 200}

    recorder.default_hook = hook
    running = stub_gateway(recorder.handlers)

    async def scenario() -> bool:
        async with connect(running.url("a")) as slow_ws, connect(running.url("b")) as fast_ws:
            await slow_ws.send("slow")
            await fast_ws.send("fast")
            await asyncio.to_thread(
                wait_until,
                lambda: any(e.get("body") == "fast" for e in recorder.events),
                5.0,
                "the fast message",
            )
            answered_while_blocked = not release.is_set()
            release.set()
            return answered_while_blocked

    assert run(scenario()) is True


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        ("raise", "Internal server error"),
        ("garbage", "Internal server error"),
        ("slow", "Endpoint request timed out"),
    ],
)
def test_given_a_failing_message_handler_then_api_gateway_tells_the_client_and_the_socket_stays_open(
    stub_gateway: Callable[..., RunningGateway], failure: str, message: str
) -> None:
    recorder = Recorder()
    release = threading.Event()

    def hook(event: dict[str, Any]) -> Any:
        if event["body"] == "ok":
            return {"statusCode": 200}
        if failure == "raise":
            raise RuntimeError("secret internals")
        if failure == "slow":
            release.wait(RELEASE_TIMEOUT_SECONDS)
        return None

    recorder.default_hook = hook
    running = stub_gateway(recorder.handlers, GatewaySettings(integration_timeout_seconds=0.3))

    async def scenario() -> dict[str, Any]:
        async with connect(running.url("t")) as ws:
            await ws.send("boom")
            raw = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            frame: dict[str, Any] = json.loads(raw)
            assert raw == gateway_error_frame(message, frame["connectionId"], frame["requestId"])
            release.set()
            await ws.send("ok")
            wait_until(
                lambda: any(e.get("body") == "ok" for e in recorder.events), what="the next message"
            )
            return frame

    frame = run(scenario())
    connect_event = recorder.of_type("CONNECT")[0]
    assert frame["message"] == message
    assert frame["connectionId"] == connect_event["requestContext"]["connectionId"]
    assert set(frame) == {"message", "connectionId", "requestId"}


def test_route_selection_on_request_body_action(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    echoed: list[str] = []

    def echo(event: dict[str, Any], context: Any) -> Any:
        echoed.append(event["requestContext"]["routeKey"])
        return {"statusCode": 200}

    running = stub_gateway(
        {**recorder.handlers, "echo": echo}, GatewaySettings(route_keys=("$default", "echo"))
    )

    async def scenario() -> None:
        async with connect(running.url("t")) as ws:
            await ws.send('{"action":"echo"}')
            await ws.send('{"action":"other"}')
            await ws.send('{"action":"$connect"}')
            await ws.send("[1,2]")

    run(scenario())
    recorder.disconnected()
    assert echoed == ["echo"]
    assert [e["requestContext"]["routeKey"] for e in recorder.of_type("MESSAGE")] == [
        "$default"
    ] * 3


def test_given_no_default_route_when_nothing_matches_then_forbidden(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()

    def echo(event: dict[str, Any], context: Any) -> Any:
        return {"statusCode": 200}

    handlers = {"$connect": recorder.connect, "$disconnect": recorder.disconnect, "echo": echo}
    running = stub_gateway(handlers, GatewaySettings(route_keys=("echo",)))

    async def scenario() -> dict[str, Any]:
        async with connect(running.url("t")) as ws:
            await ws.send('{"action":"nope"}')
            return await receive_json(ws)

    assert run(scenario())["message"] == "Forbidden"


def test_a_route_without_a_handler_is_a_configuration_error() -> None:
    from entrypoints.local_gateway.emulator.server import Gateway

    with pytest.raises(ValueError, match="echo"):
        Gateway(Recorder().handlers, GatewaySettings(route_keys=("$default", "echo")))


# -- closes and their $disconnect ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("close", "expected"),
    [
        ((4000, "bye"), (4000, "bye")),
        ((1000, ""), (1000, "")),
        ((None, ""), (1005, "Client-side close frame status not set")),
    ],
    ids=["custom_code", "normal", "no_status"],
)
def test_client_closes_are_reported_as_api_gateway_does(
    stub_gateway: Callable[..., RunningGateway],
    close: tuple[int | None, str],
    expected: tuple[int, str],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> None:
        async with connect(running.url("t")) as ws:
            await ws.close(close[0], close[1])  # type: ignore[arg-type]

    run(scenario())
    context = recorder.disconnected()["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == expected


def test_a_client_that_vanishes_is_reported_as_1006(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> None:
        ws = await connect(running.url("t"))
        ws.transport.abort()
        await asyncio.wait_for(ws.wait_closed(), RECEIVE_TIMEOUT_SECONDS)

    run(scenario())
    context = recorder.disconnected()["requestContext"]
    assert context["disconnectStatusCode"] == 1006


def test_maximum_duration_closes_with_1001(stub_gateway: Callable[..., RunningGateway]) -> None:
    recorder = Recorder()
    running = stub_gateway(
        recorder.handlers, GatewaySettings(max_duration_seconds=0.5, idle_timeout_seconds=60)
    )

    async def scenario() -> int | None:
        async with connect(running.url("t")) as ws:
            await ws.send("keep me busy")
            return await closed(ws)

    assert run(scenario()) == 1001
    context = recorder.disconnected()["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (1001, "Going away")


def test_messages_reset_the_idle_timer(stub_gateway: Callable[..., RunningGateway]) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers, GatewaySettings(idle_timeout_seconds=1.5))

    async def scenario() -> tuple[bool, int | None]:
        async with connect(running.url("t")) as ws:
            for _ in range(40):  # 2 s of traffic, a message every 0.05 s: never 1.5 s idle
                await ws.send("tick")
                await asyncio.sleep(0.05)  # the client's pace, not a synchronisation
            still_open = ws.close_code is None
            return still_open, await closed(ws)

    still_open, code = run(scenario())
    assert still_open
    assert code == 1001  # then the silence closes it


def test_binary_frames_close_with_1003_as_api_gateway_does(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> int | None:
        async with connect(running.url("t")) as ws:
            await ws.send(b"\x00\x01binary")
            return await closed(ws)

    assert run(scenario()) == 1003
    assert recorder.of_type("MESSAGE") == []
    assert recorder.disconnected()["requestContext"]["disconnectStatusCode"] == 1003


def test_binary_frames_are_delivered_base64_when_configured(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers, GatewaySettings(binary_frames="base64"))

    async def scenario() -> None:
        async with connect(running.url("t")) as ws:
            await ws.send(b'{"action":"ping"}')
            wait_until(lambda: recorder.of_type("MESSAGE"), what="the MESSAGE event")

    run(scenario())
    event = recorder.of_type("MESSAGE")[0]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b'{"action":"ping"}'
    assert event["requestContext"]["routeKey"] == "$default"


def test_shutdown_closes_every_socket_with_1001_and_runs_disconnect(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> list[int | None]:
        sockets = [await connect(running.url("t")) for _ in range(4)]
        await asyncio.to_thread(running.stop)
        return [await closed(ws) for ws in sockets]

    assert run(scenario()) == [1001] * 4
    reports = {
        (e["requestContext"]["disconnectStatusCode"], e["requestContext"]["disconnectReason"])
        for e in recorder.of_type("DISCONNECT")
    }
    assert len(recorder.of_type("DISCONNECT")) == 4
    assert reports == {(1001, "Going away")}


# -- @connections ---------------------------------------------------------------------------------


def _request(
    url: str, method: str = "GET", data: bytes | None = None, signed: bool = True
) -> tuple[int, dict[str, str], bytes]:
    """A raw request, SigV4-signed with the gateway's default credentials unless ``signed`` is false."""
    return signed_request(url, method, data, signed=signed)


def test_connections_paths_take_the_stage_and_an_encoded_at_sign(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)

    async def scenario() -> list[int]:
        async with connect(running.url("t")):
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            encoded = urllib.parse.quote(connection_id, safe="")
            urls = [
                f"{running.base_url}/local/@connections/{encoded}",
                f"{running.base_url}/local/%40connections/{encoded}",
                f"{running.base_url}/@connections/{encoded}",  # no stage: AWS answers 403
                f"{running.base_url}/%40connections/{encoded}",
                f"{running.base_url}/other/@connections/{encoded}",  # another stage: 403
            ]
            return [(await asyncio.to_thread(_request, url))[0] for url in urls]

    assert run(scenario()) == [200, 200, 403, 403, 403]


def test_connections_errors_carry_the_aws_error_type(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    base = running.base_url + "/local"

    status, headers, body = _request(f"{base}/@connections/AAAAAAAAAAAAAAA%3D")
    assert (status, headers["x-amzn-ErrorType"]) == (410, "GoneException")
    assert body == b"", "AWS's 410 has an empty body"
    status, headers, body = _request(f"{base}/@connections/AAAAAAAAAAAAAAA%3D", signed=False)
    assert (status, headers["x-amzn-ErrorType"]) == (403, "ForbiddenException")
    assert json.loads(body) == {"message": "Missing Authentication Token"}
    status, headers, body = _request(f"{running.base_url}/other-stage/@connections/x")
    assert (status, headers["x-amzn-ErrorType"]) == (403, "ForbiddenException")
    assert json.loads(body) == {"message": "Forbidden"}
    assert _request(f"{base}/@connections/")[0] == 403
    status, headers, body = _request(f"{base}/@connections/x")
    assert (status, headers["x-amzn-ErrorType"]) == (400, "BadRequestException")
    assert json.loads(body) == {"message": "Invalid connectionId"}
    assert _request(f"{base}/@connections/AAAAAAAAAAAAAAA%3D", method="PUT", data=b"")[0] == 405
    status, headers, _ = _request(
        f"{base}/@connections/x", method="POST", data=b"x" * (128 * 1024 + 1)
    )
    assert (status, headers["x-amzn-ErrorType"]) == (413, "PayloadTooLargeException")
    assert _request(f"{base}/@connections/AAAAAAAAAAAAAAA%3D", method="DELETE")[0] == 410


def test_boto3_posts_over_128_kb_raise_payload_too_large(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    management = running.management()

    async def scenario() -> ClientError:
        async with connect(running.url("t")):
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            with pytest.raises(management.exceptions.PayloadTooLargeException) as refused:
                await asyncio.to_thread(
                    management.post_to_connection,
                    ConnectionId=connection_id,
                    Data=b"x" * (130 * 1024),
                )
            return refused.value

    assert run(scenario()).response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_a_post_that_is_not_utf8_arrives_as_a_binary_frame(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    management = running.management()

    async def scenario() -> Any:
        async with connect(running.url("t")) as ws:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            await asyncio.to_thread(
                management.post_to_connection, ConnectionId=connection_id, Data=b"\xff\xfe"
            )
            return await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)

    assert run(scenario()) == b"\xff\xfe"


def test_a_large_post_arrives_whole(stub_gateway: Callable[..., RunningGateway]) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    management = running.management()
    payload = "".join(chr(0x41 + n % 26) for n in range(128 * 1024))

    async def scenario() -> Any:
        async with connect(running.url("t")) as ws:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            await asyncio.to_thread(
                management.post_to_connection, ConnectionId=connection_id, Data=payload.encode()
            )
            return await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)

    assert run(scenario()) == payload


def test_a_client_that_does_not_read_makes_posts_fail_with_limit_exceeded(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers, GatewaySettings(client_send_timeout_seconds=0.3))
    chunk = b"x" * (128 * 1024)

    async def scenario() -> tuple[int, dict[str, str], list[int]]:
        ws = await connect(running.url("t"), max_queue=1, max_size=None)  # never reads
        try:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            encoded = urllib.parse.quote(connection_id, safe="")
            url = f"{running.base_url}/local/@connections/{encoded}"
            for _ in range(400):  # at most 50 MB before the buffers must be full
                status, headers, _ = await asyncio.to_thread(_request, url, "POST", chunk)
                if status != 200:
                    # And it stays full: the gateway buffers at most 1 MiB more, then refuses
                    later = [
                        (await asyncio.to_thread(_request, url, "POST", chunk))[0]
                        for _ in range(20)
                    ]
                    return status, headers, later
            return 200, {}, []
        finally:
            ws.transport.abort()  # a graceful close would wait behind megabytes of frames

    status, headers, later = run(scenario())
    assert status == 429
    assert headers["x-amzn-ErrorType"] == "LimitExceededException"
    assert later.count(200) <= MAX_CLIENT_BUFFER_BYTES // len(chunk) + 1
    assert later[-5:] == [429] * 5


def test_delete_reports_1000_connection_closed_normally(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    management = running.management()

    async def scenario() -> int | None:
        async with connect(running.url("t")) as ws:
            connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
            await asyncio.to_thread(management.delete_connection, ConnectionId=connection_id)
            with pytest.raises(management.exceptions.GoneException):
                await asyncio.to_thread(management.delete_connection, ConnectionId=connection_id)
            return await closed(ws)

    assert run(scenario()) == 1000
    context = recorder.disconnected()["requestContext"]
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (
        1000,
        "Connection Closed Normally",
    )


def test_health_reports_the_open_connections(stub_gateway: Callable[..., RunningGateway]) -> None:
    running = stub_gateway(Recorder().handlers)

    async def scenario() -> dict[str, Any]:
        async with connect(running.url("t")):
            status, _, body = await asyncio.to_thread(_request, f"{running.base_url}/health")
            assert status == 200
            document: dict[str, Any] = json.loads(body)
            return document

    assert run(scenario()) == {"status": "ok", "connections": 1}


# -- logs -------------------------------------------------------------------------------------------


def test_the_access_log_has_one_line_per_event_and_never_the_token_or_query(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    running = stub_gateway(recorder.handlers)
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with connect(running.url("SECRET-TOKEN-VALUE", "extra=QUERY-VALUE")) as ws:
            await ws.send("hello")
            wait_until(lambda: recorder.of_type("MESSAGE"), what="the MESSAGE event")

    run(scenario())

    def access_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "timeline_ws.gateway.access"]

    access = wait_until(
        lambda: len(access_lines()) == 3 and access_lines(), what="three access lines"
    )
    connection_id = recorder.of_type("CONNECT")[0]["requestContext"]["connectionId"]
    assert [line.split()[0] for line in access] == ["connect", "message", "disconnect"]
    assert all(f"connectionId={connection_id}" in line and "status=200" in line for line in access)
    # Every server-side line (the test's own websockets client logs its request line).
    server_lines = [r for r in caplog.records if not r.name.startswith("websockets.client")]
    everything = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text}" for r in server_lines)
    assert "SECRET-TOKEN-VALUE" not in everything
    assert "QUERY-VALUE" not in everything


def test_an_invocation_that_waits_for_a_free_worker_is_logged_with_its_wait(
    stub_gateway: Callable[..., RunningGateway], caplog: pytest.LogCaptureFixture
) -> None:
    # One worker, held by a's message for HOLD_SECONDS (a slow handler, not a sleep to
    # synchronise): b's message waits that long for the worker, a's did not wait at all.
    hold_seconds = 0.6
    recorder = Recorder()
    held = threading.Event()

    def hook(event: dict[str, Any]) -> Any:
        if event["body"] == "hold":
            held.set()
            time.sleep(hold_seconds)  # the slow handler itself
        return {"statusCode": 200}

    recorder.default_hook = hook
    settings = GatewaySettings(workers=1, queue_warning_seconds=0.3)
    running = stub_gateway(recorder.handlers, settings)
    caplog.set_level(logging.INFO)

    async def scenario() -> None:
        async with connect(running.url("a")) as a_ws, connect(running.url("b")) as b_ws:
            await a_ws.send("hold")
            await asyncio.to_thread(held.wait, RELEASE_TIMEOUT_SECONDS)
            await b_ws.send("waits")
            await asyncio.to_thread(
                wait_until,
                lambda: any(e.get("body") == "waits" for e in recorder.events),
                RECEIVE_TIMEOUT_SECONDS,
                "the waiting message",
            )

    run(scenario())
    messages = {e["body"]: e["requestContext"]["connectionId"] for e in recorder.of_type("MESSAGE")}
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.name == "timeline_ws.gateway" and "free worker" in r.getMessage()
    ]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith(f"$default of connectionId={messages['waits']} waited ")
    assert "(all 1 busy;" in warnings[0]
    waited = float(warnings[0].split(" waited ")[1].split()[0])
    assert 0.3 <= waited <= hold_seconds + RECEIVE_TIMEOUT_SECONDS
    access = [r.getMessage() for r in caplog.records if r.name == "timeline_ws.gateway.access"]
    queued_ms = {
        line.split("connectionId=")[1].split()[0]: float(line.split("queued_ms=")[1])
        for line in access
        if line.startswith("message ")
    }
    assert queued_ms[messages["waits"]] >= 300.0
    assert queued_ms[messages["hold"]] < 300.0


# -- two-way routes: the route response ------------------------------------------------------------


def two_way(recorder: Recorder) -> dict[str, Any]:
    """The recorder's handlers with ``$default`` two-way (a route response), as on AWS."""
    return {**recorder.handlers, "$default": Integration(handler=recorder.default, two_way=True)}


@pytest.mark.parametrize(
    ("response", "frame"),
    [
        ({"statusCode": 200, "body": '{"action":"pong"}'}, '{"action":"pong"}'),
        ({"statusCode": 500, "body": "still sent"}, "still sent"),  # statusCode is not a filter
        ({"statusCode": 200}, ""),  # no body: an empty message, as AWS was seen doing
        ({"statusCode": 200, "body": None}, ""),
        ({"statusCode": 200, "body": "x", "isBase64Encoded": True}, "x"),  # text, not decoded
    ],
    ids=["body", "status-500", "no-body", "null-body", "base64-flag-ignored"],
)
def test_given_a_two_way_route_then_the_response_body_is_sent_as_one_text_frame(
    stub_gateway: Callable[..., RunningGateway], response: dict[str, Any], frame: str
) -> None:
    recorder = Recorder()
    recorder.default_hook = lambda event: response
    running = stub_gateway(two_way(recorder))

    async def scenario() -> tuple[str | bytes, str | bytes]:
        async with connect(running.ws_url) as ws:
            await ws.send("first")
            first = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
            await ws.send("second")
            return first, await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)

    assert run(scenario()) == (frame, frame), "one text frame per message, after each invocation"


def test_given_a_one_way_route_then_the_response_body_is_ignored(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    recorder.default_hook = lambda event: {"statusCode": 200, "body": "not for the client"}
    running = stub_gateway(recorder.handlers)

    async def scenario() -> None:
        async with connect(running.ws_url) as ws:
            await ws.send("hello")
            wait_until(lambda: recorder.of_type("MESSAGE"), what="the MESSAGE event")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(ws.recv(), 0.5)  # bounded: nothing may arrive

    run(scenario())


@pytest.mark.parametrize(
    "response",
    [
        {"statusCode": 200, "body": {"action": "pong"}},  # a body that is not a string
        {"statusCode": 200, "body": "x", "Data": "x"},  # a key a proxy response does not have
        "just a string",
    ],
    ids=["dict-body", "unknown-key", "string"],
)
def test_given_a_malformed_proxy_response_on_a_two_way_route_then_the_internal_error_frame(
    stub_gateway: Callable[..., RunningGateway], response: Any
) -> None:
    recorder = Recorder()
    recorder.default_hook = lambda event: response
    running = stub_gateway(two_way(recorder))

    async def scenario() -> dict[str, Any]:
        async with connect(running.ws_url) as ws:
            await ws.send("hello")
            return await receive_json(ws)

    frame = run(scenario())
    assert frame["message"] == "Internal server error"
    assert set(frame) == {"message", "connectionId", "requestId"}


def test_given_a_route_response_over_128_kb_then_nothing_is_sent_and_the_socket_stays_open(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    recorder.default_hook = lambda event: {
        "statusCode": 200,
        "body": "x" * (128 * 1024 + 1) if event["body"] == "big" else "small",
    }
    running = stub_gateway(two_way(recorder))

    async def scenario() -> str | bytes:
        async with connect(running.ws_url) as ws:
            await ws.send("big")
            await ws.send("after")
            return await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)

    assert run(scenario()) == "small", "the oversized response was dropped, the next one arrived"


def test_given_the_connection_closes_during_the_invocation_then_no_route_response_is_sent(
    stub_gateway: Callable[..., RunningGateway],
) -> None:
    recorder = Recorder()
    running = stub_gateway(two_way(recorder))
    management = running.management()

    def close_then_answer(event: dict[str, Any]) -> dict[str, Any]:
        management.delete_connection(ConnectionId=event["requestContext"]["connectionId"])
        return {"statusCode": 200, "body": "too late"}

    recorder.default_hook = close_then_answer

    async def scenario() -> list[str | bytes]:
        received: list[str | bytes] = []
        async with connect(running.ws_url) as ws:
            await ws.send("hello")
            async for frame in ws:
                received.append(frame)
        return received

    assert run(scenario()) == []
