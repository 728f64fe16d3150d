"""The soak test of issue 14: ``python -m tests.soak.run`` (``make soak SOAK_ARGS=...``).

Each schedule starts its own world (redis-server with AOF, moto_server, a fault proxy in
front of each, ``timeline-ws serve`` with the DynamoDB failover through them), ramps up N
live clients that connect, ping every few seconds, close at random and connect again, then
injects the faults its seed draws (``faults.py``) while the invariant checker
(``invariants.py``) watches, ends with a quiet tail, closes every client and checks that
nothing is left behind. Schedule ``i`` uses seed ``--seed + i - 1``; each is replayed alone
with ``--seed <its seed> --schedules 1`` (same clients, same faults; the timing of a real
system is never exactly the same).

Exit status: 0 when no invariant was violated, 1 when one was, 2 on a usage error, 3 when
the harness itself failed (e.g. redis-server would not restart), 130 after Ctrl-C or
SIGTERM (every process is stopped and the report of what ran is still written).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import attrs

from entrypoints.local_gateway.dev_cognito import MAX_EXPIRES_IN_SECONDS, load_dev_cognito
from tests.soak.clients import ClientPlan, Population, World, users_for
from tests.soak.diagnosis import SkippedDisconnects, annotate, read_queue_waits, read_traces
from tests.soak.environment import GatewayConfig, SoakEnvironment, timeline_redis_readable
from tests.soak.faults import FaultKind, HealthTimeline, plan_faults
from tests.soak.invariants import Checker, CheckerSettings, Violation
from tests.soak.machine import StealMeter
from tests.soak.report import LiveState, ProgressDisplay, ScheduleReport, summary_table, totals

DEFAULT_CLIENTS: Final = 500
DEFAULT_SCHEDULES: Final = 3
DEFAULT_SCHEDULE_SECONDS: Final = 120.0
DEFAULT_BREAKER_RESET_SECONDS: Final = 3.0
DEFAULT_WORKERS: Final = 16
CHECK_EVERY_SECONDS: Final = 1.0
DISPLAY_EVERY_SECONDS: Final = 0.5
RAMP_SETTLE_TIMEOUT_SECONDS: Final = 30.0
DRAIN_TIMEOUT_SECONDS: Final = 60.0
DEFAULT_DISCONNECT_LOSS: Final = 0.25
DEFAULT_DISCONNECT_LOSS_EVERY: Final = 2


@attrs.frozen(slots=True, kw_only=True)
class SoakOptions:
    """The command line, validated."""

    clients: int
    schedules: int
    schedule_seconds: float
    seed: int
    kinds: tuple[FaultKind, ...]
    breaker_reset: float
    workers: int
    mean_lifetime: float
    ping_interval: tuple[float, float]
    ping_timeout: float
    ramp_rate: float
    connections_per_user: int
    global_limit: int
    per_user_limit: int
    json_path: Path | None
    keep: Path | None
    serve_log_level: str
    quiet: bool
    disconnect_loss: float = DEFAULT_DISCONNECT_LOSS
    disconnect_loss_every: int = DEFAULT_DISCONNECT_LOSS_EVERY

    def disconnect_loss_of(self, index: int) -> float:
        """serve's ``--disconnect-loss`` in schedule ``index`` (1-based): every
        ``disconnect_loss_every``-th schedule loses that share of its ``$disconnect``s."""
        every = self.disconnect_loss_every
        return self.disconnect_loss if every and index % every == 0 else 0.0

    @property
    def quiet_tail(self) -> float:
        """Fault-free time at the end of the fault phase: every settle bound fits in it."""
        settings = self.checker_settings()
        return max(settings.slot_settle, settings.ghost_grace) + 2.0

    def checker_settings(self) -> CheckerSettings:
        return CheckerSettings(
            breaker_reset=self.breaker_reset,
            max_ping_interval=self.ping_interval[1],
            ping_timeout=self.ping_timeout,
            per_user_limit=self.per_user_limit,
            global_limit=self.global_limit,
        )


def _interval(text: str) -> tuple[float, float]:
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH seconds, got {text!r}") from None
    if not 0 < bounds[0] <= bounds[1] <= 60:
        raise argparse.ArgumentTypeError("need 0 < LOW <= HIGH <= 60 seconds")
    return bounds


def _kinds(text: str) -> tuple[FaultKind, ...]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return tuple(FaultKind(name) for name in names)
    except ValueError:
        known = ", ".join(kind.value for kind in FaultKind)
        raise argparse.ArgumentTypeError(f"fault kinds are: {known}") from None


def parse_options(argv: Sequence[str] | None) -> SoakOptions:
    parser = argparse.ArgumentParser(
        prog="python -m tests.soak.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="live clients (500)")
    parser.add_argument("--schedules", type=int, default=DEFAULT_SCHEDULES, help="(3)")
    parser.add_argument(
        "--schedule-seconds",
        type=float,
        default=DEFAULT_SCHEDULE_SECONDS,
        help="fault phase of each schedule, its quiet tail included (120)",
    )
    parser.add_argument("--seed", type=int, default=None, help="first schedule's seed (random)")
    parser.add_argument(
        "--kinds",
        type=_kinds,
        default=tuple(FaultKind),
        help="comma-separated fault kinds (all): " + ", ".join(k.value for k in FaultKind),
    )
    parser.add_argument(
        "--breaker-reset",
        type=float,
        default=DEFAULT_BREAKER_RESET_SECONDS,
        help="REDIS_BREAKER_RESET_SECONDS and DYNAMODB_BREAKER_RESET_SECONDS for the gateway "
        "(3; the product's default is 10)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help="serve --workers: handler threads (16, serve's default; more threads fight over "
        "the GIL and slow every handler down)",
    )
    parser.add_argument("--mean-lifetime", type=float, default=30.0, help="seconds (30)")
    parser.add_argument(
        "--ping-interval",
        type=_interval,
        default=(5.0, 15.0),
        help="LOW-HIGH seconds between a client's pings (5-15)",
    )
    parser.add_argument("--ping-timeout", type=float, default=10.0, help="seconds (10)")
    parser.add_argument("--ramp-rate", type=float, default=100.0, help="connects/s (100)")
    parser.add_argument(
        "--connections-per-user", type=int, default=5, help="client slots per user (5)"
    )
    parser.add_argument("--per-user-limit", type=int, default=10, help="(10, the default)")
    parser.add_argument(
        "--global-limit", type=int, default=None, help="(1000, the default, or 2 x clients)"
    )
    parser.add_argument("--json", type=Path, default=None, dest="json_path", metavar="PATH")
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep every schedule's logs and data under DIR (default: removed)",
    )
    parser.add_argument(
        "--serve-log-level",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        default="WARNING",
        help="serve's and the handlers' log level, in serve.log (--keep it) (WARNING)",
    )
    parser.add_argument(
        "--disconnect-loss",
        type=float,
        default=DEFAULT_DISCONNECT_LOSS,
        metavar="FRACTION",
        help="serve --disconnect-loss in the schedules chosen by --disconnect-loss-every: the "
        "share of $disconnect invocations skipped, whose records only their TTL ends (0.25)",
    )
    parser.add_argument(
        "--disconnect-loss-every",
        type=int,
        default=DEFAULT_DISCONNECT_LOSS_EVERY,
        metavar="N",
        help="every N-th schedule runs with --disconnect-loss; 0: none (2)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress display")
    args = parser.parse_args(argv)
    if not 1 <= args.clients <= 5000:
        parser.error("--clients must be within 1..5000")
    if not 1 <= args.schedules <= 1000:
        parser.error("--schedules must be within 1..1000")
    if not 20 <= args.schedule_seconds <= 86_400:
        parser.error("--schedule-seconds must be within 20..86400")
    if not 0.5 <= args.breaker_reset <= 60:
        parser.error("--breaker-reset must be within 0.5..60 seconds")
    if not 1 <= args.workers <= 512:
        parser.error("--workers must be within 1..512")
    if args.mean_lifetime <= 0 or args.ping_timeout <= 0 or args.ramp_rate <= 0:
        parser.error("--mean-lifetime, --ping-timeout and --ramp-rate must be positive")
    if args.connections_per_user < 1 or args.per_user_limit < 1:
        parser.error("--connections-per-user and --per-user-limit must be at least 1")
    if not 0.0 <= args.disconnect_loss <= 1.0:
        parser.error("--disconnect-loss must be within 0..1")
    if args.disconnect_loss_every < 0:
        parser.error("--disconnect-loss-every must be 0 or more")
    if args.disconnect_loss and args.disconnect_loss_every and args.serve_log_level == "ERROR":
        # the checker learns of each skipped $disconnect from serve's WARNING line
        parser.error("--disconnect-loss needs --serve-log-level WARNING or lower")
    if not args.kinds:
        parser.error("--kinds needs at least one fault kind")
    if args.json_path is not None and not args.json_path.parent.is_dir():
        parser.error(f"--json: the folder {args.json_path.parent} does not exist")
    seed = args.seed if args.seed is not None else secrets.randbelow(1_000_000)
    options = SoakOptions(
        clients=args.clients,
        schedules=args.schedules,
        schedule_seconds=args.schedule_seconds,
        seed=seed,
        kinds=args.kinds,
        breaker_reset=args.breaker_reset,
        workers=args.workers,
        mean_lifetime=args.mean_lifetime,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        ramp_rate=args.ramp_rate,
        connections_per_user=args.connections_per_user,
        global_limit=args.global_limit or max(1000, 2 * args.clients),
        per_user_limit=args.per_user_limit,
        json_path=args.json_path,
        keep=args.keep,
        serve_log_level=args.serve_log_level,
        quiet=args.quiet,
        disconnect_loss=args.disconnect_loss,
        disconnect_loss_every=args.disconnect_loss_every,
    )
    if options.quiet_tail + 5 > options.schedule_seconds:
        parser.error(
            f"--schedule-seconds must leave room for faults before the quiet tail "
            f"({options.quiet_tail:.0f} s)"
        )
    return options


class ScheduleRun:
    """One schedule: its world, clients, faults and checker."""

    def __init__(
        self, options: SoakOptions, index: int, workdir: Path, display: ProgressDisplay
    ) -> None:
        self.options = options
        self.index = index
        self.seed = options.seed + index - 1
        self.workdir = workdir
        self.display = display
        self.started = time.monotonic()
        self.loop_lag_max = 0.0
        self.load_average_max: float | None = None
        self.steal = StealMeter()
        self.world = World()
        self.timeline = HealthTimeline()
        self.state = LiveState(schedule=index, schedules=options.schedules, seed=self.seed)
        self.plan = plan_faults(
            self.seed,
            seconds=options.schedule_seconds,
            kinds=options.kinds,
            quiet_tail=options.quiet_tail,
        )
        self.state.faults_planned = len(self.plan)
        self.checker = Checker(
            world=self.world,
            timeline=self.timeline,
            settings=options.checker_settings(),
            schedule=index,
            seed=self.seed,
            report=self._report_violation,
        )
        self.report = ScheduleReport(
            index=index,
            seed=self.seed,
            clients=options.clients,
            schedule_seconds=options.schedule_seconds,
            planned=[fault.to_dict() for fault in self.plan],
            workdir=str(workdir) if options.keep else None,
        )
        self.environment = SoakEnvironment(
            workdir,
            GatewayConfig(
                breaker_reset=options.breaker_reset,
                workers=options.workers,
                global_limit=options.global_limit,
                per_user_limit=options.per_user_limit,
                log_level=options.serve_log_level,
                disconnect_loss=options.disconnect_loss_of(index),
            ),
        )
        self.report.disconnect_loss = options.disconnect_loss_of(index)
        self.skipped_disconnects: SkippedDisconnects | None = None
        self.checker.learn_lost_disconnects = lambda: self._learn_skipped_disconnects(self.clock())

    def clock(self) -> float:
        return time.monotonic() - self.started

    def _report_violation(self, violation: Violation) -> None:
        self.state.violations[violation.kind.value] += 1
        self.display.print(violation.line())

    async def run(self) -> ScheduleReport:
        options = self.options
        self.display.print(
            f"schedule {self.index}/{options.schedules}: seed {self.seed} "
            f"(replay: --seed {self.seed} --schedules 1 --clients {options.clients} "
            f"--schedule-seconds {options.schedule_seconds:g}); {len(self.plan)} faults planned"
        )
        for fault in self.plan:
            self.display.print(f"  {fault.describe()}")
        try:
            self.environment.start()
            self.started = time.monotonic()
            self.report.started_wall = time.time()
            await self._run_in_world()
        except asyncio.CancelledError:
            self.report.interrupted = True
            raise
        finally:
            await self.environment.close_views()
            self.environment.stop()
            self._fill_report()
            self._diagnose()
        return self.report

    def _diagnose(self) -> None:
        """Give every ghost its cause, read from serve's log (see ``diagnosis.py``)."""
        serve = self.environment.serve
        if serve is None or self.report.started_wall is None:
            return
        traces = read_traces(serve.process.log_path, self.report.started_wall)
        waits = read_queue_waits(serve.process.log_path, self.report.started_wall)
        self.report.queue_waits = len(waits)
        self.report.queue_wait_max = max((wait.seconds for wait in waits), default=0.0)
        self.report.violations, self.report.ghost_causes = annotate(
            self.report.violations, traces, self.timeline, waits
        )
        for cause, count in sorted(self.report.ghost_causes.items()):
            self.display.print(f"  schedule {self.index} ghosts, {cause}: {count}")

    async def _run_in_world(self) -> None:
        options = self.options
        serve = self.environment.serve
        assert serve is not None
        cognito = load_dev_cognito(serve.state_dir)
        lifetime = min(MAX_EXPIRES_IN_SECONDS, int(options.schedule_seconds) + 3600)
        users = users_for(options.clients, options.connections_per_user)
        tokens = [
            cognito.access_token(sub=f"soak-user-{user}", expires_in_seconds=lifetime)
            for user in range(users)
        ]
        population = Population(
            plan=ClientPlan(
                clients=options.clients,
                users=users,
                mean_lifetime=options.mean_lifetime,
                ping_interval=options.ping_interval,
                ramp_rate=options.ramp_rate,
            ),
            ws_url=serve.ws_url,
            tokens=tokens,
            seed=self.seed,
            world=self.world,
            clock=self.clock,
            on_handshake_failed=self.checker.handshake_failed,
            on_bad_frame=self.checker.bad_frame,
            on_server_close=self.checker.server_closed,
        )
        clients = asyncio.create_task(population.run())
        checking = asyncio.create_task(self._check_forever())
        showing = asyncio.create_task(self._show_forever())
        try:
            self.state.phase = "ramp"
            await population.ramped.wait()
            await self._until(
                lambda: len(self.world.open_conns()) >= 0.9 * options.clients,
                RAMP_SETTLE_TIMEOUT_SECONDS,
            )
            self.checker.memory_baseline = serve.process.rss_bytes()
            self.state.phase = "faults"
            await self._inject_schedule()
            self.state.phase = "drain"
            population.stop()
            async with asyncio.timeout(DRAIN_TIMEOUT_SECONDS):
                await clients
            await self._settle_after_drain()
        finally:
            for task in (clients, checking, showing):
                task.cancel()
            await asyncio.gather(clients, checking, showing, return_exceptions=True)

    async def _inject_schedule(self) -> None:
        phase_started = self.clock()
        for index, planned in enumerate(self.plan, start=1):
            delay = phase_started + planned.at - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule's gap before this fault
            self.state.fault = planned.kind.value
            record = self.timeline.begin(planned, self.clock())
            await self.environment.inject(planned, record, clock=self.clock, world=self.world)
            self.state.fault = "-"
            self.state.faults_done = index
        remaining = phase_started + self.options.schedule_seconds - self.clock()
        if remaining > 0:
            await asyncio.sleep(remaining)  # the quiet tail: clients keep churning

    async def _settle_after_drain(self) -> None:
        """Wait (bounded) until the stores hold nothing, then run the final check."""
        settings = self.options.checker_settings()
        closed = [c.closed_at for c in self.world.conns if c.closed_at is not None]
        healthy = self.timeline.healthy_since(self.clock()) or 0.0
        deadline = max([healthy, *closed]) + settings.ghost_grace + 1.0
        while self.clock() < deadline:
            snapshot = self.checker.last_snapshot
            if snapshot is not None and _empty(snapshot.redis_records, snapshot.slots):
                break
            await asyncio.sleep(CHECK_EVERY_SECONDS)  # polling interval of a bounded loop
        if self.clock() < deadline:
            await asyncio.sleep(deadline - self.clock())  # ghosts are judged at the deadline
        await self._check_once()
        snapshot = self.checker.last_snapshot
        if snapshot is not None:
            self.checker.check_drained(self.clock(), snapshot)
            self.report.leftovers = {
                "redisRecords": len(snapshot.redis_records or ()),
                "dynamodbRecords": len(snapshot.dynamodb_records or ()),
                "limiterSlots": len(snapshot.slots or ()),
                "limiterOwners": len(snapshot.owners or ()),
                "limiterPerUserTotal": sum((snapshot.per_user or {}).values()),
                "directoryEntries": len(snapshot.directory or ()),
            }

    async def _check_forever(self) -> None:
        while True:
            await self._check_once()
            await asyncio.sleep(CHECK_EVERY_SECONDS)  # the checker's cadence

    async def _check_once(self) -> None:
        t0 = self.clock()
        self._learn_skipped_disconnects(t0)
        snapshot = await self.environment.observe(timeline_redis_readable(self.timeline, t0))
        t1 = self.clock()
        self.checker.check_pings(t1)
        self.checker.check_snapshot(t0, t1, snapshot)
        self.state.rss = snapshot.rss_bytes

    def _learn_skipped_disconnects(self, now: float) -> None:
        """Tell the checker which ``$disconnect``s serve skipped (``--disconnect-loss``), from
        its log, before it judges the records they left."""
        serve = self.environment.serve
        if not self.report.disconnect_loss or serve is None:
            return
        if self.skipped_disconnects is None:
            self.skipped_disconnects = SkippedDisconnects(serve.process.log_path)
        for connection_id in self.skipped_disconnects.poll():
            self.checker.disconnect_lost(connection_id, now)
        self.report.disconnects_lost = len(self.checker.lost_disconnects)

    async def _show_forever(self) -> None:
        while True:
            self.load_average_max = max(self.load_average_max or 0.0, os.getloadavg()[0])
            self.steal.sample()
            state = self.state
            state.elapsed = self.clock()
            state.open = len(self.world.open_conns())
            state.attempts = self.world.attempts
            state.pings = self.world.pings
            state.pongs = self.world.pongs
            self.display.update(state)
            asked = time.monotonic()
            await asyncio.sleep(DISPLAY_EVERY_SECONDS)  # the display's refresh
            self.loop_lag_max = max(
                self.loop_lag_max, time.monotonic() - asked - DISPLAY_EVERY_SECONDS
            )

    async def _until(self, condition: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.1)  # polling interval of a bounded loop
        return False

    def _fill_report(self) -> None:
        report, world, checker = self.report, self.world, self.checker
        report.faults = [record.to_dict() for record in self.timeline.records]
        report.attempts = world.attempts
        report.opened = world.opened
        report.refused = dict(world.refused)
        report.closed_by_client = world.closed_by_client
        report.closed_by_server = world.closed_by_server
        report.expired = world.expired
        report.pings = world.pings
        report.answered_late = world.answered_late
        report.never_answered = world.never_answered
        report.pongs = world.pongs
        report.pong_seconds = world.pong_seconds
        report.pong_healthy_seconds = [
            rtt
            for rtt, sent in zip(world.pong_seconds, world.pong_sent_at, strict=True)
            if not self.timeline.overlapping(sent, sent + rtt)
        ]
        report.loop_lag_max = self.loop_lag_max
        report.load_average_max = self.load_average_max
        report.cpu_steal_percent = self.steal.mean_percent
        report.cpu_steal_max_percent = self.steal.worst_percent
        report.violations = list(checker.violations)
        report.tolerated = dict(checker.tolerated)
        report.rss_baseline = checker.memory_baseline
        report.rss_peak = checker.rss_peak
        report.rss_last = checker.rss_last
        report.rss_bound = checker.memory_bound
        report.wall_seconds = time.monotonic() - self.started


def _empty(*collections: Any) -> bool:
    return all(collection is not None and not collection for collection in collections)


async def run_soak(
    options: SoakOptions, display: ProgressDisplay, reports: list[ScheduleReport]
) -> None:
    """Run every schedule, appending each one's report (an interrupted one's too) to ``reports``."""
    root = Path(tempfile.mkdtemp(prefix="timeline-ws-soak-"))
    try:
        for index in range(1, options.schedules + 1):
            workdir = root / f"schedule-{index}"
            workdir.mkdir()
            run = ScheduleRun(options, index, workdir, display)
            try:
                reports.append(await run.run())
            except asyncio.CancelledError:
                reports.append(run.report)
                raise
            finally:
                if options.keep is not None:
                    options.keep.mkdir(parents=True, exist_ok=True)
                    shutil.copytree(workdir, options.keep / workdir.name, dirs_exist_ok=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def write_json(
    options: SoakOptions,
    reports: list[ScheduleReport],
    interrupted: bool,
    failure: str | None = None,
) -> None:
    if options.json_path is None:
        return
    document = {
        "seed": options.seed,
        "options": {
            "clients": options.clients,
            "schedules": options.schedules,
            "scheduleSeconds": options.schedule_seconds,
            "kinds": [kind.value for kind in options.kinds],
            "breakerResetSeconds": options.breaker_reset,
            "workers": options.workers,
            "meanLifetimeSeconds": options.mean_lifetime,
            "pingIntervalSeconds": list(options.ping_interval),
            "pingTimeoutSeconds": options.ping_timeout,
            "perUserLimit": options.per_user_limit,
            "globalLimit": options.global_limit,
        },
        "interrupted": interrupted,
        "harnessFailure": failure,
        "totals": totals(reports),
        "schedules": [report.to_dict() for report in reports],
    }
    options.json_path.write_text(json.dumps(document, indent=2) + "\n")


async def _main(
    options: SoakOptions, display: ProgressDisplay, reports: list[ScheduleReport]
) -> None:
    main_task = asyncio.current_task()
    assert main_task is not None
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)  # like Ctrl-C (SIGINT)
    try:
        await run_soak(options, display, reports)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_options(argv)
    display = ProgressDisplay(quiet=options.quiet)
    display.print(
        f"timeline-ws soak: seed {options.seed}, {options.schedules} schedule(s) x "
        f"{options.schedule_seconds:g} s, {options.clients} clients, breaker reset "
        f"{options.breaker_reset:g} s, faults: {', '.join(k.value for k in options.kinds)}"
    )
    reports: list[ScheduleReport] = []
    interrupted = False
    failure: str | None = None
    try:
        with display:
            # asyncio.run cancels the soak on Ctrl-C (SIGINT), and every schedule's
            # finally stops its processes before KeyboardInterrupt comes out here.
            asyncio.run(_main(options, display, reports))
    except (KeyboardInterrupt, asyncio.CancelledError):
        interrupted = True
    except Exception as error:  # the harness itself failed: say so, keep what ran
        failure = f"{type(error).__name__}: {error}"
        display.console.print_exception()
    display.console.print(summary_table(reports))
    figures = totals(reports)
    display.print(json.dumps(figures))
    write_json(options, reports, interrupted, failure)
    if interrupted:
        display.print("interrupted: every process was stopped; the report covers what ran")
        return 130
    if failure is not None:
        display.print(f"the soak harness failed: {failure}")
        return 3
    return 1 if figures["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
