"""The ``latency`` section of a profile: ceilings on the time of small collectives.

    latency:
      source: "where the numbers come from"
      margin: "ceiling = 1.5 × the slowest run"
      ceilings:            # microseconds per call, slowest rank
        all_reduce: {8B: 30, 64KiB: 45}
        sendrecv: {8B: 25}

A ceiling the parent profile set stays unless this file states the same collective and size
(``null`` removes it; ``latency: null`` removes them all)."""

from __future__ import annotations

from ..collectives import ALL_COLLECTIVES, Collective
from .checker import Checker
from .keys import LATENCY_KEYS
from .model import Ceiling
from .tables import cells
from .yamlfile import LineMap

# Measured (and judged where a ceiling is set) whatever the profile: the sizes where time per
# call, not bandwidth, is what a training step feels (gradient buckets of small layers,
# pipeline control messages, tensor-parallel all_reduce of small activations).
LATENCY_COLLECTIVES = (Collective.ALL_REDUCE, Collective.SENDRECV)
LATENCY_SIZES = (8, 1 << 10, 64 << 10)


def parse_latency(
    check: Checker, data: LineMap, inherited: tuple[Ceiling, ...]
) -> tuple[Ceiling, ...]:
    if "latency" not in data:
        return inherited
    if data["latency"] is None:
        return ()
    section = check.mapping(data, "latency", "latency")
    if section is None:
        return inherited
    check.unknown_keys(section, LATENCY_KEYS, "latency.")
    source = check.text(section, "source", "latency.source")
    margin = check.text(section, "margin", "latency.margin", required=False) or ""
    table = check.mapping(section, "ceilings", "latency.ceilings")
    if table is None:
        return inherited
    found: dict[tuple[Collective, int], Ceiling | None] = {
        (c.collective, c.nbytes): c for c in inherited
    }
    for cell in cells(check, table, "latency.ceilings", "microseconds"):
        value = cell.value
        if cell.nbytes is None:
            check.problem(cell.line, cell.key, "must map message sizes to microseconds")
        elif value is None:
            found[(cell.collective, cell.nbytes)] = None
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            check.problem(
                cell.line, cell.key, f"must be a number > 0 (microseconds), got {value!r}"
            )
        elif source is not None:
            found[(cell.collective, cell.nbytes)] = Ceiling(
                cell.collective, cell.nbytes, float(value), source, margin, check.path, cell.line
            )
    kept = (c for c in found.values() if c is not None)
    return tuple(sorted(kept, key=lambda c: (ALL_COLLECTIVES.index(c.collective), c.nbytes)))


def ceiling_for(
    ceilings: tuple[Ceiling, ...], collective: Collective, nbytes: int
) -> Ceiling | None:
    for ceiling in ceilings:
        if ceiling.collective is collective and ceiling.nbytes == nbytes:
            return ceiling
    return None
