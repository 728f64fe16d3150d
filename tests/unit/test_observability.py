"""EMF metrics and the JSON logger: one document per call, nothing carried over, thread-safe."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from typing import Any

import pytest

from entrypoints.observability import (
    CONNECTS,
    CONNECTS_REJECTED,
    HEARTBEATS_UNRECORDED,
    configure_observability,
    emit_metrics,
    log_with_metrics,
    logger,
)

METRICS_NAMESPACE = "TimelineWs"  # POWERTOOLS_METRICS_NAMESPACE's default


@pytest.fixture
def metrics_off() -> Any:
    """``POWERTOOLS_METRICS_DISABLED=true`` as ``bootstrap`` applies it; on again afterwards."""
    configure_observability("INFO", metrics=False)
    yield
    configure_observability("INFO")


def _documents(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def test_given_two_calls_then_two_documents_and_no_dimension_carries_over(
    capsys: pytest.CaptureFixture[str],
) -> None:
    emit_metrics({CONNECTS_REJECTED: 1}, {"reason": "expired"})
    emit_metrics({CONNECTS: 1})

    first, second = _documents(capsys.readouterr().out)
    assert first["ConnectsRejected"] == [1.0] and first["reason"] == "expired"
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["reason", "service"]]
    assert second["Connects"] == [1.0] and "reason" not in second
    assert "ConnectsRejected" not in second
    assert second["_aws"]["CloudWatchMetrics"][0]["Namespace"] == METRICS_NAMESPACE
    assert second["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]


def test_given_metrics_disabled_then_nothing_is_written_and_nothing_accumulates(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_observability("INFO", metrics=False)
    try:
        # Powertools prints a document by itself once a metric holds 100 values: never here.
        for _ in range(250):
            emit_metrics({HEARTBEATS_UNRECORDED: 1})
        assert _documents(capsys.readouterr().out) == []
    finally:
        configure_observability("INFO")
    emit_metrics({HEARTBEATS_UNRECORDED: 1})
    (document,) = _documents(capsys.readouterr().out)
    assert document["HeartbeatsUnrecorded"] == [1.0]


def test_given_many_threads_then_each_call_writes_its_own_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    barrier = threading.Barrier(8)

    def work(index: int) -> None:
        barrier.wait(timeout=10)
        for _ in range(25):
            emit_metrics({CONNECTS_REJECTED: 1}, {"reason": f"reason-{index}"})

    threads = [threading.Thread(target=work, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    documents = _documents(capsys.readouterr().out)
    assert len(documents) == 200
    assert all(document["ConnectsRejected"] == [1.0] for document in documents)
    reasons = [document["reason"] for document in documents]
    assert sorted(set(reasons)) == [f"reason-{index}" for index in range(8)]
    assert all(reasons.count(f"reason-{index}") == 25 for index in range(8))


def test_a_log_line_keeps_its_fields_and_its_message_as_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger.info(
        '{"not": "parsed"}',
        extra={"connection_id": "abc=", "user_id": "u-1", "outcome": "pong", "reason": "r"},
    )

    # The line exactly as the Powertools handler writes it.
    line = json.loads(logger.registered_formatter.format(caplog.records[-1]))
    assert line["message"] == '{"not": "parsed"}'
    assert (line["connection_id"], line["user_id"], line["outcome"], line["reason"]) == (
        "abc=",
        "u-1",
        "pong",
        "r",
    )
    assert line["service"] and line["level"] == "INFO" and "timestamp" in line


def test_in_lambda_the_adapters_log_lines_are_json_with_their_fields() -> None:
    # Given a fresh interpreter configured as the handlers configure it inside Lambda
    script = (
        "import logging\n"
        "import adapters.connection_store.failover\n"
        "from entrypoints.observability import configure_observability\n"
        "configure_observability('INFO', structured_adapter_logs=True)\n"
        "logging.getLogger('adapters.connection_store.failover').warning(\n"
        "    'connection store failover', extra={'connection_id': 'c=', 'reason': 'timeout'})\n"
        "logging.getLogger('adapters.connection_store.failover').debug('hidden')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    # Then the line is Powertools JSON carrying the extra fields; DEBUG stays below the level
    (line,) = [line for line in result.stdout.splitlines() if line.strip()]
    record = json.loads(line)
    assert record["message"] == "connection store failover"
    assert (record["connection_id"], record["reason"], record["level"]) == (
        "c=",
        "timeout",
        "WARNING",
    )
    assert "hidden" not in result.stdout + result.stderr


# -- one line that is both the log line and the EMF document -----------------------------------


def test_log_with_metrics_writes_one_line_that_is_a_valid_emf_document(lines: Any) -> None:
    log_with_metrics(
        logging.INFO,
        "connect rejected",
        {"connection_id": "c="},
        {CONNECTS_REJECTED: 1},
        {"reason": "expired"},
    )

    (line,) = lines()
    assert (line["message"], line["connection_id"], line["level"]) == (
        "connect rejected",
        "c=",
        "INFO",
    )
    directive = line["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == METRICS_NAMESPACE
    assert directive["Dimensions"] == [["reason", "service"]]
    assert directive["Metrics"] == [{"Name": "ConnectsRejected", "Unit": "Count"}]
    assert isinstance(line["_aws"]["Timestamp"], int)
    # Every dimension and metric the directive names is a member of the line (EMF's rule).
    assert (line["ConnectsRejected"], line["reason"], line["service"]) == (
        [1.0],
        "expired",
        "timeline-ws",
    )
    assert line["location"].startswith("test_log_with_metrics"), "the caller's location, not ours"


def test_given_the_log_level_filters_the_line_then_the_metrics_are_still_written(
    lines: Any,
) -> None:
    logger.setLevel("WARNING")
    try:
        log_with_metrics(logging.INFO, "connected", {"connection_id": "c="}, {CONNECTS: 1})
    finally:
        logger.setLevel("INFO")

    (document,) = lines()
    assert document["Connects"] == [1.0], "the alarms read the metric whatever LOG_LEVEL says"
    assert "message" not in document


def test_given_metrics_disabled_then_the_line_has_no_emf_member(
    lines: Any, metrics_off: Any
) -> None:
    log_with_metrics(logging.INFO, "connected", {"connection_id": "c="}, {CONNECTS: 1})

    (line,) = lines()
    assert line["message"] == "connected"
    assert "_aws" not in line and "Connects" not in line


def test_the_service_and_namespace_come_from_the_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_observability("INFO", service="timeline-ws-prod", namespace="TimelineWsProd")
    try:
        emit_metrics({CONNECTS: 1})
    finally:
        configure_observability("INFO")
    (document,) = _documents(capsys.readouterr().out)
    assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "TimelineWsProd"
    assert document["service"] == "timeline-ws-prod"


def test_importing_observability_reads_no_environment_and_pins_no_logger() -> None:
    script = (
        "import logging, os\n"
        "os.environ['POWERTOOLS_SERVICE_NAME'] = 'from-the-environment'\n"
        "import entrypoints.observability as o\n"
        "assert logging.getLogger('botocore.parsers').level == logging.NOTSET\n"
        "o.emit_metrics({'Connects': 1})\n"
        "o.configure_observability('INFO')\n"
        "assert logging.getLogger('botocore.parsers').level == logging.INFO, 'pinned at bootstrap'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert "from-the-environment" not in result.stdout, "only Settings reads the environment"
