"""The serve/token wiring that needs no sockets: settings, limits, banner, argument checks."""

from __future__ import annotations

import resource
from pathlib import Path
from typing import Any

import pytest

from entrypoints.cli import build_parser, main
from entrypoints.local_gateway.banner import banner, redact_url
from entrypoints.local_gateway.dev_cognito import load_dev_cognito
from entrypoints.local_gateway.emulator.server import GatewaySettings, create_app
from entrypoints.local_gateway.emulator.sigv4 import AwsCredentials
from entrypoints.local_gateway.lifecycle import raise_open_file_limit
from entrypoints.local_gateway.wiring import (
    PreparedGateway,
    connect_host,
    gateway_environment,
    real_cognito_configured,
)
from tests.support.app import make_container, make_settings


def gateway_app(settings: GatewaySettings | None = None) -> Any:
    """An emulator app whose handlers are never called (the banner reads its settings)."""

    def unused(event: Any, context: Any) -> Any:
        raise AssertionError("not invoked")

    routes = {"$connect": unused, "$disconnect": unused, "$default": unused}
    return create_app(routes, settings)


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "127.0.0.1"),
        ("", "127.0.0.1"),
        ("::", "[::1]"),
        ("::1", "[::1]"),
        ("localhost", "localhost"),
    ],
)
def test_clients_reach_wildcard_binds_on_loopback(host: str, expected: str) -> None:
    assert connect_host(host) == expected


def test_the_gateway_environment_points_the_handlers_at_the_gateway(tmp_path: Path) -> None:
    dev = load_dev_cognito(tmp_path)
    variables = gateway_environment(
        base_url="http://127.0.0.1:9",
        stage="local",
        redis_url="redis://127.0.0.1:1/0",
        dev_cognito=dev,
        connections_table="connections",
        dynamodb_endpoint="http://127.0.0.1:5000",
        environ={"AWS_REGION": "eu-west-1"},
    )
    assert variables["MANAGEMENT_API_ENDPOINT"] == "http://127.0.0.1:9/local"  # staged, as on AWS
    assert variables["REDIS_URL"] == "redis://127.0.0.1:1/0"
    assert variables["CONNECTIONS_TABLE"] == "connections"
    assert variables["AWS_ENDPOINT_URL_DYNAMODB"] == "http://127.0.0.1:5000"
    assert "AWS_DEFAULT_REGION" not in variables  # AWS_REGION is enough
    assert variables["COGNITO_USER_POOL_ID"] == "local_timelinews"
    bare = gateway_environment(
        base_url="http://h:1", stage="dev", redis_url=None, dev_cognito=None, environ={}
    )
    assert bare == {
        "MANAGEMENT_API_ENDPOINT": "http://h:1/dev",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    kept = gateway_environment(
        base_url="http://h:1",
        stage="local",
        redis_url=None,
        dev_cognito=None,
        environ={"POWERTOOLS_METRICS_DISABLED": "false"},
    )
    assert "POWERTOOLS_METRICS_DISABLED" not in kept  # the user's own choice stands


def test_real_cognito_is_detected_by_the_user_pool_id() -> None:
    assert real_cognito_configured({"COGNITO_USER_POOL_ID": "eu-west-1_abc"})
    assert not real_cognito_configured({"COGNITO_USER_POOL_ID": "  "})
    assert not real_cognito_configured({})


def test_the_open_file_limit_is_raised_toward_the_hard_limit() -> None:
    before_soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, after_hard = raise_open_file_limit()
    assert after_hard == hard
    assert soft >= before_soft
    if hard != resource.RLIM_INFINITY:
        assert soft == min(hard, 1_048_576) or soft == before_soft


def test_passwords_in_redis_urls_are_redacted() -> None:
    assert redact_url("redis://user:s3cret@host:6379/0") == "redis://user:***@host:6379/0"
    assert redact_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert redact_url("redis://host:6379/0") == "redis://host:6379/0"
    # redis-py also reads the password from the query string
    assert (
        redact_url("redis://host:6379/0?password=s3cret&ssl_cert_reqs=none")
        == "redis://host:6379/0?password=***&ssl_cert_reqs=none"
    )
    assert redact_url("redis://[::1:6379/0?password=s3cret") == "<unreadable URL>"


def test_the_banner_gives_a_ready_token_and_a_copy_paste_client_command(tmp_path: Path) -> None:
    dev = load_dev_cognito(tmp_path)
    prepared = PreparedGateway(
        app=gateway_app(),
        sock=None,
        base_url="http://127.0.0.1:8080",
        ws_url="ws://127.0.0.1:8080/ws",
        dev_cognito=dev,
        redis_url="redis://:pw@127.0.0.1:6379/0",
        container=make_container(),
    )
    text = banner(prepared, python="/opt/my python")
    assert "'/opt/my python' -m websockets 'ws://127.0.0.1:8080/ws?token=ey" in text
    assert "Redis at redis://:***@127.0.0.1:6379/0" in text
    assert "pw@" not in text
    assert "Failover" not in text  # no CONNECTIONS_TABLE, no failover
    # The staged @connections endpoint and the credentials it accepts, as a boto3 client needs.
    assert (
        "  @connections    http://127.0.0.1:8080/local/@connections/{connectionId}"
        "  (boto3 endpoint_url=http://127.0.0.1:8080/local)" in text.splitlines()
    )
    assert (
        "  SigV4           service execute-api, region us-east-1, access key test, secret test"
        in text.splitlines()
    )
    assert "  Demo page       http://127.0.0.1:8080/ " in text  # the browser client's page


def test_the_banner_never_prints_a_secret_given_on_the_command_line(tmp_path: Path) -> None:
    settings = GatewaySettings(
        region="eu-west-1", credentials=(AwsCredentials("AKIDLOCAL", "not-for-the-banner"),)
    )
    prepared = PreparedGateway(
        app=gateway_app(settings),
        sock=None,
        base_url="http://127.0.0.1:8080",
        ws_url="ws://127.0.0.1:8080/ws",
        dev_cognito=load_dev_cognito(tmp_path),
        redis_url=None,
        container=make_container(),
    )
    text = banner(prepared)
    assert (
        "region eu-west-1, access key AKIDLOCAL, secret the secret given to --credentials" in text
    )
    assert "not-for-the-banner" not in text


def test_the_banner_names_the_failover_table_and_its_endpoint(tmp_path: Path) -> None:
    settings = make_settings(
        CONNECTIONS_TABLE="ws-connections",
        AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:5000",
    )
    prepared = PreparedGateway(
        app=gateway_app(),
        sock=None,
        base_url="http://127.0.0.1:8080",
        ws_url="ws://127.0.0.1:8080/ws",
        dev_cognito=load_dev_cognito(tmp_path),
        redis_url="redis://127.0.0.1:6379/0",
        container=make_container(settings),
    )
    assert (
        "  Failover        DynamoDB table ws-connections at http://127.0.0.1:5000 (when Redis fails)"
        in banner(prepared).splitlines()
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--port", "70000"],
        ["serve", "--port", "http"],
        ["serve", "--idle-timeout", "0"],
        ["serve", "--max-duration", "soon"],
        ["serve", "--redis-url", "http://127.0.0.1:6379"],
        ["serve", "--redis-url", "redis://[::1:6379/0"],
        ["serve", "--redis-url", "redis://127.0.0.1:99999/0"],
        ["serve", "--redis-url", "redis://"],
        ["serve", "--redis-url", "redis://127.0.0.1:6379/x"],
        ["serve", "--host", ""],
        ["serve", "--state-dir", ""],
        ["serve", "--stage", "health"],
        ["token", "--state-dir", " "],
        ["serve", "--binary-frames", "raw"],
        ["serve", "--workers", "0"],
        ["serve", "--workers", "many"],
        ["serve", "--dynamodb-endpoint", "ftp://127.0.0.1:1"],
        ["token", "--expires-in", "0"],
        ["token", "--expires-in", "1h"],
        ["serve", "--credentials", "no-colon"],
        ["serve", "--credentials", ":secret"],
        ["serve", "--connect-rate", "0"],
        ["serve", "--request-rate", "inf"],
        ["serve", "--request-burst", "0"],
        ["serve", "--disconnect-loss", "1.5"],
        ["serve", "--disconnect-loss", "some"],
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_serve_options_of_issue_22_parse_into_their_defaults_and_values() -> None:
    parser = build_parser()
    defaults = parser.parse_args(["serve"])
    assert (defaults.credentials, defaults.deny_manage_connections) == (("test", "test"), False)
    assert (defaults.connect_rate, defaults.request_rate, defaults.request_burst) == (
        500.0,
        10000.0,
        5000,
    )
    assert defaults.disconnect_loss == 0.0
    given = parser.parse_args(
        [
            *("serve", "--credentials", "AKID:se:cret", "--deny-manage-connections"),
            *("--connect-rate", "5", "--request-rate", "0.5", "--request-burst", "3"),
            *("--disconnect-loss", "1"),
        ]
    )
    assert given.credentials == ("AKID", "se:cret")
    assert given.deny_manage_connections is True
    assert (given.connect_rate, given.request_rate, given.request_burst) == (5.0, 0.5, 3)
    assert given.disconnect_loss == 1.0


def test_a_bad_credentials_option_never_echoes_the_secret(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--credentials", "s3cr3t-without-key:"])
    assert "s3cr3t" not in capsys.readouterr().err


def test_token_refuses_an_empty_sub(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "--sub", " ", "--state-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().out == ""


def test_no_command_prints_the_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "usage: timeline-ws" in capsys.readouterr().err


def test_every_command_registers_a_handler() -> None:
    parser = build_parser()
    for argv in (["serve"], ["token"]):
        assert callable(parser.parse_args(argv).handler)


def test_redis_cluster_needs_a_redis_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--redis-cluster"]) == 2
    assert "--redis-url" in capsys.readouterr().err


def test_given_no_credentials_in_the_environment_then_the_clients_get_stand_ins() -> None:
    from entrypoints.local_gateway.wiring import aws_credentials_for

    assert aws_credentials_for({}) == ("local", "local")
    assert aws_credentials_for({"AWS_ACCESS_KEY_ID": "AKIA1"}) == ("AKIA1", "local")
    both = {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s"}
    assert aws_credentials_for(both) is None, "boto3 reads the environment's own"
