"""Static checks run as tests so `make test` (and CI) enforces them: terraform fmt, checkov
over infra/, bandit over our Python packages.

checkov lives in its own virtualenv (``make checkov`` creates ``.venv-checkov``): it pins old
boto3 and packaging releases that break pytest when installed beside the project.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.terraform import INFRA, PROJECT_ROOT

CHECKOV = Path(os.environ.get("CHECKOV_BIN", PROJECT_ROOT / ".venv-checkov" / "bin" / "checkov"))
PYTHON_PACKAGES = ("domain", "application", "adapters", "entrypoints")
BOUND_SECONDS = 300  # a hung tool fails the test instead of hanging CI


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=BOUND_SECONDS,
        check=False,
    )


def test_terraform_files_are_formatted() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH: `terraform fmt -check` not run")
    # Given the stack, when terraform checks its formatting (no providers needed)...
    result = run([terraform, "fmt", "-check", "-recursive", "-diff", str(INFRA)])
    # ... then no file needs rewriting.
    assert result.returncode == 0, f"terraform fmt would change:\n{result.stdout}{result.stderr}"


def test_checkov_finds_no_failed_check_in_infra() -> None:
    if not CHECKOV.is_file():
        pytest.skip(f"checkov not installed at {CHECKOV}: run `make checkov` (make test does)")
    # --skip-download: no network (policies, guidelines) at test time. Accepted exceptions are
    # inline `#checkov:skip=CKV_...:reason` comments next to the resource they concern.
    result = run(
        [
            str(CHECKOV),
            "--directory",
            str(INFRA),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "--compact",
            "--output",
            "json",
        ]
    )
    assert result.returncode in (0, 1), f"checkov crashed:\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout)
    summary = report["summary"]
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']})"
        for check in report["results"]["failed_checks"]
    ]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100, "checkov scanned much less than the whole stack"
    assert failed == [], "checkov failures:\n" + "\n".join(failed)
    assert result.returncode == 0


def test_bandit_finds_nothing_of_medium_or_high_severity() -> None:
    result = run(
        [
            sys.executable,
            "-m",
            "bandit",
            "--recursive",
            "--quiet",
            "--format",
            "json",
            "--severity-level",
            "medium",
            *PYTHON_PACKAGES,
        ]
    )
    assert result.returncode in (0, 1), f"bandit crashed:\n{result.stderr[-4000:]}"
    report = json.loads(result.stdout)
    findings = [
        f"{issue['test_id']} {issue['issue_severity']} {issue['filename']}:{issue['line_number']}"
        f" {issue['issue_text']}"
        for issue in report["results"]
        if issue["issue_severity"] in {"MEDIUM", "HIGH"}
    ]
    scanned = report["metrics"]["_totals"]["loc"]
    assert scanned > 1000, "bandit scanned much less code than the four packages hold"
    assert findings == [], "bandit findings:\n" + "\n".join(findings)
