"""Build-on-first-use for the clients adapters own (boto3, a Redis Cluster client).

An adapter whose client is expensive to import (boto3: ~190 ms of a cold start) or cannot be
built while its server is down (a Redis Cluster client reads the slot map when built) holds
a :class:`Lazy` instead of the client and asks it for the client in each call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

_T = TypeVar("_T")


class Lazy(Generic[_T]):
    """Calls ``build`` on the first :meth:`get`, once, thread-safely, and keeps what it returned.

    A ``build`` that raises is called again by the next :meth:`get`; once it has returned,
    the value is kept for the life of the process.

    Raises (from :meth:`get`):
        Whatever ``build`` raises.
    """

    __slots__ = ("_build", "_lock", "_value")

    def __init__(self, build: Callable[[], _T]) -> None:
        self._build = build
        self._value: _T | None = None
        self._lock = threading.Lock()

    def get(self) -> _T:
        """The built value; builds it on the first call."""
        value = self._value
        if value is None:
            with self._lock:
                value = self._value
                if value is None:
                    value = self._value = self._build()
        return value

    @property
    def built(self) -> bool:
        """Whether :meth:`get` has built the value (no build is attempted)."""
        return self._value is not None
