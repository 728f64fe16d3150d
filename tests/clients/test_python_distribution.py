"""The Python distribution ``timeline-ws-client`` (``clients/python``) as a developer gets it,
and the browser module inside the server's own wheel.

A fresh virtualenv that installs the client's wheel gets the client, ``websockets`` and
``attrs`` and nothing of the server (the installed package list is checked); the client
imports, ships ``py.typed``, and none of the server's top-level packages exist. The server's
wheel carries the npm package's module itself (through the symlink), so an installed
``serve`` serves the same file as the npm package.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
# What pip and venv bring themselves, whatever is installed.
VENV_OWN = {"pip", "setuptools", "wheel"}

pytestmark = pytest.mark.slow


def run(*command: str | Path, cwd: Path = ROOT) -> str:
    completed = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    return completed.stdout


def build_wheel(source: Path, destination: Path) -> Path:
    run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", destination, source)
    (wheel,) = destination.glob("*.whl")
    return wheel


def test_given_a_fresh_venv_when_it_installs_the_client_then_it_gets_websockets_attrs_and_nothing_of_the_server(
    tmp_path: Path,
) -> None:
    wheel = build_wheel(CLIENT, tmp_path / "dist")
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    python = venv / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel)

    listed = json.loads(run(python, "-m", "pip", "list", "--format=json"))
    installed = {package["name"].lower() for package in listed} - VENV_OWN
    print(f"\ninstalled: {sorted(installed)}")
    assert installed == {"timeline-ws-client", "websockets", "attrs"}

    probe = (
        "import importlib.resources, importlib.util, json, timeline_ws_client as c; "
        "print(json.dumps({'version': c.__version__, "
        "'typed': importlib.resources.files('timeline_ws_client').joinpath('py.typed').is_file(), "
        "'server': [n for n in ('entrypoints', 'domain', 'application', 'adapters') "
        "if importlib.util.find_spec(n)]}))"
    )
    found = json.loads(run(python, "-c", probe, cwd=tmp_path))
    assert found == {"version": "0.2.0", "typed": True, "server": []}


def test_the_servers_wheel_ships_the_npm_packages_module_as_its_demo_client(tmp_path: Path) -> None:
    wheel = build_wheel(ROOT, tmp_path / "dist")
    with zipfile.ZipFile(wheel) as archive:
        shipped = archive.read("entrypoints/local_gateway/demo/timeline-ws-client.js")
        names = archive.namelist()
    assert shipped == (ROOT / "clients" / "js" / "timeline-ws-client.js").read_bytes()
    assert not [name for name in names if name.startswith("timeline_ws_client/")]
