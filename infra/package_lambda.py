"""Build the Lambda deployment package: ``dist/timeline-ws-lambda.zip``.

The zip holds our packages (``[tool.setuptools.packages.find] include`` in pyproject.toml:
domain, application, adapters, entrypoints) and the runtime dependencies
(``[project].dependencies``) as manylinux wheels for the Lambda runtime's Python version and
architecture; never the ``local`` or ``dev`` extras (aiohttp, websockets, fakeredis, rich,
pytest, moto, ...). The layout is Lambda's: packages at the root of the zip.
https://docs.aws.amazon.com/lambda/latest/dg/python-package.html

Versions: every distribution in the runtime dependency tree that is installed in the
interpreter running this script (the project's virtualenv) is pinned to that version, so the
package ships exactly the boto3, botocore, redis, ... the test suite ran against. boto3 and
botocore are bundled on purpose: the copy in the Lambda runtime is older than our floor and
changes whenever AWS updates the runtime.

Bytecode: ``/var/task`` is read-only in Lambda, so a package without ``.pyc`` files makes
every cold start compile every module it imports (measured with CPython 3.13: importing the
handlers takes 667 ms instead of 265 ms, about 2.5 times as long; tests/benchmarks/RESULTS.md).
The script therefore compiles the whole package with an interpreter of the runtime's exact
version (``--compile-with``, else ``python3.13`` on PATH or under pyenv), as unchecked
hash-based ``.pyc`` files (PEP 552: loaded without looking at the source's mtime, which the
zip fixes at 1980 anyway), with source paths recorded as ``/var/task/...`` and
``PYTHONHASHSEED=0`` so the bytes do not depend on the build folder or on set ordering.
Without such an interpreter the build fails and says so; ``--no-compile`` ships sources only,
on purpose.
https://docs.python.org/3/library/compileall.html,
https://peps.python.org/pep-0552/

The zip is reproducible: entries sorted, timestamps fixed at 1980-01-01, permissions
normalised, only ``.pyc`` files this script compiled for the runtime. Unchanged inputs give
a byte-identical zip, so Terraform's ``source_code_hash`` only changes when the code or a
dependency does.

Run it with the project's virtualenv (``make package`` does): the pins come from the
distributions installed in the interpreter running it, so another interpreter would pin
other versions than the tests ran against; it refuses to run where ``timeline-ws`` is not
installed.

Usage::

    .venv/bin/python infra/package_lambda.py --python-version 3.13 --architecture x86_64 \\
        --output dist/timeline-ws-lambda.zip [--compile-with /path/to/python3.13 | --no-compile]

Exit status 0 on success; 1 with a message on stderr when no interpreter of the runtime's
version is found, pip or compileall fails, the output cannot be written, or the result
breaks a rule above (a forbidden distribution inside, or Lambda's size limits exceeded).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = PROJECT_ROOT / "dist" / "timeline-ws-lambda.zip"

# Lambda architecture names -> the manylinux platform tags pip may take wheels for, in order
# of preference. The python3.12/3.13 runtimes run Amazon Linux 2023 (glibc 2.34): manylinux2014
# (glibc 2.17) wheels are preferred, manylinux_2_28 ones accepted for projects that no longer
# publish 2014 wheels.
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}

# Distributions that must never reach Lambda: the `local` extra and the test tools.
FORBIDDEN_DISTRIBUTIONS = frozenset(
    canonicalize_name(name)
    for name in (
        "aiohttp",
        "websockets",
        "fakeredis",
        "rich",
        "pytest",
        "pytest-cov",
        "coverage",
        "moto",
        "hypothesis",
        "mypy",
        "ruff",
        "bandit",
        "import-linter",
        "python-hcl2",
        "boto3-stubs",
    )
)

# Lambda quotas: 50 MB zipped (direct upload), 250 MB unzipped.
# https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
MAX_ZIPPED_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "bin"})
SKIPPED_SUFFIXES = (".pyc", ".pyo")
# Where Lambda unpacks the package; recorded as the source path inside every .pyc.
LAMBDA_TASK_ROOT = "/var/task"
COMPILE_TIMEOUT_SECONDS = 600
PROBE_TIMEOUT_SECONDS = 30
PROJECT_DISTRIBUTION = "timeline-ws"


class PackagingError(Exception):
    """The package could not be built, or the result breaks a packaging rule."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PackageReport:
    """What was built: the zip's path, its sizes in bytes and the pinned distributions."""

    output: Path
    python_version: str
    architecture: str
    zipped_bytes: int
    unzipped_bytes: int
    pins: tuple[str, ...]
    compiled_with: str | None
    """The interpreter that compiled the ``.pyc`` files, or None when the zip has none."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectLayout:
    """The parts of pyproject.toml the package needs: runtime requirements and our packages."""

    requirements: tuple[str, ...]
    packages: tuple[str, ...]


def read_project(project_root: Path) -> ProjectLayout:
    """Read ``[project].dependencies`` and the top-level packages setuptools includes."""
    with (project_root / "pyproject.toml").open("rb") as handle:
        pyproject = tomllib.load(handle)
    requirements = tuple(pyproject["project"]["dependencies"])
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = tuple(sorted({pattern.rstrip("*").rstrip(".") for pattern in patterns}))
    return ProjectLayout(requirements=requirements, packages=packages)


def target_environment(python_version: str, architecture: str) -> dict[str, str]:
    """PEP 508 marker values for CPython ``python_version`` on Linux ``architecture``."""
    environment = {key: str(value) for key, value in default_environment().items()}
    environment.update(
        {
            "python_version": python_version,
            "python_full_version": f"{python_version}.0",
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "platform_machine": MACHINES[architecture],
            "platform_system": "Linux",
            "sys_platform": "linux",
            "os_name": "posix",
        }
    )
    return environment


def pinned_closure(requirements: Iterable[str], environment: dict[str, str]) -> tuple[str, ...]:
    """``name==version`` for every installed distribution the requirements pull in.

    Walks the dependency tree through the metadata of the running interpreter's installed
    distributions, evaluating markers for the target ``environment`` (extras included as
    requested). A requirement that is not installed here is left for pip to resolve.
    """
    pins: dict[str, str] = {}
    pending = [Requirement(text) for text in requirements]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        key = (name, frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        try:
            distribution = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        pins[name] = distribution.version
        for text in distribution.requires or ():
            child = Requirement(text)
            wanted_extras = requirement.extras or {""}
            if child.marker is None or any(
                child.marker.evaluate({**environment, "extra": extra}) for extra in wanted_extras
            ):
                pending.append(child)
    return tuple(f"{name}=={version}" for name, version in sorted(pins.items()))


def pip_install(
    *,
    requirements: Sequence[str],
    constraints_file: Path,
    target: Path,
    python_version: str,
    architecture: str,
) -> None:
    """Install manylinux wheels for the target runtime into ``target`` (pip, no builds).

    Raises:
        PackagingError: pip failed (its output is on stderr).
    """
    command = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--target",
        str(target),
        *(option for tag in PLATFORMS[architecture] for option in ("--platform", tag)),
        "--implementation",
        "cp",
        "--python-version",
        python_version,
        "--only-binary=:all:",
        "--constraint",
        str(constraints_file),
        *requirements,
    ]
    completed = subprocess.run(command, check=False)  # noqa: S603 - fixed argv, no shell
    if completed.returncode != 0:
        raise PackagingError(f"pip install failed with exit status {completed.returncode}")


NOT_FOR_LAMBDA: Final = (
    "adapters/in_memory",  # test fakes
    "entrypoints/cli.py",  # the command line
    "entrypoints/loadtest",  # the load tester
    "entrypoints/local_gateway",  # the local API Gateway emulator
    "entrypoints/push_cli.py",  # timeline-ws push
)
"""Our code that Lambda never runs: left out of the zip (the handlers import none of it)."""


def copy_project_packages(project_root: Path, packages: Iterable[str], target: Path) -> None:
    """Copy our top-level packages into ``target``: only what Lambda runs (not
    :data:`NOT_FOR_LAMBDA`), without caches or compiled files."""
    left_out = {project_root / path for path in NOT_FOR_LAMBDA}

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")(folder, names)
        return skipped | {name for name in names if Path(folder, name) in left_out}

    for package in packages:
        source = project_root / package
        if not (source / "__init__.py").is_file():
            raise PackagingError(f"{package}/ is not a package (no __init__.py)")
        shutil.copytree(source, target / package, ignore=ignore)


def installed_distributions(target: Path) -> set[str]:
    """Canonical names of the distributions pip installed into ``target``."""
    names: set[str] = set()
    for info in target.glob("*.dist-info"):
        name, _, _ = info.name.removesuffix(".dist-info").partition("-")
        names.add(canonicalize_name(name))
    return names


def _interpreter_environment() -> dict[str, str]:
    """This process's environment without ``PYTHON*`` variables, plus ``PYTHONHASHSEED=0``.

    Kept whole otherwise: a pyenv shim needs ``PYENV_VERSION`` and ``HOME``, another build
    of Python may need ``LD_LIBRARY_PATH``.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    environment["PYTHONHASHSEED"] = "0"
    return environment


def interpreter_version(interpreter: str) -> str | None:
    """``"3.13"`` for a working CPython ``interpreter``, or None when it does not run.

    Runs it as ``compile_bytecode`` will (same environment), for at most 30 s.
    """
    try:
        probe = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [interpreter, "-s", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            env=_interpreter_environment(),
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return probe.stdout.strip() if probe.returncode == 0 else None


def check_interpreter(interpreter: str, python_version: str) -> None:
    """Make sure ``interpreter`` is a working CPython ``python_version``.

    Raises:
        PackagingError: it does not exist, does not run (or not within 30 s), or is another
            version.
    """
    found = interpreter_version(interpreter)
    if found is None:
        raise PackagingError(f"{interpreter} does not exist or does not run")
    if found != python_version:
        raise PackagingError(
            f"{interpreter} is Python {found}, not {python_version}: "
            "the .pyc files must come from the runtime's version"
        )


def find_interpreter(python_version: str) -> str | None:
    """A working interpreter of CPython ``python_version`` (e.g. ``"3.13"``), or None.

    Looks at the interpreter running this script, then ``python3.13`` on PATH, then pyenv's
    versions (``$PYENV_ROOT``, default ``~/.pyenv``), newest patch release first.
    """
    candidates = [sys.executable, shutil.which(f"python{python_version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    pattern = f"versions/{python_version}.*/bin/python{python_version}"
    candidates += [str(path) for path in sorted(pyenv_root.glob(pattern), reverse=True)]
    for candidate in filter(None, candidates):
        if interpreter_version(candidate) == python_version:
            return candidate
    return None


def compile_bytecode(root: Path, interpreter: str, python_version: str) -> None:
    """Compile every ``.py`` under ``root`` to unchecked hash-based ``.pyc`` with ``interpreter``.

    Source paths inside the ``.pyc`` files read ``/var/task/<path>`` (compileall's ``-s``
    and ``-p``) and ``PYTHONHASHSEED=0`` fixes the order of constant sets, so the bytes
    depend only on the sources and the interpreter's version. The interpreter runs with
    ``-s -P`` (no user site, nothing prepended to ``sys.path``) and without the caller's
    ``PYTHON*`` variables; not ``-I``, which would ignore ``PYTHONHASHSEED`` too.

    Raises:
        PackagingError: ``interpreter`` is not a working CPython ``python_version``, a file
            did not compile (compileall lists it), or compiling took over 600 s.
    """
    check_interpreter(interpreter, python_version)
    command = [
        interpreter,
        "-s",
        "-P",
        "-m",
        "compileall",
        "-q",
        "-j",
        "0",
        "--invalidation-mode",
        "unchecked-hash",
        "-s",
        str(root),
        "-p",
        LAMBDA_TASK_ROOT,
        str(root),
    ]
    try:
        completed = subprocess.run(  # noqa: S603 - fixed argv, no shell
            command,
            env=_interpreter_environment(),
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise PackagingError(f"compileall took over {COMPILE_TIMEOUT_SECONDS} s") from error
    if completed.returncode != 0:
        raise PackagingError(
            f"compileall failed with exit status {completed.returncode}:\n"
            + (completed.stdout + completed.stderr)[-4000:]
        )


def bytecode_tag(python_version: str) -> str:
    """The ``sys.implementation.cache_tag`` of CPython ``python_version``: ``cpython-313``."""
    return "cpython-" + python_version.replace(".", "")


def package_files(root: Path, *, bytecode_tag: str | None = None) -> Iterator[Path]:
    """Every file under ``root`` that belongs in the zip, in a stable (sorted) order.

    ``__pycache__`` folders and ``.pyc`` files are left out, except, when ``bytecode_tag``
    is given (``"cpython-313"``), the ``__pycache__/*.cpython-313.pyc`` files.
    """
    skipped = SKIPPED_DIRECTORIES - ({"__pycache__"} if bytecode_tag else set())
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in skipped)
        in_cache = Path(directory).name == "__pycache__"
        for name in sorted(files):
            if in_cache:
                if bytecode_tag and name.endswith(f".{bytecode_tag}.pyc"):
                    yield Path(directory) / name
            elif not name.endswith(SKIPPED_SUFFIXES):
                yield Path(directory) / name


def write_zip(root: Path, output: Path, *, bytecode_tag: str | None = None) -> int:
    """Write ``root``'s files to ``output`` reproducibly; returns the unzipped size in bytes.

    ``bytecode_tag`` (``"cpython-313"``) keeps the ``.pyc`` files of that version; without
    it the zip holds no bytecode.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    # zlib's default level: level 9 takes twice as long for a zip 0.4% smaller.
    unzipped = 0
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for path in package_files(root, bytecode_tag=bytecode_tag):
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), date_time=ZIP_EPOCH)
                info.compress_type = zipfile.ZIP_DEFLATED
                mode = 0o100755 if os.access(path, os.X_OK) else 0o100644
                info.external_attr = mode << 16
                data = path.read_bytes()
                unzipped += len(data)
                zf.writestr(info, data, compresslevel=6)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    return unzipped


def check_target(python_version: str, architecture: str) -> None:
    """Raises PackagingError unless ``python_version`` looks like ``3.13`` and
    ``architecture`` is one of ``PLATFORMS``."""
    if architecture not in PLATFORMS:
        raise PackagingError(f"architecture must be one of {sorted(PLATFORMS)}")
    if not re.fullmatch(r"3\.\d{1,2}", python_version):
        raise PackagingError("python version must look like 3.13")


def check_project_installed() -> None:
    """Raises PackagingError unless this interpreter has the project installed (its venv).

    The pins are read from this interpreter's installed distributions; anywhere else they
    would not be the versions the test suite ran against.
    """
    try:
        importlib.metadata.distribution(PROJECT_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise PackagingError(
            f"{sys.executable} does not have {PROJECT_DISTRIBUTION} installed: run this with "
            "the project's virtualenv (make package, or .venv/bin/python after make install) "
            "so the package pins the versions the tests ran against"
        ) from None


def build_package(
    *,
    python_version: str,
    architecture: str,
    output: Path,
    compile_with: str | None = None,
    project_root: Path = PROJECT_ROOT,
) -> PackageReport:
    """Build the zip at ``output`` for CPython ``python_version`` on Lambda ``architecture``.

    ``compile_with``: the interpreter (of exactly ``python_version``) that compiles the
    ``.pyc`` files; None ships sources only.

    Raises:
        PackagingError: pip failed, ``compile_with`` is another version or failed, a
            forbidden distribution got in, or the zip breaks Lambda's 50 MB zipped /
            250 MB unzipped limits.
    """
    check_target(python_version, architecture)
    if compile_with is not None:
        check_interpreter(compile_with, python_version)  # before minutes of pip
    layout = read_project(project_root)
    pins = pinned_closure(layout.requirements, target_environment(python_version, architecture))
    with tempfile.TemporaryDirectory(prefix="timeline-ws-lambda-") as scratch:
        staging = Path(scratch) / "package"
        constraints = Path(scratch) / "constraints.txt"
        constraints.write_text("".join(f"{pin}\n" for pin in pins), encoding="utf-8")
        pip_install(
            requirements=layout.requirements,
            constraints_file=constraints,
            target=staging,
            python_version=python_version,
            architecture=architecture,
        )
        forbidden = installed_distributions(staging) & FORBIDDEN_DISTRIBUTIONS
        if forbidden:
            raise PackagingError(f"test/local-only distributions got in: {sorted(forbidden)}")
        copy_project_packages(project_root, layout.packages, staging)
        tag = None
        if compile_with is not None:
            compile_bytecode(staging, compile_with, python_version)
            tag = bytecode_tag(python_version)
        unzipped = write_zip(staging, output, bytecode_tag=tag)
    zipped = output.stat().st_size
    if zipped >= MAX_ZIPPED_BYTES or unzipped >= MAX_UNZIPPED_BYTES:
        raise PackagingError(
            f"package too large for Lambda: {zipped} bytes zipped, {unzipped} unzipped"
        )
    return PackageReport(
        output=output,
        python_version=python_version,
        architecture=architecture,
        zipped_bytes=zipped,
        unzipped_bytes=unzipped,
        pins=pins,
        compiled_with=compile_with,
    )


def build_parser() -> argparse.ArgumentParser:
    """Command-line options; defaults match infra/variables.tf (python3.13, x86_64)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python-version", default="3.13", help="Lambda runtime's Python")
    parser.add_argument("--architecture", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    bytecode = parser.add_mutually_exclusive_group()
    bytecode.add_argument(
        "--compile-with",
        metavar="PYTHON",
        help="interpreter of the runtime's version that compiles the .pyc files "
        "(default: found on PATH or under pyenv)",
    )
    bytecode.add_argument(
        "--no-compile",
        action="store_true",
        help="ship sources only: every cold start then compiles what it imports",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Build the package and print a summary; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        check_target(args.python_version, args.architecture)
        check_project_installed()
        compile_with = None if args.no_compile else args.compile_with
        if compile_with is None and not args.no_compile:
            compile_with = find_interpreter(args.python_version)
            if compile_with is None:
                raise PackagingError(
                    f"no python{args.python_version} found (this interpreter, PATH, pyenv) to "
                    "compile the .pyc files for the runtime. Without them every cold start "
                    "compiles what it imports (about 2.5 times as long). Name one with "
                    "--compile-with PYTHON, or ship sources only with --no-compile "
                    "(make package PACKAGE_ARGS=--no-compile)"
                )
        report = build_package(
            python_version=args.python_version,
            architecture=args.architecture,
            output=args.output.resolve(),
            compile_with=compile_with,
        )
    except PackagingError as exc:
        print(f"package_lambda: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. the output path is a folder or cannot be created
        print(f"package_lambda: cannot build {args.output}: {exc}", file=sys.stderr)
        return 1
    mebibyte = 1024 * 1024
    print(
        f"{report.output}: CPython {report.python_version} on {report.architecture} "
        f"({', '.join(PLATFORMS[report.architecture])}), "
        f"{report.zipped_bytes / mebibyte:.1f} MiB zipped, "
        f"{report.unzipped_bytes / mebibyte:.1f} MiB unzipped, "
        + (
            f".pyc compiled by {report.compiled_with} (unchecked-hash)"
            if report.compiled_with
            else "no .pyc"
        )
    )
    print("pinned: " + ", ".join(report.pins))
    return 0


if __name__ == "__main__":
    sys.exit(main())
