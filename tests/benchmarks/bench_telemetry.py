"""What a ping writes: log bytes (CloudWatch Logs ingestion) and Management API requests.

Runs a checkout's own ``$default`` handler in a fresh process (the handlers module reads the
environment when imported), production telemetry settings (``LOG_LEVEL=INFO``, EMF metrics
on, the default log sampling), a real ``redis-server`` and a Management API stub, and counts,
over ``pings`` warm pings of one stored connection, the bytes and lines written to stdout
(what Lambda ships to CloudWatch Logs, apart from its own START/END/REPORT lines) and the
requests (and their HTTP bytes: request line, headers, body) the stub received.

``tree`` may be another checkout of the project (e.g. a ``git worktree`` of an earlier
commit) to measure "before" beside "after"; it runs with this virtualenv's libraries.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r"""
import json, os, sys, threading
sys.path.insert(0, os.getcwd())
pings, redis_url, endpoint = int(sys.argv[1]), sys.argv[2], sys.argv[3]
import redis
from entrypoints.aws_lambda import handlers
event = json.load(open("tests/events/message_ping.json"))
event["body"], event["isBase64Encoded"] = '{"action":"ping","id":"1"}', False
connection_id = event["requestContext"]["connectionId"]
record = {"connectionId": connection_id, "userId": "7d0c5f4e-1b2a-4c3d-9e8f-0a1b2c3d4e5f",
          "connectedAt": "2026-01-03T00:00:00Z"}
redis.Redis.from_url(redis_url).set("ws:connection:" + connection_id, json.dumps(record), ex=3600)
for _ in range(50):
    handlers.default_handler(event, None)
read, write = os.pipe()
saved = os.dup(1)
sys.stdout.flush()
os.dup2(write, 1)
chunks = []
def drain():
    while data := os.read(read, 65536):
        chunks.append(data)
reader = threading.Thread(target=drain)
reader.start()
for _ in range(pings):
    handlers.default_handler(event, None)
sys.stdout.flush()
os.dup2(saved, 1)
os.close(write)
reader.join()
out = b"".join(chunks)
print(json.dumps({"bytes": len(out), "lines": out.count(b"\n")}))
"""


def run(*, tree: Path, pings: int, redis_url: str) -> dict[str, Any]:
    """Measure ``pings`` pings of the checkout at ``tree``; figures per ping."""
    from tests.support.management_api_stub import running_management_api_stub

    with running_management_api_stub() as stub:
        environment = {
            **{
                k: v for k, v in os.environ.items() if not k.startswith(("COGNITO_", "POWERTOOLS_"))
            },
            "COGNITO_REGION": "us-east-1",
            "COGNITO_USER_POOL_ID": "us-east-1_Bench1",
            "COGNITO_APP_CLIENT_IDS": "bench",
            "REDIS_URL": redis_url,
            "MANAGEMENT_API_ENDPOINT": stub.endpoint,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "LOG_LEVEL": "INFO",
        }
        before = len(stub.requests)
        completed = subprocess.run(
            [sys.executable, "-c", CHILD, str(pings), redis_url, stub.endpoint],
            cwd=tree,
            env=environment,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        written = json.loads(completed.stdout.strip().splitlines()[-1])
        requests = stub.requests[before:]
        http_bytes = sum(
            len(request.body)
            + sum(len(name) + len(value) + 4 for name, value in request.headers.items())
            + len(f"{request.method} {request.path} HTTP/1.1\r\n")
            for request in requests
        )
    return {
        "tree": str(tree),
        "pings": pings,
        "logBytesPerPing": round(written["bytes"] / pings, 1),
        "logLinesPerPing": round(written["lines"] / pings, 4),
        # The 50 warm-up pings' requests are in the stub's log too.
        "managementRequestsPerPing": round(len(requests) / (pings + 50), 3),
        "managementHttpBytesPerRequest": round(http_bytes / len(requests), 1) if requests else 0,
    }


def render(results: list[dict[str, Any]]) -> str:
    """One table row per measured checkout."""
    from tests.benchmarks.support import table

    rows = [
        [
            result["tree"],
            str(result["pings"]),
            f"{result['logBytesPerPing']:.1f}",
            f"{result['logLinesPerPing']:.3f}",
            f"{result['managementRequestsPerPing']:.3f}",
            f"{result['managementHttpBytesPerRequest']:.0f}",
        ]
        for result in results
    ]
    header = [
        "checkout",
        "pings",
        "log B/ping",
        "lines/ping",
        "@connections req/ping",
        "HTTP B/req",
    ]
    return table("What a ping writes (production telemetry settings)", header, rows)
