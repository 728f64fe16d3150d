"""The errors the client raises. Each has a ``code``, the same string the browser module puts
in ``error.code`` (``timeline-ws-client.d.ts``: ``ErrorCode``)."""

from __future__ import annotations

from typing import ClassVar


class TimelineSocketError(Exception):
    """Base of the client's errors; ``code`` names the case."""

    code: ClassVar[str] = "timeline_socket_error"


class MessageTooLargeError(TimelineSocketError, ValueError):
    """A message is larger than API Gateway accepts (128 KB of UTF-8 for a message sent in
    fragments; the browser's limit is one frame, 32 KB); it was not sent or queued."""

    code: ClassVar[str] = "message_too_large"

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"message of {size} bytes is over the {limit}-byte limit")
        self.size = size
        self.limit = limit


class AuthError(TimelineSocketError):
    """The server refused the token (handshake ``status`` 401 or 403) even after a forced
    refresh: no attempt is made until the token provider returns a different token."""

    code: ClassVar[str] = "auth_error"

    def __init__(self, status: int) -> None:
        super().__init__(f"the server refused the token (HTTP {status})")
        self.status = status


class ConfigurationError(TimelineSocketError, ValueError):
    """The URL cannot work: not ``ws://``/``wss://``, unparsable, or the server answered the
    handshake with a status no retry can fix (not 101, 401, 403, 429 or 5xx: a web page's
    200, a 404, a 405...). Retrying would not help, so the socket stops.

    ``status``: the handshake's HTTP status, when there was one.
    """

    code: ClassVar[str] = "invalid_url"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
