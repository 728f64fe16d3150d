"""Run the benchmarks and print their tables: ``python -m tests.benchmarks.run`` (``make bench``).

Every figure is a ratio against a baseline measured in the same run. Parts:

- ``hot``: warm handlers vs the work they cannot avoid (``bench_hot_path``).
- ``cold``: cold start of each handler vs ``import boto3`` (``bench_cold_start``).
- ``load``: ``timeline-ws loadtest`` against ``timeline-ws serve`` with a real Redis
  (``bench_gateway``); ``--load-connections`` and friends size it; ``--load-tree PATH``
  serves another checkout too, alternating, and compares the gateway's CPU per pong.
- ``push``: the push's fan-out through ``serve`` to 1,000 connections vs a bare loop of
  signed ``POST @connections`` at the same concurrency, and RSS over 10 repetitions
  (``bench_push``).
- ``telemetry``: log bytes and Management API requests per ping (``bench_telemetry``);
  ``--telemetry-tree PATH`` measures another checkout beside this one (e.g. a ``git worktree``
  of an earlier commit).

Exit status 0 even when a target is missed (the tables say ``MISSED``): benchmarks inform,
they do not gate. ``--json PATH`` writes every figure as JSON too.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
from pathlib import Path
from typing import Any

from tests.benchmarks.bench_hot_path import Attribution
from tests.benchmarks.support import (
    REPO_ROOT,
    Comparison,
    lambda_deps_dir,
    lambda_package_dir,
    management_api_stub,
    table,
    verdict,
)
from tests.support.servers import running_redis_server

PARTS = ("hot", "cold", "load", "push", "telemetry")


def machine() -> str:
    """One line naming the machine the figures come from."""
    return (
        f"{os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def comparison_table(title: str, comparisons: list[Comparison]) -> str:
    rows = [
        [
            c.name,
            f"{c.measured.median_us:.1f}",
            f"{c.measured.p99_us:.1f}",
            c.baseline_name,
            f"{c.baseline.median_us:.1f}",
            f"{c.baseline.p99_us:.1f}",
            f"{c.median_ratio:.2f}",
            f"{c.p99_ratio:.2f}",
            "-" if c.target is None else f"<= {c.target}",
            verdict(c.met),
        ]
        for c in comparisons
    ]
    header = [
        "measured",
        "median us",
        "p99 us",
        "baseline",
        "median us",
        "p99 us",
        "ratio",
        "p99 ratio",
        "target",
        "verdict",
    ]
    return table(title, header, rows)


def attribution_table(attribution: list[Attribution]) -> str:
    def target(value: float | None, unit: str) -> str:
        return "-" if value is None else f"<= {value:g}{unit}"

    rows = [
        [
            a.name,
            ", ".join(f"{n} {name.upper()}" for name, n in a.redis_commands.items()),
            f"{a.median_us:.1f}",
            f"{a.median_us - a.without_metrics_us:.1f}",
            f"{a.without_metrics_us - a.without_metrics_and_logs_us:.1f}",
            f"{a.telemetry_us:.1f}",
            target(a.telemetry_target_us, " us"),
            verdict(
                None if a.telemetry_target_us is None else a.telemetry_us <= a.telemetry_target_us
            ),
            f"{a.documented_telemetry_us:.1f}",
            "-" if a.documented_target is None else f"{a.telemetry_vs_documented:.2f}",
            target(a.documented_target, "x"),
            verdict(
                None
                if a.documented_target is None
                else a.telemetry_vs_documented <= a.documented_target
            ),
            f"{a.without_metrics_and_logs_us:.1f}",
            f"{a.script_us:.1f}",
            f"{a.rest_ratio:.2f}",
            target(a.rest_target, "x"),
            verdict(None if a.rest_target is None else a.rest_ratio <= a.rest_target),
        ]
        for a in attribution
    ]
    header = [
        "handler",
        "Redis commands per call",
        "median us",
        "EMF metrics us",
        "log line us",
        "line + EMF us",
        "target",
        "verdict",
        "as documented us",
        "line + EMF / documented",
        "target",
        "verdict",
        "rest us",
        "script us",
        "rest / script",
        "target",
        "verdict",
    ]
    return table(
        "Where the handlers' time goes (medians; Powertools parts by no-op swap; the script is"
        " the same Redis work in one bare redis-py call)",
        header,
        rows,
    )


def _hot_in_child(redis_url: str, stub_url: str, rounds: int, warmup: int, queue: Any) -> None:
    from tests.benchmarks import bench_hot_path

    queue.put(
        bench_hot_path.run(redis_url=redis_url, stub_url=stub_url, rounds=rounds, warmup=warmup)
    )


def run_hot(rounds: int, warmup: int) -> tuple[list[Comparison], list[Attribution]]:
    """The hot path benchmark in a fresh process (the handlers read the environment on import)."""
    context = multiprocessing.get_context("spawn")
    with running_redis_server() as redis_server, management_api_stub() as stub_url:
        queue = context.Queue()
        child = context.Process(
            target=_hot_in_child, args=(redis_server.url, stub_url, rounds, warmup, queue)
        )
        child.start()
        results: tuple[list[Comparison], list[Attribution]] = queue.get(timeout=900)
        child.join(timeout=60)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.run", description=__doc__)
    parser.add_argument(
        "parts", nargs="*", metavar="PART", help="hot, cold, load, push, telemetry (default: all)"
    )
    parser.add_argument("--rounds", type=int, default=3000, help="hot path rounds per operation")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--cold-runs", type=int, default=7, help="cold start runs (>= 5)")
    parser.add_argument(
        "--skip-package", action="store_true", help="cold start: skip the `make package` zip"
    )
    parser.add_argument("--load-connections", type=int, default=1000)
    parser.add_argument("--load-duration", type=float, default=120.0)
    parser.add_argument("--load-ping-interval", type=float, default=30.0)
    parser.add_argument("--load-ramp-rate", type=float, default=200.0)
    parser.add_argument(
        "--load-tree",
        type=Path,
        default=None,
        help="load: also serve this checkout (e.g. a git worktree of an earlier commit) and "
        "compare the gateway's CPU per pong",
    )
    parser.add_argument("--load-rounds", type=int, default=1, help="load with --load-tree")
    parser.add_argument("--telemetry-pings", type=int, default=2000)
    parser.add_argument("--telemetry-tree", type=Path, action="append", default=[])
    parser.add_argument("--json", type=Path, default=None, dest="json_path")
    args = parser.parse_args(argv)
    parts = args.parts or list(PARTS)
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")
    figures: dict[str, Any] = {"machine": machine()}
    print(f"machine: {figures['machine']}\n", flush=True)

    if "hot" in parts:
        hot, attribution = run_hot(args.rounds, args.warmup)
        print(comparison_table("Hot path (warm, in process, real redis-server on loopback)", hot))
        print()
        print(attribution_table(attribution), flush=True)
        print(flush=True)
        figures["hot"] = [_comparison_dict(c) for c in hot]
        figures["hotAttribution"] = [dataclasses.asdict(a) for a in attribution]

    if "cold" in parts:
        from tests.benchmarks import bench_cold_start

        runs = max(5, args.cold_runs)
        setups = [
            (
                "Lambda dependencies with .pyc (pip install --target) + our code",
                [lambda_deps_dir(), REPO_ROOT],
                True,
            )
        ]
        if not args.skip_package:
            setups.append(
                (
                    "the Lambda zip as `make package` builds it (its own .pyc, none written: -B)",
                    [lambda_package_dir()],
                    False,
                )
            )
        figures["cold"] = []
        for title, path, bytecode in setups:
            cold = bench_cold_start.run(path=path, runs=runs, bytecode=bytecode, title=title)
            print(bench_cold_start.render(cold), flush=True)
            print()
            figures["cold"].append(cold.to_dict())

    if "load" in parts:
        from tests.benchmarks import bench_gateway

        sizing = {
            "connections": args.load_connections,
            "duration_seconds": args.load_duration,
            "ping_interval_seconds": args.load_ping_interval,
            "ramp_rate_per_second": args.load_ramp_rate,
        }
        if args.load_tree is None:
            load = bench_gateway.run(**sizing)
            print(bench_gateway.render(load), flush=True)
            figures["load"] = load
        else:  # before (another checkout) and after (this one), alternated, round by round
            before: list[dict[str, Any]] = []
            after: list[dict[str, Any]] = []
            for _ in range(max(1, args.load_rounds)):
                for tree, reports in ((args.load_tree, before), (None, after)):
                    reports.append(bench_gateway.run(**sizing, tree=tree))
                    print(bench_gateway.render(reports[-1]) + "\n", flush=True)
            comparison = bench_gateway.cpu_comparison(before, after)
            print(bench_gateway.render_cpu_comparison(comparison), flush=True)
            figures["load"] = {"before": before, "after": after, "cpuPerPong": comparison}

    if "push" in parts:
        from tests.benchmarks import bench_push

        pushed = bench_push.run()
        print(bench_push.render(pushed), flush=True)
        print(flush=True)
        figures["push"] = pushed

    if "telemetry" in parts:
        from tests.benchmarks import bench_telemetry

        with running_redis_server() as redis_server:
            measured = [
                bench_telemetry.run(
                    tree=tree, pings=args.telemetry_pings, redis_url=redis_server.url
                )
                for tree in [*args.telemetry_tree, REPO_ROOT]
            ]
        print(bench_telemetry.render(measured), flush=True)
        figures["telemetry"] = measured

    if args.json_path is not None:
        args.json_path.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _comparison_dict(c: Comparison) -> dict[str, Any]:
    return {
        "name": c.name,
        "medianUs": round(c.measured.median_us, 2),
        "p99Us": round(c.measured.p99_us, 2),
        "baseline": c.baseline_name,
        "baselineMedianUs": round(c.baseline.median_us, 2),
        "baselineP99Us": round(c.baseline.p99_us, 2),
        "ratio": round(c.median_ratio, 3),
        "p99Ratio": round(c.p99_ratio, 3),
        "target": c.target,
        "met": c.met,
        "rounds": c.measured.count,
    }


if __name__ == "__main__":
    sys.exit(main())
