"""The ``collective: {size: value}`` tables of a profile (bandwidth floors, latency
ceilings), walked once with every problem reported as ``file:line: key: problem``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..collectives import Collective
from ..units import parse_size
from .checker import Checker
from .yamlfile import LineMap


@dataclass(frozen=True)
class Cell:
    collective: Collective
    nbytes: int | None  # None: the whole collective is set to null
    value: object
    line: int
    key: str  # "bandwidth.intra_node.floors.all_reduce.1GiB"


def cells(check: Checker, table: LineMap, where: str, what: str) -> Iterator[Cell]:
    """Every cell of ``table`` (at ``where``) whose collective and size are valid; ``what``
    names the values in a problem ("busbw floors", "microseconds")."""
    for op_name, sizes in table.items():
        key = f"{where}.{op_name}"
        try:
            collective = Collective(op_name)
        except ValueError:
            known = ", ".join(c.value for c in Collective)
            check.problem(table.line_of(op_name), key, f"unknown collective (known: {known})")
            continue
        if sizes is None:
            yield Cell(collective, None, None, table.line_of(op_name), key)
            continue
        if not isinstance(sizes, LineMap):
            check.problem(table.line_of(op_name), key, f"must map message sizes to {what}")
            continue
        for size_text, value in sizes.items():
            line = sizes.line_of(size_text)
            try:
                nbytes = parse_size(size_text)
            except ValueError as exc:
                check.problem(line, f"{key}.{size_text}", str(exc))
                continue
            yield Cell(collective, nbytes, value, line, f"{key}.{size_text}")
