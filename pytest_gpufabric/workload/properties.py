"""A workload test's properties (JUnit and JSON): their names, written by workload/judge.py,
and the one reader of them, for a replay (evidence/recorded.py), the floors tool
(profiles/floors.py) and the HTML report (report/html/data.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

LAYOUT, KIND, GROUPS = "layout", "group_kind", "groups"
COLLECTIVE, BYTES = "workload_collective", "workload_bytes"
BESIDE = "beside_collective"  # the traffic beside the job, if any
THRESHOLD = "threshold_gbps"
_LAYOUT_NAME = re.compile(r"^tp(\d+)×pp(\d+)×dp(\d+)$")  # layout.py Layout.name


def group_key(number: int, field: str, prefix: str = "group") -> str:
    """``group0_ranks``, ``beside1_busbw_gbps``: the N-th group's (or side group's) field."""
    return f"{prefix}{number}_{field}"


def alone_key(ranks: tuple[int, ...], field: str) -> str:
    """``alone_0_1_gbps``: a group measured again alone."""
    return f"alone_{'_'.join(map(str, ranks))}_{field}"


@dataclass(frozen=True)
class Group:
    ranks: tuple[int, ...]
    time_ms: float | None  # None: a report from before times were kept
    busbw_gbps: float | None
    mismatches: int = 0
    link: str = ""
    alone_gbps: float | None = None
    alone_ms: float | None = None


@dataclass(frozen=True)
class Recorded:
    """What a workload test recorded."""

    layout: str  # Layout.name: "tp2×pp1×dp2"
    kind: str  # tp, pp, dp
    collective: str
    nbytes: int
    groups: tuple[Group, ...]
    beside_collective: str  # "" when nothing ran beside it
    beside: tuple[Group, ...]
    threshold_gbps: float | None

    @property
    def shape(self) -> str | None:
        """The layout as TPxPPxDP ("2x1x2"), None for a name not of Layout.name's form."""
        found = _LAYOUT_NAME.match(self.layout)
        return "x".join(found.groups()) if found else None


def read(props: Mapping[str, object]) -> Recorded | None:
    """The workload test in these properties; None for any other test."""
    if KIND not in props or COLLECTIVE not in props or BYTES not in props:
        return None
    return Recorded(
        str(props.get(LAYOUT, "")), str(props[KIND]), str(props[COLLECTIVE]),
        int(str(props[BYTES])), _groups(props, "group"), str(props.get(BESIDE, "")),
        _groups(props, "beside"), _number(props, THRESHOLD),
    )  # fmt: skip


def _groups(props: Mapping[str, object], prefix: str) -> tuple[Group, ...]:
    found = []
    number = 0
    while (ranks_text := props.get(group_key(number, "ranks", prefix))) is not None:
        ranks = tuple(int(r) for r in str(ranks_text).split(","))
        found.append(Group(
            ranks, _number(props, group_key(number, "time_ms", prefix)),
            _number(props, group_key(number, "busbw_gbps", prefix)),
            int(str(props.get(group_key(number, "mismatches", prefix), 0))),
            str(props.get(group_key(number, "link", prefix), "")),
            _number(props, alone_key(ranks, "gbps")), _number(props, alone_key(ranks, "time_ms")),
        ))  # fmt: skip
        number += 1
    return tuple(found)


def _number(props: Mapping[str, object], key: str) -> float | None:
    value = props.get(key)
    return None if value is None else float(str(value))
