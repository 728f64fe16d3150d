"""Lazy: the one helper adapters use to build a client on first use."""

from __future__ import annotations

import threading

import pytest

from adapters.lazy import Lazy
from domain.errors import StoreUnavailableError


def test_given_a_build_that_fails_then_the_next_get_builds_again_until_it_succeeds() -> None:
    attempts: list[int] = []

    def build() -> str:
        attempts.append(len(attempts))
        if len(attempts) < 3:
            raise StoreUnavailableError("no node answered")
        return "client"

    lazy = Lazy(build)
    assert not lazy.built, "nothing is built before the first get"
    for _ in range(2):
        with pytest.raises(StoreUnavailableError):
            lazy.get()
    assert lazy.get() == "client"
    assert lazy.get() == "client"
    assert len(attempts) == 3, "built once it could be, then kept"
    assert lazy.built


def test_given_many_threads_then_the_value_is_built_once() -> None:
    builds: list[object] = []
    barrier = threading.Barrier(8)

    def build() -> object:
        builds.append(object())
        return builds[-1]

    lazy = Lazy(build)
    seen: list[object] = []

    def worker() -> None:
        barrier.wait()
        seen.append(lazy.get())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(builds) == 1
    assert seen == [builds[0]] * 8
