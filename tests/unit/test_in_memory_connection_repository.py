"""The in-memory repository the use-case tests stand on keeps the same contract as the real stores."""

from __future__ import annotations

import pytest

from adapters.in_memory import FixedClock, InMemoryConnectionRepository
from tests.support.repository_contract import ConnectionRepositoryContract, RemainingTtl


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def repository(clock: FixedClock) -> InMemoryConnectionRepository:
    return InMemoryConnectionRepository(clock)


@pytest.fixture
def remaining_ttl(repository: InMemoryConnectionRepository) -> RemainingTtl:
    return repository.ttl


class TestInMemoryConnectionRepositoryContract(ConnectionRepositoryContract):
    """The contract of ``application.ports.ConnectionRepository``, on the in-memory fake."""
