"""The ``FanOut`` port on a thread pool: the push's bounded concurrency.

The use cases do no I/O and start no thread (an import contract holds it); what runs
concurrently is the blocking boto3 and redis-py calls they make through their ports, so the
concurrency lives here. One pool per process, built on the first ``map`` and reused by warm
invocations (Lambda freezes idle threads between invocations; they cost nothing).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from application.ports import FanOut

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class ThreadPoolFanOut(FanOut):
    """Runs calls on at most ``max_workers`` threads; ``map`` returns outcomes in order.

    A single item runs on the calling thread (no hand-off). Thread-safe: concurrent ``map``
    calls share the pool, so ``max_workers`` bounds the process's calls in flight.
    """

    def __init__(self, max_workers: int) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def map(self, call: Callable[[Item], Outcome], items: Sequence[Item]) -> list[Outcome]:
        """``[call(item) for item in items]``, concurrently; re-raises a call's exception."""
        if len(items) <= 1:
            return [call(item) for item in items]
        return list(self._executor().map(call, items))

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_workers, thread_name_prefix="fan-out")
            return self._pool
