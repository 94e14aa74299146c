"""The measurement properties, one schema for every writer and reader: the bandwidth and
correctness judgements write them on the test (JUnit ``<property>`` elements, the JSON
report), and replay, the floors tool and the reports read them back with :func:`read`.

Names are part of the public report format (docs/architecture.md, "Reports"); change them
only with a new report schema version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..collectives import Collective
from ..profiles.model import Ceiling, Floor
from ..runs import DEFAULT
from .judgement import Property
from .measure import Measurement

# What was measured
COLLECTIVE = "collective"
BYTES = "bytes"
DTYPE = "dtype"
NRANKS = "nranks"
TIME_MS = "time_ms"
ALGBW = "algbw_gbps"
BUSBW = "busbw_gbps"
SLOWEST_RANK = "slowest_rank"
ITERS = "iters"
WARMUP = "warmup"
REPEATS = "repeats"
TIMING = "timing"  # how the ranks timed it: graph, loop or host (rank/ops.py)
TIMING_NOTE = "timing_note"
BUSBW_REPEATS = "busbw_repeats_gbps"  # each repeat's busbw, comma-separated
SPREAD_PCT = "spread_pct"  # (fastest - slowest repeat) / busbw
TIME_US = "time_us"  # latency tests
CEILING_US = "ceiling_us"
CEILING_FILE = "ceiling_file"
CEILING_SOURCE = "ceiling_source"
CHECKED = "checked_elements"
MISMATCHES = "mismatches"
RECORDED_IN = "recorded_in"
# What it was judged against
THRESHOLD = "threshold_gbps"
THRESHOLD_SOURCE = "threshold_source"
THRESHOLD_FILE = "threshold_file"
MARGIN_PCT = "margin_pct"
WARN_BAND_PCT = "warn_band_pct"  # a pass less than this far above the floor warns
PROFILE = "profile"
WARNING = "warning"
# Which run it was measured in
RUN = "run"
RUN_SETTINGS = "run_settings"
RUN_NODES = "run_nodes"
FLOORS_FROM = "floors_from"
# The split-cost comparison (judge/topology.py): the test's measurement is the split run's;
# the same collective on one NCCL host is its baseline.
BASELINE = "baseline_"  # prefix: baseline_time_ms, baseline_busbw_gbps, baseline_run, ...
TRANSPORT = "transport"  # what NCCL chose in the test's run, e.g. "NET/Socket×4"
NCCL_NODES = "nccl_nodes"  # NCCL's nNodes in that run
SPLIT_RATIO = "split_ratio"  # busbw split / busbw on one host
SLOWDOWN = "slowdown"  # busbw on one host / busbw split
MAX_SLOWDOWN = "max_slowdown"


def of_measurement(m: Measurement) -> list[Property]:
    props: list[Property] = [
        (COLLECTIVE, m.collective.value),
        (BYTES, m.nbytes),
        (DTYPE, m.dtype),
        (NRANKS, m.nranks),
    ]
    if m.rank_median_ms:
        props += [
            (TIME_MS, round(m.time_ms, 4)),
            (ALGBW, round(m.algbw_gbps, 2)),
            (BUSBW, round(m.busbw_gbps, 2)),
            (SLOWEST_RANK, m.slowest_rank),
            (ITERS, m.iters),
            (WARMUP, m.warmup),
        ]
    if m.repeats:
        props += [(REPEATS, m.repeats), (TIMING, m.method),
                  (BUSBW_REPEATS, ",".join(f"{b:.2f}" for b in m.repeat_busbw))]  # fmt: skip
        if m.spread_pct is not None:
            props.append((SPREAD_PCT, round(m.spread_pct, 1)))
        if m.note:
            props.append((TIMING_NOTE, m.note))
    if m.checked:
        props += [(CHECKED, m.checked), (MISMATCHES, m.mismatches)]
    if m.recorded:
        props.append((RECORDED_IN, m.recorded))
    return props


def of_ceiling(ceiling: Ceiling, profile: str) -> list[Property]:
    return [(CEILING_US, ceiling.max_us), (CEILING_SOURCE, ceiling.source),
            (CEILING_FILE, ceiling.where), (PROFILE, profile)]  # fmt: skip


def of_baseline(m: Measurement, run: str) -> list[Property]:
    """The baseline of a comparison: its run and timing, under the ``baseline_`` prefix."""
    props: list[Property] = [(BASELINE + RUN, run)]
    if m.rank_median_ms:
        props += [(BASELINE + TIME_MS, round(m.time_ms, 4)),
                  (BASELINE + ALGBW, round(m.algbw_gbps, 2)),
                  (BASELINE + BUSBW, round(m.busbw_gbps, 2)),
                  (BASELINE + SLOWEST_RANK, m.slowest_rank)]  # fmt: skip
    if m.checked:
        props += [(BASELINE + CHECKED, m.checked), (BASELINE + MISMATCHES, m.mismatches)]
    if m.recorded:
        props.append((BASELINE + RECORDED_IN, m.recorded))
    return props


def of_floor(floor: Floor, margin_pct: float, profile: str) -> list[Property]:
    return [
        (THRESHOLD, floor.busbw_gbps),
        (THRESHOLD_SOURCE, floor.source),
        (THRESHOLD_FILE, floor.where),
        (MARGIN_PCT, round(margin_pct, 1)),
        (WARN_BAND_PCT, floor.warn_band_pct),
        (PROFILE, profile),
    ]


def of_run(pool: str, settings: str, nodes: int, section: str) -> list[Property]:
    return [(RUN, pool), (RUN_SETTINGS, settings), (RUN_NODES, nodes),
            (FLOORS_FROM, f"bandwidth.{section}")]  # fmt: skip


@dataclass(frozen=True)
class Measured:
    """A test's measurement as read back from its properties."""

    collective: Collective
    nbytes: int
    nranks: int
    dtype: str | None
    time_ms: float | None
    busbw_gbps: float | None
    checked: int | None
    mismatches: int | None
    iters: int | None
    warmup: int | None
    run: str
    run_settings: str | None
    run_nodes: int | None
    threshold_gbps: float | None
    busbw_repeats: tuple[float, ...] = ()  # each timed loop's busbw
    warn_band_pct: float | None = None  # the floor's warn band (None: not recorded)
    time_us: float | None = None  # a latency test's time per call
    ceiling_us: float | None = None


def read_baseline(props: Mapping[str, object]) -> Measured | None:
    """The baseline measurement of a comparison test (same collective, size and ranks, in
    the run ``baseline_run``); None for any other test."""
    measured = read(props)
    run = props.get(BASELINE + RUN)
    if measured is None or run is None:
        return None
    return Measured(
        collective=measured.collective,
        nbytes=measured.nbytes,
        nranks=measured.nranks,
        dtype=measured.dtype,
        time_ms=_number(props, BASELINE + TIME_MS),
        busbw_gbps=_number(props, BASELINE + BUSBW),
        checked=_integer(props, BASELINE + CHECKED),
        mismatches=_integer(props, BASELINE + MISMATCHES),
        iters=measured.iters,
        warmup=measured.warmup,
        run=str(run),
        run_settings=None,
        run_nodes=None,
        threshold_gbps=None,
    )


def _number(props: Mapping[str, object], name: str) -> float | None:
    value = props.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(str(value))
    except ValueError:
        return None


def _integer(props: Mapping[str, object], name: str) -> int | None:
    value = _number(props, name)
    return None if value is None else int(value)


def read(props: Mapping[str, object]) -> Measured | None:
    """The measurement in a test's properties; None when the test measured nothing (JSON
    reports keep numbers as numbers, JUnit as strings: both are read)."""
    try:
        collective = Collective(str(props.get(COLLECTIVE, "")))
    except ValueError:
        return None
    nbytes = _integer(props, BYTES)
    if nbytes is None:
        return None
    dtype = props.get(DTYPE)
    settings = props.get(RUN_SETTINGS)
    return Measured(
        collective=collective,
        nbytes=nbytes,
        nranks=_integer(props, NRANKS) or 0,
        dtype=str(dtype) if dtype is not None else None,
        time_ms=_number(props, TIME_MS),
        busbw_gbps=_number(props, BUSBW),
        checked=_integer(props, CHECKED),
        mismatches=_integer(props, MISMATCHES),
        iters=_integer(props, ITERS),
        warmup=_integer(props, WARMUP),
        run=str(props.get(RUN, DEFAULT)),
        run_settings=str(settings) if settings is not None else None,
        run_nodes=_integer(props, RUN_NODES),
        threshold_gbps=_number(props, THRESHOLD),
        busbw_repeats=tuple(
            float(v) for v in str(props.get(BUSBW_REPEATS, "")).split(",") if _is_number(v)
        ),
        warn_band_pct=_number(props, WARN_BAND_PCT),
        time_us=_number(props, TIME_US),
        ceiling_us=_number(props, CEILING_US),
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
