"""The client protocol carried on the ``$default`` route.

Client to server: a JSON object naming its ``action`` with the action's fields, e.g.
``{"action": "ping", "id": "<optional, at most 64 characters>"}``, or the plain text ``ping``;
text or binary frames (API Gateway hands binary frames over base64 encoded, with
``isBase64Encoded`` true). :func:`parse_message` reads the frame into a :class:`ClientMessage`;
which actions exist, and what their fields mean, is the edge's action table.

Server to client (as the ``$default`` route response, one frame per client message):
    ``{"action": "pong", "connectionId": "...", "serverTime": "2026-01-03T00:00:00Z", "id": "..."}``
    (``id`` only when the ping carried one), and
    ``{"action": "error", "code": "...", "message": "..."}`` with ``code`` one of
    :data:`ERROR_CODES`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Final

import attrs

from domain.connection import format_timestamp
from domain.errors import DomainError

MAX_MESSAGE_BYTES: Final = 128 * 1024
"""API Gateway's WebSocket message limit (frames are 32 KB each): 128 KB (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html)."""

MAX_PING_ID_LENGTH: Final = 64

BAD_REQUEST: Final = "bad_request"
UNSUPPORTED_ACTION: Final = "unsupported_action"
PAYLOAD_TOO_LARGE: Final = "payload_too_large"
CONNECTION_EXPIRED: Final = "connection_expired"
INTERNAL_ERROR: Final = "internal_error"
"""The server failed to handle a message (a bug or a failed dependency); the client may retry."""
ERROR_CODES: Final = frozenset(
    {BAD_REQUEST, UNSUPPORTED_ACTION, PAYLOAD_TOO_LARGE, CONNECTION_EXPIRED, INTERNAL_ERROR}
)


class BadMessageError(DomainError):
    """A client message that timeline-ws cannot act on; answered with an error frame.

    ``error_code`` is one of ``bad_request``, ``unsupported_action``, ``payload_too_large``.
    The connection stays open.
    """

    code = "bad_message"
    default_message = "the message could not be understood"

    def __init__(self, error_code: str, message: str) -> None:
        self.error_code = error_code
        super().__init__(message)


@attrs.frozen(slots=True, kw_only=True)
class ClientMessage:
    """One client frame, read: the ``action`` it asks for and its other members (``fields``).

    ``fields`` holds the JSON object's members but ``action``, as parsed (strings, numbers,
    lists, objects…); the action's command validates them.
    """

    action: str
    fields: Mapping[str, object] = attrs.field(factory=dict)


PING: Final = "ping"
"""The heartbeat action (also accepted as the plain text ``ping``)."""


def _refuse_non_json_constant(name: str) -> object:
    """``NaN``, ``Infinity`` and ``-Infinity`` are Python's extensions, not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not JSON")


# Built once: json.loads / json.dumps with options build a new decoder / encoder per call.
_DECODER: Final = json.JSONDecoder(parse_constant=_refuse_non_json_constant)
_COMPACT: Final = json.JSONEncoder(separators=(",", ":"))


def parse_message(body: str | None, *, is_base64_encoded: bool = False) -> ClientMessage:
    """Parse one client frame as API Gateway delivers it in a MESSAGE event.

    Args:
        body: the event's ``body`` (text, or base64 of a binary frame); ``None`` when absent.
        is_base64_encoded: the event's ``isBase64Encoded``.

    Returns:
        The :class:`ClientMessage`: its action and its fields (the plain text ``ping`` is
        the ``ping`` action without fields).

    Raises:
        BadMessageError: ``payload_too_large`` over 128 KB (UTF-8 bytes of the decoded frame),
            ``bad_request`` for an empty, non-UTF-8, non-JSON frame, or one that is not a JSON
            object with an ``action`` string.
    """
    if body is None or body == "":
        raise BadMessageError(BAD_REQUEST, "empty message")
    if not isinstance(body, str):
        raise BadMessageError(BAD_REQUEST, "the message body must be text")
    raw: bytes | None
    if is_base64_encoded:
        # Base64 is 4/3 of the frame: refuse absurd bodies before decoding them.
        if len(body) > (MAX_MESSAGE_BYTES * 4) // 3 + 4:
            raise BadMessageError(PAYLOAD_TOO_LARGE, "messages are limited to 128 KB")
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadMessageError(BAD_REQUEST, "the binary frame is not valid base64") from None
    else:
        if len(body) > MAX_MESSAGE_BYTES:  # each character is at least one byte
            raise BadMessageError(PAYLOAD_TOO_LARGE, "messages are limited to 128 KB")
        # The usual frame is ASCII: its length is its size and it is valid UTF-8 already.
        raw = None if body.isascii() else body.encode("utf-8", errors="surrogatepass")
    if raw is None:
        text = body
    else:
        if len(raw) > MAX_MESSAGE_BYTES:
            raise BadMessageError(PAYLOAD_TOO_LARGE, "messages are limited to 128 KB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMessageError(BAD_REQUEST, "the message is not UTF-8 text") from None
    if text.strip() == PING:
        return ClientMessage(action=PING)
    try:
        document = _DECODER.decode(text)
    except (ValueError, RecursionError):
        # RecursionError: 128 KB is room for ~64,000 levels of nesting, far past the parser's
        # recursion limit; that is a malformed message, not a server error.
        raise BadMessageError(BAD_REQUEST, 'expected JSON such as {"action":"ping"}') from None
    if not isinstance(document, dict):
        raise BadMessageError(BAD_REQUEST, "expected a JSON object")
    action = document.pop("action", None)
    if not isinstance(action, str) or not action:
        raise BadMessageError(BAD_REQUEST, 'the message needs an "action" string')
    return ClientMessage(action=action, fields=document)


def pong_message(*, connection_id: str, server_time: datetime, ping_id: str | None) -> str:
    """The pong frame as compact JSON text (``serverTime`` in ISO-8601 UTC, ``Z``)."""
    document: dict[str, str] = {
        "action": "pong",
        "connectionId": connection_id,
        "serverTime": format_timestamp(server_time),
    }
    if ping_id is not None:
        document["id"] = ping_id
    return _COMPACT.encode(document)


def error_message(*, code: str, message: str, ping_id: str | None = None) -> str:
    """An error frame as compact JSON text; ``code`` must be one of :data:`ERROR_CODES`.

    Raises:
        ValueError: on an unknown code.
    """
    if code not in ERROR_CODES:
        raise ValueError(f"unknown error code {code!r}")
    document: dict[str, str] = {"action": "error", "code": code, "message": message}
    if ping_id is not None:
        document["id"] = ping_id
    return _COMPACT.encode(document)
