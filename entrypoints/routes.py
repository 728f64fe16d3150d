"""The WebSocket API as data: its routes, and the actions a client message may name.

:data:`ROUTES` is the API Gateway side — route key, Lambda function, handler, one-way or
two-way — read by the local gateway and held to ``infra/`` by ``tests/infra``.
:data:`ACTIONS` is what ``$default`` dispatches on: a message's ``action`` names a row, the
row says which command the message's fields build and which use case executes it, and how
each outcome is logged and counted. Adding an action is one row here, one use case and its
command (README, "Adding a route").

Two-way routes: API Gateway sends the integration's response ``body`` to the client as a
message only on a route with a route response; WebSocket APIs allow one on ``$default`` only
(https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

import attrs

from application.commands import HeartbeatCommand, HeartbeatOutcome
from application.use_cases import Heartbeat
from domain.protocol import PING
from entrypoints.observability import HEARTBEATS_UNRECORDED, STALE_CONNECTIONS_REMOVED


@attrs.frozen(slots=True, kw_only=True)
class Route:
    """One route of the WebSocket API.

    Attributes:
        route_key: API Gateway's route key, e.g. ``"$default"``.
        function: the Lambda function's short name (``infra/``'s key; the function is
            ``timeline-ws-<environment>-<function>``).
        handler: the handler's name in :mod:`entrypoints.aws_lambda.handlers`.
        two_way: the route has a route response: the handler's ``body`` goes to the client.
    """

    route_key: str
    function: str
    handler: str
    two_way: bool = False

    @property
    def handler_path(self) -> str:
        """The Lambda handler string, e.g. ``entrypoints.aws_lambda.handlers.default_handler``."""
        return f"{HANDLERS_MODULE}.{self.handler}"


HANDLERS_MODULE: Final = "entrypoints.aws_lambda.handlers"

ROUTES: Final = (
    Route(route_key="$connect", function="connect", handler="connect_handler"),
    Route(route_key="$disconnect", function="disconnect", handler="disconnect_handler"),
    Route(route_key="$default", function="default", handler="default_handler", two_way=True),
)
"""Every route, in the order API Gateway documents them."""


@attrs.frozen(slots=True)
class Report:
    """How one outcome of an action is reported: a log line at ``level`` carrying ``metric``
    (an EMF count of 1) when given."""

    level: int
    metric: str | None = None


@attrs.frozen(slots=True, kw_only=True)
class Action:
    """One action a client message may name (``{"action": name, ...}``).

    Attributes:
        name: the message's ``action``.
        command: the command class, built as ``command(connection_id=…, **fields)``; its
            validators judge the message's fields (a ``FieldError`` is a ``bad_request``).
        use_case: the use case class; the container builds it per message, passing each
            constructor parameter from the ports it names (``repository``, ``sender``,
            ``clock``, ``verifier``, ``ttl_seconds``). ``execute`` returns a result with an
            ``outcome`` and a ``reply`` (the frame the client gets, or ``None``).
        fields: message member -> command field; members not named are ignored.
        reports: outcome -> :class:`Report`. Outcomes without one are the quiet, expected
            ones: a DEBUG line only (seen in the invocations the log sampling picks), no
            metric.
    """

    name: str
    command: type[Any]
    use_case: type[Any]
    fields: Mapping[str, str] = attrs.field(factory=dict)
    reports: Mapping[str, Report] = attrs.field(factory=dict)

    @property
    def log_message(self) -> str:
        """The message of the outcome's log line: the use case's name (``heartbeat``)."""
        return self.use_case.__name__.lower()


ACTIONS: Final = (
    Action(
        name=PING,
        command=HeartbeatCommand,
        use_case=Heartbeat,
        fields={"id": "ping_id"},
        reports={
            HeartbeatOutcome.PONG_UNRECORDED: Report(logging.ERROR, HEARTBEATS_UNRECORDED),
            HeartbeatOutcome.EXPIRED: Report(logging.INFO, STALE_CONNECTIONS_REMOVED),
        },
    ),
)
"""Every action ``$default`` serves; the first message field of each is its ``action``."""
