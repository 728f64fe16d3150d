"""The npm package ``timeline-ws-client`` (``clients/js``) as an application developer gets it.

``npm pack`` gives a tarball that installs into an empty npm project, whose usage example
type-checks under ``tsc --strict`` (and a misuse does not: the types are not ``any``); the
module is at most 3 KB minified (esbuild) and gzipped. The tools come from
``clients/js/node_modules`` (``make js-tools``, part of ``make test``, runs ``npm ci`` there).
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "clients" / "js"
TOOLS = PACKAGE / "node_modules" / ".bin"
SIZE_LIMIT_BYTES = 3 * 1024

USAGE = """\
import {
  connect,
  HEARTBEAT_ID_PREFIX,
  type AuthErrorEvent,
  type CloseEvent,
  type ErrorCode,
  type State,
  type TimelineSocket,
  type TimelineSocketError,
} from "timeline-ws-client";

const socket: TimelineSocket = connect({
  url: "wss://abc123.execute-api.eu-west-1.amazonaws.com/live",
  getToken: async ({ forceRefresh }) => (forceRefresh ? "fresh" : "cached"),
  probe: async (token: string) => (token ? 401 : null),
  pingInterval: 30_000,
  maxBytes: 32_768,
  authRefusals: 3,
});
socket
  .on("open", ({ connectionId, handover }) => console.log(connectionId.length, handover))
  .on("pong", ({ id, rtt, serverTime }) => console.log(id.startsWith(HEARTBEAT_ID_PREFIX), rtt, serverTime))
  .on("close", (event: CloseEvent) => console.log(event.code, event.willReconnect, event.delay ?? 0))
  .on("auth_error", ({ reason, status }: AuthErrorEvent) => console.log(reason, status ?? "none"))
  .on("token_error", ({ error, delay }) => console.log(error, delay))
  .on("state", ({ state, previous }) => console.log(state satisfies State, previous))
  .on("message", (data) => console.log(data))
  .on("dropped", ({ message }) => console.log(message.length));
try {
  const sent: boolean = socket.send({ action: "post", text: "hello" });
  console.log(sent, socket.state, socket.connectionId ?? "not open");
} catch (error) {
  const code: ErrorCode = (error as TimelineSocketError).code;
  console.log(code === "message_too_large");
}
socket.setToken("after-login");
socket.reconnect();
socket.close();
"""
MISUSE = """\
import { connect } from "timeline-ws-client";
connect({ url: "wss://x/live", getToken: () => "t" }).on("open", (e) => e.connectionID);
connect({ url: "wss://x/live" });
"""
"""Line 2: a misspelt payload field; line 3: neither ``getToken`` nor ``token`` (``connect()``
throws ``invalid_options`` at run time, so the types refuse it)."""
TSCONFIG = {
    "compilerOptions": {
        "strict": True,
        "noEmit": True,
        "module": "nodenext",
        "moduleResolution": "nodenext",
        "target": "es2022",
        "lib": ["es2022", "dom"],
        "types": [],
    },
    "files": ["usage.ts"],
}


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        raise RuntimeError(f"{path} is missing: run `make js-tools` (npm ci in clients/js)")
    return path


def run(*command: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tarball(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``npm pack`` of clients/js."""
    destination = tmp_path_factory.mktemp("pack")
    packed = run(
        shutil.which("npm") or "npm",
        "pack",
        "--json",
        "--pack-destination",
        destination,
        cwd=PACKAGE,
    )
    assert packed.returncode == 0, packed.stderr
    return destination / json.loads(packed.stdout)[0]["filename"]


@pytest.fixture(scope="module")
def app(tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty npm project with the tarball installed."""
    project = tmp_path_factory.mktemp("app")
    (project / "package.json").write_text('{"name": "an-app", "private": true, "type": "module"}')
    installed = run("npm", "install", "--no-audit", "--no-fund", tarball, cwd=project)
    assert installed.returncode == 0, installed.stderr
    (project / "tsconfig.json").write_text(json.dumps(TSCONFIG))
    return project


def test_the_tarball_holds_the_module_its_types_the_changelog_and_nothing_else(
    tarball: Path,
) -> None:
    with tarfile.open(tarball) as archive:
        names = sorted(archive.getnames())
        manifest = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
    assert names == [
        "package/CHANGELOG.md",
        "package/README.md",
        "package/package.json",
        "package/timeline-ws-client.d.ts",
        "package/timeline-ws-client.js",
    ]
    assert manifest["type"] == "module"
    assert manifest["exports"]["."] == {
        "types": "./timeline-ws-client.d.ts",
        "default": "./timeline-ws-client.js",
    }
    assert "dependencies" not in manifest
    assert manifest["version"] in (PACKAGE / "CHANGELOG.md").read_text()


def test_given_the_installed_tarball_then_the_usage_example_type_checks_under_strict(
    app: Path,
) -> None:
    (app / "usage.ts").write_text(USAGE)
    checked = run(tool("tsc"), "-p", app, cwd=app)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_given_the_installed_tarball_then_a_misuse_fails_to_type_check(app: Path) -> None:
    (app / "misuse.ts").write_text(MISUSE)
    (app / "tsconfig.misuse.json").write_text(json.dumps({**TSCONFIG, "files": ["misuse.ts"]}))
    checked = run(tool("tsc"), "-p", app / "tsconfig.misuse.json", cwd=app)
    assert checked.returncode != 0
    errors = re.findall(
        r"^misuse\.ts\((\d+),\d+\): error (TS\d+): (.*)$", checked.stdout, re.MULTILINE
    )
    by_line = {int(line): message for line, _, message in errors}
    assert sorted(by_line) == [2, 3], checked.stdout
    assert "connectionID" in by_line[2] and "connectionId" in by_line[2]
    assert "not assignable to parameter of type 'ConnectOptions'" in by_line[3]


def test_the_module_is_at_most_3_kb_minified_and_gzipped() -> None:
    minified = run(
        tool("esbuild"), "--minify", "--format=esm", "timeline-ws-client.js", cwd=PACKAGE
    )
    assert minified.returncode == 0, minified.stderr
    size = len(gzip.compress(minified.stdout.encode(), compresslevel=9))
    print(f"\ntimeline-ws-client.js: {len(minified.stdout)} bytes minified, {size} gzipped")
    assert size <= SIZE_LIMIT_BYTES


def test_the_types_declare_exactly_what_the_module_exports() -> None:
    exported = run(
        "node",
        "--input-type=module",
        "-e",
        "const m = await import('./timeline-ws-client.js'); console.log(JSON.stringify(Object.keys(m).sort()))",
        cwd=PACKAGE,
    )
    assert exported.returncode == 0, exported.stderr
    declared = re.findall(
        r"^export declare (?:const|function) (\w+)",
        (PACKAGE / "timeline-ws-client.d.ts").read_text(),
        flags=re.MULTILINE,
    )
    assert json.loads(exported.stdout) == sorted(declared)
