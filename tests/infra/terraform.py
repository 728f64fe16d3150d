"""Read infra/*.tf with python-hcl2 into plain dicts the structure tests can query.

Strings come back unquoted (``"$connect"``, not ``'"$connect"'``); expressions come back as
``"${...}"`` strings, e.g. ``"${aws_lambda_function.handler[\"connect\"].invoke_arn}"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import hcl2

PROJECT_ROOT = Path(__file__).resolve().parents[2]
INFRA = PROJECT_ROOT / "infra"


def tf_files() -> list[Path]:
    """Every Terraform file of the stack, sorted."""
    return sorted(INFRA.glob("*.tf"))


def _parse(text: str) -> dict[str, Any]:
    """python-hcl2 >= 7 quotes strings unless told not to; older releases never do."""
    options_type = getattr(hcl2, "SerializationOptions", None)
    if options_type is None:  # pragma: no cover - python-hcl2 < 7
        return dict(hcl2.loads(text))
    options = options_type(strip_string_quotes=True, explicit_blocks=False, with_comments=False)
    return dict(hcl2.loads(text, serialization_options=options))


@cache
def parsed() -> dict[str, dict[str, Any]]:
    """File name -> parsed document."""
    return {path.name: _parse(path.read_text(encoding="utf-8")) for path in tf_files()}


class Stack:
    """The union of every infra/*.tf file: resources, data sources, locals and variables."""

    def __init__(self, documents: Mapping[str, Mapping[str, Any]]) -> None:
        self.resources: dict[str, dict[str, dict[str, Any]]] = {}
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.locals: dict[str, Any] = {}
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        for document in documents.values():
            for block in document.get("resource", []):
                for kind, named in block.items():
                    self.resources.setdefault(kind, {}).update(named)
            for block in document.get("data", []):
                for kind, named in block.items():
                    self.data.setdefault(kind, {}).update(named)
            for block in document.get("locals", []):
                self.locals.update(block)
            for block in document.get("variable", []):
                self.variables.update(block)
            for block in document.get("output", []):
                self.outputs.update(block)

    def of(self, kind: str) -> dict[str, dict[str, Any]]:
        """Resources of one type by name ({} when there are none)."""
        return self.resources.get(kind, {})

    def resolve(self, value: Any) -> Any:
        """Replace a bare ``${local.x}`` or ``${var.x}`` by its value or default."""
        if isinstance(value, str):
            match = re.fullmatch(r"\$\{(local|var)\.([A-Za-z0-9_]+)\}", value)
            if match and match.group(1) == "local":
                return self.resolve(self.locals[match.group(2)])
            if match:
                return self.resolve(self.variables[match.group(2)].get("default"))
        return value


def stack() -> Stack:
    """The parsed stack."""
    return Stack(parsed())


def block(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The single nested block ``name`` of a resource body (python-hcl2 lists blocks)."""
    value = body[name]
    if isinstance(value, list):
        assert len(value) == 1, f"expected one {name} block, found {len(value)}"
        return dict(value[0])
    return dict(value)


def walk_attributes(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (dotted path, value) leaf of a parsed document."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            yield from walk_attributes(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk_attributes(value, f"{path}[{index}]")
    else:
        yield path, node
