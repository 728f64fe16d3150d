"""Shared pieces of the benchmarks: timing, tables, a Management API stub process, Lambda deps.

Benchmarks are plain modules (``bench_*.py``), not pytest tests: pytest never collects
them and ``make test`` never runs them. ``python -m tests.benchmarks.run`` runs them all.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
import tomllib
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
BENCH_BUILD_DIR = REPO_ROOT / "build" / "bench"
TARGET_RATIO = 1.5


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of ascending values."""
    rank = max(1, math.ceil(fraction * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Timing:
    """Durations of one operation, in microseconds (median, p99, count)."""

    median_us: float
    p99_us: float
    count: int

    @classmethod
    def of_ns(cls, samples_ns: Sequence[int]) -> Timing:
        ordered = sorted(samples_ns)
        return cls(
            median_us=statistics.median(ordered) / 1000,
            p99_us=percentile(ordered, 0.99) / 1000,
            count=len(ordered),
        )


@dataclass(frozen=True)
class Comparison:
    """A measured operation against its baseline, both timed in the same run."""

    name: str
    measured: Timing
    baseline_name: str
    baseline: Timing
    target: float | None = TARGET_RATIO

    @property
    def median_ratio(self) -> float:
        return self.measured.median_us / self.baseline.median_us

    @property
    def p99_ratio(self) -> float:
        return self.measured.p99_us / self.baseline.p99_us

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.median_ratio <= self.target


def interleaved(
    operations: Sequence[Callable[[], object]], *, rounds: int, warmup: int
) -> list[list[int]]:
    """Time each operation once per round, alternating their order each round (ns samples).

    Alternating cancels drift (CPU frequency, a neighbour's load) between the operations
    compared, which is why every figure is a ratio against a baseline of the same run.
    """
    clock = time.perf_counter_ns
    samples: list[list[int]] = [[] for _ in operations]
    indexed = list(enumerate(operations))
    for round_number in range(warmup + rounds):
        order = indexed if round_number % 2 == 0 else indexed[::-1]
        for index, operation in order:
            started = clock()
            operation()
            elapsed = clock() - started
            if round_number >= warmup:
                samples[index].append(elapsed)
    return samples


@contextlib.contextmanager
def stdout_to_devnull() -> Iterator[None]:
    """Send fd 1 to /dev/null (the handlers' log and EMF lines are still written, as in Lambda)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (right-aligned figures, left-aligned first column)."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [title, ""]
    for number, row in enumerate([header, *rows]):
        cells = [
            str(cell).ljust(width) if i == 0 else str(cell).rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def verdict(met: bool | None) -> str:
    return "-" if met is None else ("ok" if met else "MISSED")


STUB_SOURCE = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
server.daemon_threads = True
print("ready", flush=True)
server.serve_forever()
"""


@contextlib.contextmanager
def management_api_stub() -> Iterator[str]:
    """A minimal Management API stand-in in its own process (POST -> 200, keep-alive).

    It runs outside the benchmark's process so its work never competes for our GIL; it
    answers every ``POST /@connections/{id}`` with 200 and an empty body. Yields its URL.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-I", "-c", STUB_SOURCE, str(port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the Management API stub did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def lambda_dependencies() -> list[str]:
    """The runtime dependencies the Lambda package holds: ``[project].dependencies``."""
    document = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return list(document["project"]["dependencies"])


def lambda_deps_dir(python: str = sys.executable) -> Path:
    """A folder with only the Lambda package's dependencies (``pip install --target``).

    Built once per dependency list under ``build/bench/`` and reused; the project's own
    packages come from the repository root. This is what ``make package`` ships, minus our
    code, and without the test and local-gateway extras the venv holds (moto pulls pydantic,
    which dependency-injector imports when present: not what Lambda pays).
    """
    deps = lambda_dependencies()
    digest = hashlib.sha256("\n".join(sorted(deps)).encode()).hexdigest()[:12]
    target = BENCH_BUILD_DIR / f"lambda-deps-{digest}"
    if (target / ".complete").exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--upgrade",
            "--target",
            str(target),
            *deps,
        ],
        check=True,
    )
    (target / ".complete").write_text("\n".join(deps) + "\n")
    return target


def lambda_package_dir(python: str = sys.executable) -> Path:
    """The Lambda package as ``make package`` builds it, for this interpreter, unpacked.

    Runs ``infra/package_lambda.py`` (``make package``'s builder) with this interpreter's
    version, so its wheels import here; the zip holds our code and the runtime dependencies,
    with the ``.pyc`` files the builder compiles for that version (none when it finds no
    interpreter of it). Rebuilt every run (our code changes); pip's cache keeps it quick.
    """
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    zip_path = BENCH_BUILD_DIR / f"timeline-ws-lambda-py{version}.zip"
    target = BENCH_BUILD_DIR / f"lambda-package-py{version}"
    BENCH_BUILD_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            python,
            str(REPO_ROOT / "infra" / "package_lambda.py"),
            "--python-version",
            version,
            "--architecture",
            "x86_64",
            "--output",
            str(zip_path),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if target.exists():
        shutil.rmtree(target)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(target)
    return target
