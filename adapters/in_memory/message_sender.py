"""A gateway stand-in that records what it was asked to send and close."""

from __future__ import annotations

import threading

from application.ports import MessageSender
from domain.errors import ConnectionGoneError, PayloadTooLargeError, ThrottledError
from domain.protocol import MAX_MESSAGE_BYTES


class InMemoryMessageSender(MessageSender):
    """Records frames per connection id in ``sent`` and closed ids in ``closed``.

    Ids in ``gone`` (and ids once closed) raise ``ConnectionGoneError`` on ``send``, as API
    Gateway's ``GoneException`` does; an id in ``throttled`` raises ``ThrottledError`` on
    that many sends (``LimitExceededException``), counted down, then delivers. Thread-safe.
    """

    def __init__(self) -> None:
        self.sent: dict[str, list[str | bytes]] = {}
        self.closed: list[str] = []
        self.gone: set[str] = set()
        self.throttled: dict[str, int] = {}
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()

    def send(self, connection_id: str, data: str | bytes) -> None:
        """Record ``data`` for ``connection_id``."""
        size = len(data.encode("utf-8")) if isinstance(data, str) else len(data)
        if size > MAX_MESSAGE_BYTES:
            raise PayloadTooLargeError()
        with self._lock:
            self.attempts[connection_id] = self.attempts.get(connection_id, 0) + 1
            if connection_id in self.gone:
                raise ConnectionGoneError()
            if self.throttled.get(connection_id, 0) > 0:
                self.throttled[connection_id] -= 1
                raise ThrottledError()
            self.sent.setdefault(connection_id, []).append(data)

    def close(self, connection_id: str) -> None:
        """Record the close; the connection is gone afterwards."""
        with self._lock:
            self.closed.append(connection_id)
            self.gone.add(connection_id)
