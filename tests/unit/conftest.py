"""Fixtures shared by the unit tier."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from entrypoints.observability import logger


@pytest.fixture
def lines(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Any:
    """What the logger's handler and stdout receive, as parsed JSON lines."""
    buffer = io.StringIO()
    monkeypatch.setattr(logger.registered_handler, "stream", buffer)

    def read() -> list[dict[str, Any]]:
        text = buffer.getvalue() + capsys.readouterr().out
        return [json.loads(line) for line in text.splitlines() if line.startswith("{")]

    return read
