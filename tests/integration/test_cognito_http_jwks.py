"""HttpJwksFetcher and CognitoTokenVerifier against a real JWKS endpoint on 127.0.0.1.

The endpoint (stdlib ``http.server`` in a thread) counts fetches, rotates keys and misbehaves
on demand: HTTP 500, hanging past the client's timeout, garbage, huge bodies, redirects,
a slow drip. Client timeouts are 1 s: short enough to keep the module quick, long enough for a loaded machine.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from adapters.cognito import CognitoTokenVerifier, HttpJwksFetcher
from adapters.in_memory import FixedClock
from domain.errors import InvalidTokenError, VerifierUnavailableError
from tests.support.tokens import (
    TEST_CLIENT_ID,
    TEST_ISSUER,
    TEST_NOW,
    TEST_SUB,
    SteppingMonotonic,
    TestKeyPair,
    jwks_document,
    mint_access_token,
    shared_key_pair,
)

TIMEOUT_SECONDS = 1.0  # generous: a loaded CI machine must not turn a good fetch into a timeout
MAX_BYTES = 64 * 1024
COOLDOWN = 60.0
JWKS_PATH = "/us-east-1_TimelineWs/.well-known/jwks.json"
# How long a misbehaving handler may hold its thread; the fixture releases it at teardown.
HANDLER_HOLD_SECONDS = 10.0


class JwksEndpoint:
    """State shared with the handler: what to serve, how to misbehave, how often it was asked."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.mode = "ok"
        self.fetches = 0
        self.release = threading.Event()  # lets hanging handlers go
        self._lock = threading.Lock()
        self.url = ""

    def count(self) -> None:
        with self._lock:
            self.fetches += 1


class JwksHandler(http.server.BaseHTTPRequestHandler):
    endpoint: ClassVar[JwksEndpoint]

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:
        endpoint = self.endpoint
        if self.path != JWKS_PATH:
            self.send_error(404)
            return
        endpoint.count()
        # The client hangs up on huge or slow bodies, as it should.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            getattr(self, f"_serve_{endpoint.mode}")()

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _serve_ok(self) -> None:
        self._send(200, json.dumps(self.endpoint.document).encode())

    def _serve_error_500(self) -> None:
        self._send(500, b'{"message": "internal error"}')

    def _serve_hang(self) -> None:
        self.endpoint.release.wait(HANDLER_HOLD_SECONDS)

    def _serve_garbage(self) -> None:
        self._send(200, b"<html>\x00\xff not a jwks", "text/html")

    def _serve_json_not_jwks(self) -> None:
        self._send(200, b'{"keys": "nope"}')

    def _serve_huge_declared(self) -> None:
        # Announces 10 MB; the client must refuse from the header without reading it.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        self.wfile.write(b'{"keys": [')

    def _serve_huge_streamed(self) -> None:
        # No Content-Length (HTTP/1.0 close-delimited): the client must stop at max_bytes.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"keys": [], "padding": "')
        chunk = b"x" * 65536
        for _ in range(64):  # 4 MB at most
            self.wfile.write(chunk)

    def _serve_drip(self) -> None:
        # Each byte arrives inside the socket timeout, the whole body never does in time.
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "1000")
        self.end_headers()
        for _ in range(1000):
            self.wfile.write(b" ")
            self.wfile.flush()
            if self.endpoint.release.wait(TIMEOUT_SECONDS / 3):  # pacing, not synchronisation
                return

    def _serve_accepted_202(self) -> None:
        self._send(202, json.dumps(self.endpoint.document).encode())

    def _serve_redirect(self) -> None:
        # To this very URL: a client that follows redirects would be counted again.
        self._redirect(self.endpoint.url)

    def _serve_redirect_to_file(self) -> None:
        self._redirect("file:///etc/passwd")

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def endpoint() -> Iterator[JwksEndpoint]:
    state = JwksEndpoint()
    handler = type("BoundJwksHandler", (JwksHandler,), {"endpoint": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name="jwks-endpoint",
        daemon=True,
    )
    thread.start()
    host, port = server.server_address[:2]
    state.url = f"http://{host!s}:{port}{JWKS_PATH}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def key() -> TestKeyPair:
    return shared_key_pair("kid-1")


@pytest.fixture(scope="module")
def rotated_key() -> TestKeyPair:
    return shared_key_pair("kid-2")


def fetcher_for(endpoint: JwksEndpoint) -> HttpJwksFetcher:
    return HttpJwksFetcher(endpoint.url, timeout_seconds=TIMEOUT_SECONDS, max_bytes=MAX_BYTES)


def verifier_for(endpoint: JwksEndpoint, monotonic: SteppingMonotonic) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(
        issuer=TEST_ISSUER,
        app_client_ids=[TEST_CLIENT_ID],
        jwks_fetcher=fetcher_for(endpoint),
        clock=FixedClock(TEST_NOW),
        refetch_cooldown_seconds=COOLDOWN,
        monotonic=monotonic,
    )


def token_for(key: TestKeyPair, kid: str | None = None) -> str:
    return mint_access_token(key, now=TEST_NOW, headers={"kid": kid} if kid else None)


def reason_of(verifier: CognitoTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidTokenError) as caught:
        verifier.verify(token)
    return caught.value.reason


FAILURE_MODES = [
    "error_500",
    "hang",
    "garbage",
    "json_not_jwks",
    "huge_declared",
    "huge_streamed",
    "drip",
    "accepted_202",
    "redirect",
    "redirect_to_file",
]


# -- the fetcher alone ----------------------------------------------------------------------


def test_given_a_healthy_endpoint_when_fetched_then_the_document_is_returned(
    endpoint: JwksEndpoint, key: TestKeyPair
) -> None:
    endpoint.document = jwks_document(key)

    assert fetcher_for(endpoint).fetch() == jwks_document(key)
    assert endpoint.fetches == 1


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_given_a_misbehaving_endpoint_when_fetched_then_verifier_unavailable(
    endpoint: JwksEndpoint, mode: str
) -> None:
    endpoint.mode = mode

    with pytest.raises(VerifierUnavailableError) as caught:
        fetcher_for(endpoint).fetch()

    assert endpoint.url in str(caught.value)
    assert endpoint.fetches == 1  # one request, no retry, no redirect followed


def test_given_a_closed_port_when_fetched_then_verifier_unavailable(endpoint: JwksEndpoint) -> None:
    unreachable = HttpJwksFetcher("http://127.0.0.1:9/jwks.json", timeout_seconds=TIMEOUT_SECONDS)

    with pytest.raises(VerifierUnavailableError):
        unreachable.fetch()


def test_given_a_body_of_exactly_max_bytes_when_fetched_then_it_is_accepted(
    endpoint: JwksEndpoint, key: TestKeyPair
) -> None:
    document = jwks_document(key)
    size = len(json.dumps(document).encode())
    endpoint.document = document

    assert HttpJwksFetcher(endpoint.url, max_bytes=size).fetch() == document
    with pytest.raises(VerifierUnavailableError):
        HttpJwksFetcher(endpoint.url, max_bytes=size - 1).fetch()


# -- the verifier over HTTP -----------------------------------------------------------------


def test_given_keys_rotate_at_the_endpoint_when_a_new_kid_arrives_then_one_refetch_per_cooldown(
    endpoint: JwksEndpoint, key: TestKeyPair, rotated_key: TestKeyPair
) -> None:
    monotonic = SteppingMonotonic()
    verifier = verifier_for(endpoint, monotonic)
    endpoint.document = jwks_document(key)
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert endpoint.fetches == 1

    endpoint.document = jwks_document(key, rotated_key)
    assert reason_of(verifier, token_for(rotated_key)) == "unknown_kid"  # within the cooldown
    assert endpoint.fetches == 1

    monotonic.advance(COOLDOWN)
    assert verifier.verify(token_for(rotated_key)).user_id == TEST_SUB
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert endpoint.fetches == 2


def test_given_a_flood_of_random_kids_when_verified_then_fetches_stay_within_the_cooldown(
    endpoint: JwksEndpoint, key: TestKeyPair
) -> None:
    monotonic = SteppingMonotonic()
    verifier = verifier_for(endpoint, monotonic)
    endpoint.document = jwks_document(key)
    verifier.verify(token_for(key))

    for window in range(3):
        for n in range(100):
            assert reason_of(verifier, token_for(key, kid=f"flood-{window}-{n}")) == "unknown_kid"
        monotonic.advance(COOLDOWN)

    assert endpoint.fetches == 1 + 2  # the first load, then one per elapsed cooldown
    assert verifier.verify(token_for(key)).user_id == TEST_SUB


def test_given_a_flood_of_random_kids_from_many_threads_then_at_most_one_refetch(
    endpoint: JwksEndpoint, key: TestKeyPair
) -> None:
    monotonic = SteppingMonotonic()
    verifier = verifier_for(endpoint, monotonic)
    endpoint.document = jwks_document(key)
    verifier.verify(token_for(key))
    monotonic.advance(COOLDOWN)
    reasons: list[str] = []
    lock = threading.Lock()

    def flood(worker: int) -> None:
        for n in range(20):
            try:
                verifier.verify(token_for(key, kid=f"t{worker}-{n}"))
            except InvalidTokenError as error:
                with lock:
                    reasons.append(error.reason)

    threads = [threading.Thread(target=flood, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert not any(thread.is_alive() for thread in threads)
    assert reasons == ["unknown_kid"] * 160
    assert endpoint.fetches == 2


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_given_cached_keys_when_the_endpoint_misbehaves_then_known_kids_keep_verifying(
    endpoint: JwksEndpoint, key: TestKeyPair, mode: str
) -> None:
    monotonic = SteppingMonotonic()
    verifier = verifier_for(endpoint, monotonic)
    endpoint.document = jwks_document(key)
    verifier.verify(token_for(key))
    endpoint.mode = mode
    monotonic.advance(COOLDOWN)

    for n in range(20):
        assert reason_of(verifier, token_for(key, kid=f"unknown-{n}")) == "unknown_kid"
        assert verifier.verify(token_for(key)).user_id == TEST_SUB

    assert endpoint.fetches == 2  # the first load and one failed refetch, whatever the flood


@pytest.mark.parametrize("mode", FAILURE_MODES)
def test_given_no_cached_key_when_the_endpoint_misbehaves_then_unavailable_and_rate_limited(
    endpoint: JwksEndpoint, key: TestKeyPair, mode: str
) -> None:
    monotonic = SteppingMonotonic()
    verifier = verifier_for(endpoint, monotonic)
    endpoint.document = jwks_document(key)
    endpoint.mode = mode

    for _ in range(10):
        with pytest.raises(VerifierUnavailableError):
            verifier.verify(token_for(key))
    assert endpoint.fetches == 1

    endpoint.mode = "ok"  # the endpoint heals; the next attempt waits for the cooldown
    monotonic.advance(COOLDOWN)
    assert verifier.verify(token_for(key)).user_id == TEST_SUB
    assert endpoint.fetches == 2
