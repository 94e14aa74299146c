"""The ``workload`` section of a profile: busbw floors for the groups of parallel layouts
(suites/test_workload.py), each group judged while every group of its kind runs.

    workload:
      source: "where the numbers come from"
      margin: "floor = 80% of the lowest run"
      nodes: 1                 # the runs the floors hold for (default 1)
      layouts:
        2x4x1:                 # tp × pp × dp, as --gpufabric-layout takes it
          tp: {all_reduce: {16MiB: 150, 256MiB: 260}, all_gather: {16MiB: 110}}
          pp: {sendrecv: {16MiB: 120, 64MiB: 200}}

The section is measured as a whole (the floors tool writes it from runs of these layouts):
a profile that states it replaces its parent's, ``workload: null`` removes it. A group
without a floor here is judged against its fair share of the whole-world floor."""

from __future__ import annotations

from types import MappingProxyType

from ..collectives import ALL_COLLECTIVES
from ..workload.layout import LayoutError, shape
from .checker import Checker
from .keys import GROUP_KINDS, WORKLOAD_KEYS
from .model import Floor, Shape, WorkloadFloors
from .tables import cells
from .yamlfile import LineMap

SECTION = "workload"


def parse_workload(
    check: Checker, data: LineMap, inherited: WorkloadFloors | None
) -> WorkloadFloors | None:
    if SECTION not in data:
        return inherited
    if data[SECTION] is None:
        return None
    section = check.mapping(data, SECTION, SECTION)
    if section is None:
        return inherited
    check.unknown_keys(section, WORKLOAD_KEYS, f"{SECTION}.")
    source = check.text(section, "source", f"{SECTION}.source")
    margin = check.text(section, "margin", f"{SECTION}.margin", required=False) or ""
    nodes = check.integer(section, "nodes", f"{SECTION}.nodes", 1, 1)
    layouts = check.mapping(section, "layouts", f"{SECTION}.layouts")
    if layouts is None:
        return inherited
    found: dict[tuple[Shape, str], tuple[Floor, ...]] = {}
    for text in layouts:
        where = f"{SECTION}.layouts.{text}"
        try:
            tp_pp_dp = shape(str(text), where)
        except LayoutError as exc:
            check.problem(layouts.line_of(text), where, str(exc).partition(": ")[2])
            continue
        table = check.mapping(layouts, text, where)
        if table is None:
            continue
        check.unknown_keys(table, GROUP_KINDS, f"{where}.")
        sizes = dict(zip(GROUP_KINDS, tp_pp_dp, strict=True))  # both in tp, pp, dp order
        for kind in GROUP_KINDS:
            floors = check.mapping(table, kind, f"{where}.{kind}", required=False)
            if floors is None:
                continue
            if sizes[kind] < 2:
                check.problem(table.line_of(kind), f"{where}.{kind}",
                              f"this layout has no {kind} group ({kind} size 1)")  # fmt: skip
                continue
            found[(tp_pp_dp, kind)] = _floors(check, floors, f"{where}.{kind}", source, margin)
    if source is None:
        return inherited
    return WorkloadFloors(MappingProxyType(found), nodes, data.line_of(SECTION))


def _floors(
    check: Checker, table: LineMap, where: str, source: str | None, margin: str
) -> tuple[Floor, ...]:
    floors = []
    for cell in cells(check, table, where, "busbw floors"):
        value = cell.value
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0
                or cell.nbytes is None):  # fmt: skip
            check.problem(cell.line, cell.key,
                          f"busbw floor must be a number > 0 (GB/s), got {value!r}")  # fmt: skip
            continue
        if source is not None:
            floors.append(Floor(cell.collective, cell.nbytes, float(value), source, margin,
                                check.path, cell.line, SECTION))  # fmt: skip
    return tuple(sorted(floors, key=lambda f: (ALL_COLLECTIVES.index(f.collective), f.nbytes)))
