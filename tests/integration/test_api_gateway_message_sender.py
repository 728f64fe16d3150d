"""ApiGatewayMessageSender through real boto3 clients: against moto (server mode) for the
happy paths moto implements, and against a loopback stub of ``/@connections`` for the error
answers moto never gives (410 GoneException, 413, 429, 403, a server that never answers).

moto 5.2 implements PostToConnection, GetConnection and DeleteConnection for any id (it
never answers 410) and only at the endpoint root (``/@connections/...``; a ``/{stage}``
prefix is a 404 in server mode), so stage paths and errors are checked on the stub.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.core import DEFAULT_ACCOUNT_ID

from adapters.api_gateway_message_sender import ManagementApiClients, management_endpoint
from domain.errors import (
    ConnectionGoneError,
    MessageSendError,
    PayloadTooLargeError,
    ThrottledError,
)
from domain.protocol import MAX_MESSAGE_BYTES
from tests.support.management_api_stub import (
    BARE_GONE,
    FORBIDDEN,
    GONE,
    HANG,
    PAYLOAD_TOO_LARGE,
    THROTTLED,
    ManagementApiStub,
    StubResponse,
    running_management_api_stub,
)
from tests.support.servers import free_port

REGION = "us-east-1"
RAW_ID = "L0SM9cOFvHcCIhw="
ENCODED_ID = "L0SM9cOFvHcCIhw%3D"
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clients() -> ManagementApiClients:
    return ManagementApiClients(region_name=REGION)


@pytest.fixture
def stub() -> Iterator[ManagementApiStub]:
    with running_management_api_stub() as running:
        yield running


def _moto_data(connection_id: str) -> bytes | None:
    """What moto holds for the id, looked up as it arrived on the wire.

    moto keys connections by the path segment as sent, still URL-encoded, so the lookup
    encodes ``=`` once: a double-encoded ``%253D`` would not be found.
    """
    connections = apigatewaymanagementapi_backends[DEFAULT_ACCOUNT_ID][REGION].connections
    connection = dict(connections).get(connection_id.replace("=", "%3D"))
    return None if connection is None else connection.data


def _unique_id() -> str:
    # moto's state lives for the session: every test uses its own ids, ending in '=' like
    # API Gateway's so URL-encoding is exercised.
    return uuid.uuid4().hex[:15] + "="


# --- endpoint -----------------------------------------------------------------------------


def test_management_endpoint_is_https_domain_and_stage() -> None:
    assert (
        management_endpoint("abc123.execute-api.eu-west-1.amazonaws.com", "prod")
        == "https://abc123.execute-api.eu-west-1.amazonaws.com/prod"
    )
    assert management_endpoint("ws.example.com", "v1") == "https://ws.example.com/v1"


@pytest.mark.parametrize(("domain", "stage"), [("", "prod"), ("ws.example.com", "")])
def test_management_endpoint_needs_domain_and_stage(domain, stage) -> None:
    with pytest.raises(ValueError):
        management_endpoint(domain, stage)


# --- against moto ---------------------------------------------------------------------------


def test_send_delivers_text_as_utf8_to_the_raw_connection_id(clients, moto_endpoint) -> None:
    connection_id = _unique_id()
    sender = clients.sender_for(moto_endpoint)
    sender.send(connection_id, '{"action":"pong","note":"größe"}')
    sender.send(connection_id, b"\x00\x01binary")
    assert _moto_data(connection_id) == (
        '{"action":"pong","note":"größe"}'.encode() + b"\x00\x01binary"
    )


def test_close_deletes_the_connection(clients, moto_endpoint) -> None:
    connection_id = _unique_id()
    sender = clients.sender_for(moto_endpoint)
    sender.send(connection_id, "hello")
    assert _moto_data(connection_id) == b"hello"
    sender.close(connection_id)
    assert _moto_data(connection_id) is None


def test_the_client_speaks_get_connection_too(clients, moto_endpoint) -> None:
    # GetConnection is not used by the sender; this pins that moto's endpoint and our client
    # configuration agree on the service (signing name execute-api, rest-json).
    connection_id = _unique_id()
    client = clients.sender_for(moto_endpoint).client
    client.post_to_connection(ConnectionId=connection_id, Data=b"x")
    answer = client.get_connection(ConnectionId=connection_id)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert answer["Identity"]["SourceIp"]


# --- against the stub: the wire -----------------------------------------------------------


def test_the_raw_id_reaches_the_stage_path_url_encoded_exactly_once(clients, stub) -> None:
    clients.sender_for(stub.endpoint + "/production").send(RAW_ID, "pong")
    [request] = stub.requests
    assert request.method == "POST"
    assert request.path == f"/production/@connections/{ENCODED_ID}"
    assert request.body == b"pong"
    assert request.headers["Authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert "/execute-api/aws4_request" in request.headers["Authorization"]


def test_close_sends_delete_to_the_connection(clients, stub) -> None:
    stub.response = StubResponse(status=204, headers={}, body=b"")
    clients.sender_for(stub.endpoint + "/production").close(RAW_ID)
    [request] = stub.requests
    assert (request.method, request.path) == ("DELETE", f"/production/@connections/{ENCODED_ID}")


# --- against the stub: errors -------------------------------------------------------------


@pytest.mark.parametrize("answer", [GONE, BARE_GONE], ids=["GoneException", "bare-410"])
def test_gone_is_connection_gone_and_not_retried(clients, stub, answer) -> None:
    stub.response = answer
    with pytest.raises(ConnectionGoneError) as caught:
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "pong")
    assert isinstance(caught.value.__cause__, ClientError)
    assert len(stub.requests) == 1


def test_gone_exception_is_the_modelled_error_class(clients, stub) -> None:
    # The header form is what boto3 models as client.exceptions.GoneException.
    stub.response = GONE
    sender = clients.sender_for(stub.endpoint + "/prod")
    with pytest.raises(ConnectionGoneError) as caught:
        sender.send(RAW_ID, "pong")
    assert isinstance(caught.value.__cause__, sender.client.exceptions.GoneException)


def test_payload_too_large_answer_is_payload_too_large(clients, stub) -> None:
    stub.response = PAYLOAD_TOO_LARGE
    with pytest.raises(PayloadTooLargeError):
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "pong")
    assert len(stub.requests) == 1


def test_throttling_is_retried_within_bounds_then_a_send_error(clients, stub) -> None:
    stub.response = THROTTLED
    with pytest.raises(MessageSendError) as caught:
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "pong")
    assert "LimitExceededException" in str(caught.value)
    assert len(stub.requests) == 2  # max_attempts=2: the first try and one retry


def test_throttling_is_a_throttled_error_and_the_pushs_clients_do_not_retry_it(stub) -> None:
    # Given the push's clients: no botocore retry (its use case retries a 429 itself)
    stub.response = THROTTLED
    push_clients = ManagementApiClients(region_name=REGION, max_attempts=1)
    with pytest.raises(ThrottledError) as caught:
        push_clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "frame")
    assert "LimitExceededException" in str(caught.value)
    assert len(stub.requests) == 1


def test_forbidden_is_a_send_error(clients, stub) -> None:
    stub.response = FORBIDDEN
    with pytest.raises(MessageSendError) as caught:
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "pong")
    assert type(caught.value) is MessageSendError
    assert "ForbiddenException" in str(caught.value)


def test_a_gateway_that_never_answers_is_a_send_error(stub) -> None:
    stub.response = HANG
    clients = ManagementApiClients(region_name=REGION, read_timeout_seconds=0.2, max_attempts=1)
    with pytest.raises(MessageSendError) as caught:
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "pong")
    assert isinstance(caught.value.__cause__, ReadTimeoutError)
    assert len(stub.requests) == 1


def test_an_unreachable_gateway_is_a_send_error() -> None:
    clients = ManagementApiClients(region_name=REGION, max_attempts=1)
    sender = clients.sender_for(f"http://127.0.0.1:{free_port()}/prod")
    with pytest.raises(MessageSendError) as caught:
        sender.send(RAW_ID, "pong")
    assert isinstance(caught.value.__cause__, EndpointConnectionError | ConnectTimeoutError)
    with pytest.raises(MessageSendError):
        sender.close(RAW_ID)


@pytest.mark.parametrize("answer", [GONE, BARE_GONE], ids=["GoneException", "bare-410"])
def test_closing_a_gone_connection_is_fine(clients, stub, answer) -> None:
    stub.response = answer
    clients.sender_for(stub.endpoint + "/prod").close(RAW_ID)
    assert len(stub.requests) == 1


def test_closing_refused_for_another_reason_is_a_send_error(clients, stub) -> None:
    stub.response = FORBIDDEN
    with pytest.raises(MessageSendError):
        clients.sender_for(stub.endpoint + "/prod").close(RAW_ID)


# --- size, checked before any request -------------------------------------------------------


def test_text_over_128_kb_in_utf8_is_refused_before_any_request(clients, stub) -> None:
    # Given 50,000 characters (well under 128 K characters) that are 150,000 UTF-8 bytes
    text = "€" * 50_000
    assert len(text) < MAX_MESSAGE_BYTES < len(text.encode("utf-8"))
    with pytest.raises(PayloadTooLargeError):
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, text)
    assert stub.requests == []


def test_bytes_over_128_kb_are_refused_before_any_request(clients, stub) -> None:
    with pytest.raises(PayloadTooLargeError):
        clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, b"x" * (MAX_MESSAGE_BYTES + 1))
    assert stub.requests == []


def test_exactly_128_kb_is_sent(clients, stub) -> None:
    clients.sender_for(stub.endpoint + "/prod").send(RAW_ID, "a" * MAX_MESSAGE_BYTES)
    [request] = stub.requests
    assert len(request.body) == MAX_MESSAGE_BYTES


# --- clients: one per endpoint, configured once -------------------------------------------


def test_one_client_per_endpoint(clients) -> None:
    first = clients.sender_for("https://abc.execute-api.us-east-1.amazonaws.com/prod")
    again = clients.sender_for("https://abc.execute-api.us-east-1.amazonaws.com/prod/")
    other = clients.sender_for("https://abc.execute-api.us-east-1.amazonaws.com/dev")
    assert again is first
    assert again.client is first.client
    assert other.client is not first.client


def test_concurrent_first_use_builds_one_client(clients) -> None:
    endpoint = "https://race.execute-api.us-east-1.amazonaws.com/prod"
    start = threading.Barrier(8)
    senders = []

    def grab() -> None:
        start.wait(timeout=10)
        senders.append(clients.sender_for(endpoint))

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(senders) == 8
    assert len({id(sender.client) for sender in senders}) == 1


def test_clients_have_short_timeouts_and_bounded_retries() -> None:
    clients = ManagementApiClients(
        region_name="eu-west-1",
        connect_timeout_seconds=0.5,
        read_timeout_seconds=1.5,
        max_attempts=3,
    )
    client = clients.sender_for("https://abc.execute-api.eu-west-1.amazonaws.com/prod").client
    config = client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (0.5, 1.5)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert client.meta.region_name == "eu-west-1"
    assert client.meta.endpoint_url == "https://abc.execute-api.eu-west-1.amazonaws.com/prod"


def test_an_empty_endpoint_is_refused(clients) -> None:
    with pytest.raises(ValueError):
        clients.sender_for("")


def test_importing_the_module_does_not_import_boto3() -> None:
    # $connect imports this module through the container but must not pay boto3's import.
    probe = (
        "import sys, adapters.api_gateway_message_sender; "
        "print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
