"""What each route's Lambda handler does: parse the event, run one use case, answer.

A handler is an object called as ``handler(event, context)`` (Lambda's handler signature).
The container builds one per route, once per process, with the use case factories it needs;
:mod:`entrypoints.aws_lambda.handlers` exposes them under the handler strings of
``entrypoints/routes.py``. No business logic and no AWS calls here: a handler parses the
event, builds a command, runs a use case and maps its result, or the domain error, to a
response through one table (``responses.py``), and writes one log line. A malformed event
is a 400 and a log line; nothing escapes as an exception, no stack trace reaches a client.

Event shapes: https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-integration-requests.html.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from adapters.api_gateway_message_sender import management_endpoint
from application.commands import ConnectCommand, DisconnectCommand, FieldError, RejectMessageCommand
from application.use_cases import Connect, Disconnect, RejectMessage
from domain.errors import DomainError, InvalidTokenError
from domain.protocol import (
    BAD_REQUEST,
    INTERNAL_ERROR,
    UNSUPPORTED_ACTION,
    BadMessageError,
    error_message,
    parse_message,
)
from entrypoints.aws_lambda.events import (
    MalformedEventError,
    MessageEvent,
    RequestContext,
    parse_connect_event,
    parse_disconnect_event,
    parse_message_event,
    parse_request_context,
)
from entrypoints.aws_lambda.responses import reason_of, reply, response, status_for
from entrypoints.observability import (
    ABNORMAL_DISCONNECTS,
    CONNECTS,
    CONNECTS_REJECTED,
    DISCONNECTS,
    debug_enabled,
    log_with_metrics,
    logger,
    refresh_log_sampling,
)
from entrypoints.routes import Action

NORMAL_CLOSE_CODES: Final = frozenset({1000, 1001})
"""Close codes that are not abnormal: 1000 normal closure, 1001 going away (idle timeout)."""

INTERNAL_ERROR_FRAME: Final = error_message(
    code=INTERNAL_ERROR, message="the server could not handle this message; try again"
)
"""What a client reads when ``$default`` fails: no stack trace, no detail (those are logged)."""

Response = dict[str, Any]


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _failed(route: str, event: Any, error: Exception, started: float, body: str | None) -> Response:
    """The response and the one log line for anything a handler raised."""
    if isinstance(error, MalformedEventError):
        logger.warning(
            "malformed event",
            extra={
                "route": route,
                "outcome": "rejected",
                "reason": "malformed_event",
                "detail": str(error),
            },
        )
        return response(400, body=body)
    status = status_for(error)
    try:
        connection_id: str | None = parse_request_context(event).connection_id
    except MalformedEventError:
        connection_id = None
    fields = {
        "route": route,
        "connection_id": connection_id,
        "outcome": "failed",
        "reason": reason_of(error),
        "status": status,
        "duration_ms": _elapsed_ms(started),
    }
    if status == 500:
        logger.exception("unexpected error", extra=fields)
    else:
        logger.error("invocation failed", extra=fields)
    return response(status, body=body)


class ConnectHandler:
    """``$connect``: verify the ``token`` query parameter and store the connection.

    Answers ``{"statusCode": 200}`` on success; 401 for a missing, repeated-and-different or
    invalid token, 429 over a connection limit, 503 when the JWKS or the store is
    unavailable, 400 for a malformed event. API Gateway answers the handshake with that
    status (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-keys-connect-disconnect.html).
    Writes one line, which is also the EMF document counting ``Connects`` or
    ``ConnectsRejected`` (by ``reason``).
    """

    def __init__(self, connect: Callable[[], Connect]) -> None:
        self._connect = connect

    def __call__(self, event: Any, context: Any) -> Response:
        """Handle one ``$connect`` event."""
        started = time.perf_counter()
        refresh_log_sampling()
        try:
            return self._handle(event, started)
        except Exception as error:
            return _failed("$connect", event, error, started, None)

    def _handle(self, event: Any, started: float) -> Response:
        parsed = parse_connect_event(event)
        connection_id = parsed.context.connection_id
        try:
            if len(set(parsed.tokens)) > 1:
                raise InvalidTokenError("ambiguous")
            token = parsed.tokens[0] if parsed.tokens else None
            result = self._connect().execute(
                ConnectCommand(connection_id=connection_id, token=token)
            )
        except DomainError as error:
            status = status_for(error)
            log_with_metrics(
                logger.warning if status >= 500 else logger.info,
                "connect rejected",
                {
                    "route": "$connect",
                    "connection_id": connection_id,
                    "outcome": "rejected",
                    "reason": error.reason,
                    "status": status,
                    "duration_ms": _elapsed_ms(started),
                },
                {CONNECTS_REJECTED: 1},
                {"reason": error.reason},
            )
            return response(status)
        log_with_metrics(
            logger.info,
            "connected",
            {
                "route": "$connect",
                "connection_id": connection_id,
                "user_id": result.user_id,
                "outcome": "connected",
                "status": 200,
                "duration_ms": _elapsed_ms(started),
            },
            {CONNECTS: 1},
        )
        return response(200)


class DisconnectHandler:
    """``$disconnect``: delete the record. 200, or 503 when the store is down (logged).

    API Gateway ignores the answer. Every disconnect counts ``Disconnects``, and
    ``AbnormalDisconnects`` when ``disconnectStatusCode`` is not 1000/1001, whatever the
    store does: the disconnect-rate alarm reads them.
    """

    def __init__(self, disconnect: Callable[[], Disconnect]) -> None:
        self._disconnect = disconnect

    def __call__(self, event: Any, context: Any) -> Response:
        """Handle one ``$disconnect`` event."""
        started = time.perf_counter()
        refresh_log_sampling()
        try:
            parsed = parse_disconnect_event(event)
        except MalformedEventError as error:
            return _failed("$disconnect", event, error, started, None)
        abnormal = parsed.status_code not in NORMAL_CLOSE_CODES
        counts = {DISCONNECTS: 1, ABNORMAL_DISCONNECTS: int(abnormal)}
        fields: dict[str, Any] = {
            "route": "$disconnect",
            "connection_id": parsed.context.connection_id,
            "disconnect_status_code": parsed.status_code,
            "disconnect_reason": parsed.reason,
        }
        try:
            self._disconnect().execute(
                DisconnectCommand(connection_id=parsed.context.connection_id)
            )
        except Exception as error:
            status = status_for(error)
            fields.update(outcome="failed", reason=reason_of(error), status=status)
            fields["duration_ms"] = _elapsed_ms(started)
            if status == 500:
                log_with_metrics(logger.exception, "unexpected error", fields, counts)
            else:
                log_with_metrics(logger.error, "invocation failed", fields, counts)
            return response(status)
        fields.update(outcome="disconnected", status=200, duration_ms=_elapsed_ms(started))
        log_with_metrics(logger.info, "disconnected", fields, counts)
        return response(200)


class DefaultHandler:
    """``$default``: dispatch a client message to its action; answer with the reply frame.

    ``$default`` is a two-way route: the returned ``body`` is the frame API Gateway sends to
    the client (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).

    - The message names an action of ``actions`` (``entrypoints/routes.py``): its fields build
      the row's command, a fresh use case executes it, the result's ``reply`` is the body
      (no body when ``None``: the use case closed the connection). The row's ``reports``
      say how each outcome is logged and counted; other outcomes log only at DEBUG.
    - A message that cannot be read, an unknown action or an invalid field: the
      ``RejectMessage`` use case's error frame (``bad_request``, ``unsupported_action``,
      ``payload_too_large``), an INFO line; the connection stays open.
    - A failure: an ``internal_error`` frame; 400 for a malformed event, 502 when the
      gateway refuses a close, 500 for a bug.

    Args:
        actions: the action table.
        use_cases: action name -> use case factory; called with
            ``sender__endpoint_url=<Management API endpoint>`` so a use case that sends
            reaches this API's stage.
        reject: the ``RejectMessage`` factory.
        management_api_endpoint: ``MANAGEMENT_API_ENDPOINT``; ``None`` derives
            ``https://{domainName}/{stage}`` from each event.
    """

    def __init__(
        self,
        *,
        actions: tuple[Action, ...],
        use_cases: Mapping[str, Callable[..., Any]],
        reject: Callable[[], RejectMessage],
        management_api_endpoint: str | None,
    ) -> None:
        self._actions = {action.name: (action, use_cases[action.name]) for action in actions}
        self._supported = ", ".join(sorted(self._actions))
        self._reject = reject
        self._endpoint = management_api_endpoint

    def __call__(self, event: Any, context: Any) -> Response:
        """Handle one MESSAGE event."""
        started = time.perf_counter()
        refresh_log_sampling()
        try:
            return self._handle(parse_message_event(event), started)
        except Exception as error:
            return _failed("$default", event, error, started, INTERNAL_ERROR_FRAME)

    def _handle(self, parsed: MessageEvent, started: float) -> Response:
        context = parsed.context
        try:
            message = parse_message(parsed.body, is_base64_encoded=parsed.is_base64_encoded)
            action, use_case = self._action(message.action)
            command = self._command(action, context.connection_id, message.fields)
        except BadMessageError as error:
            return self._rejected(context, error, started)
        result = use_case(sender__endpoint_url=self._endpoint_of(context)).execute(command)
        report = action.reports.get(result.outcome)
        if report is not None:
            fields = self._fields(context, result.outcome, started)
            counts = {report.metric: 1} if report.metric else {}
            log_with_metrics(_LOG_BY_LEVEL[report.level], action.log_message, fields, counts)
        elif debug_enabled():  # only in sampled invocations: no fields built otherwise
            logger.debug(action.log_message, extra=self._fields(context, result.outcome, started))
        return reply(200, result.reply)

    def _action(self, name: str) -> tuple[Action, Callable[..., Any]]:
        found = self._actions.get(name)
        if found is None:
            raise BadMessageError(
                UNSUPPORTED_ACTION, f"unsupported action; supported: {self._supported}"
            )
        return found

    @staticmethod
    def _command(action: Action, connection_id: str, fields: Mapping[str, object]) -> Any:
        arguments = {
            field: fields[member] for member, field in action.fields.items() if member in fields
        }
        try:
            return action.command(connection_id=connection_id, **arguments)
        except FieldError as error:
            member = next((m for m, f in action.fields.items() if f == error.field), error.field)
            raise BadMessageError(BAD_REQUEST, f'"{member}" {error.problem}') from None

    def _rejected(
        self, context: RequestContext, error: BadMessageError, started: float
    ) -> Response:
        rejected = self._reject().execute(
            RejectMessageCommand(
                connection_id=context.connection_id, code=error.error_code, message=error.message
            )
        )
        logger.info(
            "message rejected",
            extra={
                "route": context.route_key or "$default",
                "connection_id": context.connection_id,
                "outcome": "rejected",
                "reason": error.error_code,
                "duration_ms": _elapsed_ms(started),
            },
        )
        return reply(200, rejected.reply)

    def _endpoint_of(self, context: RequestContext) -> str:
        if self._endpoint:
            return self._endpoint
        if not context.domain_name or not context.stage:
            raise MalformedEventError("requestContext.domainName and stage are needed to reply")
        return management_endpoint(context.domain_name, context.stage)

    @staticmethod
    def _fields(context: RequestContext, outcome: object, started: float) -> dict[str, Any]:
        return {
            "route": context.route_key or "$default",
            "connection_id": context.connection_id,
            "outcome": str(outcome),
            "duration_ms": _elapsed_ms(started),
        }


class ReconcileHandler:
    """The scheduled reconciler: replay the deletes a connection store could not take.

    Invoked every minute by EventBridge (``infra/schedule.tf``) and by the local gateway's
    timer; see ``adapters/connection_store/failover.py``. With Redis as the only store there
    is nothing to reconcile. Answers ``{"statusCode": 200, "primaryDeletes": n,
    "secondaryDeletes": n, "leftInProcess": n}`` (EventBridge ignores it); never raises.
    """

    def __init__(self, store: object) -> None:
        self._reconcile = getattr(store, "reconcile", None)

    def __call__(self, event: Any, context: Any) -> Response:
        """Replay one batch."""
        if self._reconcile is None:
            return {
                "statusCode": 200,
                "primaryDeletes": 0,
                "secondaryDeletes": 0,
                "leftInProcess": 0,
            }
        try:
            report = self._reconcile()
        except Exception:  # never a failed invocation: the next schedule tries again
            logger.exception("reconcile failed", extra={"route": "reconcile"})
            return {"statusCode": 500}
        return {
            "statusCode": 200,
            "primaryDeletes": report.primary_deletes,
            "secondaryDeletes": report.secondary_deletes,
            "leftInProcess": report.left_in_process,
        }


_LOG_BY_LEVEL: Final = {
    10: logger.debug,
    20: logger.info,
    30: logger.warning,
    40: logger.error,
    50: logger.critical,
}
