"""The npm client (``clients/js/timeline-ws-client.js``) in plain Node 20, against a real ``serve``.

Node's global object is no event target and Node < 22 has no global ``WebSocket`` without
``--experimental-websocket``: ``connect()`` must then throw ``invalid_options`` (not a
``ReferenceError``), and with a ``WebSocket`` implementation given it must open (no
online/offline/pagehide handling without a window). Node's own ``WebSocket`` (behind the flag,
removed from the global object before the module runs) stands in for the ``ws`` package's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.gateway import RestartableGateway

pytestmark = pytest.mark.slow
MODULE = Path(__file__).resolve().parents[2] / "clients" / "js" / "timeline-ws-client.js"
NODE = shutil.which("node") or "node"

WITHOUT_WEBSOCKET = """\
const { connect } = await import(process.argv[1]);
try {
  connect({ url: "ws://127.0.0.1:9/ws", token: "t" });
  console.log(JSON.stringify({ threw: null }));
} catch (error) {
  console.log(JSON.stringify({ threw: error.constructor.name, code: error.code, message: error.message }));
}
"""

# argv: the module, the URL, the token. Bounded: exits 3 after 15 s without an open.
GIVEN_A_WEBSOCKET = """\
const WS = globalThis.WebSocket;
delete globalThis.WebSocket; // as in Node < 22 without the flag: only the option gives one
const { connect } = await import(process.argv[1]);
const giveUp = setTimeout(() => { console.log(JSON.stringify({ open: null })); process.exit(3); }, 15000);
const socket = connect({ url: process.argv[2], token: process.argv[3], WebSocket: WS });
socket.on("open", ({ connectionId }) => {
  clearTimeout(giveUp);
  console.log(JSON.stringify({ open: connectionId, state: socket.state }));
  socket.close();
});
"""


def node(script: str, *args: str, flags: tuple[str, ...] = ()) -> dict[str, object]:
    ran = subprocess.run(
        [NODE, *flags, "--input-type=module", "-e", script, str(MODULE), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return json.loads(ran.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_given_plain_node_without_a_websocket_then_connect_throws_invalid_options() -> None:
    result = node(WITHOUT_WEBSOCKET)

    assert (result["threw"], result["code"]) == ("TypeError", "invalid_options")
    assert "ws package" in str(result["message"])


def test_given_node_and_a_websocket_implementation_then_the_client_opens_against_serve(
    server: Callable[..., RestartableGateway],
) -> None:
    api = server()
    token = api.token(sub="node-user")

    result = node(GIVEN_A_WEBSOCKET, api.ws_url, token, flags=("--experimental-websocket",))

    assert isinstance(result["open"], str) and result["open"]
    assert result["state"] == "open"
