"""The Lambda proxy events API Gateway's WebSocket API sends, built the way API Gateway builds them.

Follows "Input format of a Lambda function for proxy integration for WebSocket APIs"
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-requests.html),
the ``$context`` variables of
https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html
and events captured from real APIs (the fixtures in ``tests/events``):

- CONNECT: ``headers`` / ``multiValueHeaders`` (the client's headers plus ``X-Forwarded-*``
  and ``X-Amzn-Trace-Id``), ``queryStringParameters`` / ``multiValueQueryStringParameters``
  (both absent without a query string; the single-value map keeps the LAST value of a
  repeated key), ``requestContext``, ``isBase64Encoded`` false, no ``body``.
- MESSAGE: ``requestContext`` (with ``messageId``), ``body``, ``isBase64Encoded``; no headers.
- DISCONNECT: the fixed header set API Gateway sends (``Host``, ``x-api-key``,
  ``X-Forwarded-For``, ``x-restapi``), ``requestContext`` with ``disconnectStatusCode`` and
  ``disconnectReason``, ``isBase64Encoded`` false, no ``body``.

Times: ``connectedAt`` and ``requestTimeEpoch`` are epoch milliseconds (UTC);
``requestTime`` is ``dd/Mon/yyyy:HH:MM:SS +0000`` with English month names whatever the locale.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final
from urllib.parse import parse_qsl

import attrs

CONNECT_ROUTE: Final = "$connect"
DISCONNECT_ROUTE: Final = "$disconnect"
DEFAULT_ROUTE: Final = "$default"

_MONTHS: Final = tuple(
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
)

_DROPPED_HEADERS: Final = frozenset({"connection", "upgrade", "x-amzn-trace-id"})
"""Hop-by-hop headers API Gateway does not forward, and the trace id it replaces."""

ID_BYTES: Final = 11
"""API Gateway ids (connectionId, requestId, messageId) are 16 characters of URL-safe base64
ending in one ``=`` (``L0SM9cOFvHcCIhw=``): that is the encoding of 11 bytes, not 12 (12 bytes
encode to 16 characters with no padding)."""


def new_id() -> str:
    """A fresh id in API Gateway's form: 11 random bytes as URL-safe base64, e.g. ``L0SM9cOFvHcCIhw=``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(ID_BYTES)).decode("ascii")


def now_ms() -> int:
    """The current time in epoch milliseconds (UTC)."""
    return time.time_ns() // 1_000_000


def request_time(epoch_ms: int) -> str:
    """``requestTime`` for an epoch-ms instant: ``03/Jan/2026:00:00:00 +0000`` (locale-independent)."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return f"{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year:04d}:{moment:%H:%M:%S} +0000"


def iso8601_ms(epoch_ms: int) -> str:
    """An epoch-ms instant as ISO-8601 UTC with milliseconds, e.g. ``2026-01-03T00:00:00.123Z``."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{epoch_ms % 1000:03d}Z"


def trace_id(epoch_ms: int) -> str:
    """An ``X-Amzn-Trace-Id`` value: ``Root=1-{8 hex digits of epoch seconds}-{24 hex digits}``."""
    return f"Root=1-{epoch_ms // 1000:08x}-{secrets.token_hex(12)}"


@attrs.frozen(slots=True, kw_only=True)
class ApiIdentity:
    """The API as the events name it: ``apiId`` (10 lowercase characters) and ``stage``."""

    api_id: str = "timelinews"
    stage: str = "local"


@attrs.frozen(slots=True, kw_only=True)
class ClientConnection:
    """What API Gateway remembers of a connection and repeats in every event of it.

    Attributes:
        connection_id: the connectionId (see :func:`new_id`).
        connected_at_ms: when the upgrade request arrived, epoch ms.
        domain_name: the ``Host`` the client used (``127.0.0.1:8080`` locally).
        source_ip: the peer address.
        user_agent: the ``User-Agent`` header, ``None`` when the client sent none (API
            Gateway then leaves ``identity.userAgent`` out).
    """

    connection_id: str
    connected_at_ms: int
    domain_name: str
    source_ip: str
    user_agent: str | None


def _request_context(
    *,
    api: ApiIdentity,
    client: ClientConnection,
    route_key: str,
    event_type: str,
    request_epoch_ms: int,
) -> dict[str, Any]:
    identity: dict[str, str] = {}
    if client.user_agent is not None:
        identity["userAgent"] = client.user_agent
    identity["sourceIp"] = client.source_ip
    request_id = new_id()
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": request_time(request_epoch_ms),
        "messageDirection": "IN",
        "stage": api.stage,
        "connectedAt": client.connected_at_ms,
        "requestTimeEpoch": request_epoch_ms,
        "identity": identity,
        "requestId": request_id,
        "domainName": client.domain_name,
        "connectionId": client.connection_id,
        "apiId": api.api_id,
    }


def _header_maps(headers: Iterable[tuple[str, str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        single[name] = value
        multi.setdefault(name, []).append(value)
    return single, multi


def _query_maps(query_string: str) -> tuple[dict[str, str], dict[str, list[str]]]:
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        single[name] = value  # API Gateway keeps the last value of a repeated key
        multi.setdefault(name, []).append(value)
    return single, multi


def connect_event(
    *,
    api: ApiIdentity,
    client: ClientConnection,
    headers: Iterable[tuple[str, str]],
    query_string: str,
    server_port: int,
    request_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The ``$connect`` event for one upgrade request.

    Args:
        api: apiId and stage.
        client: the new connection (id, connectedAt, domain, identity).
        headers: the request's headers in arrival order, names as sent (``Connection`` and
            ``Upgrade`` are dropped, as API Gateway does); API Gateway's own
            ``X-Amzn-Trace-Id``, ``X-Forwarded-For``, ``X-Forwarded-Port`` and
            ``X-Forwarded-Proto`` (``http`` locally) are added or appended.
        query_string: the raw query string without ``?`` (``""`` when there is none: the
            query keys are then absent from the event). Values are URL-decoded once.
        server_port: the listening port, reported in ``X-Forwarded-Port``.
        request_epoch_ms: ``requestTimeEpoch``; defaults to ``connectedAt``.
    """
    epoch_ms = client.connected_at_ms if request_epoch_ms is None else request_epoch_ms
    added = [
        ("X-Amzn-Trace-Id", trace_id(epoch_ms)),
        ("X-Forwarded-For", client.source_ip),
        ("X-Forwarded-Port", str(server_port)),
        ("X-Forwarded-Proto", "http"),
    ]
    received = [(name, value) for name, value in headers if name.lower() not in _DROPPED_HEADERS]
    forwarded_for = [value for name, value in received if name.lower() == "x-forwarded-for"]
    if forwarded_for:
        # A client behind a proxy: API Gateway appends the peer to the existing chain.
        added[1] = ("X-Forwarded-For", f"{forwarded_for[-1]}, {client.source_ip}")
    replaced = {name.lower() for name, _ in added}
    single, multi = _header_maps(
        [*(pair for pair in received if pair[0].lower() not in replaced), *added]
    )
    event: dict[str, Any] = {"headers": single, "multiValueHeaders": multi}
    if query_string:
        query, multi_query = _query_maps(query_string)
        event["queryStringParameters"] = query
        event["multiValueQueryStringParameters"] = multi_query
    event["requestContext"] = _request_context(
        api=api,
        client=client,
        route_key=CONNECT_ROUTE,
        event_type="CONNECT",
        request_epoch_ms=epoch_ms,
    )
    event["isBase64Encoded"] = False
    return event


def message_event(
    *,
    api: ApiIdentity,
    client: ClientConnection,
    route_key: str,
    body: str,
    is_base64_encoded: bool = False,
    request_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """A MESSAGE event: one client frame routed to ``route_key``.

    ``body`` is the frame's text, or the base64 of a binary frame with ``is_base64_encoded``.
    A fresh ``messageId`` (API Gateway's id form) is added to the request context.
    """
    epoch_ms = now_ms() if request_epoch_ms is None else request_epoch_ms
    context = _request_context(
        api=api, client=client, route_key=route_key, event_type="MESSAGE", request_epoch_ms=epoch_ms
    )
    context["messageId"] = new_id()
    return {"requestContext": context, "body": body, "isBase64Encoded": is_base64_encoded}


def disconnect_event(
    *,
    api: ApiIdentity,
    client: ClientConnection,
    status_code: int,
    reason: str,
    request_epoch_ms: int | None = None,
) -> dict[str, Any]:
    """The ``$disconnect`` event with ``disconnectStatusCode`` and ``disconnectReason``.

    The headers are the fixed set API Gateway sends on ``$disconnect`` (``Host`` and three
    empty values), not the client's.
    """
    epoch_ms = now_ms() if request_epoch_ms is None else request_epoch_ms
    single, multi = _header_maps(
        [
            ("Host", client.domain_name),
            ("x-api-key", ""),
            ("X-Forwarded-For", ""),
            ("x-restapi", ""),
        ]
    )
    context = _request_context(
        api=api,
        client=client,
        route_key=DISCONNECT_ROUTE,
        event_type="DISCONNECT",
        request_epoch_ms=epoch_ms,
    )
    context["disconnectStatusCode"] = status_code
    context["disconnectReason"] = reason
    return {
        "headers": single,
        "multiValueHeaders": multi,
        "requestContext": context,
        "isBase64Encoded": False,
    }


def select_route(body: str, route_keys: Mapping[str, object] | Iterable[str]) -> str | None:
    """Route selection with the expression ``$request.body.action``.

    Follows https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-routes.html:
    when the frame is a JSON object whose ``action`` is a string equal to a configured
    (non-``$``) route key, that key; otherwise ``$default`` when configured; otherwise
    ``None`` (API Gateway then answers the client ``Forbidden``).
    """
    keys = set(route_keys)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # deep nesting fits in 128 KB: not JSON to route on
        document = None
    if isinstance(document, dict):
        action = document.get("action")
        if isinstance(action, str) and not action.startswith("$") and action in keys:
            return action
    return DEFAULT_ROUTE if DEFAULT_ROUTE in keys else None
