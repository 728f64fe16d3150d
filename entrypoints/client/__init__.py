"""Clients of the timeline WebSocket: the asyncio ``TimelineSocket`` and the browser module.

- :mod:`~entrypoints.client.policy`: the rules both clients follow (backoff, the reset rule,
  liveness, handover, the send queue, the size limit), with no I/O.
- :mod:`~entrypoints.client.timeline_socket`: :class:`TimelineSocket` (websockets).
- :mod:`~entrypoints.client.events`: what its listeners receive.
- ``timeline-ws.js`` (package data): the dependency-free browser ES module; ``serve`` serves
  it at ``/client/timeline-ws.js``.
"""

from entrypoints.client.events import STATES
from entrypoints.client.policy import DEFAULT_POLICY, ClientPolicy, MessageTooLargeError
from entrypoints.client.timeline_socket import TimelineSocket, TokenProvider, static_token

__all__ = [
    "DEFAULT_POLICY",
    "STATES",
    "ClientPolicy",
    "MessageTooLargeError",
    "TimelineSocket",
    "TokenProvider",
    "static_token",
]
