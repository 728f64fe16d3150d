"""The load test's pure parts: percentiles, the report and its verdict, plans, tokens, /proc parsing."""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
from pathlib import Path

import pytest
from rich.console import Console

from entrypoints.cli import main
from entrypoints.loadtest.clients import LiveStats, LoadtestPlan, PlanError, url_with_token
from entrypoints.loadtest.command import _sampler, raise_open_file_limit, ramp_rate
from entrypoints.loadtest.display import ProgressDisplay
from entrypoints.loadtest.server_process import (
    ServerSampler,
    cpu_seconds,
    is_local_host,
    listening_socket_inodes,
    pid_listening_on,
    rss_bytes,
)
from entrypoints.loadtest.stats import Distribution, LoadtestReport, ServerFigures, percentile
from entrypoints.loadtest.tokens import (
    TokenSourceError,
    loadtest_sub,
    minted_tokens,
    token_for,
    token_lifetime_seconds,
    tokens_from_file,
)
from entrypoints.local_gateway.dev_cognito import DevCognito, load_dev_cognito


def report(**changes: object) -> LoadtestReport:
    values: dict[str, object] = {
        "url": "ws://127.0.0.1:8080/ws",
        "connections": 100,
        "duration_seconds": 10.0,
        "ping_interval_seconds": 1.0,
        "ramp_rate_per_second": 200.0,
        "attempted": 100,
        "established": 100,
        "rejected": {},
        "failed": {},
        "unexpected_disconnects": {},
        "peak_open": 100,
        "connect_latency": Distribution.of_seconds([0.001, 0.002, 0.003]),
        "pong_rtt": Distribution.of_seconds([0.0005]),
        "pings_sent": 1000,
        "pongs_received": 1000,
        "error_frames": 0,
        "wall_seconds": 10.5,
    }
    values.update(changes)
    return LoadtestReport(**values)  # type: ignore[arg-type]


# -- percentiles ------------------------------------------------------------------------


def test_nearest_rank_percentiles_are_observed_values() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([7.0], 0.99) == 7.0


def test_percentile_refuses_empty_input_and_bad_fractions() -> None:
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile([1.0], 1.5)


def test_distribution_is_in_milliseconds_and_empty_without_samples() -> None:
    distribution = Distribution.of_seconds([0.010, 0.020, 0.030, 0.040])
    assert (distribution.p50_ms, distribution.max_ms, distribution.count) == (20.0, 40.0, 4)
    empty = Distribution.of_seconds([])
    assert empty.p99_ms is None
    assert empty.cells() == ["-", "-", "-", "-"]


# -- verdict --------------------------------------------------------------------------


def test_a_clean_run_passes_with_exit_status_0() -> None:
    clean = report()
    assert clean.passed
    assert clean.exit_status == 0
    assert clean.disconnect_rate_percent == 0.0


def test_one_percent_unexpected_disconnects_fail_the_run() -> None:
    assert report(unexpected_disconnects={1006: 1}).disconnect_rate_percent == 1.0
    assert report(unexpected_disconnects={1006: 1}).exit_status == 1
    assert report(unexpected_disconnects={1006: 1}, established=101, attempted=101).passed


def test_a_failed_connection_fails_the_run_but_a_rejected_one_does_not() -> None:
    assert not report(failed={"TimeoutError": 1}, established=99).passed
    assert report(rejected={429: 1}, established=99).passed


def test_one_percent_unanswered_pings_fail_the_run() -> None:
    assert report(pongs_received=990).unanswered_pings_percent == 1.0
    assert report(pongs_received=990).exit_status == 1
    assert report(pongs_received=991).passed
    document = report(pongs_received=990).to_dict()
    assert (document["unansweredPings"], document["unansweredPingsPercent"]) == (10, 1.0)


def test_an_interrupted_run_never_passes_and_exits_130() -> None:
    stopped = report(interrupted=True)
    assert not stopped.passed
    assert (stopped.verdict, stopped.exit_status) == ("INTERRUPTED", 130)
    assert stopped.to_dict()["interrupted"] is True
    assert "INTERRUPTED" in stopped.lines()[0]


def test_a_run_that_established_nothing_fails() -> None:
    assert not report(rejected={401: 100}, established=0, peak_open=0).passed


def test_the_json_form_has_every_figure_and_no_query_string() -> None:
    document = report(
        rejected={401: 2},
        established=98,
        unexpected_disconnects={1006: 1},
        server=ServerFigures(
            pid=1, rss_before_bytes=10, peak_rss_bytes=20, rss_per_connection_bytes=1
        ),
    ).to_dict()
    assert document["rejected"] == {"401": 2}
    assert document["rejectedTotal"] == 2
    assert document["unexpectedDisconnects"] == {"1006": 1}
    assert document["connectLatencyMs"]["p50"] == 2.0
    assert document["server"]["peakRssBytes"] == 20
    assert json.loads(json.dumps(document)) == document


def test_the_text_form_names_every_count() -> None:
    text = "\n".join(
        report(
            failed={"OSError": 1},
            established=99,
            unexpected_disconnects={1001: 2},
            server=ServerFigures(
                pid=7, rss_before_bytes=2**20, peak_rss_bytes=2**21, rss_per_connection_bytes=None
            ),
        ).lines()
    )
    assert "FAILED" in text
    assert "OSError: 1" in text
    assert "1001: 2" in text
    assert "server pid 7" in text


# -- plans, URLs, arguments -----------------------------------------------------------


def test_plans_outside_their_bounds_are_refused() -> None:
    good = {"url": "ws://127.0.0.1:1/ws", "connections": 1, "duration_seconds": 1.0}
    LoadtestPlan(**good, ping_interval_seconds=1.0)
    for bad in (
        {"url": "http://127.0.0.1:1/ws"},
        {"connections": 0},
        {"connections": 20_001},
        {"duration_seconds": 0.0},
        {"duration_seconds": 3601.0},
    ):
        with pytest.raises(PlanError):
            LoadtestPlan(**{**good, **bad}, ping_interval_seconds=1.0)  # type: ignore[arg-type]
    with pytest.raises(PlanError):
        LoadtestPlan(**good, ping_interval_seconds=0.0)  # type: ignore[arg-type]
    with pytest.raises(PlanError):
        LoadtestPlan(**good, ping_interval_seconds=1.0, ramp_rate_per_second=0.0)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="--open-timeout"):
        LoadtestPlan(**good, ping_interval_seconds=1.0, open_timeout_seconds=0.0)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="--drain-timeout"):
        LoadtestPlan(**good, ping_interval_seconds=1.0, drain_timeout_seconds=301.0)  # type: ignore[arg-type]
    for url in ("ws://127.0.0.1:99999/ws", "ws://localhost:abc/ws"):
        with pytest.raises(PlanError, match="port"):
            LoadtestPlan(**{**good, "url": url}, ping_interval_seconds=1.0)  # type: ignore[arg-type]
    with pytest.raises(PlanError, match="no host"):
        LoadtestPlan(**{**good, "url": "ws:///ws"}, ping_interval_seconds=1.0)  # type: ignore[arg-type]
    # A ramp is bounded too: 2 connections at one per 2 hours would take 7,200 s
    with pytest.raises(PlanError, match="--ramp-rate is too low"):
        LoadtestPlan(
            **{**good, "connections": 2}, ping_interval_seconds=1.0, ramp_rate_per_second=1 / 7200
        )  # type: ignore[arg-type]


def test_the_plan_shows_its_url_without_the_query_and_bounds_its_wall_time() -> None:
    plan = LoadtestPlan(
        url="ws://127.0.0.1:1/ws?x=1",
        connections=201,
        duration_seconds=10.0,
        ping_interval_seconds=1.0,
        ramp_rate_per_second=100.0,
    )
    assert plan.display_url == "ws://127.0.0.1:1/ws"
    assert plan.ramp_seconds == 2.0
    assert plan.hard_deadline_seconds > plan.ramp_seconds + plan.duration_seconds


def test_the_token_goes_into_the_query_percent_encoded_and_replaces_any_other() -> None:
    url = url_with_token("ws://h:1/ws?token=old&a=b", "x.y+z")
    assert url == "ws://h:1/ws?a=b&token=x.y%2Bz"


def test_ramp_rates_read_with_or_without_per_second() -> None:
    assert ramp_rate("200/s") == 200.0
    assert ramp_rate(" 12.5 / s ") == 12.5
    assert ramp_rate("50") == 50.0
    with pytest.raises(argparse.ArgumentTypeError):
        ramp_rate("fast")


def test_the_open_file_limit_is_raised_when_needed_and_kept_when_enough() -> None:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_file_limit(min(soft, 64)) == soft
    assert raise_open_file_limit(soft) == soft


# -- tokens ---------------------------------------------------------------------------


def test_each_simulated_user_has_a_distinct_stable_sub() -> None:
    assert loadtest_sub(1) == loadtest_sub(1)
    assert len({loadtest_sub(n) for n in range(1000)}) == 1000


def test_token_lifetime_covers_the_run_within_cognito_bounds() -> None:
    assert token_lifetime_seconds(120, 5) == 3600
    assert token_lifetime_seconds(7200, 50) == 7200 + 50 + 600
    assert token_lifetime_seconds(10**6, 0) == 86_400


def test_minted_tokens_are_one_per_user_and_used_round_robin(tmp_path: Path) -> None:
    cognito: DevCognito = load_dev_cognito(tmp_path)
    seen: list[int] = []
    tokens = minted_tokens(cognito, users=200, expires_in_seconds=3600, progress=seen.append)
    assert len(set(tokens)) == 200
    assert seen == [100, 200]
    assert token_for(tokens, 201) == tokens[1]
    with pytest.raises(ValueError):
        minted_tokens(cognito, users=0, expires_in_seconds=3600)


def test_token_files_skip_blanks_and_comments_and_errors_never_quote_a_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("# comment\n\n  secret-one  \nsecret-two\n")
    assert tokens_from_file(path) == ["secret-one", "secret-two"]
    path.write_text("# only a comment\n")
    with pytest.raises(TokenSourceError) as empty:
        tokens_from_file(path)
    assert "comment" not in str(empty.value)
    with pytest.raises(TokenSourceError):
        tokens_from_file(tmp_path / "missing.txt")


# -- /proc ----------------------------------------------------------------------------


def fake_proc(root: Path, *, port: int, inode: str, pid: int, rss_kb: int) -> Path:
    (root / "net").mkdir(parents=True)
    header = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    listening = f"   0: 0100007F:{port:04X} 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 {inode} 1\n"
    established = f"   1: 0100007F:{port:04X} 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 99999 1\n"
    (root / "net" / "tcp").write_text(header + listening + established)
    (root / "net" / "tcp6").write_text(header)
    (root / str(pid) / "fd").mkdir(parents=True)
    (root / str(pid) / "fd" / "3").symlink_to(f"socket:[{inode}]")
    (root / str(pid) / "status").write_text(f"Name:\tpython\nVmRSS:\t  {rss_kb} kB\n")
    (root / "self").mkdir()
    return root


def test_the_listening_process_is_found_by_port_and_its_rss_read(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", port=8080, inode="4242", pid=321, rss_kb=1024)
    assert listening_socket_inodes(8080, proc) == {"4242"}
    assert pid_listening_on(8080, proc) == 321
    assert pid_listening_on(8081, proc) is None
    assert rss_bytes(321, proc) == 1024 * 1024
    assert rss_bytes(322, proc) is None


def test_the_sampler_keeps_the_peak_and_shares_the_growth_per_connection(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", port=1, inode="1", pid=5, rss_kb=1000)
    sampler = ServerSampler(5, proc)
    (proc / "5" / "status").write_text("VmRSS:\t 3000 kB\n")
    sampler.sample()
    (proc / "5" / "status").write_text("VmRSS:\t 2000 kB\n")
    assert sampler.sample() == 2000 * 1024
    figures = sampler.figures(peak_open=10)
    assert figures.peak_rss_bytes == 3000 * 1024
    assert figures.rss_per_connection_bytes == 2000 * 1024 // 10
    assert sampler.figures(peak_open=0).rss_per_connection_bytes is None


def write_stat(proc: Path, pid: int, *, utime: int, stime: int) -> None:
    # proc(5): pid (comm) state ppid ... utime(14) stime(15) ...; comm may hold ") ".
    fields = ["S", *["0"] * 10, str(utime), str(stime), *["0"] * 10]
    (proc / str(pid) / "stat").write_text(f"{pid} (timeline-ws) x) {' '.join(fields)}\n")


def test_cpu_seconds_reads_utime_plus_stime_in_clock_ticks(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", port=1, inode="1", pid=5, rss_kb=1000)
    ticks = os.sysconf("SC_CLK_TCK")
    write_stat(proc, 5, utime=3 * ticks, stime=ticks)
    assert cpu_seconds(5, proc) == 4.0
    assert cpu_seconds(6, proc) is None
    (proc / "5" / "stat").write_text("5 (truncated")
    assert cpu_seconds(5, proc) is None


def test_the_sampler_gives_cpu_per_pong_over_its_window_only(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path / "proc", port=1, inode="1", pid=5, rss_kb=1000)
    ticks = os.sysconf("SC_CLK_TCK")
    write_stat(proc, 5, utime=10 * ticks, stime=0)  # the handshakes' CPU: left out
    sampler = ServerSampler(5, proc)
    assert sampler.figures(peak_open=1).cpu_ms_per_pong is None  # no window yet
    sampler.start_window(pongs=100)
    write_stat(proc, 5, utime=11 * ticks, stime=ticks)
    sampler.start_window(pongs=150)  # a second start changes nothing
    sampler.end_window(pongs=600)
    write_stat(proc, 5, utime=99 * ticks, stime=0)
    sampler.end_window(pongs=900)  # nor a second end
    figures = sampler.figures(peak_open=1)
    assert (figures.hold_cpu_seconds, figures.hold_pongs) == (2.0, 500)
    assert figures.cpu_ms_per_pong == 4.0


def test_a_window_with_no_pongs_has_no_cpu_per_pong() -> None:
    figures = ServerFigures(
        pid=1,
        rss_before_bytes=0,
        peak_rss_bytes=0,
        rss_per_connection_bytes=None,
        hold_cpu_seconds=1.0,
        hold_pongs=0,
    )
    assert figures.cpu_ms_per_pong is None


def test_handshakes_settle_when_every_attempt_opened_was_refused_or_failed() -> None:
    stats = LiveStats(attempted=4, established=1)
    stats.rejected[401] += 1
    stats.failed["OSError"] += 1
    assert not stats.handshakes_settled()
    stats.failed["TimeoutError"] += 1
    assert stats.handshakes_settled()


def test_only_loopback_hosts_are_local() -> None:
    assert is_local_host("127.0.0.1")
    assert is_local_host("::1")
    assert is_local_host("localhost")
    assert not is_local_host("example.com")
    assert not is_local_host("10.0.0.1")


# -- display --------------------------------------------------------------------------


def test_off_a_terminal_the_display_prints_plain_progress_lines() -> None:
    plan = LoadtestPlan(
        url="ws://127.0.0.1:1/ws", connections=5, duration_seconds=1.0, ping_interval_seconds=1.0
    )
    output = io.StringIO()
    stats = LiveStats(attempted=5, established=4, open=4, pings_sent=3, pongs_received=3)
    stats.rejected[401] += 1
    with ProgressDisplay(plan, Console(file=output, width=200)) as display:
        display.update(stats)
        display.update(stats)  # within 10 s: not printed again
        stats.phase = "done"
        display.update(stats)
    lines = output.getvalue().splitlines()
    assert len(lines) == 2
    assert "attempted 5/5" in lines[0] and "rejected 1" in lines[0]


def test_on_a_terminal_the_display_draws_a_table() -> None:
    plan = LoadtestPlan(
        url="ws://127.0.0.1:1/ws", connections=5, duration_seconds=1.0, ping_interval_seconds=1.0
    )
    output = io.StringIO()
    stats = LiveStats(attempted=5, established=5, open=5)
    stats.rtt_seconds.extend([0.001, 0.002])
    stats.unexpected[1006] += 1
    console = Console(file=output, width=120, force_terminal=True)
    with ProgressDisplay(plan, console) as display:
        display.update(stats)
    text = output.getvalue()
    assert "unexpected disconnects" in text
    assert "1006: 1" in text


# -- the command's refusals (no network) ----------------------------------------------


def test_the_command_refuses_a_plan_outside_its_bounds_with_status_2(capsys) -> None:
    assert main(["loadtest", "http://127.0.0.1:1/ws"]) == 2
    assert "ws://" in capsys.readouterr().err
    assert main(["loadtest", "ws://127.0.0.1:1/ws", "--connections", "0"]) == 2


def test_the_command_needs_the_development_key_or_a_token_file(tmp_path: Path, capsys) -> None:
    status = main(["loadtest", "ws://127.0.0.1:1/ws", "--state-dir", str(tmp_path)])
    assert status == 2
    assert "no development key" in capsys.readouterr().err
    load_dev_cognito(tmp_path)
    assert (
        main(["loadtest", "ws://127.0.0.1:1/ws", "--state-dir", str(tmp_path), "--users", "0"]) == 2
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert main(["loadtest", "ws://127.0.0.1:1/ws", "--token-file", str(empty)]) == 2


def test_a_json_path_that_cannot_be_written_is_refused_before_the_run(
    tmp_path: Path, capsys
) -> None:
    # Nothing listens on port 1: reaching the run would fail with status 1, not 2
    url = "ws://127.0.0.1:1/ws?token=t"
    for path, message in (
        (tmp_path, "is a folder"),
        (tmp_path / "missing" / "out.json", "does not exist"),
    ):
        assert main(["loadtest", url, "--connections", "1", "--json", str(path)]) == 2
        assert message in capsys.readouterr().err


def test_a_server_pid_that_does_not_exist_gives_a_warning_and_no_figures(capsys) -> None:
    plan = LoadtestPlan(
        url="ws://127.0.0.1:1/ws", connections=1, duration_seconds=1, ping_interval_seconds=1
    )
    for pid in (-1, 2**22 + 12345):
        assert _sampler(argparse.Namespace(url=plan.url, server_pid=pid), plan) is None
        assert f"no process {pid}" in capsys.readouterr().err


def test_server_memory_is_sampled_only_for_a_local_server(tmp_path: Path) -> None:
    def args(url: str, pid: int | None = None) -> argparse.Namespace:
        return argparse.Namespace(url=url, server_pid=pid)

    def plan(url: str) -> LoadtestPlan:
        return LoadtestPlan(url=url, connections=1, duration_seconds=1, ping_interval_seconds=1)

    remote = "wss://abc.execute-api.eu-west-1.amazonaws.com/prod"
    assert _sampler(args(remote), plan(remote)) is None
    nobody = "ws://127.0.0.1:1/ws"  # port 1: nothing listens
    assert _sampler(args(nobody), plan(nobody)) is None
    given = _sampler(args(nobody, pid=os.getpid()), plan(nobody))
    assert given is not None and given.pid == os.getpid()


class FakeLimits:
    """RLIMIT_NOFILE as the command sees it; ``privileged`` may raise the hard limit."""

    def __init__(self, soft: int, hard: int, *, privileged: bool) -> None:
        self.soft, self.hard, self.privileged = soft, hard, privileged

    def getrlimit(self, which: int) -> tuple[int, int]:
        return self.soft, self.hard

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        if limits[1] > self.hard and not self.privileged:
            raise ValueError("not allowed to raise the maximum limit")
        self.soft, self.hard = limits


@pytest.mark.parametrize(
    ("soft", "hard", "privileged", "wanted", "expected"),
    [
        (1024, 4096, False, 2000, 2000),  # within the hard limit
        (1024, 4096, False, 10_256, 4096),  # capped by the hard limit
        (1024, 4096, True, 10_256, 10_256),  # root raises the hard limit too
        (20_000, 20_000, False, 10_256, 20_000),  # already enough
    ],
)
def test_the_open_file_limit_is_raised_as_far_as_allowed(
    monkeypatch: pytest.MonkeyPatch,
    soft: int,
    hard: int,
    privileged: bool,
    wanted: int,
    expected: int,
) -> None:
    limits = FakeLimits(soft, hard, privileged=privileged)
    monkeypatch.setattr(resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", limits.setrlimit)
    assert raise_open_file_limit(wanted) == expected
    assert limits.soft == expected


def test_the_command_stops_with_status_2_when_the_file_limit_is_too_low(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys
) -> None:
    limits = FakeLimits(256, 256, privileged=False)
    monkeypatch.setattr(resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(resource, "setrlimit", limits.setrlimit)
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("t\n")
    status = main(
        ["loadtest", "ws://127.0.0.1:1/ws", "--connections", "1000", "--token-file", str(tokens)]
    )
    assert status == 2
    assert "file descriptors" in capsys.readouterr().err


def test_reconnection_is_off_by_default_and_on_with_the_reconnect_option() -> None:
    from entrypoints.cli import build_parser

    url = "ws://127.0.0.1:1/ws"
    assert build_parser().parse_args(["loadtest", url]).reconnect is False
    assert build_parser().parse_args(["loadtest", url, "--reconnect"]).reconnect is True
    plan = LoadtestPlan(url=url, connections=1, duration_seconds=1, ping_interval_seconds=1)
    assert plan.reconnect is False
