"""The three Lambda handlers API Gateway's WebSocket routes invoke.

Handler strings: ``entrypoints.aws_lambda.handlers.connect_handler`` (``$connect``),
``…disconnect_handler`` (``$disconnect``), ``…default_handler`` (``$default``).

Each handler parses the event, builds one command, runs one use case and maps the result or
error to a response: no business logic and no AWS calls here. The container is built once at
module scope (cold start) so warm invocations reuse the Redis client, the boto3 clients and
the JWKS cache. A malformed event is a 400 and a log line; nothing escapes as an exception.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from dependency_injector import providers

from adapters.api_gateway_message_sender import management_endpoint
from application.commands import (
    ConnectCommand,
    DisconnectCommand,
    HeartbeatCommand,
    HeartbeatOutcome,
    HeartbeatResult,
    RejectMessageCommand,
)
from domain.errors import DomainError, InvalidTokenError
from domain.protocol import INTERNAL_ERROR, BadMessageError, error_message, parse_message
from entrypoints.aws_lambda.events import (
    MalformedEventError,
    RequestContext,
    parse_connect_event,
    parse_disconnect_event,
    parse_message_event,
    parse_request_context,
)
from entrypoints.aws_lambda.responses import reason_of, reply, response, status_for
from entrypoints.container import Container
from entrypoints.observability import (
    ABNORMAL_DISCONNECTS,
    CONNECTS,
    CONNECTS_REJECTED,
    DISCONNECTS,
    HEARTBEATS_UNRECORDED,
    STALE_CONNECTIONS_REMOVED,
    configure_logging,
    debug_enabled,
    log_with_metrics,
    logger,
    refresh_log_sampling,
)
from entrypoints.settings import Settings

NORMAL_CLOSE_CODES = frozenset({1000, 1001})
"""Close codes that are not abnormal: 1000 normal closure, 1001 going away (idle timeout)."""

container = Container()
# The environment's settings are the Dependency's default, not an override, so tests and the
# local gateway can override and reset providers without ever unsetting the configuration.
_settings = Settings.from_environ(os.environ)
container.settings.set_default(providers.Object(_settings))
configure_logging(
    _settings.log_level,
    sample_rate=_settings.log_sample_rate,
    structured_adapter_logs="AWS_LAMBDA_FUNCTION_NAME" in os.environ,
)

INTERNAL_ERROR_FRAME = error_message(
    code=INTERNAL_ERROR, message="the server could not handle this message; try again"
)
"""What a client reads when ``$default`` fails: no stack trace, no detail (those are logged)."""


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)


def _safely(
    route: str,
    event: Any,
    work: Callable[[], dict[str, Any]],
    *,
    failure_body: str | None = None,
) -> dict[str, Any]:
    """Run ``work``; map anything it raises to a response and one log line (never a trace to the client).

    ``failure_body`` replaces the failure response's body: on a two-way route the body is
    what the client reads. Each invocation first redraws Powertools' log sampling, so about
    ``POWERTOOLS_LOGGER_SAMPLE_RATE`` of the invocations log at DEBUG.
    """
    started = time.perf_counter()
    refresh_log_sampling()
    try:
        return work()
    except MalformedEventError as error:
        logger.warning(
            "malformed event",
            extra={
                "route": route,
                "outcome": "rejected",
                "reason": "malformed_event",
                "detail": str(error),
            },
        )
        return response(400, body=failure_body)
    except Exception as error:
        status = status_for(error)
        context = _context_or_none(event)
        fields = {
            "route": route,
            "connection_id": context.connection_id if context else None,
            "outcome": "failed",
            "reason": reason_of(error),
            "status": status,
            "duration_ms": _elapsed_ms(started),
        }
        if status == 500:
            logger.exception("unexpected error", extra=fields)
        else:
            logger.error("invocation failed", extra=fields)
        return response(status, body=failure_body)


def _context_or_none(event: Any) -> RequestContext | None:
    try:
        return parse_request_context(event)
    except MalformedEventError:
        return None


def connect_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``$connect``: verify the ``token`` query parameter and store the connection.

    Returns ``{"statusCode": 200}`` on success; 401 for a missing, repeated-and-different or
    invalid token, 429 over a connection limit, 503 when the JWKS or the store is
    unavailable, 400 for a malformed event. API Gateway answers the handshake with that status.
    """

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        parsed = parse_connect_event(event)
        connection_id = parsed.context.connection_id
        try:
            if len(set(parsed.tokens)) > 1:
                raise InvalidTokenError("ambiguous")
            token = parsed.tokens[0] if parsed.tokens else None
            result = container.connect().execute(
                ConnectCommand(connection_id=connection_id, token=token)
            )
        except DomainError as error:
            status = status_for(error)
            reason = reason_of(error)
            log_with_metrics(
                logger.warning if status >= 500 else logger.info,
                "connect rejected",
                {
                    "route": "$connect",
                    "connection_id": connection_id,
                    "outcome": "rejected",
                    "reason": reason,
                    "status": status,
                    "duration_ms": _elapsed_ms(started),
                },
                {CONNECTS_REJECTED: 1},
                {"reason": reason},
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

    return _safely("$connect", event, work)


def disconnect_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``$disconnect``: delete the record. Always 200 unless the store is down (503, logged).

    API Gateway ignores the answer; ``disconnectStatusCode`` other than 1000/1001 counts as an
    abnormal disconnect in the metrics.
    """

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        parsed = parse_disconnect_event(event)
        abnormal = parsed.status_code not in NORMAL_CLOSE_CODES
        # Counted whatever the store does: the disconnect-rate alarm reads these.
        counts = {DISCONNECTS: 1, ABNORMAL_DISCONNECTS: int(abnormal)}
        fields: dict[str, Any] = {
            "route": "$disconnect",
            "connection_id": parsed.context.connection_id,
            "disconnect_status_code": parsed.status_code,
            "disconnect_reason": parsed.reason,
        }
        try:
            container.disconnect().execute(
                DisconnectCommand(connection_id=parsed.context.connection_id)
            )
        except Exception as error:
            status = status_for(error)
            failed = {**fields, "outcome": "failed", "reason": reason_of(error), "status": status}
            failed["duration_ms"] = _elapsed_ms(started)
            log_with_metrics(
                logger.exception if status == 500 else logger.error,
                "unexpected error" if status == 500 else "invocation failed",
                failed,
                counts,
            )
            return response(status)
        fields.update(outcome="disconnected", status=200, duration_ms=_elapsed_ms(started))
        log_with_metrics(logger.info, "disconnected", fields, counts)
        return response(200)

    return _safely("$disconnect", event, work)


def default_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """``$default``: answer a ping with a pong and refresh the TTL; anything else gets an error frame.

    ``$default`` is a two-way route: the returned ``body`` is the frame API Gateway sends to
    the client (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-route-response.html).
    Returns ``{"statusCode": 200, "body": <pong or error frame>}``; a ping whose record has
    expired gets its ``connection_expired`` frame and the close through the Management API
    (``MANAGEMENT_API_ENDPOINT``, or ``https://{domainName}/{stage}`` from the event) and no
    body. Failures answer with an ``internal_error`` frame: 400 for a malformed event, 502
    when the gateway refuses the close, 500 for a bug.

    Telemetry: a successful pong writes no INFO line and no EMF document, only a DEBUG line
    (seen in the invocations Powertools' log sampling picks); every other outcome keeps its
    line and its metric.
    """

    def work() -> dict[str, Any]:
        started = time.perf_counter()
        parsed = parse_message_event(event)
        connection_id = parsed.context.connection_id
        route = parsed.context.route_key or "$default"
        try:
            ping = parse_message(parsed.body, is_base64_encoded=parsed.is_base64_encoded)
        except BadMessageError as error:
            rejected = container.reject_message().execute(
                RejectMessageCommand(
                    connection_id=connection_id, code=error.error_code, message=error.message
                )
            )
            logger.info(
                "message rejected",
                extra={
                    "route": route,
                    "connection_id": connection_id,
                    "outcome": "rejected",
                    "reason": error.error_code,
                    "duration_ms": _elapsed_ms(started),
                },
            )
            return reply(200, rejected.reply)
        sender = container.message_sender(endpoint_url=_management_endpoint(parsed.context))
        result = container.heartbeat(sender=sender).execute(
            HeartbeatCommand(connection_id=connection_id, ping_id=ping.ping_id)
        )
        if result.outcome is HeartbeatOutcome.PONG:
            if debug_enabled():  # only in sampled invocations: no fields built otherwise
                logger.debug("heartbeat", extra=_heartbeat_fields(route, result, started))
        elif result.outcome is HeartbeatOutcome.PONG_UNRECORDED:
            fields = _heartbeat_fields(route, result, started)
            log_with_metrics(logger.error, "heartbeat", fields, {HEARTBEATS_UNRECORDED: 1})
        else:
            fields = _heartbeat_fields(route, result, started)
            log_with_metrics(logger.info, "heartbeat", fields, {STALE_CONNECTIONS_REMOVED: 1})
        return reply(200, result.reply)

    return _safely("$default", event, work, failure_body=INTERNAL_ERROR_FRAME)


def _heartbeat_fields(route: str, result: HeartbeatResult, started: float) -> dict[str, Any]:
    return {
        "route": route,
        "connection_id": result.connection_id,
        "outcome": result.outcome.value,
        "duration_ms": _elapsed_ms(started),
    }


def _management_endpoint(context: RequestContext) -> str:
    configured = container.settings().management_api_endpoint
    if configured:
        return configured
    if not context.domain_name or not context.stage:
        raise MalformedEventError("requestContext.domainName and stage are needed to reply")
    return management_endpoint(context.domain_name, context.stage)
