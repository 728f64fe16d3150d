"""A ``FanOut`` that runs calls one after the other, and a ``Sleeper`` that only records."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from application.ports import FanOut, Sleeper

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class SequentialFanOut(FanOut):
    """Runs each call in turn on the calling thread; ``batches`` records each ``map``'s size."""

    def __init__(self) -> None:
        self.batches: list[int] = []

    def map(self, call: Callable[[Item], Outcome], items: Sequence[Item]) -> list[Outcome]:
        """``[call(item) for item in items]``."""
        self.batches.append(len(items))
        return [call(item) for item in items]


class RecordingSleeper(Sleeper):
    """Returns at once; ``slept`` holds every requested wait, in seconds."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        """Record ``seconds``."""
        self.slept.append(seconds)
