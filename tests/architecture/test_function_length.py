"""No function of the product longer than 80 lines (issue 20): a long function is a module
that has not been written yet. Options and tables are data, not function bodies."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("domain", "application", "adapters", "entrypoints", "infra")
MAX_LINES = 80


def test_no_function_is_longer_than_80_lines() -> None:
    too_long = []
    for folder in PRODUCT:
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_LINES:
                        too_long.append(f"{path.relative_to(ROOT)}:{node.name} {length}")
    assert too_long == [], too_long
