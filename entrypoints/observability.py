"""Structured logs and CloudWatch metrics (Embedded Metric Format) for the handlers.

Both go through Powertools for AWS Lambda: ``Logger`` writes one JSON object per line,
``EphemeralMetrics`` writes EMF documents that CloudWatch turns into metrics
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
``EphemeralMetrics`` keeps no state shared between instances; each thread reuses its own
instance (building one costs more than the document it writes), so concurrent invocations
(the local gateway runs handlers in threads) never mix their metric sets.

Nothing here may log a token, a part of one, or a raw query string: callers pass only
connectionId, userId, route, outcome and reason codes.

Nothing here reads the environment: :func:`configure_observability` applies what ``Settings``
read (the service name, the namespace, the level, the sampling, whether metrics are
written), once per bootstrap. The module builds the Powertools ``Logger`` at import, as
Powertools documents it, under a fixed logger name; the service's name reaches the lines
and metrics only from the settings.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

LOGGER_NAME: Final = "timeline-ws"
"""The standard-library logger Powertools writes through (the service's name is a setting)."""

# Metric names the CloudWatch alarms in infra/ read; keep both in step.
CONNECTS = "Connects"
CONNECTS_REJECTED = "ConnectsRejected"
DISCONNECTS = "Disconnects"
ABNORMAL_DISCONNECTS = "AbnormalDisconnects"
HEARTBEATS_UNRECORDED = "HeartbeatsUnrecorded"
"""Pings answered while no store could refresh the record (a successful pong has no metric:
API Gateway's ``MessageCount`` and Lambda's ``Invocations`` count pings)."""
STALE_CONNECTIONS_REMOVED = "StaleConnectionsRemoved"
STORE_FAILOVERS = "StoreFailovers"
PUSH_DELIVERED = "PushDelivered"
PUSH_GONE = "PushGone"
PUSH_FAILED = "PushFailed"
"""Posts a push could not deliver (throttled past its retries, or refused): the alarm's metric."""
PUSH_UNAVAILABLE = "PushUnavailable"

logger = Logger(
    service=LOGGER_NAME,  # configure_observability() applies POWERTOOLS_SERVICE_NAME's value
    level="INFO",  # configure_observability() applies the validated LOG_LEVEL
    # configure_observability() applies the validated POWERTOOLS_LOGGER_SAMPLE_RATE; Powertools
    # would read it here and fail the import on a malformed value.
    sampling_rate=0.0,
    # Our messages are fixed plain text: skip Powertools' attempt to parse every message as
    # a JSON document (a raised and caught JSONDecodeError per line).
    json_deserializer=str,
    # Powertools' own serializer settings, in an encoder built once (its default,
    # json.dumps with options, builds a new encoder for every line).
    json_serializer=json.JSONEncoder(default=str, separators=(",", ":"), ensure_ascii=False).encode,
)
"""The handlers' JSON logger (one line per invocation outcome)."""


_stdlib_logger = logging.getLogger(LOGGER_NAME)  # the one ``logger`` writes through
_configured_level = _stdlib_logger.level  # LOG_LEVEL, what an unsampled invocation logs at
_metrics_enabled = True
_metrics_identity = ("TimelineWs", LOGGER_NAME)  # (namespace, service) of the EMF documents


def debug_enabled() -> bool:
    """Whether ``logger.debug`` would write (cheaper than building a line's fields for nothing)."""
    return _stdlib_logger.isEnabledFor(logging.DEBUG)


def configure_observability(
    level: str,
    *,
    sample_rate: float = 0.0,
    structured_adapter_logs: bool = False,
    metrics: bool = True,
    service: str = LOGGER_NAME,
    namespace: str = "TimelineWs",
) -> None:
    """Apply the log level, the log sampling and whether metrics are written; optionally route
    the adapters' lines through ``logger``.

    Args:
        level: one of ``entrypoints.settings.LOG_LEVELS`` (``Settings`` has validated it).
        sample_rate: the share of invocations, 0 to 1, that log at DEBUG whatever ``level``
            says (Powertools' sampling, redrawn per invocation by :func:`refresh_log_sampling`).
        structured_adapter_logs: give the ``adapters.*`` loggers (failover, circuit breaker,
            limiter, JWKS) the Powertools JSON handler, so their ``extra`` fields
            (``connection_id``, ``reason``, ``to_state``…) survive in CloudWatch instead of
            being dropped by the Lambda runtime's text format. They then stop propagating to
            the root logger, so this is for Lambda only (``Settings.in_lambda``), not for the
            local gateway or tests.
        metrics: write EMF metrics (``POWERTOOLS_METRICS_DISABLED`` turns them off; the
            local gateway does, they are CloudWatch's).
        service: the lines' ``service`` key and the metrics' ``service`` dimension
            (``POWERTOOLS_SERVICE_NAME``).
        namespace: the metrics' CloudWatch namespace (``POWERTOOLS_METRICS_NAMESPACE``).
    """
    global _configured_level, _metrics_enabled, _metrics_identity
    # botocore logs every raw response body at DEBUG (botocore/parsers.py), which would put
    # the Redis AUTH token from Secrets Manager's GetSecretValue into the logs of anyone who
    # turns the root logger (or AWS_LAMBDA_LOG_LEVEL) to DEBUG. Pin that one logger to INFO.
    logging.getLogger("botocore.parsers").setLevel(logging.INFO)
    _metrics_enabled = metrics
    _metrics_identity = (namespace, service)
    logger.append_keys(service=service)
    logger.setLevel(level)
    _configured_level = _stdlib_logger.level
    # Powertools' own sampling resets to initial_log_level before each draw.
    logger.initial_log_level = level
    logger.sampling_rate = sample_rate
    logger.append_keys(sampling_rate=sample_rate)
    if structured_adapter_logs:
        copy_config_to_registered_loggers(source_logger=logger, include={"adapters"})


def refresh_log_sampling() -> None:
    """Draw this invocation's sampling: DEBUG with probability ``sample_rate``, else the level.

    Powertools' rule (``Logger.refresh_sample_rate_calculation``, which its
    ``inject_lambda_context`` runs per invocation), but the level is only set when it
    changes: setting it clears every logger's cache, a cost each ping would pay for nothing.
    """
    rate = float(
        logger.sampling_rate
    )  # configure_observability set a float; Powertools types it str
    if not rate:
        return
    level = logging.DEBUG if random.random() <= rate else _configured_level  # noqa: S311 - sampling, not secrecy
    if _stdlib_logger.level != level:
        _stdlib_logger.setLevel(level)


_per_thread = threading.local()


def _thread_metrics() -> EphemeralMetrics:
    metrics: EphemeralMetrics | None = getattr(_per_thread, "metrics", None)
    identity = _metrics_identity
    if metrics is None or getattr(_per_thread, "identity", None) != identity:
        namespace, service = identity
        metrics = _per_thread.metrics = EphemeralMetrics(namespace=namespace, service=service)
        _per_thread.identity = identity
    return metrics


def metrics_document(
    counts: Mapping[str, int], dimensions: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The EMF document's members for ``counts``: ``{"_aws": {...}, "service": ..., "<name>": [n]}``.

    Built by Powertools (``serialize_metric_set``), for callers that write it as part of their
    own log line (:func:`log_with_metrics`). Empty when metrics are disabled
    (``POWERTOOLS_METRICS_DISABLED``) or could not be built (logged): metrics are best effort.
    """
    if not counts or not _metrics_enabled:
        return {}
    metrics = _thread_metrics()
    try:
        for name, value in (dimensions or {}).items():
            metrics.add_dimension(name=name, value=value)
        for name, count in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        return dict(metrics.serialize_metric_set())
    except Exception:  # pragma: no cover - defensive: metrics are best effort
        logger.exception("metrics could not be built")
        return {}
    finally:
        metrics.clear_metrics()


def log_with_metrics(
    level: int,
    message: str,
    fields: Mapping[str, Any],
    counts: Mapping[str, int],
    dimensions: Mapping[str, str] | None = None,
    *,
    exc_info: bool = False,
) -> None:
    """Write ONE line at ``level`` (``logging.INFO``…) that is both the structured log line and
    the EMF document; ``exc_info`` adds the exception being handled.

    An EMF document is a JSON log line with an ``_aws`` member; every other member is a
    property CloudWatch keeps with it (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
    So the line carries the metrics too: one JSON encoding and one line instead of two. When
    ``level`` is filtered out (``LOG_LEVEL``), the metrics are still written, alone
    (:func:`emit_metrics`): the alarms read them.
    """
    if not _stdlib_logger.isEnabledFor(level):
        emit_metrics(counts, dimensions)
        return
    # stacklevel 3: the line's "location" names our caller, not this helper nor Powertools.
    _LOG_AT[level](
        message,
        extra={**fields, **metrics_document(counts, dimensions)},
        exc_info=exc_info,
        stacklevel=3,
    )


_LOG_AT: Final[Mapping[int, Callable[..., None]]] = {
    logging.DEBUG: logger.debug,
    logging.INFO: logger.info,
    logging.WARNING: logger.warning,
    logging.ERROR: logger.error,
    logging.CRITICAL: logger.critical,
}
"""Powertools' ``Logger`` has a method per level and no ``log(level, ...)``."""


def emit_metrics(counts: Mapping[str, int], dimensions: Mapping[str, str] | None = None) -> None:
    """Write one EMF document with ``counts`` (metric name -> count, unit Count).

    ``dimensions`` are added to the default ``service`` dimension (e.g. ``{"reason":
    "expired"}`` for ``ConnectsRejected``). Disabled by ``POWERTOOLS_METRICS_DISABLED=true``
    (the local gateway sets it), as :func:`configure_observability` was told. Never raises: a metrics failure must not fail a connection.
    """
    if not counts or not _metrics_enabled:
        return
    metrics = _thread_metrics()
    try:
        for name, value in (dimensions or {}).items():
            metrics.add_dimension(name=name, value=value)
        for name, count in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=count)
        metrics.flush_metrics()
    except Exception:  # pragma: no cover - defensive: metrics are best effort
        logger.exception("metrics could not be emitted")
    finally:
        # flush_metrics clears only what it printed: with metrics disabled, or after an
        # error, the set would carry over into this thread's next document.
        metrics.clear_metrics()
