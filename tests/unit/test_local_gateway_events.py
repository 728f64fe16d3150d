"""The local gateway's pure parts: event builders, ids and times, route selection, @connections paths."""

from __future__ import annotations

import base64
import re

import pytest

from entrypoints.local_gateway.emulator.events import (
    ApiIdentity,
    ClientConnection,
    connect_event,
    disconnect_event,
    iso8601_ms,
    message_event,
    new_id,
    request_time,
    select_route,
    trace_id,
)
from entrypoints.local_gateway.emulator.lambda_context import lambda_context
from entrypoints.local_gateway.emulator.management_api import connection_id_from_path

EPOCH_MS = 1_767_398_400_123  # 2026-01-03T00:00:00.123Z
CLIENT = ClientConnection(
    connection_id="L0SM9cOFvHcCIhw=",
    connected_at_ms=EPOCH_MS,
    domain_name="127.0.0.1:8080",
    source_ip="127.0.0.1",
    user_agent=None,
)


def test_ids_have_api_gateways_form() -> None:
    ids = {new_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{15}=", value)
        assert len(base64.urlsafe_b64decode(value)) == 11


def test_request_time_is_apache_style_in_utc_with_english_months() -> None:
    assert request_time(EPOCH_MS) == "03/Jan/2026:00:00:00 +0000"
    assert request_time(1_700_000_000_000) == "14/Nov/2023:22:13:20 +0000"


def test_iso8601_keeps_milliseconds_and_z() -> None:
    assert iso8601_ms(EPOCH_MS) == "2026-01-03T00:00:00.123Z"


def test_trace_id_has_the_x_ray_root_form() -> None:
    assert re.fullmatch(r"Root=1-6958[0-9a-f]{4}-[0-9a-f]{24}", trace_id(EPOCH_MS))


def test_connect_without_a_query_string_has_no_query_keys_and_no_user_agent() -> None:
    event = connect_event(
        api=ApiIdentity(),
        client=CLIENT,
        headers=[("Host", "127.0.0.1:8080")],
        query_string="",
        server_port=8080,
    )
    assert "queryStringParameters" not in event
    assert "multiValueQueryStringParameters" not in event
    assert event["requestContext"]["identity"] == {"sourceIp": "127.0.0.1"}
    assert event["requestContext"]["requestTimeEpoch"] == EPOCH_MS


def test_connect_appends_the_peer_to_an_existing_forwarded_for_chain_and_replaces_the_trace_id() -> (
    None
):
    event = connect_event(
        api=ApiIdentity(),
        client=CLIENT,
        headers=[
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Amzn-Trace-Id", "Root=forged"),
            ("Upgrade", "websocket"),
        ],
        query_string="token=a%2Bb&token=c&flag",
        server_port=9000,
    )
    assert event["headers"]["X-Forwarded-For"] == "198.51.100.7, 127.0.0.1"
    assert event["multiValueHeaders"]["X-Forwarded-For"] == ["198.51.100.7, 127.0.0.1"]
    assert event["headers"]["X-Amzn-Trace-Id"] != "Root=forged"
    assert event["headers"]["X-Forwarded-Port"] == "9000"
    assert "Upgrade" not in event["headers"]
    assert event["queryStringParameters"] == {"token": "c", "flag": ""}
    assert event["multiValueQueryStringParameters"] == {"token": ["a+b", "c"], "flag": [""]}


def test_message_and_disconnect_events() -> None:
    message = message_event(
        api=ApiIdentity(stage="s"), client=CLIENT, route_key="$default", body="x"
    )
    assert set(message) == {"requestContext", "body", "isBase64Encoded"}
    assert message["requestContext"]["eventType"] == "MESSAGE"
    assert message["requestContext"]["messageId"] != message["requestContext"]["requestId"]
    assert message["requestContext"]["stage"] == "s"
    gone = disconnect_event(
        api=ApiIdentity(), client=CLIENT, status_code=1006, reason="", request_epoch_ms=EPOCH_MS
    )
    assert gone["headers"] == {
        "Host": "127.0.0.1:8080",
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    assert gone["requestContext"]["disconnectStatusCode"] == 1006
    assert gone["requestContext"]["requestTime"] == "03/Jan/2026:00:00:00 +0000"
    assert "body" not in gone


@pytest.mark.parametrize(
    ("body", "routes", "expected"),
    [
        ('{"action":"ping"}', ("$default",), "$default"),
        ('{"action":"echo"}', ("$default", "echo"), "echo"),
        ('{"action":"$disconnect"}', ("$default", "$disconnect"), "$default"),
        ('{"action":7}', ("$default", "7"), "$default"),
        ("not json", ("$default", "echo"), "$default"),
        ('["echo"]', ("$default", "echo"), "$default"),
        ('{"action":"nope"}', ("echo",), None),
    ],
)
def test_route_selection_on_request_body_action(
    body: str, routes: tuple[str, ...], expected: str | None
) -> None:
    assert select_route(body, routes) == expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/local/@connections/L0SM9cOFvHcCIhw%3D", "L0SM9cOFvHcCIhw="),
        ("/local/%40connections/L0SM9cOFvHcCIhw%3D", "L0SM9cOFvHcCIhw="),
        ("/local/@connections/L0SM9cOFvHcCIhw=", "L0SM9cOFvHcCIhw="),
        ("/local/%40connections/a%253D", "a%3D"),  # decoded exactly once
        ("/local/@connections/abc?x=1", "abc"),
        ("/@connections/L0SM9cOFvHcCIhw%3D", None),  # only under the stage, as on AWS
        ("/%40connections/L0SM9cOFvHcCIhw%3D", None),
        ("/other/@connections/abc", None),
        ("/local/@connections/", None),
        ("/@connections/", None),
        ("/@connections", None),
        ("/@connections/a/b", None),
        ("/ws", None),
    ],
)
def test_connection_id_from_path(path: str, expected: str | None) -> None:
    assert connection_id_from_path(path, "local") == expected


def test_lambda_context_mirrors_the_runtime() -> None:
    context = lambda_context("timeline-ws-connect", timeout_seconds=29)
    assert context.function_name == "timeline-ws-connect"
    assert context.invoked_function_arn.endswith(":function:timeline-ws-connect")
    assert context.log_group_name == "/aws/lambda/timeline-ws-connect"
    assert re.fullmatch(r"[0-9a-f-]{36}", context.aws_request_id)
    assert 0 < context.get_remaining_time_in_millis() <= 29_000
    assert lambda_context("f", timeout_seconds=0).get_remaining_time_in_millis() == 0


def test_built_events_validate_against_powertools_websocket_parser_models() -> None:
    models = pytest.importorskip("aws_lambda_powertools.utilities.parser.models")
    api = ApiIdentity()
    client = ClientConnection(
        connection_id=new_id(),
        connected_at_ms=EPOCH_MS,
        domain_name="127.0.0.1:8080",
        source_ip="127.0.0.1",
        user_agent="agent/1",
    )
    connect = connect_event(
        api=api,
        client=client,
        headers=[("Host", "127.0.0.1:8080")],
        query_string="token=t",
        server_port=8080,
    )
    message = message_event(api=api, client=client, route_key="$default", body='{"action":"ping"}')
    disconnect = disconnect_event(api=api, client=client, status_code=1001, reason="Going away")
    parsed_connect = models.APIGatewayWebSocketConnectEventModel.model_validate(connect)
    parsed_message = models.APIGatewayWebSocketMessageEventModel.model_validate(message)
    parsed_disconnect = models.APIGatewayWebSocketDisconnectEventModel.model_validate(disconnect)
    assert parsed_connect.request_context.connection_id == client.connection_id
    assert parsed_connect.request_context.connected_at.timestamp() == EPOCH_MS / 1000
    assert parsed_message.request_context.event_type == "MESSAGE"
    assert parsed_disconnect.request_context.disconnect_status_code == 1001


def test_deeply_nested_json_is_routed_to_default_not_a_recursion_error() -> None:
    from entrypoints.local_gateway.emulator.events import select_route

    body = '{"action":"ping","x":' + "[" * 50_000 + "]" * 50_000 + "}"
    assert select_route(body, ["$connect", "$disconnect", "$default"]) == "$default"
