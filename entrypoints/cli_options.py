"""Command-line options declared as data: a tuple of :class:`Option` rows per command.

A command's options are a table one reads top to bottom, not a function of ``add_argument``
calls; :func:`add_options` registers them on an ``argparse`` parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import Any

import attrs


@attrs.frozen(slots=True)
class Option:
    """One option: ``argparse``'s ``flags`` and keywords; options sharing a ``group`` exclude
    each other (``add_mutually_exclusive_group``)."""

    flags: tuple[str, ...]
    keywords: Mapping[str, Any]
    group: str | None = None


def option(*flags: str, group: str | None = None, **keywords: Any) -> Option:
    """An :class:`Option`, written as ``parser.add_argument`` would be called."""
    return Option(flags=flags, keywords=keywords, group=group)


def add_options(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Register ``options`` on ``parser``, in order."""
    groups: dict[str, Any] = {}
    for row in options:
        target: Any = parser
        if row.group is not None:
            target = groups.get(row.group)
            if target is None:
                target = groups[row.group] = parser.add_mutually_exclusive_group()
        target.add_argument(*row.flags, **row.keywords)
