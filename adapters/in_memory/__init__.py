"""In-memory adapters of every port, for fast unit tests of the use cases (and nothing else)."""

from adapters.in_memory.clock import FixedClock
from adapters.in_memory.connection_repository import InMemoryConnectionRepository
from adapters.in_memory.fan_out import RecordingSleeper, SequentialFanOut
from adapters.in_memory.message_sender import InMemoryMessageSender
from adapters.in_memory.token_verifier import InMemoryTokenVerifier

__all__ = [
    "FixedClock",
    "InMemoryConnectionRepository",
    "InMemoryMessageSender",
    "InMemoryTokenVerifier",
    "RecordingSleeper",
    "SequentialFanOut",
]
