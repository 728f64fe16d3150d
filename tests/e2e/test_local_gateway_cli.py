"""``timeline-ws serve`` as a user runs it: embedded defaults, real Cognito mode, signals.

In-process where possible (so coverage sees it); one subprocess smoke test of the installed
command line with SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from entrypoints.cli import main
from entrypoints.local_gateway.banner import banner
from entrypoints.local_gateway.dev_cognito import DEV_SUB, load_dev_cognito
from entrypoints.local_gateway.emulator.server import GatewaySettings
from entrypoints.local_gateway.lifecycle import serve_until_stopped
from entrypoints.local_gateway.wiring import prepare_gateway
from tests.support.http import wait_for_health, wait_until
from tests.support.servers import free_port
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_REGION,
    TEST_USER_POOL_ID,
    jwks_document,
    mint_access_token,
    shared_key_pair,
)

RECEIVE_TIMEOUT_SECONDS = 10.0
PROCESS_TIMEOUT_SECONDS = 30.0
COGNITO_VARIABLES = (
    "COGNITO_REGION",
    "COGNITO_USER_POOL_ID",
    "COGNITO_APP_CLIENT_IDS",
    "COGNITO_JWKS",
)

pytestmark = pytest.mark.slow


async def ping(url: str) -> dict[str, Any]:
    async with connect(url) as ws:
        await ws.send('{"action":"ping","id":"cli"}')
        document: dict[str, Any] = json.loads(
            await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
        )
        return document


@pytest.fixture
def restored_environment() -> Iterator[None]:
    """Put ``os.environ`` back as it was (``serve`` gives its own process dummy credentials)."""
    snapshot = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(snapshot)


def prepare_local(environ: dict[str, str], state_dir: Path, redis_url: str | None = None) -> Any:
    """``prepare_gateway`` on 127.0.0.1, a free port and the default gateway settings."""
    return prepare_gateway(
        host="127.0.0.1",
        port=0,
        settings=GatewaySettings(),
        redis_url=redis_url,
        state_dir=state_dir,
        environ=environ,
    )


def serve_in_thread(
    prepared: Any,
) -> tuple[threading.Thread, asyncio.AbstractEventLoop, asyncio.Event]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete,
        args=(serve_until_stopped(prepared.app, prepared.sock, stop),),
        daemon=True,
    )
    thread.start()
    return thread, loop, stop


def test_given_no_configuration_when_serving_then_embedded_redis_and_the_stand_in_answer_pings(
    tmp_path: Path, restored_environment: None
) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in COGNITO_VARIABLES}
    prepared = prepare_local(environ, tmp_path)
    handler_settings = prepared.container.settings()
    assert handler_settings.management_api_endpoint == prepared.base_url + "/local"
    assert (
        handler_settings.cognito_jwks_url
        == prepared.base_url + "/local_timelinews/.well-known/jwks.json"
    )
    assert "MANAGEMENT_API_ENDPOINT" not in environ, "the caller's environment is never changed"
    thread, loop, stop = serve_in_thread(prepared)
    try:
        wait_for_health(prepared.base_url)
        assert prepared.dev_cognito is not None
        token = prepared.dev_cognito.access_token(sub="embedded-user")
        pong = asyncio.run(ping(f"{prepared.ws_url}?token={token}"))
        assert pong["action"] == "pong" and pong["id"] == "cli"
        text = banner(prepared, python="python")
        assert "embedded fakeredis" in text
        assert f"python -m websockets '{prepared.ws_url}?token=" in text
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(PROCESS_TIMEOUT_SECONDS)
    assert not thread.is_alive()


def test_given_cognito_variables_without_a_user_pool_then_serve_warns_that_the_stand_in_ignores_them(
    tmp_path: Path, restored_environment: None, caplog: pytest.LogCaptureFixture
) -> None:
    environ = {k: v for k, v in os.environ.items() if k not in COGNITO_VARIABLES}
    environ.update(COGNITO_REGION="eu-west-1", COGNITO_TOKEN_USE="id")
    with caplog.at_level(logging.WARNING, logger="timeline_ws.gateway"):
        prepared = prepare_local(environ, tmp_path)
    prepared.sock.close()
    assert prepared.dev_cognito is not None
    assert prepared.container.settings().cognito_token_use == "access"  # the stand-in's
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(
        "COGNITO_REGION, COGNITO_TOKEN_USE set without COGNITO_USER_POOL_ID"
    )


def test_given_a_real_user_pool_in_the_environment_then_its_tokens_work_and_the_stand_in_is_off(
    tmp_path: Path, redis_url: str, restored_environment: None
) -> None:
    key = shared_key_pair("gateway-real-pool")
    environ = dict(os.environ)
    environ.update(
        COGNITO_REGION=TEST_REGION,
        COGNITO_USER_POOL_ID=TEST_USER_POOL_ID,
        COGNITO_APP_CLIENT_IDS=TEST_CLIENT_ID,
        COGNITO_JWKS=json.dumps(jwks_document(key)),
    )
    prepared = prepare_local(environ, tmp_path, redis_url=redis_url)
    assert prepared.dev_cognito is None
    assert prepared.container.settings().cognito_user_pool_id == TEST_USER_POOL_ID
    thread, loop, stop = serve_in_thread(prepared)
    try:
        wait_for_health(prepared.base_url)
        assert (
            asyncio.run(ping(f"{prepared.ws_url}?token={mint_access_token(key)}"))["action"]
            == "pong"
        )
        # The stand-in's tokens must not pass for a real pool's.
        foreign = load_dev_cognito(tmp_path).access_token(sub="intruder")

        async def rejected() -> int:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(f"{prepared.ws_url}?token={foreign}"):
                    pass
            return int(refused.value.response.status_code)

        assert asyncio.run(rejected()) == 401
        text = banner(prepared)
        assert "COGNITO_USER_POOL_ID" in text and "Ready token" not in text
        assert redis_url.split("@")[-1] in text
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(PROCESS_TIMEOUT_SECONDS)


def test_the_serve_command_prints_a_working_command_and_exits_0_when_stopped(
    tmp_path: Path,
    restored_environment: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``main(["serve", ...])`` in this process, stopped through its stop event (the
    subprocess smoke test below covers a real SIGTERM)."""
    from entrypoints.local_gateway import lifecycle

    for name in COGNITO_VARIABLES:
        os.environ.pop(name, None)
    port = free_port()
    outcome: dict[str, Any] = {}
    stopper: dict[str, Any] = {}
    serve = lifecycle.serve_until_stopped

    async def stoppable(app: Any, sock: Any, stop: asyncio.Event | None = None) -> None:
        stopper["loop"], stopper["event"] = asyncio.get_running_loop(), asyncio.Event()
        await serve(app, sock, stopper["event"])

    monkeypatch.setattr(lifecycle, "serve_until_stopped", stoppable)
    captured: list[str] = []

    def printed() -> str:
        captured.append(capsys.readouterr().out)
        return "".join(captured)

    def client() -> None:
        try:
            wait_for_health(f"http://127.0.0.1:{port}")
            token = wait_until(lambda: _token_from(printed()), what="the banner's token")
            outcome["pong"] = asyncio.run(ping(f"ws://127.0.0.1:{port}/ws?token={token}"))
        finally:
            wait_until(lambda: "event" in stopper, what="the server loop")
            stopper["loop"].call_soon_threadsafe(stopper["event"].set)

    helper = threading.Thread(target=client, daemon=True)
    helper.start()
    status = main(
        ["serve", "--port", str(port), "--state-dir", str(tmp_path), "--log-level", "WARNING"]
    )
    helper.join(PROCESS_TIMEOUT_SECONDS)
    assert status == 0
    assert outcome["pong"]["action"] == "pong"


def _token_from(text: str) -> str | None:
    found = re.search(r"\?token=(ey[\w.-]+)'", text)
    return found.group(1) if found else None


def test_serve_reports_a_port_in_use_and_exits_1(
    tmp_path: Path, restored_environment: None
) -> None:
    from entrypoints.local_gateway.emulator.server import listening_socket

    taken = listening_socket("127.0.0.1", 0)  # SO_REUSEADDR does not let a second listener in
    try:
        assert (
            main(["serve", "--port", str(taken.getsockname()[1]), "--state-dir", str(tmp_path)])
            == 1
        )
    finally:
        taken.close()


@pytest.fixture
def serve_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], queue.Queue[str]]]:
    environ = {k: v for k, v in os.environ.items() if k not in COGNITO_VARIABLES}
    environ["TIMELINE_WS_STATE_DIR"] = str(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--port", "0", "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environ,
        cwd=Path(__file__).parent.parent.parent,
    )
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        yield process, lines
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(PROCESS_TIMEOUT_SECONDS)


def test_smoke_the_installed_command_serves_the_printed_command_and_stops_on_sigterm(
    serve_process: tuple[subprocess.Popen[str], queue.Queue[str]],
) -> None:
    process, lines = serve_process
    seen: list[str] = []

    def printed_url() -> str | None:
        while not lines.empty():
            seen.append(lines.get_nowait())
        found = re.search(r"-m websockets '(ws://[^']+)'", "".join(seen))
        return found.group(1) if found else None

    url = wait_until(printed_url, PROCESS_TIMEOUT_SECONDS, "the printed client command")
    token = url.split("token=", 1)[1]
    assert f"sub {DEV_SUB}" in "".join(seen)

    async def held_open_through_sigterm() -> tuple[str, int | None]:
        async with connect(url) as ws:
            await ws.send('{"action":"ping"}')
            pong = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(ws.wait_closed(), PROCESS_TIMEOUT_SECONDS)
            return str(pong["action"]), ws.close_code

    assert asyncio.run(held_open_through_sigterm()) == ("pong", 1001)
    assert process.wait(PROCESS_TIMEOUT_SECONDS) == 0
    while not lines.empty():
        seen.append(lines.get_nowait())
    output = "".join(seen)
    log_lines = [line for line in output.splitlines() if " INFO " in line or '"level"' in line]
    assert any("route=$disconnect status=200" in line for line in log_lines)
    assert any('"disconnect_status_code":1001' in line for line in log_lines)
    assert all(token not in line for line in log_lines)  # the banner prints it; logs never do
    # Each handler outcome is written once (Powertools' JSON line), not again as plain text.
    assert [line for line in log_lines if "disconnected" in line] == [
        line for line in log_lines if '"message":"disconnected"' in line
    ]
    assert len([line for line in log_lines if '"message":"connected"' in line]) == 1


# A gateway whose shutdown never ends (as when $disconnect waits on a hung store), served by
# the real serve_until_stopped in its own process.
HUNG_SHUTDOWN_CHILD = """
import asyncio, socket, sys
from aiohttp import web
from entrypoints.local_gateway.lifecycle import serve_until_stopped
from entrypoints.local_gateway.emulator.server import GATEWAY_KEY

class HungGateway:
    registry = ()
    async def shutdown(self):
        print("shutting down", flush=True)
        await asyncio.Event().wait()

async def started(app):  # runs after serve_until_stopped installed its signal handlers
    print("serving", flush=True)

app = web.Application()
app[GATEWAY_KEY] = HungGateway()
app.on_startup.append(started)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
sock.listen()
asyncio.run(serve_until_stopped(app, sock))
"""


def test_a_second_ctrl_c_stops_a_shutdown_that_hangs_with_status_130() -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", HUNG_SHUTDOWN_CHILD],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "serving"
        process.send_signal(signal.SIGINT)  # the clean shutdown starts, and hangs
        assert process.stdout.readline().strip() == "shutting down"
        process.send_signal(signal.SIGINT)  # the second one does not wait for it
        status = process.wait(PROCESS_TIMEOUT_SECONDS)
        stderr = process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert status == 130
    assert "expire by their TTL" in stderr
    assert "Traceback" not in stderr
