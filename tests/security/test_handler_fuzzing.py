"""Property tests: the three Lambda handlers on arbitrary events.

Given the real handlers on the real verifier and a real redis-server, and an event that is a
real API Gateway fixture with any of its fields deleted, ``null``, wrongly typed, random
text, random base64, huge or nested junk (or no event shape at all), when a handler runs,
then it returns a dict with an ``int`` ``statusCode`` (never 500, never an exception), and a
rejected event stores nothing. Replies to the client are JSON frames within API Gateway's
128 KB limit, never a trace.

Runs derandomized (the same examples every run) with a modest ``max_examples`` per property
so the tier stays fast; raise ``FUZZ_EXAMPLES`` locally for a longer hunt.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import string
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as observe
from hypothesis import strategies as st

from adapters.cognito import StaticJwksFetcher
from adapters.connection_store.redis import CLOSED_KEY, RedisClient, create_redis_client
from adapters.in_memory import FixedClock, InMemoryMessageSender
from tests.security.harness import (
    CONNECTION_ID,
    cognito_verifier,
    connection_records,
    load_event,
    wired_handlers,
)
from tests.support.servers import RedisServer
from tests.support.tokens import TEST_NOW, jwks_document, mint_access_token, shared_key_pair

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "120"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_FRAME_BYTES = 128 * 1024
KEY = shared_key_pair("test-kid-1")
VALID_TOKEN = mint_access_token(KEY, now=TEST_NOW)
RECORD_KEY = f"ws:connection:{CONNECTION_ID}"
CANARY_KEY = "ws:connection:canary="

# -- strategies --------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=24)
    | st.binary(max_size=16).map(lambda raw: raw.decode("latin-1"))
)
junk = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
huge = st.sampled_from([64 * 1024, 200 * 1024, 1024 * 1024]).flatmap(
    lambda size: st.sampled_from("A{é\x00.").map(lambda char: char * size)
)
random_base64 = st.binary(max_size=512).map(lambda raw: base64.b64encode(raw).decode())
b64url_segment = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=80)
jwt_shaped = st.lists(b64url_segment | random_base64, min_size=1, max_size=6).map(".".join)
ping_bodies = st.sampled_from(
    [
        '{"action":"ping"}',
        "ping",
        '{"action":"ping","id":"' + "i" * 64 + '"}',
        base64.b64encode(b'{"action":"ping"}').decode(),
    ]
)
values = st.one_of(
    junk,
    huge,
    random_base64,
    jwt_shaped,
    st.text(),
    st.just(VALID_TOKEN),
    ping_bodies,
    junk.map(json.dumps),
    st.dictionaries(st.sampled_from(["action", "id", "data"]), junk).map(json.dumps),
)

CONTEXT_FIELDS = [
    "connectionId",
    "routeKey",
    "eventType",
    "domainName",
    "stage",
    "disconnectStatusCode",
    "disconnectReason",
    "identity",
    "connectedAt",
]
PATHS: dict[str, list[tuple[str, ...]]] = {
    "connect": [
        ("queryStringParameters",),
        ("multiValueQueryStringParameters",),
        ("queryStringParameters", "token"),
        ("multiValueQueryStringParameters", "token"),
        ("headers",),
        ("headers", "Sec-WebSocket-Protocol"),
        ("requestContext",),
        *(("requestContext", field) for field in CONTEXT_FIELDS),
        ("isBase64Encoded",),
        ("body",),
    ],
    "message_ping": [
        ("body",),
        ("isBase64Encoded",),
        ("requestContext",),
        *(("requestContext", field) for field in CONTEXT_FIELDS),
        ("headers",),
    ],
    "disconnect": [
        ("requestContext",),
        *(("requestContext", field) for field in CONTEXT_FIELDS),
        ("headers",),
        ("body",),
    ],
}


def _apply(event: Any, path: tuple[str, ...], action: str, value: Any) -> None:
    target = event
    for name in path[:-1]:
        if not isinstance(target, dict):
            return
        if not isinstance(target.get(name), dict):
            target[name] = {}
        target = target[name]
    if not isinstance(target, dict):
        return
    if action == "delete":
        target.pop(path[-1], None)
    elif action == "null":
        target[path[-1]] = None
    else:
        target[path[-1]] = value


def events(fixture: str) -> st.SearchStrategy[Any]:
    """The fixture event with up to six fields deleted, nulled or replaced, or pure junk."""
    base = load_event(fixture)
    if fixture == "connect":  # start from an acceptable event, so mutations decide the outcome
        base["queryStringParameters"] = {"token": VALID_TOKEN}
        base["multiValueQueryStringParameters"] = {"token": [VALID_TOKEN]}
    mutation = st.tuples(
        st.sampled_from(PATHS[fixture]),
        st.sampled_from(["delete", "null", "replace", "replace"]),
        values,
    )

    def mutate(mutations: list[tuple[tuple[str, ...], str, Any]]) -> Any:
        event = copy.deepcopy(base)
        for path, action, value in mutations:
            _apply(event, path, action, value)
        return event

    return st.one_of(st.lists(mutation, max_size=6).map(mutate), junk)


# -- the wired handlers (one per module: Hypothesis runs many examples per test) ---------------


class Edge:
    """What the fuzzed handlers talk to; ``reset`` gives each example a clean slate."""

    def __init__(self, store: RedisClient) -> None:
        self.store = store
        self.app: Any = None
        self.sender = InMemoryMessageSender()

    def reset(self, *records: str) -> None:
        self.store.flushdb()
        self.sender.sent.clear()
        self.sender.closed.clear()
        self.sender.gone.clear()
        for connection_id in records:
            self.store.set(
                f"ws:connection:{connection_id}",
                json.dumps(
                    {
                        "connectionId": connection_id,
                        "userId": "u",
                        "connectedAt": "2026-01-03T00:00:00Z",
                    },
                    separators=(",", ":"),
                ),
                ex=600,
            )

    def contents(self) -> dict[Any, Any]:
        """Every key with its serialized value (``DUMP``: strings, hashes and sets alike)."""
        return {key: self.store.dump(key) for key in self.store.scan_iter()}


@pytest.fixture(scope="module")
def edge(redis_server: RedisServer) -> Iterator[Edge]:
    clock = FixedClock(TEST_NOW)
    store = create_redis_client(redis_server.url)
    edge = Edge(store)
    verifier = cognito_verifier(StaticJwksFetcher(jwks_document(KEY)), clock)
    try:
        with wired_handlers(
            verifier=verifier, redis_client=store, clock=clock, sender=edge.sender
        ) as app:
            edge.app = app
            yield edge
    finally:
        store.flushdb()
        store.close()


def assert_a_proper_response(response: Any) -> int:
    assert isinstance(response, dict)
    status = response["statusCode"]
    assert type(status) is int
    assert status != 500, "an unexpected exception inside the handler"
    observe(f"status {status}")
    assert isinstance(response.get("body", ""), str)
    return status


def assert_proper_frames(sender: InMemoryMessageSender) -> None:
    for frames in sender.sent.values():
        for frame in frames:
            text = frame if isinstance(frame, str) else frame.decode("utf-8")
            assert len(text.encode("utf-8")) <= MAX_FRAME_BYTES
            assert "Traceback" not in text
            assert json.loads(text)["action"] in {"pong", "error"}


# -- properties -------------------------------------------------------------------------------


@FUZZ
@given(event=events("connect"))
def test_connect_on_any_event_answers_a_status_and_stores_nothing_unless_accepted(
    edge: Edge, event: Any
) -> None:
    edge.reset()

    status = assert_a_proper_response(edge.app.connect_handler(event, None))

    assert status in {200, 400, 401}
    stored = edge.contents()
    if status == 200:
        connection_id = event["requestContext"]["connectionId"]
        assert connection_records(edge.store) == [f"ws:connection:{connection_id}"]
    else:
        assert stored == {}
    assert edge.sender.sent == {}, "$connect never posts to the connection"


@FUZZ
@given(event=events("message_ping"), stored=st.booleans())
def test_default_on_any_event_answers_a_status_and_never_creates_a_record(
    edge: Edge, event: Any, stored: bool
) -> None:
    edge.reset(*([CONNECTION_ID] if stored else []))
    before = edge.contents()

    status = assert_a_proper_response(edge.app.default_handler(event, None))

    assert status in {200, 400}
    after = edge.contents()
    # A ping may count the stored record's slot (it was stored without one): limit keys.
    records = {key for key in after if key.startswith(b"ws:connection:")}
    assert records <= set(before), "a message created a record"
    for key in records:
        assert after[key] == before[key], "a message changed a stored record"
    assert_proper_frames(edge.sender)


@FUZZ
@given(event=events("disconnect"))
def test_disconnect_on_any_event_answers_a_status_and_touches_only_its_own_record(
    edge: Edge, event: Any
) -> None:
    edge.reset(CONNECTION_ID, "canary=")

    status = assert_a_proper_response(edge.app.disconnect_handler(event, None))

    assert status in {200, 400}
    after = edge.contents()
    assert CANARY_KEY.encode() in after or _connection_id_of(event) == "canary="
    # Besides the records, a delete only remembers the connection closed (a limit key).
    records = {key for key in after if key.startswith(b"ws:connection:")}
    assert records <= {RECORD_KEY.encode(), CANARY_KEY.encode()}
    assert set(after) - records <= {CLOSED_KEY.encode()}
    if status == 400:
        assert RECORD_KEY.encode() in after, "a rejected event deleted a record"


def _connection_id_of(event: Any) -> Any:
    context = event.get("requestContext") if isinstance(event, dict) else None
    return context.get("connectionId") if isinstance(context, dict) else None
