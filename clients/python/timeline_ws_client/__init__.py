"""timeline-ws-client: the asyncio client of the timeline WebSocket API.

- :class:`TimelineSocket` (on websockets): heartbeat, reconnection with backoff, handover
  before API Gateway's 2-hour limit, auth errors, AWS's frame limits.
- :mod:`~timeline_ws_client.policy`: the rules it follows (the browser module
  ``timeline-ws-client`` on npm follows the same), pure, with no I/O.
- :mod:`~timeline_ws_client.events`: what its listeners receive.
- :mod:`~timeline_ws_client.errors`: what it raises (each error's ``code`` is the browser
  module's).
"""

from timeline_ws_client.errors import (
    AuthError,
    ConfigurationError,
    MessageTooLargeError,
    TimelineSocketError,
)
from timeline_ws_client.events import EVENTS, STATES
from timeline_ws_client.policy import (
    DEFAULT_POLICY,
    HEARTBEAT_ID_PREFIX,
    MAX_FRAME_BYTES,
    MAX_MESSAGE_BYTES,
    ClientPolicy,
)
from timeline_ws_client.timeline_socket import TimelineSocket, TokenProvider, static_token

__version__ = "0.2.0"

__all__ = [
    "DEFAULT_POLICY",
    "EVENTS",
    "HEARTBEAT_ID_PREFIX",
    "MAX_FRAME_BYTES",
    "MAX_MESSAGE_BYTES",
    "STATES",
    "AuthError",
    "ClientPolicy",
    "ConfigurationError",
    "MessageTooLargeError",
    "TimelineSocket",
    "TimelineSocketError",
    "TokenProvider",
    "static_token",
]
