"""Fan-out through ``serve``: the Push use case against a bare loop of signed POSTs.

Issue 21: "Fan-out through serve to 1,000 connections (100 users x 10): our use case's
throughput at least half of a bare loop of signed POST @connections requests to the same
gateway with the same concurrency, measured in the same run; RSS flat across 10
repetitions".

One ``timeline-ws serve`` (its own process, a real redis-server) holds 1,000 real WebSocket
clients (100 users x 10, in a thread of this process, each counting what it receives). Each
repetition, alternating which goes first, times:

- **bare**: 1,000 ``PostToConnection`` calls of one boto3 client (botocore's SigV4, one
  attempt) from a pool of :data:`~application.use_cases.PUSH_CONCURRENCY` threads;
- **push**: ``Push.execute`` for the 100 users, wired as the container wires it (boto3
  ``ApiGatewayMessageSender`` with no botocore retry, ``ThreadPoolFanOut`` of the same
  size), posting through the same gateway.

Both wait until every client has the frame (a bounded wait, outside the timing). The push's
directory and repository are the real Redis adapter over ``serve``'s redis-server, so each
repetition pays the 100 directory lookups the bare loop does not. RSS is sampled after each repetition, of ``serve`` and of this process (where the use
case runs); "flat" means the last is within 5% (+2 MB) of the second (the first warms
caches).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import redis
from botocore.config import Config
from websockets.asyncio.client import connect

from adapters.api_gateway_message_sender import ManagementApiClients
from adapters.connection_store import RedisConnectionRepository
from adapters.system_clock import SystemClock, SystemSleeper
from adapters.thread_pool_fan_out import ThreadPoolFanOut
from application.commands import PushCommand
from application.use_cases import PUSH_CONCURRENCY, Push
from entrypoints.local_gateway.dev_cognito import load_dev_cognito
from tests.benchmarks.bench_gateway import TIMELINE_WS, wait_for_health
from tests.benchmarks.support import REPO_ROOT, table, verdict
from tests.support.servers import free_port, running_redis_server

USERS = 100
PER_USER = 10
REPETITIONS = 10
TARGET_RATIO = 0.5
STAGE = "local"
CREDENTIALS = ("test", "test")
DELIVERY_TIMEOUT_SECONDS = 60.0


class Clients:
    """1,000 WebSocket clients in an event loop of their own thread; ``received`` counts frames."""

    def __init__(self, ws_url: str, tokens: dict[str, str]) -> None:
        self.received = 0
        self.by_user: dict[str, list[str]] = {user: [] for user in tokens}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._sockets: list[Any] = []
        self._readers: list[asyncio.Future[None]] = []
        self._call(self._open(ws_url, tokens))

    def _call(self, coroutine: Any, timeout: float = 300) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _open(self, ws_url: str, tokens: dict[str, str]) -> None:
        for user, token in tokens.items():
            for index in range(PER_USER):
                ws = await connect(f"{ws_url}?token={token}", max_queue=None)
                await ws.send(json.dumps({"action": "ping", "id": f"{user}-{index}"}))
                self.by_user[user].append(json.loads(await ws.recv())["connectionId"])
                self._sockets.append(ws)
                self._readers.append(asyncio.ensure_future(self._count(ws)))

    async def _count(self, ws: Any) -> None:
        async for _ in ws:
            self.received += 1

    def wait_for(self, total: int) -> bool:
        """Bounded wait until ``total`` frames arrived in all."""
        deadline = time.monotonic() + DELIVERY_TIMEOUT_SECONDS
        while self.received < total and time.monotonic() < deadline:
            time.sleep(0.01)  # polling interval of a bounded loop
        return self.received >= total

    def close(self) -> None:
        async def close_all() -> None:
            await asyncio.gather(*(ws.close() for ws in self._sockets), return_exceptions=True)

        self._call(close_all())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def run(repetitions: int = REPETITIONS) -> dict[str, Any]:
    """The figures: per-repetition throughputs (posts/s), RSS series (KiB), ratio, verdicts."""
    with (
        running_redis_server() as redis_server,
        tempfile.TemporaryDirectory(prefix="timeline-ws-push-") as folder,
    ):
        port = free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("COGNITO_")}
        environ["TIMELINE_WS_STATE_DIR"] = str(Path(folder) / "state")
        environ["CONNECTION_LIMIT_GLOBAL"] = str(USERS * PER_USER + 1000)
        server = subprocess.Popen(
            [TIMELINE_WS, "serve", "--port", str(port), "--redis-url", redis_server.url,
             "--log-level", "WARNING", "--connect-rate", "2000"],
            env=environ, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            base = f"http://127.0.0.1:{port}"
            wait_for_health(base, server)
            return _measure(base, server.pid, Path(folder) / "state", redis_server.url, repetitions)
        finally:
            server.terminate()
            server.wait(timeout=60)


def _measure(
    base: str, server_pid: int, state: Path, redis_url: str, repetitions: int
) -> dict[str, Any]:
    dev = load_dev_cognito(state)
    tokens = {f"user-{n:03d}": dev.access_token(sub=f"user-{n:03d}") for n in range(USERS)}
    clients = Clients(base.replace("http", "ws", 1) + "/ws", tokens)
    endpoint = f"{base}/{STAGE}"
    bare_client = boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=CREDENTIALS[0], aws_secret_access_key=CREDENTIALS[1],
        config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                      max_pool_connections=PUSH_CONCURRENCY),
    )  # fmt: skip
    pool = ThreadPoolExecutor(PUSH_CONCURRENCY)
    every_id = [c for ids in clients.by_user.values() for c in ids]
    store = RedisConnectionRepository(
        redis.Redis.from_url(redis_url),
        clock=SystemClock(),
        global_limit=USERS * PER_USER + 1000,
        per_user_limit=10,
    )
    push = Push(
        directory=store,
        repository=store,
        sender=ManagementApiClients(
            region_name="us-east-1", max_attempts=1, credentials=CREDENTIALS,
            max_pool_connections=PUSH_CONCURRENCY,
        ).sender_for(endpoint),
        fan_out=ThreadPoolFanOut(PUSH_CONCURRENCY),
        sleeper=SystemSleeper(),
    )  # fmt: skip
    command = PushCommand(user_ids=tuple(clients.by_user), message='{"bench":"push"}')

    def bare() -> None:
        list(
            pool.map(lambda c: bare_client.post_to_connection(ConnectionId=c, Data=b"x"), every_id)
        )

    def ours() -> None:
        result = push.execute(command)
        assert result.delivered == len(every_id), result

    bare_rates, push_rates, serve_rss, own_rss = [], [], [], []
    expected = 0
    try:
        for repetition in range(repetitions):
            order = [("bare", bare), ("push", ours)]
            for name, action in order if repetition % 2 == 0 else reversed(order):
                seconds = timed(action)
                expected += len(every_id)
                assert clients.wait_for(expected), f"{name}: frames missing"
                (bare_rates if name == "bare" else push_rates).append(len(every_id) / seconds)
            serve_rss.append(rss_kib(server_pid))
            own_rss.append(rss_kib(os.getpid()))
    finally:
        clients.close()
        pool.shutdown()
    ratio = statistics.median(push_rates) / statistics.median(bare_rates)
    return {
        "connections": len(every_id),
        "concurrency": PUSH_CONCURRENCY,
        "bareRates": bare_rates,
        "pushRates": push_rates,
        "ratio": ratio,
        "ratioMet": ratio >= TARGET_RATIO,
        "serveRssKib": serve_rss,
        "benchRssKib": own_rss,
        "rssFlat": all(_flat(series) for series in (serve_rss, own_rss)),
    }


def _flat(series: list[int]) -> bool:
    return len(series) < 2 or series[-1] <= series[1] * 1.05 + 2048


def render(report: dict[str, Any]) -> str:
    rows = [
        [
            "push (use case)",
            f"{statistics.median(report['pushRates']):.0f}",
            "bare signed POST loop",
            f"{statistics.median(report['bareRates']):.0f}",
            f"{report['ratio']:.2f}",
            f">= {TARGET_RATIO}",
            verdict(report["ratioMet"]),
        ]
    ]
    header = ["measured", "posts/s", "baseline", "posts/s", "ratio", "target", "verdict"]
    title = (
        f"Fan-out through serve to {report['connections']} connections ({USERS} users x "
        f"{PER_USER}), {report['concurrency']} in flight, medians of {len(report['pushRates'])}"
    )
    rss = (
        f"RSS over the repetitions (KiB): serve {report['serveRssKib']}; "
        f"this process {report['benchRssKib']} -> {verdict(report['rssFlat'])} (flat: last "
        "within 5% + 2 MB of the second)"
    )
    return table(title, header, rows) + "\n" + rss
