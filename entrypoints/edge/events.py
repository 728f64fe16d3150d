"""Parsing of API Gateway WebSocket proxy events into the few fields the handlers use.

Event shapes: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html
and the Lambda proxy integration format for WebSocket APIs
(https://docs.aws.amazon.com/apigateway/latest/developerguide/websocket-api-develop-integrations.html).
Real events omit keys freely (``queryStringParameters`` with no query string, ``body`` on
``$disconnect``) or carry ``null``; every accessor here tolerates both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

MAX_CONNECTION_ID_LENGTH = 128


class MalformedEventError(ValueError):
    """The event is not an API Gateway WebSocket proxy event we can act on (HTTP 400)."""


@attrs.frozen(slots=True, kw_only=True)
class RequestContext:
    """``requestContext`` fields shared by every route (``domain_name``/``stage`` may be empty)."""

    connection_id: str
    route_key: str
    domain_name: str
    stage: str


@attrs.frozen(slots=True, kw_only=True)
class ConnectEvent:
    """A ``$connect`` event. ``tokens`` holds every ``token`` query value in order (may be empty)."""

    context: RequestContext
    tokens: tuple[str, ...]


@attrs.frozen(slots=True, kw_only=True)
class MessageEvent:
    """A MESSAGE event (``$default`` or a custom route): the frame as API Gateway passes it."""

    context: RequestContext
    body: str | None
    is_base64_encoded: bool


@attrs.frozen(slots=True, kw_only=True)
class DisconnectEvent:
    """A ``$disconnect`` event with API Gateway's close code and reason when present."""

    context: RequestContext
    status_code: int | None
    reason: str | None


def _is_mapping(value: Any) -> bool:
    # Lambda's events are dicts: the exact type check first spares the ABC's slower one.
    return type(value) is dict or isinstance(value, Mapping)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if _is_mapping(value) else {}


def parse_request_context(event: Any) -> RequestContext:
    """Extract the request context.

    Raises:
        MalformedEventError: the event is not a mapping or has no usable ``connectionId``.
    """
    if not _is_mapping(event):
        raise MalformedEventError("the event is not a JSON object")
    context = _mapping(event.get("requestContext"))
    connection_id = context.get("connectionId")
    if (
        not isinstance(connection_id, str)
        or not connection_id
        or len(connection_id) > MAX_CONNECTION_ID_LENGTH
    ):
        raise MalformedEventError("requestContext.connectionId is missing or invalid")
    route_key = context.get("routeKey")
    domain_name = context.get("domainName")
    stage = context.get("stage")
    return RequestContext(
        connection_id=connection_id,
        route_key=route_key if isinstance(route_key, str) else "",
        domain_name=domain_name if isinstance(domain_name, str) else "",
        stage=stage if isinstance(stage, str) else "",
    )


def parse_connect_event(event: Any) -> ConnectEvent:
    """Parse a ``$connect`` event; collects every ``token`` query value.

    API Gateway puts the last value of a repeated parameter in ``queryStringParameters`` and
    all of them in ``multiValueQueryStringParameters``; both keys are absent (or ``null``)
    without a query string.

    Raises:
        MalformedEventError: see :func:`parse_request_context`.
    """
    context = parse_request_context(event)
    tokens: list[str] = []
    multi = _mapping(event.get("multiValueQueryStringParameters")).get("token")
    if isinstance(multi, list):
        tokens.extend(value for value in multi if isinstance(value, str))
    single = _mapping(event.get("queryStringParameters")).get("token")
    if isinstance(single, str) and single not in tokens:
        tokens.append(single)
    return ConnectEvent(context=context, tokens=tuple(tokens))


def parse_message_event(event: Any) -> MessageEvent:
    """Parse a MESSAGE event; a missing or ``null`` body stays ``None``.

    Raises:
        MalformedEventError: see :func:`parse_request_context`.
    """
    context = parse_request_context(event)
    body = event.get("body")
    return MessageEvent(
        context=context,
        body=body if isinstance(body, str) else None,
        is_base64_encoded=event.get("isBase64Encoded") is True,
    )


def parse_disconnect_event(event: Any) -> DisconnectEvent:
    """Parse a ``$disconnect`` event (``disconnectStatusCode`` / ``disconnectReason``).

    Raises:
        MalformedEventError: see :func:`parse_request_context`.
    """
    context = parse_request_context(event)
    raw = _mapping(event.get("requestContext"))
    code = raw.get("disconnectStatusCode")
    reason = raw.get("disconnectReason")
    return DisconnectEvent(
        context=context,
        status_code=code if isinstance(code, int) and not isinstance(code, bool) else None,
        reason=reason if isinstance(reason, str) else None,
    )
