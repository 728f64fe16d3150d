"""What each WebSocket route does with its event: parse it, call one use case, shape the reply.

A route runs inside the one invocation wrapper (``invocation.py``), which times, logs,
counts and maps errors; a route does none of that. The container builds one
:class:`~entrypoints.edge.invocation.LambdaHandler` per route, once per process, around the
use cases it needs; ``entrypoints/aws_lambda/handlers.py`` exposes them under the handler
strings of ``entrypoints/routes.py``.

Event shapes: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-requests.html.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from adapters.api_gateway_message_sender import management_endpoint
from application.commands import ConnectCommand, DisconnectCommand, FieldError
from application.ports import MessageSender
from application.use_cases import Connect, Disconnect
from domain.errors import InvalidTokenError
from domain.protocol import BAD_REQUEST, UNSUPPORTED_ACTION, BadMessageError, parse_message
from entrypoints.edge.events import (
    MalformedEventError,
    MessageEvent,
    parse_connect_event,
    parse_disconnect_event,
    parse_message_event,
)
from entrypoints.edge.invocation import Handled, Report, Request
from entrypoints.observability import (
    ABNORMAL_DISCONNECTS,
    CONNECTS,
    CONNECTS_REJECTED,
    DISCONNECTS,
)

NORMAL_CLOSE_CODES: Final = frozenset({1000, 1001})
"""Close codes that are not abnormal: 1000 normal closure, 1001 going away (idle timeout)."""

CONNECTED: Final = Report(logging.INFO, "connected", CONNECTS)
CONNECT_REJECTED: Final = Report(
    logging.INFO, "connect rejected", CONNECTS_REJECTED, by_reason=True
)
DISCONNECTED: Final = Report(logging.INFO, "disconnected")


class ConnectRoute:
    """``$connect``: verify the ``token`` query parameter and store the connection.

    Answers ``{"statusCode": 200}`` on success; 401 for a missing, repeated-and-different or
    invalid token, 429 over a connection limit, 503 when the JWKS or the store is
    unavailable, 400 for a malformed event. API Gateway answers the handshake with that
    status (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
    Its line is also the EMF document counting ``Connects`` or ``ConnectsRejected`` (by
    ``reason``).
    """

    name = "$connect"
    two_way = False
    direct = False
    rejection = CONNECT_REJECTED

    def __init__(self, connect: Callable[[], Connect]) -> None:
        # The use case is a singleton built on the first event: building it at a cold start
        # would load what another route's first event does not need (python-jose, ~30 ms).
        self._connect = connect

    def read(self, event: Any) -> Request:
        """The connection and every ``token`` query value. Raises ``MalformedEventError``."""
        parsed = parse_connect_event(event)
        return Request(route=self.name, connection_id=parsed.context.connection_id, payload=parsed)

    def run(self, request: Request) -> Handled:
        """Connect; two different token values are ``InvalidTokenError("ambiguous")``."""
        tokens = request.payload.tokens
        if len(set(tokens)) > 1:
            raise InvalidTokenError("ambiguous")
        command = ConnectCommand(
            connection_id=request.payload.context.connection_id,
            token=tokens[0] if tokens else None,
        )
        result = self._connect().execute(command)
        return Handled(
            outcome="connected",
            message=CONNECTED.message,
            report=CONNECTED,
            fields={"user_id": result.user_id, "status": 200},
        )


class DisconnectRoute:
    """``$disconnect``: delete the record. 200, or 503 when the store is down (logged).

    API Gateway ignores the answer. Every disconnect counts ``Disconnects``, and
    ``AbnormalDisconnects`` when ``disconnectStatusCode`` is not 1000/1001, whatever the
    store does: the disconnect-rate alarm reads them.
    """

    name = "$disconnect"
    two_way = False
    direct = False
    rejection = None

    def __init__(self, disconnect: Callable[[], Disconnect]) -> None:
        # The use case is a singleton built on the first event: building it at a cold start
        # would load what another route's first event does not need (python-jose, ~30 ms).
        self._disconnect = disconnect

    def read(self, event: Any) -> Request:
        """The connection, its close code and reason, and the counts. Raises ``MalformedEventError``."""
        parsed = parse_disconnect_event(event)
        abnormal = parsed.status_code not in NORMAL_CLOSE_CODES
        return Request(
            route=self.name,
            connection_id=parsed.context.connection_id,
            payload=DisconnectCommand(connection_id=parsed.context.connection_id),
            fields={
                "disconnect_status_code": parsed.status_code,
                "disconnect_reason": parsed.reason,
            },
            counts={DISCONNECTS: 1, ABNORMAL_DISCONNECTS: int(abnormal)},
        )

    def run(self, request: Request) -> Handled:
        """Disconnect."""
        self._disconnect().execute(request.payload)
        return Handled(
            outcome="disconnected",
            message=DISCONNECTED.message,
            report=DISCONNECTED,
            fields={"status": 200},
        )


@attrs.frozen(slots=True, kw_only=True)
class Action:
    """One action a client message may name (``{"action": name, ...}``): a row of ``$default``.

    Attributes:
        name: the message's ``action``.
        command: the command class, built as ``command(connection_id=…, **fields)``; its
            validators judge the message's fields (a ``FieldError`` is a ``bad_request``).
        use_case: builds the use case (once per process, or once per Management API
            endpoint when it ``sends``).
        reply: the result -> the frame the client gets (``None``: no frame).
        message: the outcome's log message (the use case's name).
        sends: the use case pushes frames or closes connections: it is built with
            ``sender=`` the ``MessageSender`` of the API the message came through.
        fields: message member -> command field; members not named are ignored.
        reports: outcome -> :class:`Report`. Outcomes without one are the quiet, expected
            ones: a DEBUG line only (seen in the invocations the log sampling picks), no
            metric.
    """

    name: str
    command: type[Any]
    use_case: Callable[..., Any]
    reply: Callable[[Any], str | None]
    message: str
    sends: bool = False
    fields: Mapping[str, str] = attrs.field(factory=dict)
    reports: Mapping[str, Report] = attrs.field(factory=dict)

    def command_for(self, connection_id: str, fields: Mapping[str, object]) -> Any:
        """The command the message's ``fields`` build.

        Raises:
            BadMessageError: ``bad_request`` naming the message's member that broke a rule.
        """
        arguments = {
            field: fields[member] for member, field in self.fields.items() if member in fields
        }
        try:
            return self.command(connection_id=connection_id, **arguments)
        except FieldError as error:
            member = next((m for m, f in self.fields.items() if f == error.field), error.field)
            raise BadMessageError(BAD_REQUEST, f'"{member}" {error.problem}') from None


class MessageRoute:
    """``$default``: dispatch a client message to its action; answer with the reply frame.

    ``$default`` is a two-way route: the returned ``body`` is the frame API Gateway sends to
    the client (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).
    A message that cannot be read, an unknown action or an invalid field raises
    ``BadMessageError`` (an error frame; the connection stays open).

    Args:
        actions: the action table (the container's).
        senders: endpoint URL -> the ``MessageSender`` of that Management API.
        management_api_endpoint: ``MANAGEMENT_API_ENDPOINT``; ``None`` derives
            ``https://{domainName}/{stage}`` from each event.
    """

    name = "$default"
    two_way = True
    direct = False
    rejection = None

    def __init__(
        self,
        *,
        actions: tuple[Action, ...],
        senders: Callable[..., MessageSender],
        management_api_endpoint: str | None,
    ) -> None:
        self._actions = {action.name: action for action in actions}
        self._supported = ", ".join(sorted(self._actions))
        self._senders = senders
        self._endpoint = management_api_endpoint
        self._use_cases: dict[tuple[str, str], Any] = {}

    def read(self, event: Any) -> Request:
        """The message event. Raises ``MalformedEventError``."""
        parsed = parse_message_event(event)
        context = parsed.context
        return Request(
            route=context.route_key or self.name,
            connection_id=context.connection_id,
            payload=parsed,
        )

    def run(self, request: Request) -> Handled:
        """Parse the message, build its action's command, execute its use case."""
        event: MessageEvent = request.payload
        message = parse_message(event.body, is_base64_encoded=event.is_base64_encoded)
        action = self._actions.get(message.action)
        if action is None:
            raise BadMessageError(
                UNSUPPORTED_ACTION, f"unsupported action; supported: {self._supported}"
            )
        command = action.command_for(event.context.connection_id, message.fields)
        result = self._use_case(action, event).execute(command)
        return Handled(
            outcome=str(result.outcome),
            message=action.message,
            report=action.reports.get(result.outcome),
            body=action.reply(result),
        )

    def _use_case(self, action: Action, event: MessageEvent) -> Any:
        """The action's use case (for the event's API when it sends), built on its first message."""
        if not action.sends:
            use_case = self._use_cases.get((action.name, ""))
            if use_case is None:
                use_case = self._use_cases[(action.name, "")] = action.use_case()
            return use_case
        endpoint = self._endpoint
        if not endpoint:
            context = event.context
            if not context.domain_name or not context.stage:
                raise MalformedEventError("requestContext.domainName and stage are needed to reply")
            endpoint = management_endpoint(context.domain_name, context.stage)
        use_case = self._use_cases.get((action.name, endpoint))
        if use_case is None:  # a race builds it twice, harmlessly: use cases are stateless
            use_case = action.use_case(sender=self._senders(endpoint_url=endpoint))
            self._use_cases[(action.name, endpoint)] = use_case
        return use_case
