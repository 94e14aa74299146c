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
from ..units import parse_size
from .checker import Checker
from .keys import LATENCY_KEYS
from .model import Ceiling
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
    for op_name, sizes in table.items():
        key = f"latency.ceilings.{op_name}"
        try:
            collective = Collective(op_name)
        except ValueError:
            known = ", ".join(c.value for c in Collective)
            check.problem(table.line_of(op_name), key, f"unknown collective (known: {known})")
            continue
        if not isinstance(sizes, LineMap):
            check.problem(table.line_of(op_name), key, "must map message sizes to microseconds")
            continue
        for size_text, value in sizes.items():
            line = sizes.line_of(size_text)
            try:
                nbytes = parse_size(size_text)
            except ValueError as exc:
                check.problem(line, f"{key}.{size_text}", str(exc))
                continue
            if value is None:
                found[(collective, nbytes)] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                check.problem(line, f"{key}.{size_text}",
                              f"must be a number > 0 (microseconds), got {value!r}")  # fmt: skip
                continue
            if source is not None:
                found[(collective, nbytes)] = Ceiling(
                    collective, nbytes, float(value), source, margin, check.path, line
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
