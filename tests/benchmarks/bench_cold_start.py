"""Cold start: each handler as Lambda starts it, against ``python -c "import boto3"``.

Each run is a fresh ``python -I -S`` whose ``sys.path`` holds only the Lambda package's
dependencies (``support.lambda_deps_dir``: ``pip install --target`` of
``[project].dependencies``) and the repository root: no site-packages, so nothing the venv
holds for tests or the local gateway (moto, pydantic, aiohttp, ...) can be imported by
accident. The child imports the handlers module (building the container from the
environment), then serves one API Gateway event: ``$connect`` with a valid token against the
preloaded JWKS (``COGNITO_JWKS``, as a Lambda in a VPC is configured) and a real
``redis-server``; ``$disconnect``; ``$default`` ping posting its pong with boto3 to the
Management API stub. Wall time of the whole process, measured by the parent, median of
``runs`` rounds (the order of the contenders alternates each round), after one warm-up round
so every run reads the files from the page cache, as a Lambda's second cold start does.

``-X importtime`` of one ``$connect`` child says where the time goes, per top-level package.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_hot_path import PING_CONNECTION_ID, _event, _with_connection_id
from tests.benchmarks.support import TARGET_RATIO, table, verdict
from tests.support.servers import running_redis_server

CHILD = Path(__file__).with_name("cold_start_child.py")
TARGETS = {"connect_handler": TARGET_RATIO, "default_handler": 1.0}
"""Issue 6: ``$connect`` <= 1.5x ``import boto3``; issue 11: ``$default``'s first ping <= 1.0x."""
CONTENDERS = (
    "bare",
    "boto3",
    "libraries",
    "connect_handler",
    "disconnect_handler",
    "default_handler",
)
LABELS = {
    "bare": "python -I -S (nothing)",
    "boto3": "import boto3",
    "libraries": "import what a ping loads (3rd party)",
    "connect_handler": "$connect",
    "disconnect_handler": "$disconnect",
    "default_handler": "$default ping (pong returned)",
}


@dataclass
class ColdStartResult:
    """Wall times (ms) per contender, in-child phase times, and the importtime breakdown."""

    runs: int
    wall_ms: dict[str, list[float]]
    phases_ms: dict[str, list[dict[str, float]]]
    connect_imports_ms: list[tuple[str, float]] = field(default_factory=list)
    boto3_imports_ms: list[tuple[str, float]] = field(default_factory=list)
    ping_libraries: list[str] = field(default_factory=list)
    """The top-level third-party packages ``$default``'s first ping loads."""
    python: str = sys.executable
    title: str = ""

    def median(self, name: str) -> float:
        return statistics.median(self.wall_ms[name])

    def ratio(self, name: str) -> float:
        return self.median(name) / self.median("boto3")

    def ping_over_libraries(self) -> float:
        """``$default``'s first ping against importing the third-party modules it loads."""
        return self.median("default_handler") / self.median("libraries")

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": self.title,
            "runs": self.runs,
            "medianWallMs": {name: round(self.median(name), 1) for name in self.wall_ms},
            "ratioToImportBoto3": {
                name: round(self.ratio(name), 3) for name in self.wall_ms if name != "boto3"
            },
            "medianPhasesMs": {
                name: {
                    key: round(statistics.median(p[key] for p in phases), 1)
                    for key in ("importMs", "firstEventMs")
                }
                for name, phases in self.phases_ms.items()
                if phases
            },
            "connectImportsMs": [[n, round(ms, 1)] for n, ms in self.connect_imports_ms],
            "boto3ImportsMs": [[n, round(ms, 1)] for n, ms in self.boto3_imports_ms],
            "pingLibraries": self.ping_libraries,
            "pingOverLibraries": round(self.ping_over_libraries(), 3),
        }


def _environment(redis_url: str, stub_url: str, jwks: str) -> dict[str, str]:
    from tests.support.tokens import TEST_CLIENT_ID, TEST_REGION, TEST_USER_POOL_ID

    keep = {"PATH", "HOME", "LANG", "TZ", "TMPDIR"}
    environ = {name: value for name, value in os.environ.items() if name in keep}
    environ.update(
        {
            "COGNITO_REGION": TEST_REGION,
            "COGNITO_USER_POOL_ID": TEST_USER_POOL_ID,
            "COGNITO_APP_CLIENT_IDS": TEST_CLIENT_ID,
            "COGNITO_JWKS": jwks,
            "REDIS_URL": redis_url,
            "MANAGEMENT_API_ENDPOINT": stub_url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": "timeline-ws-bench",
            "LOG_LEVEL": "INFO",
        }
    )
    return environ


def _events(folder: Path, token: str) -> dict[str, Path]:
    connect = _with_connection_id(_event("connect"), PING_CONNECTION_ID)
    connect["queryStringParameters"] = {"token": token}
    connect["multiValueQueryStringParameters"] = {"token": [token]}
    ping = _with_connection_id(_event("message_ping"), PING_CONNECTION_ID)
    ping["body"] = json.dumps({"action": "ping", "id": "cold-1"})
    ping["isBase64Encoded"] = False
    disconnect = _with_connection_id(_event("disconnect"), "M1TN0dPGwIdDJix=")
    paths = {}
    for name, event in (
        ("connect_handler", connect),
        ("default_handler", ping),
        ("disconnect_handler", disconnect),
    ):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(event))
        paths[name] = path
    return paths


def _command(
    python: str,
    path: list[Path],
    what: str,
    events: dict[str, Path],
    *,
    bytecode: bool,
    libraries: str = "",
) -> list[str]:
    flags = ["-I", "-S"] if bytecode else ["-I", "-S", "-B"]
    handler = what.removeprefix("loaded-by:")
    event = libraries if what == "libraries" else str(events.get(handler, "-"))
    return [python, *flags, str(CHILD), what, event, *(str(entry) for entry in path)]


def _run_once(command: list[str], environ: dict[str, str]) -> tuple[float, dict[str, float]]:
    started = time.perf_counter()
    completed = subprocess.run(
        command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    wall_ms = (time.perf_counter() - started) * 1000
    if completed.returncode != 0:
        raise RuntimeError(f"cold start child failed: {completed.stderr.strip()[-2000:]}")
    return wall_ms, json.loads(completed.stderr.strip().splitlines()[-1])


def import_breakdown(command: list[str], environ: dict[str, str]) -> list[tuple[str, float]]:
    """Self import time (ms) summed per top-level package, largest first (``-X importtime``)."""
    traced = [command[0], "-X", "importtime", *command[1:]]
    completed = subprocess.run(
        traced, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    totals: dict[str, float] = defaultdict(float)
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _cumulative, name = line[len("import time:") :].split("|", 2)
        totals[name.strip().split(".")[0]] += int(self_us) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])


def run(
    *, path: list[Path], runs: int, bytecode: bool, title: str, python: str = sys.executable
) -> ColdStartResult:
    """Start a redis-server and the stub, then time every contender ``runs`` times.

    ``path``: the folders the child puts first on ``sys.path`` (the Lambda package's);
    ``bytecode``: whether ``.pyc`` files may be written (``-B`` when not, as in Lambda's
    read-only ``/var/task``: only the ``.pyc`` files the package ships are used, and any
    module without one is compiled at every cold start).
    """
    from tests.benchmarks.support import management_api_stub
    from tests.support.tokens import TestKeyPair, jwks_document, mint_access_token

    key = TestKeyPair.generate("cold-kid-1")
    token = mint_access_token(key, lifetime_seconds=24 * 3600)
    result = ColdStartResult(
        runs=runs,
        wall_ms={name: [] for name in CONTENDERS},
        phases_ms={name: [] for name in CONTENDERS},
        python=python,
        title=title,
    )
    with (
        running_redis_server() as redis_server,
        management_api_stub() as stub_url,
        tempfile.TemporaryDirectory(prefix="timeline-ws-cold-") as folder,
    ):
        environ = _environment(redis_server.url, stub_url, json.dumps(jwks_document(key)))
        events = _events(Path(folder), token)
        commands = {
            name: _command(python, path, name, events, bytecode=bytecode) for name in CONTENDERS
        }
        # The floor of $default's first ping: the third-party modules it loads (redis,
        # dependency-injector, attrs, Powertools, pybreaker...), imported alone.
        _run_once(commands["connect_handler"], environ)  # the connection the ping refreshes
        _, ping = _run_once(
            _command(python, path, "loaded-by:default_handler", events, bytecode=bytecode),
            environ,
        )
        result.ping_libraries = sorted({name.split(".")[0] for name in ping["loaded"].split(",")})
        commands["libraries"] = _command(
            python, path, "libraries", events, bytecode=bytecode, libraries=ping["loaded"]
        )
        for name in CONTENDERS:  # warm-up: page cache, .pyc files
            _run_once(commands[name], environ)
        for round_number in range(runs):
            order = CONTENDERS if round_number % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                wall_ms, phases = _run_once(commands[name], environ)
                result.wall_ms[name].append(wall_ms)
                result.phases_ms[name].append(phases)
        result.connect_imports_ms = import_breakdown(commands["connect_handler"], environ)
        result.boto3_imports_ms = import_breakdown(commands["boto3"], environ)
    return result


def render(result: ColdStartResult) -> str:
    """The cold start table and the import breakdown."""
    rows = []
    for name in CONTENDERS:
        phases = result.phases_ms[name]
        target = TARGETS.get(name)
        ratio = result.ratio(name)
        rows.append(
            [
                LABELS[name],
                f"{result.median(name):.0f}",
                f"{min(result.wall_ms[name]):.0f}",
                f"{statistics.median(p['importMs'] for p in phases):.0f}",
                f"{statistics.median(p['firstEventMs'] for p in phases):.0f}",
                "1.00" if name == "boto3" else f"{ratio:.2f}",
                "-" if target is None else f"<= {target}",
                verdict(None if target is None else ratio <= target),
            ]
        )
    header = [
        "cold start",
        "median ms",
        "min ms",
        "imports ms",
        "1st event ms",
        "x import boto3",
        "target",
        "verdict",
    ]
    lines = [
        table(
            f"Cold start: {result.title} (median of {result.runs})",
            header,
            rows,
        ),
        "",
        f"$default's first ping loads these third-party packages: {', '.join(result.ping_libraries)}.",
        f"Imported alone they take {result.ratio('libraries'):.2f}x import boto3: the floor of"
        f" the <= 1.0 target; the first ping (our code, the container, one Redis round trip)"
        f" takes {result.ping_over_libraries():.2f}x that floor.",
        "",
        "Where $connect's import time goes (python -X importtime, self time per package):",
    ]
    boto3 = dict(result.boto3_imports_ms)
    for name, ms in result.connect_imports_ms[:14]:
        also = f"   (import boto3: {boto3[name]:.1f})" if name in boto3 else ""
        lines.append(f"  {name:<28} {ms:7.1f} ms{also}")
    lines.append(
        f"  {'total':<28} {sum(ms for _, ms in result.connect_imports_ms):7.1f} ms"
        f"   (import boto3: {sum(boto3.values()):.1f})"
    )
    return "\n".join(lines)
