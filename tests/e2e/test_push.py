"""Issue 21's push end to end: real WebSocket clients on ``serve``'s gateway, the ``push``
function invoked through the gateway's Lambda Invoke emulation with the real boto3 client.

Everything is the real application: the Redis directory, the records, the GoneException
cleanup, the Management API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError
from websockets.asyncio.client import ClientConnection, connect

from entrypoints.local_gateway.emulator.server import GatewaySettings, create_app, listening_socket
from entrypoints.local_gateway.wiring import prepare_gateway
from tests.e2e.conftest import RunningGateway
from tests.support.gateway import BackgroundGateway
from tests.support.http import wait_for_health, wait_until

RECEIVE_TIMEOUT_SECONDS = 10.0


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def lambda_client(running: RunningGateway, **replaced: Any) -> Any:
    """The real boto3 Lambda client of the gateway, signed as it requires unless ``replaced``."""
    settings = running.background.gateway.settings
    credentials = settings.credentials[0]
    return boto3.client(
        "lambda",
        endpoint_url=running.base_url,
        region_name=replaced.pop("region", settings.region),
        aws_access_key_id=replaced.pop("access_key_id", credentials.access_key_id),
        aws_secret_access_key=replaced.pop("secret_access_key", credentials.secret_access_key),
        config=Config(retries={"total_max_attempts": 1}),
        **replaced,
    )


def invoke(running: RunningGateway, event: Any, function: str = "push") -> tuple[Any, Any]:
    """Invoke ``function``; (the response's ``FunctionError`` or None, the decoded payload)."""
    response = lambda_client(running).invoke(FunctionName=function, Payload=json.dumps(event))
    assert response["StatusCode"] == 200
    return response.get("FunctionError"), json.loads(response["Payload"].read())


@pytest.fixture
def push_gateway(
    gateway: Callable[..., RunningGateway], redis_url: str
) -> Callable[..., RunningGateway]:
    """``serve``'s gateway over the real handlers and Redis: ``push_gateway(settings=None)``."""
    return lambda settings=None: gateway(settings)


async def open_connections(running: RunningGateway, user: str, count: int) -> list[Any]:
    """``count`` connections of ``user``, each with its connectionId (learned from a pong)."""
    sockets = []
    for index in range(count):
        ws = await connect(running.url(running.token(sub=user)))
        await ws.send(json.dumps({"action": "ping", "id": f"{user}-{index}"}))
        pong = json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))
        ws.connection_id = pong["connectionId"]  # type: ignore[attr-defined]
        sockets.append(ws)
    return sockets


async def next_frame(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS))


async def nothing_pending(ws: ClientConnection) -> bool:
    """True when the next frame the socket gets is the pong to a ping sent now: no frame was
    waiting before it (frames from the gateway arrive in order on one socket)."""
    await ws.send('{"action":"ping","id":"probe"}')
    frame = await next_frame(ws)
    return frame.get("action") == "pong" and frame.get("id") == "probe"


def test_given_users_with_several_connections_when_push_is_invoked_then_each_of_theirs_gets_it(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    running = push_gateway()

    async def scenario() -> tuple[Any, Any, list[Any], list[bool]]:
        alice = await open_connections(running, "alice", 3)
        bob = await open_connections(running, "bob", 2)
        carol = await open_connections(running, "carol", 2)
        error, result = await asyncio.to_thread(
            invoke, running, {"userIds": ["alice", "bob"], "message": {"post": 42}}
        )
        frames = [await next_frame(ws) for ws in alice + bob]
        untouched = [await nothing_pending(ws) for ws in carol]
        for ws in alice + bob + carol:
            await ws.close()
        return error, result, frames, untouched

    error, result, frames, untouched = run(scenario())

    assert error is None
    assert result == {
        "delivered": 5,
        "gone": 0,
        "failed": 0,
        "unavailable": 0,
        "users": {
            "alice": {"delivered": 3, "gone": 0, "failed": 0, "unavailable": False},
            "bob": {"delivered": 2, "gone": 0, "failed": 0, "unavailable": False},
        },
    }
    assert frames == [{"post": 42}] * 5
    assert untouched == [True, True], "nothing pushed to alice and bob reaches carol"


def test_given_a_connection_whose_disconnect_was_lost_when_pushed_then_gone_heals_its_record(
    push_gateway: Callable[..., RunningGateway], redis_client: redis.Redis
) -> None:
    # Given every $disconnect lost, as API Gateway may (best effort)
    running = push_gateway(GatewaySettings(disconnect_loss=1.0))

    async def scenario() -> tuple[str, str, Any, Any]:
        live, stale = await open_connections(running, "dave", 2)
        await stale.close()
        stale_id = stale.connection_id  # type: ignore[attr-defined]
        await asyncio.to_thread(
            wait_until,
            lambda: running.background.gateway.registry.open(stale_id) is None,
            10.0,
            "the gateway to forget the closed socket",
        )
        assert redis_client.exists(f"ws:connection:{stale_id}"), "the record outlived it"
        _, result = await asyncio.to_thread(invoke, running, {"userIds": ["dave"], "message": "hi"})
        received = await asyncio.wait_for(live.recv(), RECEIVE_TIMEOUT_SECONDS)
        await live.close()
        return stale_id, str(received), result, live.connection_id  # type: ignore[attr-defined]

    stale_id, received, result, live_id = run(scenario())

    assert received == "hi", "a string message is the frame as is"
    assert (result["delivered"], result["gone"], result["failed"]) == (1, 1, 0)
    assert not redis_client.exists(f"ws:connection:{stale_id}"), "removed as $disconnect would"
    assert redis_client.exists(f"ws:connection:{live_id}"), "the live one is untouched"


@pytest.mark.parametrize(
    ("event", "error"),
    [
        ({"message": "hi"}, "bad_request"),
        ({"userIds": "erin", "message": "hi"}, "bad_request"),
        ({"userIds": ["erin", 3], "message": "hi"}, "bad_request"),
        ({"userIds": [], "message": "hi"}, "no_users"),
        ({"userIds": [f"u{i}" for i in range(101)], "message": "hi"}, "too_many_users"),
        ({"userIds": ["erin"], "message": "x" * (128 * 1024 + 1)}, "payload_too_large"),
    ],
)
def test_given_a_bad_push_event_then_a_clear_error_result_and_nothing_is_posted(
    push_gateway: Callable[..., RunningGateway], event: Any, error: str
) -> None:
    running = push_gateway()

    async def scenario() -> tuple[Any, Any, bool]:
        [erin] = await open_connections(running, "erin", 1)
        function_error, result = await asyncio.to_thread(invoke, running, event)
        quiet = await nothing_pending(erin)
        await erin.close()
        return function_error, result, quiet

    function_error, result, quiet = run(scenario())

    assert function_error is None, "a refused push is the function's answer, not a crash"
    assert result["error"] == error
    assert result["message"]
    assert quiet, "nothing was posted"


def test_given_an_unknown_function_then_404_resource_not_found(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    running = push_gateway()

    with pytest.raises(ClientError) as refused:
        lambda_client(running).invoke(FunctionName="no-such-function", Payload=b"{}")

    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert error["Error"]["Code"] == "ResourceNotFoundException"
    assert "Function not found: arn:aws:lambda:" in error["Error"]["Message"]


@pytest.mark.parametrize(
    ("replaced", "status", "code"),
    [
        ({"secret_access_key": "wrong"}, 403, "InvalidSignatureException"),
        ({"access_key_id": "AKIDUNKNOWN"}, 403, "UnrecognizedClientException"),
        ({"region": "eu-west-3"}, 403, "InvalidSignatureException"),
    ],
)
def test_given_bad_credentials_on_the_invoke_api_then_refused_and_nothing_runs(
    push_gateway: Callable[..., RunningGateway],
    replaced: dict[str, str],
    status: int,
    code: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    running = push_gateway()

    with pytest.raises(ClientError) as refused:
        lambda_client(running, **replaced).invoke(
            FunctionName="push", Payload=b'{"userIds":["x"],"message":"m"}'
        )

    error = refused.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (status, code)
    assert not any(r.getMessage() == "pushed" for r in caplog.records)


def test_given_an_unsigned_invoke_then_403_missing_authentication_token(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    from botocore import UNSIGNED

    running = push_gateway()
    client = boto3.client(
        "lambda",
        endpoint_url=running.base_url,
        region_name=running.background.gateway.settings.region,
        config=Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1}),
    )

    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="push", Payload=b"{}")

    assert refused.value.response["Error"]["Code"] == "MissingAuthenticationTokenException"


def test_given_a_function_that_raises_then_200_with_function_error_unhandled() -> None:
    def boom(event: Any, context: Any) -> Any:
        raise RuntimeError("kaput")

    sock = listening_socket("127.0.0.1", 0)
    background = BackgroundGateway(
        create_app(
            {"$connect": boom, "$disconnect": boom, "$default": boom}, functions={"boom": boom}
        ),
        sock,
    )
    background.start()
    running = RunningGateway(background, f"http://127.0.0.1:{background.port}")
    try:
        wait_for_health(running.base_url)
        response = lambda_client(running).invoke(FunctionName="boom", Payload=b"{}")
        event_response = lambda_client(running).invoke(
            FunctionName="boom", Payload=b"{}", InvocationType="DryRun"
        )
        with pytest.raises(ClientError) as not_json:
            lambda_client(running).invoke(FunctionName="boom", Payload=b"{not json")
    finally:
        running.stop()

    assert (response["StatusCode"], response["FunctionError"]) == (200, "Unhandled")
    payload = json.loads(response["Payload"].read())
    assert (payload["errorType"], payload["errorMessage"]) == ("RuntimeError", "kaput")
    assert response["ExecutedVersion"] == "$LATEST"
    assert event_response["StatusCode"] == 204
    assert not_json.value.response["Error"]["Code"] == "InvalidRequestContentException"


def test_the_banner_prints_the_invoke_endpoint_and_the_function_names(
    redis_url: str, state_dir: Path
) -> None:
    from entrypoints.local_gateway.banner import banner

    prepared = prepare_gateway(
        host="127.0.0.1",
        port=0,
        settings=GatewaySettings(),
        redis_url=redis_url,
        state_dir=state_dir,
        environ={k: v for k, v in os.environ.items() if not k.startswith("COGNITO_")},
    )
    try:
        lines = banner(prepared).splitlines()
    finally:
        prepared.sock.close()

    base = prepared.base_url
    assert (
        f"  Lambda Invoke   {base}/2015-03-31/functions/{{FunctionName}}/invocations"
        f"  (boto3 lambda endpoint_url={base}; SigV4 service lambda)" in lines
    )
    assert "  Functions       push" in lines


# -- timeline-ws push ------------------------------------------------------------------------


@pytest.fixture
def no_aws_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials anywhere: the CLI signs as the local gateway's default (test/test)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_given_the_cli_when_pushing_then_the_json_result_and_exit_0(
    push_gateway: Callable[..., RunningGateway],
    no_aws_credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from entrypoints.cli import main

    running = push_gateway()

    async def scenario() -> tuple[int, list[Any]]:
        sockets = await open_connections(running, "frank", 2)
        status = await asyncio.to_thread(
            main,
            [
                "push",
                "--endpoint-url",
                running.base_url,
                "--user",
                "frank",
                "--user",
                "gina",
                '{"n": 1}',
            ],
        )
        frames = [await next_frame(ws) for ws in sockets]
        for ws in sockets:
            await ws.close()
        return status, frames

    status, frames = run(scenario())

    out = capsys.readouterr().out
    assert status == 0
    result = json.loads(out)
    assert (result["delivered"], result["users"]["gina"]["delivered"]) == (2, 0)
    assert frames == [{"n": 1}, {"n": 1}]


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        (["--user", "", "hi"], '"userIds"[0] must be a non-empty string'),
        ([*(f"--user=u{i}" for i in range(101)), "hi"], "too_many_users"),
        (["--user", "hank", "x" * (128 * 1024 + 1)], "payload_too_large"),
    ],
)
def test_given_bad_input_to_the_cli_then_exit_2_with_one_clear_line(
    push_gateway: Callable[..., RunningGateway],
    no_aws_credentials: None,
    capsys: pytest.CaptureFixture[str],
    arguments: list[str],
    says: str,
) -> None:
    from entrypoints.cli import main

    running = push_gateway()

    status = main(["push", "--endpoint-url", running.base_url, *arguments])

    captured = capsys.readouterr()
    assert status == 2
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("timeline-ws push: ") and says in line


def test_given_the_cli_and_no_gateway_then_exit_1_with_one_line(
    no_aws_credentials: None, capsys: pytest.CaptureFixture[str]
) -> None:
    from entrypoints.cli import main

    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # a port nobody listens on

    status = main(["push", "--endpoint-url", f"http://127.0.0.1:{port}", "--user", "x", "hi"])

    [line] = capsys.readouterr().err.splitlines()
    assert status == 1
    assert line.startswith("timeline-ws push: ")


def test_given_the_account_throttle_exhausted_then_posts_fail_after_retries_and_the_cli_exits_1(
    push_gateway: Callable[..., RunningGateway],
    no_aws_credentials: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from entrypoints.cli import main

    # Given an account bucket of 3 requests that does not refill: the two pings take two
    running = push_gateway(GatewaySettings(request_rate=0.0001, request_burst=3))

    async def scenario() -> int:
        sockets = await open_connections(running, "ivy", 2)
        status = await asyncio.to_thread(
            main, ["push", "--endpoint-url", running.base_url, "--user", "ivy", "hi"]
        )
        for ws in sockets:
            await ws.close()
        return status

    status = run(scenario())

    result = json.loads(capsys.readouterr().out)
    assert status == 1
    assert (result["delivered"], result["failed"], result["gone"]) == (1, 1, 0)
    throttled = [r for r in caplog.records if "LimitExceededException" in r.getMessage()]
    assert len(throttled) == 3, "the throttled post was tried 3 times in all, no more"


@contextlib.contextmanager
def invoke_gateway(functions: dict[str, Any]) -> Iterator[RunningGateway]:
    """A gateway serving ``functions`` by Lambda's Invoke API (its routes run the first one),
    healthy inside the block and stopped after it."""
    first = next(iter(functions.values()))
    handlers = {"$connect": first, "$disconnect": first, "$default": first}
    background = BackgroundGateway(
        create_app(handlers, functions=functions), listening_socket("127.0.0.1", 0)
    )
    background.start()
    running = RunningGateway(background, f"http://127.0.0.1:{background.port}")
    try:
        wait_for_health(running.base_url)
        yield running
    finally:
        running.stop()


def test_the_invoke_api_takes_an_arn_event_invocations_and_refuses_other_qualifiers() -> None:
    calls: list[Any] = []

    def record(event: Any, context: Any) -> Any:
        calls.append((event, context.function_name))
        return {"ok": True}

    with invoke_gateway({"rec": record}) as running:
        client = lambda_client(running)
        arn = "arn:aws:lambda:us-east-1:000000000000:function:rec"
        by_arn = client.invoke(FunctionName=arn, Payload=b'{"n": 1}')
        by_version = client.invoke(FunctionName="rec", Qualifier="$LATEST", Payload=b"{}")
        queued = client.invoke(FunctionName="rec", InvocationType="Event", Payload=b'{"n": 2}')
        wait_until(lambda: len(calls) == 3, 10.0, "the Event invocation to run")
        with pytest.raises(ClientError) as other_version:
            client.invoke(FunctionName="rec", Qualifier="7", Payload=b"{}")
        with pytest.raises(ClientError) as too_large:
            client.invoke(FunctionName="rec", InvocationType="Event", Payload=b"1" * 300_000)

    assert json.loads(by_arn["Payload"].read()) == {"ok": True}
    assert by_version["StatusCode"] == 200
    assert queued["StatusCode"] == 202
    assert sorted(str(event) for event, _ in calls) == ["{'n': 1}", "{'n': 2}", "{}"]
    assert {name for _, name in calls} == {"rec"}
    assert other_version.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert too_large.value.response["Error"]["Code"] == "RequestTooLargeException"


def test_given_the_cli_and_an_unknown_function_then_exit_1_naming_the_error(
    push_gateway: Callable[..., RunningGateway],
    no_aws_credentials: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from entrypoints.cli import main

    running = push_gateway()

    status = main(
        ["push", "--endpoint-url", running.base_url, "--function-name", "nope", "--user", "x", "m"]
    )

    [line] = capsys.readouterr().err.splitlines()
    assert status == 1
    assert line.startswith("timeline-ws push: ResourceNotFoundException: Function not found")


def test_given_a_synchronous_payload_over_1_mib_then_invoked_and_over_6_mb_413() -> None:
    sizes: list[int] = []

    def measure(event: Any, context: Any) -> Any:
        sizes.append(len(event))
        return {"ok": True}

    six_mb = 6 * 1024 * 1024
    with invoke_gateway({"measure": measure}) as running:
        client = lambda_client(running)
        big = client.invoke(FunctionName="measure", Payload=json.dumps("x" * 1_500_000))
        with pytest.raises(ClientError) as too_large:
            client.invoke(FunctionName="measure", Payload=json.dumps("x" * (six_mb - 1)))

    assert json.loads(big["Payload"].read()) == {"ok": True}
    assert sizes == [1_500_000]
    response = too_large.value.response
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == (
        "RequestTooLargeException"
    )
    assert (response["Type"], response["message"]) == (
        "User",
        f"Request must be smaller than {six_mb} bytes for the Invoke operation",
    )


# -- timeline-ws push as a user runs it (a subprocess, in the user's environment) ------------

REPOSITORY = Path(__file__).parent.parent.parent
FOREIGN_AWS_SETTINGS = {
    "real_keys": {
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "a-session-token",
    },
    "a_profile": {"AWS_PROFILE": "work"},
    "default_region": {"AWS_DEFAULT_REGION": "eu-west-1"},
    "region_over_default_region": {"AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "us-west-2"},
}


def push_process(
    base_url: str | None,
    arguments: list[str],
    environ: dict[str, str] | None = None,
    stdin: bytes = b"",
    **popen: Any,
) -> subprocess.CompletedProcess[bytes]:
    """``timeline-ws push`` as a subprocess, in an environment holding only ``environ``'s AWS
    settings (and a config and credentials file that do not exist)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
    env.update(AWS_EC2_METADATA_DISABLED="true", **(environ or {}))
    endpoint = ["--endpoint-url", base_url] if base_url else []
    return subprocess.run(
        [sys.executable, "-m", "entrypoints.cli", "push", *endpoint, *arguments],
        input=stdin,
        env=env,
        cwd=REPOSITORY,
        timeout=60,
        check=False,
        **(popen or {"capture_output": True}),
    )


def served_region(environ: dict[str, str]) -> str:
    """The region ``serve`` resolves in ``environ``, by what its docs promise (not our code)."""
    return environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1"


@pytest.mark.parametrize("environ", FOREIGN_AWS_SETTINGS.values(), ids=FOREIGN_AWS_SETTINGS)
def test_given_aws_settings_in_the_environment_when_pushing_locally_then_it_just_works(
    push_gateway: Callable[..., RunningGateway], environ: dict[str, str]
) -> None:
    # Given serve started in the same environment (its default credentials, its region)
    running = push_gateway(GatewaySettings(region=served_region(environ)))

    # When the developer pushes with their usual AWS settings in place
    done = push_process(running.base_url, ["--user", "nobody", "hi"], environ)

    # Then the gateway accepts the call: signed as serve accepts, not with those settings
    assert done.stderr == b""
    assert done.returncode == 0
    assert json.loads(done.stdout)["users"] == {
        "nobody": {"delivered": 0, "gone": 0, "failed": 0, "unavailable": False}
    }


def test_given_the_default_endpoint_then_the_cli_signs_as_serve_does_there_too(
    no_aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse

    from entrypoints.push_cli import lambda_client

    monkeypatch.setenv("AWS_REGION", "ap-south-1")
    monkeypatch.setenv("AWS_PROFILE", "work")
    arguments = argparse.Namespace(
        endpoint_url=None, function_name=None, region=None, credentials=None
    )

    client = lambda_client(arguments)

    assert client.meta.endpoint_url == "http://127.0.0.1:8080"
    assert client.meta.region_name == "ap-south-1"
    frozen = client._request_signer._credentials.get_frozen_credentials()
    assert (frozen.access_key, frozen.secret_key, frozen.token) == ("test", "test", None)


def test_given_serve_with_other_credentials_and_region_then_the_push_options_override(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    from entrypoints.local_gateway.emulator.sigv4 import AwsCredentials

    running = push_gateway(
        GatewaySettings(region="ap-south-1", credentials=(AwsCredentials("local", "s3:cret"),))
    )
    arguments = ["--credentials", "local:s3:cret", "--region", "ap-south-1", "--user", "x", "hi"]

    accepted = push_process(running.base_url, arguments)
    default = push_process(running.base_url, ["--user", "x", "hi"])
    malformed = push_process(running.base_url, ["--credentials", "s3cret", "--user", "x", "hi"])

    assert (accepted.returncode, accepted.stderr) == (0, b"")
    assert default.returncode == 1
    assert b"UnrecognizedClientException" in default.stderr
    assert malformed.returncode == 2
    assert b"expected KEY:SECRET" in malformed.stderr
    assert b"s3cret" not in malformed.stderr, "a secret is never echoed"


def test_given_a_128_kb_message_on_stdin_then_it_is_pushed_as_is(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    running = push_gateway()
    # 131,072 bytes in UTF-8: over Linux's 131,071-byte limit for one argument
    message = "é" * (64 * 1024)

    async def scenario() -> tuple[subprocess.CompletedProcess[bytes], str]:
        [ws] = await open_connections(running, "kim", 1)
        done = await asyncio.to_thread(
            push_process, running.base_url, ["--user", "kim", "-"], stdin=message.encode()
        )
        frame = await asyncio.wait_for(ws.recv(), RECEIVE_TIMEOUT_SECONDS)
        await ws.close()
        return done, str(frame)

    done, frame = run(scenario())

    assert (done.returncode, done.stderr) == (0, b"")
    assert json.loads(done.stdout)["delivered"] == 1
    assert frame == message


@pytest.mark.parametrize(
    ("stdin", "says"),
    [
        (b"\xff\xfe", b"stdin is not UTF-8"),
        (b"x" * (128 * 1024 + 1), b"payload_too_large"),
    ],
    ids=["not_utf8", "over_128_kb"],
)
def test_given_bad_input_on_stdin_then_exit_2_with_one_line(
    push_gateway: Callable[..., RunningGateway], stdin: bytes, says: bytes
) -> None:
    running = push_gateway()

    done = push_process(running.base_url, ["--user", "kim", "-"], stdin=stdin)

    assert done.returncode == 2
    assert done.stdout == b""
    [line] = done.stderr.splitlines()
    assert line.startswith(b"timeline-ws push: ") and says in line


def test_given_stdout_closed_by_its_reader_then_the_cli_ends_quietly(
    push_gateway: Callable[..., RunningGateway],
) -> None:
    running = push_gateway()
    # Given a reader that went away before the result is written (as `| head -3` does)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = push_process(
            running.base_url,
            ["--user", "nobody", "hi"],
            stdin=b"",
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)

    assert done.stderr == b"", "no BrokenPipeError traceback"
    assert done.returncode == 0, "the push's own status"


def test_the_push_help_says_that_a_user_without_connections_is_not_a_failure() -> None:
    done = push_process(None, ["--help"])

    text = " ".join(done.stdout.decode().split())
    assert done.returncode == 0
    assert "including when a user has none (then delivered is 0" in text
    assert "- reads it from stdin" in text


def test_given_credentials_for_a_deployed_function_then_exit_2_before_any_call() -> None:
    done = push_process(
        None,
        ["--function-name", "timeline-ws-prod-push", "--credentials", "k:s", "--user", "u", "m"],
    )

    assert (done.returncode, done.stdout) == (2, b"")
    [line] = done.stderr.splitlines()
    assert line.startswith(b"timeline-ws push: --credentials is for a local gateway")
