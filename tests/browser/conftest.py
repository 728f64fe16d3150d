"""Fixtures of the browser tier: Debian's headless Chromium driven by Playwright.

Playwright cannot download its own browsers here: ``make test`` installs Debian's
``chromium`` (``/usr/bin/chromium``) and Playwright launches it with a fresh temporary
profile. Pages talk only to 127.0.0.1: the policy page is served by request interception
(no server at all), the demo page by an in-process ``serve`` on a loopback port.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import no_secret_in_any_log_line  # noqa: F401  (autouse here too)
from tests.support.gateway import RestartableGateway

CHROMIUM = os.environ.get("TIMELINE_WS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="package")
def chromium() -> Iterator[object]:
    """One headless Chromium for the tier (each test gets its own context)."""
    if shutil.which(CHROMIUM) is None:
        raise RuntimeError(f"{CHROMIUM} is missing: run `make test` (it apt-get installs chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: object) -> Iterator[object]:
    """A page in a fresh context; page errors are collected in ``page.errors``."""
    context = chromium.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    """``test-artifacts/`` at the repository root (git-ignored): screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def demo_server(redis_url: str, tmp_path: Path) -> Iterator[RestartableGateway]:
    server = RestartableGateway(state_dir=tmp_path / "state", redis_url=redis_url).start()
    try:
        yield server
    finally:
        server.stop()
