"""The soak's processes: redis-server, moto_server, two fault proxies and ``timeline-ws serve``.

Every process binds 127.0.0.1 on a free port and keeps its files (data, logs) in a folder of
the run's temporary folder. Each is started in a session of its own, so a Ctrl-C in the
terminal reaches only the soak runner, which then stops them in order; and each is asked to
die with the runner (``PR_SET_PDEATHSIG``), so not even a SIGKILLed runner leaves one behind.
Processes are only ever started from the runner's main thread (the death signal follows the
thread that forked). Every wait is a bounded poll of a real readiness condition.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Final

import redis

from tests.support.servers import free_port, redis_server_binary

READY_TIMEOUT_SECONDS: Final = 30.0
STOP_TIMEOUT_SECONDS: Final = 15.0
POLL_SECONDS: Final = 0.05
_PR_SET_PDEATHSIG: Final = 1


def _die_with_the_runner() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def venv_binary(name: str) -> str:
    """``name`` next to this interpreter (the project's .venv), else on the PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make install`")
    return found


def poll_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Call ``condition`` every 50 ms until it is true; ``RuntimeError`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(POLL_SECONDS)  # polling interval of a bounded readiness loop
    raise RuntimeError(f"{what} did not happen within {timeout:.0f} s")


class ManagedProcess:
    """One child process: started in its own session, output to ``log_path``, stopped for sure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        pipes: bool = False,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.pipes = pipes
        self.process: subprocess.Popen[str] | None = None
        self.stopped_by_signal = False

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} is not running"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start the process (it appends to its log); pipes for stdin/stdout when asked."""
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE if self.pipes else subprocess.DEVNULL,
                stdout=subprocess.PIPE if self.pipes else log,
                stderr=log,
                env=self.env,
                cwd=self.cwd,
                text=True,
                start_new_session=True,
                preexec_fn=_die_with_the_runner,  # only prctl: safe between fork and exec
            )
        self.stopped_by_signal = False

    def send_signal(self, signum: signal.Signals) -> None:
        """Send ``signum`` to the process (nothing when it is not running)."""
        if self.running():
            assert self.process is not None
            self.process.send_signal(signum)
            if signum is signal.SIGSTOP:
                self.stopped_by_signal = True
            elif signum is signal.SIGCONT:
                self.stopped_by_signal = False

    def kill(self) -> None:
        """SIGKILL and reap."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        self.stopped_by_signal = False

    def stop(self, signum: signal.Signals = signal.SIGTERM) -> None:
        """Resume it if stopped, ask it to end with ``signum``, SIGKILL after 15 s."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGCONT)
                self.process.send_signal(signum)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.kill()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.stopped_by_signal = False

    def rss_bytes(self) -> int | None:
        """Resident set size (``VmRSS``), or ``None`` when it cannot be read."""
        if not self.running():
            return None
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return None


class RedisProcess:
    """``redis-server`` with its append-only file on (``appendfsync always``: a SIGKILL loses
    nothing), on a fixed port so restarts keep the address the proxy forwards to."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.incarnation = 0
        self.process: ManagedProcess | None = None

    @property
    def data_dir(self) -> Path:
        return self.workdir / f"data-{self.incarnation}"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *, without_data: bool = False) -> None:
        """Start (no wait); ``without_data`` starts from an empty folder (a replaced node)."""
        if without_data or self.incarnation == 0:
            self.incarnation += 1
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "redis-server",
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.data_dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
                "--daemonize",
                "no",
                "--logfile",
                "",
            ],
            log_path=self.workdir / "redis.log",
        )
        self.process.start()

    def answers(self) -> bool:
        """One PING with 0.5 s timeouts."""
        client = redis.Redis(
            host="127.0.0.1", port=self.port, socket_connect_timeout=0.5, socket_timeout=0.5
        )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.process is None or not self.process.running():
                raise RuntimeError("redis-server exited while starting")
            return self.answers()

        poll_until(ready, timeout=READY_TIMEOUT_SECONDS, what="redis-server answering PING")

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()

    def send_signal(self, signum: signal.Signals) -> None:
        if self.process is not None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # a throwaway server: no need for a graceful save

    def wipe_data(self) -> None:
        """Remove every data folder (only while the server is down)."""
        for folder in self.workdir.glob("data-*"):
            shutil.rmtree(folder, ignore_errors=True)


class ProxyProcess:
    """``python -m tests.soak.proxy`` in front of ``target_port``; commands over its stdin."""

    def __init__(self, name: str, target_port: int, workdir: Path) -> None:
        self.name = name
        self.process = ManagedProcess(
            name,
            [sys.executable, "-m", "tests.soak.proxy", "--target-port", str(target_port)],
            log_path=workdir / f"{name}.log",
            cwd=Path(__file__).resolve().parents[2],
            pipes=True,
        )
        self.port = 0
        self.mode = "PASS"

    def start(self) -> None:
        self.process.start()
        line = self._read_line()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"{self.name} did not start: {line!r}")
        self.port = int(line.split()[1])

    def command(self, line: str) -> str:
        """Send one command and return the proxy's answer (blocking, bounded: 10 s)."""
        popen = self.process.process
        assert popen is not None and popen.stdin is not None
        popen.stdin.write(line + "\n")
        popen.stdin.flush()
        answer = self._read_line()
        if not answer.startswith("OK"):
            raise RuntimeError(f"{self.name} refused {line!r}: {answer!r}")
        self.mode = line.split()[0]
        return answer

    def _read_line(self, timeout: float = 10.0) -> str:
        popen = self.process.process
        assert popen is not None and popen.stdout is not None
        stream: IO[str] = popen.stdout
        readable, _, _ = select.select([stream], [], [], timeout)
        if not readable:
            raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s")
        return stream.readline().strip()

    def stop(self) -> None:
        popen = self.process.process
        if popen is not None and popen.stdin is not None:
            with contextlib.suppress(OSError):
                popen.stdin.close()  # end of stdin stops the proxy
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(timeout=5)
        self.process.stop()


MOTO_PORT_ATTEMPTS: Final = 3
"""Ports ``MotoProcess.start`` tries: one taken between :func:`free_port` and moto's bind
(by an outgoing connection's ephemeral port) made a ``make test`` smoke run fail once."""


class MotoProcess:
    """``moto_server`` (DynamoDB, in memory) on a free port (``port`` is final once started)."""

    def __init__(self, workdir: Path) -> None:
        self.log_path = workdir / "moto.log"
        self.port = 0
        self.process = self._on_free_port()

    def _on_free_port(self) -> ManagedProcess:
        self.port = free_port()
        return ManagedProcess(
            "moto_server",
            [venv_binary("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
            log_path=self.log_path,
            env=_aws_environment(os.environ),
        )

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until it answers; on another free port if its port was taken.

        Raises:
            RuntimeError: it exited while starting (other than over a taken port, or on
                ``MOTO_PORT_ATTEMPTS`` ports), or did not answer in time.
        """
        for attempt in range(1, MOTO_PORT_ATTEMPTS + 1):
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            self.process.start()
            try:
                poll_until(self._ready, timeout=READY_TIMEOUT_SECONDS, what="moto_server answering")
                return
            except RuntimeError:
                with self.log_path.open(errors="replace") as log:
                    log.seek(logged)
                    port_taken = "Address already in use" in log.read()
                if self.process.running() or not port_taken or attempt == MOTO_PORT_ATTEMPTS:
                    raise
            self.process = self._on_free_port()

    def _ready(self) -> bool:
        if not self.process.running():
            raise RuntimeError(f"moto_server exited while starting (log: {self.log_path})")
        return _http_ok(f"{self.endpoint}/moto-api/")

    def stop(self) -> None:
        self.process.stop()


class ServeProcess:
    """``timeline-ws serve`` with the DynamoDB failover, through the two proxies."""

    def __init__(
        self,
        workdir: Path,
        *,
        redis_port: int,
        dynamodb_port: int,
        table: str,
        workers: int,
        log_level: str,
        extra_env: dict[str, str],
        extra_args: Sequence[str] = (),
    ) -> None:
        self.port = free_port()
        self.state_dir = workdir / "state"
        env = _aws_environment(os.environ)
        for name in list(env):
            if name.startswith("COGNITO_"):
                del env[name]  # the development stand-in issues the soak's tokens
        env.update(extra_env)
        self.process = ManagedProcess(
            "timeline-ws serve",
            [
                venv_binary("timeline-ws"),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--redis-url",
                f"redis://127.0.0.1:{redis_port}/0",
                "--connections-table",
                table,
                "--dynamodb-endpoint",
                f"http://127.0.0.1:{dynamodb_port}",
                "--state-dir",
                str(self.state_dir),
                "--workers",
                str(workers),
                "--log-level",
                log_level,
                *extra_args,
            ],
            log_path=workdir / "serve.log",
            env=env,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self) -> None:
        self.process.start()

        def ready() -> bool:
            if not self.process.running():
                raise RuntimeError(
                    f"timeline-ws serve exited while starting; see {self.process.log_path}"
                )
            return _http_ok(f"{self.base_url}/health")

        poll_until(ready, timeout=READY_TIMEOUT_SECONDS, what="timeline-ws serve's /health")

    def stop(self) -> None:
        self.process.stop()


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:  # only loopback URLs
            return bool(reply.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def _aws_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without any ``AWS_*`` variable, plus throwaway credentials and a region:
    nothing the soak starts can ever reach a real account."""
    env = {name: value for name, value in environ.items() if not name.startswith("AWS_")}
    env.update(
        {
            "AWS_ACCESS_KEY_ID": "soak",
            "AWS_SECRET_ACCESS_KEY": "soak",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    return env


class Stoppers:
    """Stop callbacks run in reverse order of registration, each at most once, errors ignored."""

    def __init__(self) -> None:
        self._stops: list[Callable[[], None]] = []

    def add(self, stop: Callable[[], None]) -> None:
        self._stops.append(stop)

    def stop_all(self) -> None:
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):
                stop()

    @contextlib.contextmanager
    def scope(self) -> Iterator[Stoppers]:
        try:
            yield self
        finally:
            self.stop_all()
