"""The command line as a user meets it: help text, option checks, unusable state, loadtest URLs.

Everything runs in-process through ``entrypoints.cli.main``; nothing listens (the only socket
is a connection refused on a free loopback port).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import fakeredis
import pytest
import redis

from entrypoints.cli import build_parser, main
from entrypoints.loadtest import command as loadtest_command
from entrypoints.loadtest.clients import LoadtestPlan
from entrypoints.loadtest.tokens import TokenSourceError
from entrypoints.local_gateway.dev_cognito import KEY_FILE_NAME, DevKeyError, load_dev_cognito
from entrypoints.local_gateway.wiring import redis_ping_failure
from tests.support.app import make_container
from tests.support.servers import free_port

# -- help ----------------------------------------------------------------------------------------


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*argv, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("argv", [[], ["serve"], ["token"]], ids=["top", "serve", "token"])
def test_help_is_written_for_users_not_developers(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    text = help_of(argv, capsys)
    for developer_markup in ("``", ":data:", ":func:", "register", "imports aiohttp", "Wiring"):
        assert developer_markup not in text


def test_the_top_level_help_lists_each_command_once_with_a_description(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of([], capsys)
    for command in ("serve", "token", "loadtest"):
        lines = [line for line in text.splitlines() if line.strip().startswith(command + " ")]
        assert len(lines) == 1, (command, text)


def test_every_serve_and_token_option_has_help_with_its_default(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = build_parser()
    subparsers = next(
        action for action in parser._actions if isinstance(action, argparse._SubParsersAction)
    )
    for name in ("serve", "token"):
        for action in subparsers.choices[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            assert "default" in action.help, (name, action.dest, action.help)


# -- options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--max-duration", "inf"],
        ["serve", "--idle-timeout", "inf"],
        ["serve", "--idle-timeout", "nan"],
        ["serve", "--integration-timeout", "-inf"],
        ["serve", "--stage", ""],
        ["serve", "--stage", "a/b"],
        ["serve", "--stage", "dev stage"],
        ["serve", "--stage", "s" * 129],
    ],
)
def test_non_finite_durations_and_bad_stage_names_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument {argv[1]}" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["local", "v1", "prod_eu-west-1", "s" * 128])
def test_api_gateway_stage_names_are_accepted(stage: str) -> None:
    assert build_parser().parse_args(["serve", "--stage", stage]).stage == stage


def test_a_dynamodb_endpoint_without_a_table_is_an_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--dynamodb-endpoint", "http://127.0.0.1:5000"]) == 2
    assert "--dynamodb-endpoint needs --connections-table" in capsys.readouterr().err


def test_an_unreachable_redis_is_reported_by_its_error_type() -> None:
    port = free_port()  # nothing listens there
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5)
    prepared = Prepared(make_container(redis_client=client))

    assert redis_ping_failure(prepared) == "ConnectionError"  # type: ignore[arg-type]


def test_a_reachable_redis_passes_the_ping() -> None:
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    assert redis_ping_failure(Prepared(make_container(redis_client=client))) is None  # type: ignore[arg-type]


class Prepared:
    """What ``redis_ping_failure`` reads of a prepared gateway: its container."""

    def __init__(self, container: object) -> None:
        self.container = container


# -- an unusable state folder or key -------------------------------------------------------------


def corrupt_state_dir(tmp_path: Path) -> Path:
    (tmp_path / KEY_FILE_NAME).write_text("not a key\n")
    return tmp_path


@pytest.mark.parametrize(
    ("state_dir", "expected"),
    [
        (lambda tmp: Path("/dev/null"), "not a folder"),
        (lambda tmp: tmp / "file" / "below", "Not a directory"),
        (corrupt_state_dir, "not an unencrypted PEM RSA private key"),
    ],
    ids=["a_file", "below_a_file", "corrupt_key"],
)
def test_token_with_an_unusable_state_folder_prints_one_line_and_exits_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    state_dir: object,
    expected: str,
) -> None:
    (tmp_path / "file").write_text("")
    folder = state_dir(tmp_path)  # type: ignore[operator]

    assert main(["token", "--state-dir", str(folder)]) == 2

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("timeline-ws token: ")
    assert expected in captured.err
    assert "Traceback" not in captured.err


def test_serve_with_a_corrupt_key_prints_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COGNITO_USER_POOL_ID", raising=False)  # use the stand-in
    folder = corrupt_state_dir(tmp_path)

    assert main(["serve", "--port", "0", "--state-dir", str(folder)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("timeline-ws serve: ")
    assert str(folder / KEY_FILE_NAME) in err


@pytest.mark.parametrize("host", ["999.1.1.1", "203.0.113.1"])
def test_serve_on_an_address_it_cannot_listen_on_names_it_in_one_line_and_exits_1(
    host: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--host", host, "--port", "0", "--state-dir", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert err.startswith("timeline-ws serve: [Errno ")
    assert f"cannot listen on {host}:0: " in err
    assert err.count("\n") == 1


def test_ctrl_c_before_a_command_handles_it_prints_one_line_and_exits_130(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from entrypoints.local_gateway import cli as gateway_cli

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(gateway_cli, "run_serve", interrupted)

    assert main(["serve"]) == 130
    assert capsys.readouterr().err == "timeline-ws serve: interrupted\n"


def test_the_key_error_is_a_value_error_for_callers_that_catch_those(tmp_path: Path) -> None:
    with pytest.raises(DevKeyError):
        load_dev_cognito(corrupt_state_dir(tmp_path))
    assert issubclass(DevKeyError, ValueError)


# -- loadtest URL with a token -------------------------------------------------------------------


def loadtest_args(argv: list[str]) -> tuple[argparse.Namespace, LoadtestPlan]:
    args = build_parser().parse_args(["loadtest", *argv, "--quiet"])
    plan = LoadtestPlan(
        url=args.url,
        connections=args.connections,
        duration_seconds=args.duration,
        ping_interval_seconds=args.ping_interval,
        ramp_rate_per_second=args.ramp_rate,
        open_timeout_seconds=args.open_timeout,
        drain_timeout_seconds=args.drain_timeout,
    )
    return args, plan


def test_a_token_in_the_loadtest_url_is_used_by_every_connection() -> None:
    args, plan = loadtest_args(["ws://127.0.0.1:1/ws?token=abc.def.ghi&x=1", "--connections", "3"])

    assert loadtest_command._tokens(args, plan) == ["abc.def.ghi"]


@pytest.mark.parametrize(
    "extra", [["--token-file", "tokens.txt"], ["--users", "2"]], ids=["token_file", "users"]
)
def test_a_token_in_the_loadtest_url_and_another_token_source_exit_2(
    extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["loadtest", "ws://127.0.0.1:1/ws?token=SECRET-ABC", "--quiet", *extra]) == 2
    err = capsys.readouterr().err
    assert "the URL carries a token" in err
    assert "SECRET-ABC" not in err


def test_an_empty_token_in_the_loadtest_url_is_an_error() -> None:
    args, plan = loadtest_args(["ws://127.0.0.1:1/ws?token="])
    with pytest.raises(TokenSourceError, match="empty"):
        loadtest_command._tokens(args, plan)
