"""Real servers for the test tiers: redis-server processes and a moto server, on loopback.

Every wait is a bounded loop on a readiness probe, never a sleep used as synchronisation.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import redis

READY_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_binary() -> str:
    """Path of ``redis-server``; ``make test`` installs it when missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server is not installed: run `make test` (it apt-get installs it)"
        )
    return binary


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (started by :func:`running_redis_server`)."""

    def __init__(self, port: int, workdir: Path, extra_args: Sequence[str]) -> None:
        self.port = port
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the process and wait (bounded) until it answers PING."""
        args = [
            redis_server_binary(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_redis(self.url, self.process)
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the test run
            raise

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


def wait_for_redis(url: str, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll PING until Redis answers; raise ``RuntimeError`` after 15 s or if the process died."""
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    try:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}")
            try:
                if client.ping():
                    return
            except (
                redis.exceptions.AuthenticationError,
                redis.exceptions.AuthenticationWrongNumberOfArgsError,
            ):
                return  # it answered: a server started with --requirepass is up
            except redis.exceptions.RedisError:
                time.sleep(0.02)  # polling interval of a bounded readiness loop
        raise RuntimeError(f"redis at {url} did not answer within {READY_TIMEOUT_SECONDS} s")
    finally:
        client.close()


@contextmanager
def running_redis_server(*extra_args: str) -> Iterator[RedisServer]:
    """A fresh ``redis-server`` on a free loopback port in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="timeline-ws-redis-") as workdir:
        server = RedisServer(free_port(), Path(workdir), extra_args)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@contextmanager
def running_moto_server() -> Iterator[str]:
    """A moto server (real HTTP, in a thread) on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
