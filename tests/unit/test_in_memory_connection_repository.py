"""The in-memory repository the use-case tests stand on keeps the same contract as the real stores."""

from __future__ import annotations

import pytest

from adapters.in_memory import FixedClock, InMemoryConnectionRepository
from tests.support.repository_contract import (
    ConnectionDirectoryContract,
    ConnectionRepositoryContract,
    ExpireRecord,
    RemainingTtl,
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def repository(clock: FixedClock) -> InMemoryConnectionRepository:
    return InMemoryConnectionRepository(clock)


@pytest.fixture
def remaining_ttl(repository: InMemoryConnectionRepository) -> RemainingTtl:
    return repository.ttl


@pytest.fixture
def expire_record(repository: InMemoryConnectionRepository) -> ExpireRecord:
    return repository.expire_now


class TestInMemoryConnectionRepositoryContract(
    ConnectionRepositoryContract, ConnectionDirectoryContract
):
    """The contracts of ``ConnectionRepository`` and ``ConnectionDirectory``, on the in-memory fake."""
