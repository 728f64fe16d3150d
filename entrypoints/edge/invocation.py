"""The one invocation wrapper every Lambda handler runs in.

:class:`LambdaHandler` is what a Lambda handler string names: ``handler(event, context)``.
It times the invocation, draws the log sampling, asks its route (``websocket_routes.py``) to read the
event and run its use case, maps whatever the route raised to a response through one table
(:func:`failure`), and writes the invocation's one line, which is also its EMF document
(Powertools; :func:`~entrypoints.observability.log_with_metrics`). A route only parses, calls
its use case and shapes the reply; it never logs, counts or catches.

Nothing escapes as an exception, no stack trace reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final, Protocol

import attrs

from domain.errors import DomainError
from domain.protocol import BadMessageError
from entrypoints.edge.events import MalformedEventError
from entrypoints.edge.responses import (
    INTERNAL_ERROR_FRAME,
    reason_of,
    rejection_frame,
    reply,
    response,
    status_for,
)
from entrypoints.observability import (
    debug_enabled,
    log_with_metrics,
    logger,
    refresh_log_sampling,
)

Response = dict[str, Any]


@attrs.frozen(slots=True)
class Report:
    """How an outcome is reported: one line at ``level`` (``logging.INFO``…) with ``message``,
    carrying ``metric`` (an EMF count of 1, with a ``reason`` dimension when ``by_reason``) and,
    ``with_stack``, the stack of the exception being handled."""

    level: int
    message: str
    metric: str | None = None
    by_reason: bool = False
    with_stack: bool = False


@attrs.frozen(slots=True, kw_only=True)
class Request:
    """What a route read from an event: whom it concerns and what every line about it carries.

    ``route`` is the log's ``route`` field; ``fields`` are further log fields (never a token);
    ``counts`` are EMF counts written whatever the outcome (``$disconnect``'s); ``payload`` is
    the route's own reading of the event (a command, or a message event to dispatch).
    """

    route: str
    connection_id: str | None
    payload: Any
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    counts: Mapping[str, int] = attrs.field(factory=dict)


@attrs.frozen(slots=True, kw_only=True)
class Handled:
    """What a route did: its ``outcome``, how that is reported (``None``: a quiet outcome, a
    DEBUG line named ``message`` only), further log ``fields``, EMF ``counts`` written with
    the report, and the reply: a two-way route's frame ``body`` (``None``: no frame), or a
    direct route's result (the JSON value the caller of Lambda's Invoke API gets)."""

    outcome: str
    message: str
    report: Report | None
    fields: Mapping[str, Any] = attrs.field(factory=dict)
    counts: Mapping[str, int] = attrs.field(factory=dict)
    body: Any = None


class Route(Protocol):
    """One route's part of an invocation (``websocket_routes.py``): read the event, run the use case.

    ``two_way`` routes answer with a frame (``$default``); ``direct`` routes are invoked by
    other services through Lambda's Invoke API, not by API Gateway (``push``): the handled
    ``body`` is the response, and a failure is ``{"error": reason, "message": text}``;
    ``rejection`` is how a domain error is reported on this route (``None``: as a failure,
    ``invocation failed``).
    """

    name: str
    two_way: bool
    direct: bool
    rejection: Report | None

    def read(self, event: Any) -> Request:
        """Parse the event. Raises ``MalformedEventError``."""
        ...

    def run(self, request: Request) -> Handled:
        """Build the command, execute the use case, shape the reply. Raises what it meets."""
        ...


class LambdaHandler:
    """A Lambda handler: ``handler(event, context) -> response``; ``route`` does the work."""

    def __init__(self, route: Route) -> None:
        self._route = route

    @property
    def two_way(self) -> bool:
        """Whether the route answers with a frame (API Gateway's route response)."""
        return self._route.two_way

    def __call__(self, event: Any, context: Any) -> Response:
        """Handle one event; never raises."""
        started = time.perf_counter()
        refresh_log_sampling()
        request: Request | None = None
        try:
            request = self._route.read(event)
            handled = self._route.run(request)
        except Exception as error:
            return failure(self._route, request, error, started)
        if handled.report is not None:
            write(handled.report, handled, request, started)
        elif debug_enabled():  # only in sampled invocations: no fields built otherwise
            logger.debug(handled.message, extra=_fields(request, handled, started))
        if self._route.direct:
            return handled.body
        return reply(200, handled.body) if self._route.two_way else response(200)


def _fields(request: Request, handled: Handled, started: float) -> dict[str, Any]:
    return {
        "route": request.route,
        "connection_id": request.connection_id,
        **request.fields,
        **handled.fields,
        "outcome": handled.outcome,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
    }


def write(report: Report, handled: Handled, request: Request, started: float) -> None:
    """The invocation's one line, with its metric and the request's counts."""
    counts = {**request.counts, **handled.counts}
    if report.metric:
        counts[report.metric] = 1
    reason = handled.fields.get("reason")
    dimensions = {"reason": reason} if report.by_reason and reason else None
    log_with_metrics(
        report.level,
        report.message,
        _fields(request, handled, started),
        counts,
        dimensions,
        exc_info=report.with_stack,
    )


MALFORMED_EVENT: Final = Report(logging.WARNING, "malformed event")
MESSAGE_REJECTED: Final = Report(logging.INFO, "message rejected")
INVOCATION_FAILED: Final = Report(logging.ERROR, "invocation failed")
UNEXPECTED_ERROR: Final = Report(logging.ERROR, "unexpected error", with_stack=True)


def failure(route: Route, request: Request | None, error: Exception, started: float) -> Response:
    """The response, and the one line, for anything a route raised: the edge's error table.

    - ``MalformedEventError``: 400, a WARNING (the event is not API Gateway's).
    - ``BadMessageError``: the client's message cannot be acted on: the error frame, status
      200, an INFO line; the connection stays open.
    - another domain error, on a route with a ``rejection`` report (``$connect``): its status
      (``STATUS_BY_ERROR``), that report (INFO, WARNING from 500 up).
    - anything else: its status (500 for a bug, with the stack in the log only), an ERROR.

    A two-way route's failures answer with the ``internal_error`` frame; a direct route's
    with ``{"error": reason, "message": text}`` (``bad_request`` for a malformed event, the
    domain error's reason and message, ``internal_error`` with no detail for a bug).
    """
    error_body = INTERNAL_ERROR_FRAME if route.two_way else None
    if route.direct:
        return _direct_failure(route, request, error, started)
    if isinstance(error, MalformedEventError):
        logger.warning(
            MALFORMED_EVENT.message,
            extra={
                "route": route.name,
                "outcome": "rejected",
                "reason": "malformed_event",
                "detail": str(error),
            },
        )
        return response(400, body=error_body)
    if request is None:  # a bug while reading the event
        request = Request(route=route.name, connection_id=None, payload=None)
    if isinstance(error, BadMessageError):
        rejected = Handled(
            outcome="rejected",
            message=MESSAGE_REJECTED.message,
            report=MESSAGE_REJECTED,
            fields={"reason": error.error_code},
        )
        write(MESSAGE_REJECTED, rejected, request, started)
        return reply(200, rejection_frame(error))
    status = status_for(error)
    fields = {"reason": reason_of(error), "status": status}
    report = route.rejection if isinstance(error, DomainError) else None
    if report is not None:
        level = logging.WARNING if status >= 500 else logging.INFO
        report = attrs.evolve(report, level=level)
        outcome = "rejected"
    else:
        report = UNEXPECTED_ERROR if status == 500 else INVOCATION_FAILED
        outcome = "failed"
    handled = Handled(outcome=outcome, message=report.message, report=report, fields=fields)
    write(report, handled, request, started)
    return response(status, body=error_body)


def _direct_failure(
    route: Route, request: Request | None, error: Exception, started: float
) -> Response:
    """A direct route's error result, and its one line (see :func:`failure`)."""
    request = request or Request(route=route.name, connection_id=None, payload=None)
    if isinstance(error, MalformedEventError):
        reason, text, report = "bad_request", str(error), MALFORMED_EVENT
    elif isinstance(error, DomainError) and route.rejection is not None:
        reason, text, report = error.reason, error.message, route.rejection
    else:
        reason, text = reason_of(error), "the function failed; see its log"
        report = UNEXPECTED_ERROR if status_for(error) == 500 else INVOCATION_FAILED
    outcome = "failed" if report in (UNEXPECTED_ERROR, INVOCATION_FAILED) else "rejected"
    fields = {"reason": reason, "detail": text} if outcome == "rejected" else {"reason": reason}
    handled = Handled(outcome=outcome, message=report.message, report=report, fields=fields)
    write(report, handled, request, started)
    return {"error": reason, "message": text}
