"""The Lambda package (`make package`): built for real with pip, unpacked, and each handler
imported by a clean interpreter (``python -I -S -B``: no site-packages, no user site, no
PYTHON* variables, only the unpacked folder added to ``sys.path``), as Lambda would import it.

Lambda runs CPython 3.13 (infra/variables.tf); this machine may only have 3.11. So one test
builds the same package for the local interpreter's version and says so; another builds the
real runtime's package and imports it when a matching interpreter exists here (skipped,
with a message, when none does).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import marshal
import os
import platform
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.infra.terraform import PROJECT_ROOT, stack

SCRIPT = PROJECT_ROOT / "infra" / "package_lambda.py"
MIB = 1024 * 1024
# "Well under" Lambda's quotas (50 MB zipped, 250 MB unzipped): at most 80% of each.
MAX_ZIPPED = 40 * MIB
MAX_UNZIPPED = 200 * MIB
BUILD_TIMEOUT_SECONDS = 600
IMPORT_TIMEOUT_SECONDS = 120
OUR_PACKAGES = ("domain", "application", "adapters", "entrypoints")
NOT_IN_LAMBDA = ("aiohttp", "websockets", "fakeredis", "rich", "pytest", "moto", "_pytest")

# The configuration the container validates at import time; values are placeholders, and
# building the container opens no connection (clients are lazy).
IMPORT_ENVIRONMENT = {
    "AWS_REGION": "eu-west-1",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "COGNITO_REGION": "eu-west-1",
    "COGNITO_USER_POOL_ID": "eu-west-1_Example01",
    "COGNITO_APP_CLIENT_IDS": "exampleclientid",
    "REDIS_URL": "rediss://127.0.0.1:6379",
    "REDIS_CLUSTER": "true",
    "CONNECTIONS_TABLE": "timeline-ws-test-connections",
    "MANAGEMENT_API_ENDPOINT": "https://example.execute-api.eu-west-1.amazonaws.com/live",
    "POWERTOOLS_METRICS_DISABLED": "true",
}

# Run inside the clean interpreter: import every handler module, check the callables, and
# report every module that came from outside the package and the standard library.
IMPORT_PROBE = """
import importlib, json, os, sys, sysconfig
root = sys.argv[1]
sys.path.insert(0, root)
found = {}
for dotted in sys.argv[2:]:
    module_name, _, attribute = dotted.rpartition(".")
    found[dotted] = callable(getattr(importlib.import_module(module_name), attribute, None))
stdlib = tuple({sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")})
outside = sorted(
    name for name, module in list(sys.modules.items())
    if getattr(module, "__file__", None)
    and not module.__file__.startswith((root,) + stdlib)
)
ours = [module for module in list(sys.modules.values())
        if getattr(module, "__file__", None) and module.__file__.startswith(root)
        and module.__file__.endswith(".py")]
without_pyc = sorted(module.__name__ for module in ours
                     if not (module.__cached__ and os.path.isfile(module.__cached__)))
print(json.dumps({"version": list(sys.version_info[:2]), "callables": found,
                  "outside": outside, "modules": sorted(sys.modules),
                  "from_package": len(ours), "without_pyc": without_pyc}))
"""


def lambda_architecture() -> str:
    return {"x86_64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]


def runtime_version() -> str:
    """The Lambda runtime's Python version, from infra/variables.tf (e.g. ``"3.13"``)."""
    return str(stack().variables["lambda_runtime"]["default"]).removeprefix("python")


def build(python_version: str, architecture: str, output: Path) -> str:
    """Run the same script `make package` runs; returns its summary line."""
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--python-version",
            python_version,
            "--architecture",
            architecture,
            "--output",
            str(output),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"package_lambda failed:\n{result.stderr[-4000:]}"
    return result.stdout.splitlines()[0]


def import_handlers(interpreter: str, unpacked: Path) -> dict[str, Any]:
    """Import every Terraform handler string with ``interpreter -I -S -B``; the probe's report."""
    functions = {**stack().locals["lambda_handlers"], **stack().locals["invoked_handlers"]}
    handlers = sorted(spec["handler"] for spec in functions.values())
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **IMPORT_ENVIRONMENT}
    result = subprocess.run(
        [interpreter, "-I", "-S", "-B", "-c", IMPORT_PROBE, str(unpacked), *handlers],
        cwd=unpacked,
        env=environment,
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, f"handler import failed:\n{result.stderr[-4000:]}"
    report: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    return report


def unpack(package: Path, destination: Path) -> int:
    """Unzip ``package`` into ``destination``; returns the unzipped size in bytes."""
    with zipfile.ZipFile(package) as archive:
        archive.extractall(destination)
        return sum(info.file_size for info in archive.infolist())


def assert_lambda_ready(
    package: Path, unpacked: Path, report: dict[str, Any], python_version: str
) -> None:
    """Handlers callable, nothing imported from outside, no test or local-only code inside,
    and every module the handlers import has its ``.pyc`` for ``python_version`` beside it."""
    assert len(report["callables"]) == 4 and all(report["callables"].values()), report["callables"]
    assert report["outside"] == [], f"imported from outside the package: {report['outside']}"
    modules = report["modules"]
    for name in NOT_IN_LAMBDA:
        assert name not in modules, f"the handlers imported {name}"
        assert not (unpacked / name).exists(), f"{name} is in the package"
    for package_name in OUR_PACKAGES:
        assert (unpacked / package_name / "__init__.py").is_file()
    with zipfile.ZipFile(package) as archive:
        names = archive.namelist()
    assert not [n for n in names if n.startswith(("bin/", "tests/"))]
    # Only what Lambda runs: no emulator, load tester, clients, CLI or test fakes.
    left_out = [n for n in names if n.startswith(load_script().NOT_FOR_LAMBDA)]
    assert left_out == [], left_out[:5]
    assert "entrypoints/aws_lambda/handlers.py" in names
    # Bytecode for the runtime's version only, one .pyc per module, used by the import
    tag = "cpython-" + python_version.replace(".", "")
    cached = [n for n in names if "__pycache__/" in n]
    assert cached and all(n.endswith(f".{tag}.pyc") for n in cached), cached[:5]
    sources = {n for n in names if n.endswith(".py")}
    assert len(cached) == len(sources)
    assert report["from_package"] > 100
    assert report["without_pyc"] == []


@pytest.fixture(scope="module")
def local_package(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    output = tmp_path_factory.mktemp("local-package") / "timeline-ws-lambda.zip"
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    build(version, lambda_architecture(), output)
    yield output


@pytest.mark.slow
def test_the_package_for_the_local_interpreter_imports_every_handler_cleanly(
    local_package: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local = f"{sys.version_info.major}.{sys.version_info.minor}"
    runtime = runtime_version()
    if local != runtime:
        with capsys.disabled():
            print(
                f"\n[lambda package] Lambda runs python{runtime}; this interpreter is {local}, "
                f"so this test builds the same package for CPython {local} "
                f"({lambda_architecture()}) and imports it with {local}."
            )
    # Given the package, unpacked as Lambda unpacks it into /var/task
    unzipped = unpack(local_package, tmp_path)
    # When a clean interpreter imports each handler with only that folder on sys.path
    report = import_handlers(sys.executable, tmp_path)
    # Then every handler is callable and nothing came from outside the package
    assert report["version"] == [sys.version_info.major, sys.version_info.minor]
    assert_lambda_ready(local_package, tmp_path, report, local)
    # And the package is well under Lambda's size limits
    assert local_package.stat().st_size < MAX_ZIPPED
    assert unzipped < MAX_UNZIPPED


@pytest.mark.slow
def test_the_package_pins_boto3_and_botocore_to_the_tested_versions(local_package: Path) -> None:
    with zipfile.ZipFile(local_package) as archive:
        dist_infos = {n.split("/", 1)[0] for n in archive.namelist() if ".dist-info/" in n}
    for distribution in ("boto3", "botocore", "redis", "aws_lambda_powertools"):
        version = importlib.metadata.version(distribution)
        assert f"{distribution}-{version}.dist-info" in dist_infos, (distribution, version)


def find_interpreter(version: str) -> str | None:
    """A working ``python<version>`` (this one, on PATH or under pyenv), or None."""
    found: str | None = load_script().find_interpreter(version)
    return found


@pytest.mark.slow
def test_the_real_runtime_package_imports_with_a_matching_interpreter(tmp_path: Path) -> None:
    runtime = runtime_version()
    architecture = str(stack().variables["lambda_architecture"]["default"])
    if architecture != lambda_architecture():
        pytest.skip(f"Lambda runs on {architecture}; this machine is {platform.machine()}")
    interpreter = find_interpreter(runtime)
    if interpreter is None:
        pytest.skip(f"no python{runtime} here: only the local-interpreter package was imported")
    # Given the exact artifact `make package` builds for Lambda
    package = tmp_path / "timeline-ws-lambda.zip"
    summary = build(runtime, architecture, package)
    assert re.search(rf"CPython {re.escape(runtime)} on {architecture}", summary)
    assert ".pyc compiled by" in summary
    unpacked = tmp_path / "task"
    unzipped = unpack(package, unpacked)
    # When the runtime's Python version imports each handler from it alone
    report = import_handlers(interpreter, unpacked)
    # Then it works, with compiled wheels (cryptography, dependency-injector) for that version
    assert report["version"] == [int(part) for part in runtime.split(".")]
    assert_lambda_ready(package, unpacked, report, runtime)
    assert package.stat().st_size < MAX_ZIPPED
    assert unzipped < MAX_UNZIPPED


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("package_lambda", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _tree_with_bytecode(root: Path, *tags: str) -> Path:
    """``root/tree/pkg/__init__.py`` plus one fake ``__pycache__/__init__.<tag>.pyc`` per tag."""
    tree = root / "tree"
    (tree / "pkg" / "__pycache__").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("VALUE = 1\n")
    for tag in tags:
        (tree / "pkg" / "__pycache__" / f"__init__.{tag}.pyc").write_bytes(tag.encode())
    return tree


def test_the_zip_is_reproducible_and_leaves_caches_out(tmp_path: Path) -> None:
    # Given a tree with a module, a cache directory and a console-script folder
    script = load_script()
    tree = _tree_with_bytecode(tmp_path, "cpython-311")
    (tree / "bin").mkdir()
    (tree / "bin" / "tool").write_text("#!/bin/sh\n")
    # When it is zipped twice, with the module's mtime changed in between
    first, second = tmp_path / "a.zip", tmp_path / "b.zip"
    script.write_zip(tree, first)
    os.utime(tree / "pkg" / "__init__.py", (1, 1))
    script.write_zip(tree, second)
    # Then both zips are byte-identical and hold only the module
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        assert archive.namelist() == ["pkg/__init__.py"]
        assert archive.getinfo("pkg/__init__.py").date_time == (1980, 1, 1, 0, 0, 0)


def test_the_dependency_pins_follow_pyproject_and_skip_the_extras() -> None:
    script = load_script()
    layout = script.read_project(PROJECT_ROOT)
    assert layout.packages == tuple(sorted(OUR_PACKAGES))
    pins = script.pinned_closure(layout.requirements, script.target_environment("3.13", "x86_64"))
    names = {pin.split("==")[0] for pin in pins}
    # boto3/botocore ship in the package, pinned to the version installed (and tested) here
    assert f"botocore=={importlib.metadata.version('botocore')}" in pins
    assert {"boto3", "redis", "python-jose", "cryptography", "aws-lambda-powertools"} <= names
    assert not names & {"aiohttp", "websockets", "fakeredis", "rich", "pytest", "moto"}


def test_zips_keep_only_the_bytecode_of_the_runtime_version(tmp_path: Path) -> None:
    # Given a tree with a module, its .pyc for 3.13 and a stray one for 3.11
    script = load_script()
    tree = _tree_with_bytecode(tmp_path, "cpython-313", "cpython-311")
    # When it is zipped for cpython-313
    output = tmp_path / "a.zip"
    script.write_zip(tree, output, bytecode_tag="cpython-313")
    # Then the zip holds the module and only the 3.13 bytecode
    with zipfile.ZipFile(output) as archive:
        assert archive.namelist() == ["pkg/__init__.py", "pkg/__pycache__/__init__.cpython-313.pyc"]


def _compiled_tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text(
        "NAMES = frozenset({'alpha', 'beta', 'gamma', 'delta'})\n"
        "def member(name):\n    return name in {'alpha', 'beta', 'gamma', 'delta'}\n"
    )
    return root / "pkg" / "__pycache__" / f"__init__.{sys.implementation.cache_tag}.pyc"


def test_bytecode_is_unchecked_hash_based_reproducible_and_points_at_var_task(
    tmp_path: Path,
) -> None:
    # Given the same sources in two build folders
    script = load_script()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    first, second = _compiled_tree(tmp_path / "a"), _compiled_tree(tmp_path / "b")
    # When each is compiled by an interpreter of the target version
    script.compile_bytecode(tmp_path / "a", sys.executable, version)
    script.compile_bytecode(tmp_path / "b", sys.executable, version)
    # Then the .pyc bytes are identical (build folder and hash seed left no trace)
    data = first.read_bytes()
    assert data == second.read_bytes()
    # And PEP 552's flags say hash-based without a source check (0b01), for this version
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b01
    # And tracebacks name the file where Lambda unpacks it
    code = marshal.loads(data[16:])
    assert code.co_filename == "/var/task/pkg/__init__.py"


def test_bytecode_from_another_python_version_is_refused(tmp_path: Path) -> None:
    script = load_script()
    _compiled_tree(tmp_path)
    with pytest.raises(script.PackagingError, match=r"not 3\.99"):
        script.compile_bytecode(tmp_path, sys.executable, "3.99")
    assert not (tmp_path / "pkg" / "__pycache__").exists()


def test_a_file_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    script = load_script()
    (tmp_path / "broken.py").write_text("def broken(:\n")
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with pytest.raises(script.PackagingError, match="compileall failed"):
        script.compile_bytecode(tmp_path, sys.executable, version)


def _main_with_fake_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], found: str | None
) -> tuple[int, list[str | None]]:
    """Run the script's ``main`` with ``build_package`` faked; returns (status, compile_with seen)."""
    script = load_script()
    seen: list[str | None] = []

    def fake_build(**kwargs: Any) -> Any:
        seen.append(kwargs["compile_with"])
        return script.PackageReport(
            output=kwargs["output"],
            python_version=kwargs["python_version"],
            architecture=kwargs["architecture"],
            zipped_bytes=1,
            unzipped_bytes=1,
            pins=(),
            compiled_with=kwargs["compile_with"],
        )

    monkeypatch.setattr(script, "build_package", fake_build)
    monkeypatch.setattr(script, "find_interpreter", lambda version: found)
    status = script.main([*argv, "--output", str(tmp_path / "out.zip")])
    return status, seen


def test_without_the_runtime_python_the_build_stops_and_says_how_to_go_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, seen = _main_with_fake_build(monkeypatch, tmp_path, [], found=None)
    error = capsys.readouterr().err
    assert (status, seen) == (1, [])
    assert "no python3.13 found" in error
    assert "--compile-with PYTHON" in error and "--no-compile" in error
    assert "Traceback" not in error


def test_the_runtime_python_is_found_or_named_or_declined(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _main_with_fake_build(monkeypatch, tmp_path, [], found="/py313") == (0, ["/py313"])
    named = _main_with_fake_build(monkeypatch, tmp_path, ["--compile-with", "/x"], found=None)
    assert named == (0, ["/x"])
    declined = _main_with_fake_build(monkeypatch, tmp_path, ["--no-compile"], found="/py313")
    assert declined == (0, [None])
    captured = capsys.readouterr()
    assert captured.err == ""
    assert ".pyc compiled by /py313 (unchecked-hash)" in captured.out
    assert "no .pyc" in captured.out  # the --no-compile build says so


def test_a_bad_target_is_refused_before_looking_for_an_interpreter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, seen = _main_with_fake_build(
        monkeypatch, tmp_path, ["--python-version", "3.x"], found=None
    )
    error = capsys.readouterr().err
    assert (status, seen) == (1, [])
    assert "python version must look like 3.13" in error
    assert "no python" not in error


def test_outside_the_project_virtualenv_the_build_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an interpreter without the project installed (its pins would be other versions)
    script = load_script()
    monkeypatch.setattr(script, "PROJECT_DISTRIBUTION", "timeline-ws-not-installed")
    monkeypatch.setattr(script, "build_package", lambda **kwargs: pytest.fail("built"))
    # When the packager runs there
    status = script.main(["--no-compile", "--output", str(tmp_path / "out.zip")])
    # Then it stops and names the virtualenv
    assert status == 1
    assert ".venv/bin/python" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_a_message_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an output path that is a folder
    script = load_script()
    tree = _tree_with_bytecode(tmp_path)
    output = tmp_path / "out.zip"
    output.mkdir()
    # When the zip is written there, directly and through the command line
    with pytest.raises(IsADirectoryError):
        script.write_zip(tree, output)

    def build(**kwargs: Any) -> Any:
        return script.write_zip(tree, kwargs["output"])

    monkeypatch.setattr(script, "build_package", build)
    status = script.main(["--no-compile", "--output", str(output)])
    # Then it fails with one line, and no half-written zip is left behind
    error = capsys.readouterr().err
    assert status == 1
    assert error.startswith(f"package_lambda: cannot build {output}") and "Traceback" not in error
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.zip", "tree"]


def _fake_interpreter(folder: Path, body: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python-fake"
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def test_an_interpreter_that_is_missing_or_hangs_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = load_script()
    monkeypatch.setattr(script, "PROBE_TIMEOUT_SECONDS", 1)
    with pytest.raises(script.PackagingError, match="does not exist or does not run"):
        script.check_interpreter(str(tmp_path / "nope" / "python3.13"), "3.13")
    hanging = _fake_interpreter(tmp_path / "hang", "exec sleep 30")
    with pytest.raises(script.PackagingError, match="does not exist or does not run"):
        script.check_interpreter(hanging, "3.13")


def test_the_compiler_gets_the_callers_environment_as_a_pyenv_shim_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given an interpreter that, like a pyenv shim, only works with a variable of its own
    script = load_script()
    shim = _fake_interpreter(
        tmp_path / "shim", f'[ "$SHIM_VERSION" = on ] || exit 127\nexec {sys.executable} "$@"'
    )
    monkeypatch.setenv("SHIM_VERSION", "on")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "nothing-here"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    target = _compiled_tree(tmp_path / "src")
    # When it compiles the package
    script.compile_bytecode(tmp_path / "src", shim, version)
    # Then it ran (the variable reached it) and wrote the bytecode
    assert target.is_file()
