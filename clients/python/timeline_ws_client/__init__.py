"""Clients of the timeline WebSocket: the asyncio ``TimelineSocket`` and the browser module.

- :mod:`~timeline_ws_client.policy`: the rules both clients follow (backoff, the reset rule,
  liveness, handover, the send queue, the size limit), with no I/O.
- :mod:`~timeline_ws_client.timeline_socket`: :class:`TimelineSocket` (websockets).
- :mod:`~timeline_ws_client.events`: what its listeners receive.
- ``timeline-ws.js`` (package data): the dependency-free browser ES module; ``serve`` serves
  it at ``/client/timeline-ws.js``.
"""

from timeline_ws_client.events import STATES
from timeline_ws_client.policy import DEFAULT_POLICY, ClientPolicy, MessageTooLargeError
from timeline_ws_client.timeline_socket import TimelineSocket, TokenProvider, static_token

__all__ = [
    "DEFAULT_POLICY",
    "STATES",
    "ClientPolicy",
    "MessageTooLargeError",
    "TimelineSocket",
    "TokenProvider",
    "static_token",
]
