"""The edge's wire: the one table that maps domain errors to HTTP status codes, the frames
built from use case results and errors, and the response shapes.

For ``$connect`` API Gateway turns a non-2xx ``statusCode`` into the handshake's HTTP status
and opens no socket (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
On the two-way ``$default`` route the ``body`` is sent to the client as one frame, whatever
the status (see :func:`reply`); elsewhere the status only reaches logs and metrics.
"""

from __future__ import annotations

import json
from typing import Any, Final

from application.commands import HeartbeatResult
from domain.errors import (
    ConnectionLimitExceededError,
    DomainError,
    InvalidTokenError,
    MessageSendError,
    StoreUnavailableError,
    VerifierUnavailableError,
)
from domain.protocol import INTERNAL_ERROR, BadMessageError, error_message, pong_message

STATUS_BY_ERROR: Final[dict[type[DomainError], int]] = {
    InvalidTokenError: 401,
    ConnectionLimitExceededError: 429,
    MessageSendError: 502,
    VerifierUnavailableError: 503,
    StoreUnavailableError: 503,
}
"""Domain error class -> HTTP status. Anything else that escapes a use case is a 500."""

REASON_PHRASES: Final = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


def status_for(error: BaseException) -> int:
    """The HTTP status for ``error``: the table's entry for its class (or a base class), else 500."""
    for error_type in type(error).__mro__:
        status = STATUS_BY_ERROR.get(error_type)
        if status is not None:
            return status
    return 500


def reason_of(error: BaseException) -> str:
    """The error's secret-free reason code for logs and metrics: a domain error's ``reason``,
    ``internal_error`` for anything else."""
    return error.reason if isinstance(error, DomainError) else "internal_error"


def response(status: int, *, body: str | None = None) -> dict[str, Any]:
    """A Lambda proxy response: ``{"statusCode": status, "body": body}``.

    ``body`` defaults to the reason phrase as JSON (``{"message": "Unauthorized"}``).
    """
    return {
        "statusCode": status,
        "body": body
        if body is not None
        else json.dumps({"message": REASON_PHRASES.get(status, "Error")}),
    }


def reply(status: int, frame: str | None) -> dict[str, Any]:
    """A two-way route's response: ``frame`` (JSON text) is the message the client receives.

    With ``frame`` ``None`` the response has no ``body`` and API Gateway sends the client
    nothing (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).
    """
    if frame is None:
        return {"statusCode": status}
    return {"statusCode": status, "body": frame}


INTERNAL_ERROR_FRAME: Final = error_message(
    code=INTERNAL_ERROR, message="the server could not handle this message; try again"
)
"""What a client reads when ``$default`` fails: no stack trace, no detail (those are logged)."""


def pong_frame(result: HeartbeatResult) -> str | None:
    """The pong answering a heartbeat (``domain/protocol.py``); ``None`` when the heartbeat
    closed the connection instead (``server_time`` is then ``None``)."""
    if result.server_time is None:
        return None
    return pong_message(
        connection_id=result.connection_id, server_time=result.server_time, ping_id=result.ping_id
    )


def rejection_frame(error: BadMessageError) -> str:
    """The error frame answering a message timeline-ws cannot act on (``bad_request``,
    ``unsupported_action``, ``payload_too_large``); the connection stays open."""
    return error_message(code=error.error_code, message=error.message)
