"""Validation helpers that collect every problem of a profile file with its line instead of
stopping at the first one."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .yamlfile import LineMap


class Checker:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int, key: str, text: str) -> None:
        self.problems.append(f"{self.path}:{line}: {key}: {text}")

    def mapping(
        self, parent: LineMap, key: str, full: str, *, required: bool = True
    ) -> LineMap | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, full, "missing")
            return None
        if not isinstance(value, LineMap):
            self.problem(parent.line_of(key), full, f"must be a mapping, got {kind(value)}")
            return None
        return value

    def text(self, parent: LineMap, key: str, full: str, *, required: bool = True) -> str | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, full, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(
                parent.line_of(key), full, f"must be a non-empty string, got {kind(value)}"
            )
            return None
        return value.strip()

    def integer(self, parent: LineMap, key: str, full: str, default: int, minimum: int) -> int:
        value = parent.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(
                parent.line_of(key), full, f"must be an integer >= {minimum}, got {value!r}"
            )
            return default
        return value

    def number(self, parent: LineMap, key: str, full: str, default: float) -> float:
        value = parent.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.problem(parent.line_of(key), full, f"must be a number >= 0, got {value!r}")
            return default
        return float(value)

    def choice(
        self, parent: LineMap, key: str, full: str, allowed: Iterable[str], default: str
    ) -> str:
        """``parent[key]`` if it is one of ``allowed``; else ``default`` and a problem."""
        if key not in parent:
            return default
        allowed = tuple(allowed)
        if parent[key] in allowed:
            return str(parent[key])
        self.problem(
            parent.line_of(key), full, f"{parent[key]!r} is not one of {', '.join(allowed)}"
        )
        return default

    def unknown_keys(self, parent: LineMap, allowed: Iterable[str], where: str) -> None:
        allowed = set(allowed)
        for key in parent:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.problem(parent.line_of(key), f"{where}{key}", f"unknown key (allowed: {hint})")


def kind(value: object) -> str:
    if isinstance(value, LineMap):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)
