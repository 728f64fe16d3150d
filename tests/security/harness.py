"""What the security tests share: API Gateway events, the wired real handlers, a hostile JWKS
endpoint, redis-server with AUTH and TLS, and a capture of every byte of log output.

Everything network-facing listens on 127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from dependency_injector import providers

from adapters.cognito import CognitoTokenVerifier, JwksFetcher
from adapters.in_memory import FixedClock
from application.ports import MessageSender
from tests.support.app import make_container
from tests.support.servers import RedisServer
from tests.support.tls import TlsFiles
from tests.support.tokens import TEST_CLIENT_ID, TEST_ISSUER, SteppingMonotonic

EVENTS = Path(__file__).parent.parent / "events"
CONNECTION_ID = "L0SM9cOFvHcCIhw="
"""The connectionId of every fixture event (``tests/events/*.json``)."""


# -- API Gateway events ----------------------------------------------------------------------


def load_event(name: str) -> dict[str, Any]:
    """A deep copy of ``tests/events/{name}.json``."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


def connect_event(*tokens: str) -> dict[str, Any]:
    """A ``$connect`` event whose query string is ``token=<t1>&token=<t2>…`` (none: no query).

    Shaped as API Gateway does it: the last value in ``queryStringParameters``, all of them
    in ``multiValueQueryStringParameters``.
    """
    if not tokens:
        return load_event("connect_without_query_string")
    event = load_event("connect")
    event["queryStringParameters"] = {"token": tokens[-1]}
    event["multiValueQueryStringParameters"] = {"token": list(tokens)}
    return event


def raw_query_strings(*tokens: str) -> set[str]:
    """The query string a browser would send for these tokens, raw and percent-encoded."""
    raw = "&".join(f"token={token}" for token in tokens)
    encoded = urllib.parse.urlencode([("token", token) for token in tokens])
    return {text for text in (raw, encoded) if text}


# -- the real handlers, wired to real adapters -----------------------------------------------


def cognito_verifier(
    fetcher: JwksFetcher,
    clock: FixedClock,
    *,
    token_use: str = "access",
    monotonic: SteppingMonotonic | None = None,
) -> CognitoTokenVerifier:
    """The production verifier for the test pool (``TEST_ISSUER``/``TEST_CLIENT_ID``), 60 s cooldown."""
    return CognitoTokenVerifier(
        issuer=TEST_ISSUER,
        app_client_ids=[TEST_CLIENT_ID],
        jwks_fetcher=fetcher,
        clock=clock,
        token_use=token_use,
        refetch_cooldown_seconds=60.0,
        monotonic=monotonic or SteppingMonotonic(),
    )


class WiredHandlers:
    """The three Lambda handlers of an application bootstrapped over given parts."""

    def __init__(self, container: Any) -> None:
        self.connect_handler = container.connect_handler()
        self.disconnect_handler = container.disconnect_handler()
        self.default_handler = container.default_handler()


@contextmanager
def wired_handlers(
    *,
    verifier: Any,
    redis_client: Any,
    clock: FixedClock,
    sender: MessageSender | None = None,
) -> Iterator[WiredHandlers]:
    """The real handlers of an application bootstrapped over these parts, for the block.

    Only providers are replaced (the handler code and every repository are the real ones;
    the settings are the test pool's), so the repositories and anything else holding a
    client work on ``redis_client``.
    """
    overrides: dict[str, Any] = {
        "clock": clock,
        "token_verifier": verifier,
        "redis_client": redis_client,
    }
    if sender is not None:
        overrides["message_sender"] = providers.Callable(lambda endpoint_url: sender)
    yield WiredHandlers(make_container(**overrides))


def connection_records(store: Any) -> list[str]:
    """The ``ws:connection:*`` keys in Redis, sorted (connection-limit keys left out)."""
    return sorted(key.decode() for key in store.scan_iter(match="ws:connection:*"))


# -- a JWKS endpoint that misbehaves on demand -----------------------------------------------


class JwksServer:
    """A JWKS endpoint (stdlib HTTP server on 127.0.0.1:0) whose answer the test switches.

    ``mode``: ``ok`` (serve ``document``), ``status_500``, ``hang`` (answer nothing until the
    server stops), ``garbage`` (200 with bytes that are not JSON), ``huge`` (200 with a
    declared 4 MiB body), ``huge_unannounced`` (200, no Content-Length, 1 MiB streamed) or
    ``junk_keys`` (200 with a valid JWKS whose 500 keys are all unusable). ``fetches``
    counts GET requests.
    """

    MODES = frozenset(
        {"ok", "status_500", "hang", "garbage", "huge", "huge_unannounced", "junk_keys"}
    )

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.mode = "ok"
        self.fetches = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.fetches += 1
                    mode = server.mode
                # The fetcher hangs up on an oversized body, as it should.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    server._answer(self, mode)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}/us-east-1_TimelineWs/.well-known/jwks.json"

    def _answer(self, request: BaseHTTPRequestHandler, mode: str) -> None:
        if mode == "hang":
            self._released.wait(timeout=30)
            return
        if mode == "status_500":
            self._send(request, 500, b'{"message":"Internal Server Error"}')
        elif mode == "garbage":
            self._send(request, 200, b"\x00\xff<html>not a JWKS{")
        elif mode == "huge":
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(4 * 1024 * 1024))
            request.end_headers()
            request.wfile.write(b'{"keys":[' + b" " * 65536)
        elif mode == "huge_unannounced":
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.end_headers()
            request.wfile.write(b'{"keys":[')
            for _ in range(64):
                request.wfile.write(b" " * 16384)
        elif mode == "junk_keys":
            junk = [
                {"kty": "RSA", "kid": f"junk-{index}", "n": "AQAB", "e": "AQAB"}
                for index in range(500)
            ]
            self._send(request, 200, json.dumps({"keys": junk}).encode())
        else:
            self._send(request, 200, json.dumps(self.document).encode())

    @staticmethod
    def _send(request: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


# -- redis-server with AUTH and TLS ------------------------------------------------------------


class SecuredRedisServer(RedisServer):
    """A ``redis-server`` reached through ``url`` (password, and ``rediss://`` when TLS is on).

    The base class starts the process with ``--port N`` followed by ``extra_args``; Redis
    applies command-line options in order, so a later ``--port 0`` turns plain TCP off.
    While starting, readiness is probed through ``probe_url`` (the same server, but without
    the host-name check, for certificates deliberately issued to another host).
    """

    def __init__(
        self, port: int, workdir: Path, extra_args: list[str], url: str, probe_url: str
    ) -> None:
        super().__init__(port, workdir, extra_args)
        self._url = url
        self._probe_url = probe_url
        self._starting = False

    @property
    def url(self) -> str:
        return self._probe_url if self._starting else self._url

    def start(self) -> None:
        self._starting = True
        try:
            super().start()
        finally:
            self._starting = False


@contextmanager
def running_secured_redis(
    workdir: Path, *, port: int, password: str, tls: TlsFiles | None
) -> Iterator[SecuredRedisServer]:
    """``redis-server --requirepass`` on 127.0.0.1:``port``; with ``tls``, TLS only.

    With TLS the plain port is off (``--port 0``), clients are not asked for certificates
    (``--tls-auth-clients no``, as on ElastiCache) and ``url`` is
    ``rediss://:<password>@127.0.0.1:<port>/0?ssl_ca_certs=<CA file>``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    secret = urllib.parse.quote(password, safe="")
    args = ["--requirepass", password]
    if tls is None:
        url = f"redis://:{secret}@127.0.0.1:{port}/0"
    else:
        args += [
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(tls.server_cert),
            "--tls-key-file",
            str(tls.server_key),
            "--tls-ca-cert-file",
            str(tls.ca_cert),
            "--tls-auth-clients",
            "no",
        ]
        ca = urllib.parse.quote(str(tls.ca_cert), safe="")
        url = f"rediss://:{secret}@127.0.0.1:{port}/0?ssl_ca_certs={ca}"
    probe_url = url + "&ssl_check_hostname=false" if tls is not None else url
    server = SecuredRedisServer(port, workdir, args, url, probe_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# -- every byte of log output ------------------------------------------------------------------

NOISY_LOGGERS = (
    "timeline-ws",
    "adapters",
    "entrypoints",
    "jose",
    "redis",
    "botocore",
    "boto3",
    "urllib3",
    "aiohttp",
    "aiohttp.access",
    "aiohttp.server",
    "websockets",
    "asyncio",
)
"""Loggers turned to DEBUG explicitly (some libraries set their own level)."""


def render_record(record: logging.LogRecord) -> str:
    """A record with its message, every attribute (structured ``extra`` fields included),
    its exception with the chained causes, and its stack."""
    parts = [record.getMessage(), repr(sorted(vars(record).items(), key=lambda item: item[0]))]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


class _Recorder(logging.Handler):
    def __init__(self, sink: list[tuple[str, str]]) -> None:
        super().__init__(level=logging.DEBUG)
        self._sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self._sink.append((record.name, render_record(record)))


CLIENT_LOGGER = "tests.security.client"
"""Give test WebSocket clients this logger (``connect(..., logger=...)``): they stand in for
the user's browser, whose own debug log shows the URL it opens. Their records are kept
apart; the service's output is everything else."""


class OutputCapture:
    """What ``capture_all_output`` saw: rendered records and the output of existing handlers."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []
        self.streams: list[io.StringIO] = []

    def text(self, *extra: str) -> str:
        """The service's output (every record but the test clients', every stream) and ``extra``
        (e.g. ``capsys`` text) as one string."""
        service = [text for name, text in self.records if not name.startswith(CLIENT_LOGGER)]
        return "\n".join([*service, *(s.getvalue() for s in self.streams), *extra])

    def client_text(self) -> str:
        """What the test clients (the users' side) logged."""
        return "\n".join(text for name, text in self.records if name.startswith(CLIENT_LOGGER))


@contextmanager
def capture_all_output() -> Iterator[OutputCapture]:
    """Every logger at DEBUG for the block; every record is rendered in full.

    The root logger and :data:`NOISY_LOGGERS` are set to DEBUG, a recorder is attached to
    the root and to every logger that does not propagate, and every stream handler already
    attached anywhere (Powertools' JSON handler on stdout among them) writes into a buffer
    instead, so the exact lines it would print are checked too. Combine with ``capsys`` for
    ``print`` output (Powertools' EMF metrics).
    """
    capture = OutputCapture()
    recorder = _Recorder(capture.records)
    manager = logging.Logger.manager
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in NOISY_LOGGERS)]
    loggers += [
        value for value in list(manager.loggerDict.values()) if isinstance(value, logging.Logger)
    ]
    restore: list[Callable[[], object]] = []
    try:
        for logger in dict.fromkeys(loggers):
            restore.append(functools.partial(logger.setLevel, logger.level))
            if logger is logging.getLogger() or logger.name in NOISY_LOGGERS or logger.level:
                logger.setLevel(logging.DEBUG)
            if logger is logging.getLogger() or not logger.propagate:
                logger.addHandler(recorder)
                restore.append(functools.partial(logger.removeHandler, recorder))
            for handler in list(logger.handlers):
                if type(handler) is logging.StreamHandler:
                    buffer = io.StringIO()
                    capture.streams.append(buffer)
                    restore.append(functools.partial(handler.setLevel, handler.level))
                    restore.append(functools.partial(handler.setStream, handler.setStream(buffer)))
                    handler.setLevel(logging.DEBUG)
        yield capture
    finally:
        for undo in reversed(restore):
            undo()


def secret_fragments(token: str) -> set[str]:
    """What must never reach a log: the token, its trimmed form and each dot-separated segment.

    Segments shorter than 8 characters are left out: they are too short to identify a token
    and would match ordinary words.
    """
    fragments = {token, token.strip()}
    fragments.update(segment.strip() for segment in token.split("."))
    return {fragment for fragment in fragments if len(fragment) >= 8}


def leaks(output: str, secrets: Iterable[str]) -> list[str]:
    """The secrets found in ``output``, shortened for the assertion message."""
    return [secret[:24] + "…" for secret in secrets if secret and secret in output]


def deep_copy_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy the handler may not alter behind the test's back."""
    return copy.deepcopy(event)
