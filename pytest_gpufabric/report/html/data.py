"""What the HTML report shows, read from the JSON report (the one source for a live run, a
replay and a saved report alike) and, where the run's bundle is at hand, its NCCL logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...evidence.nccl_log import parse_files
from ...evidence.recorded import nccl_tests_measurements
from ...judge import properties as P
from ...judge.measure import bandwidth
from ...runs import DEFAULT
from ...units import format_size
from ...workload import properties as workload_properties

DEFAULT_WARN_BAND_PCT = 5.0  # reports written before warn_band_pct was recorded
COLUMNS = ("sizes", "median", "repeats", "limit", "warn", "outcomes", "nodeids")


@dataclass
class Series:
    """One chart: points by message size."""

    title: str
    sizes: list[int] = field(default_factory=list)
    median: list[float | None] = field(default_factory=list)  # busbw GB/s or time µs
    repeats: list[list[float]] = field(default_factory=list)
    limit: list[float | None] = field(default_factory=list)  # floor (busbw) or ceiling (µs)
    warn: list[float | None] = field(default_factory=list)  # top of the floor's warn band
    outcomes: list[str] = field(default_factory=list)
    nodeids: list[str] = field(default_factory=list)
    reference: list[float | None] = field(default_factory=list)  # nccl-tests' busbw, same sizes
    reference_where: str = ""

    def add(self, nbytes: int, value: float | None, repeats: Sequence[float],
            limit: float | None, warn: float | None, test: Mapping[str, Any]) -> None:  # fmt: skip
        self.sizes.append(nbytes)
        self.median.append(value)
        self.repeats.append(list(repeats))
        self.limit.append(limit)
        self.warn.append(warn)
        self.outcomes.append(str(test.get("outcome", "")))
        self.nodeids.append(str(test.get("nodeid", "")))

    def sort(self) -> Series:
        """Every column in the order of message size."""
        order = sorted(range(len(self.sizes)), key=self.sizes.__getitem__)
        for name in COLUMNS:
            setattr(self, name, [getattr(self, name)[i] for i in order])
        return self

    def record(self) -> dict[str, Any]:
        return {
            "title": self.title, "sizes": self.sizes, "median": self.median,
            "repeats": self.repeats, "limit": self.limit, "warn": self.warn,
            "outcomes": self.outcomes, "nodeids": self.nodeids,
            "reference": self.reference, "reference_where": self.reference_where,
        }  # fmt: skip


def warn_top(measured: P.Measured) -> float | None:
    """The top of the floor's warn band (a pass below it warns)."""
    if measured.threshold_gbps is None:
        return None
    band = measured.warn_band_pct
    band = DEFAULT_WARN_BAND_PCT if band is None else band
    return measured.threshold_gbps * (1 + band / 100)


def bandwidth_charts(tests: Sequence[Mapping[str, Any]]) -> list[Series]:
    """busbw against size, one chart per run and collective: every repeat, the median, the
    floor and its warn band."""
    charts: dict[tuple[str, str], Series] = {}
    for test in tests:
        props = test.get("properties", {})
        measured = P.read(props)
        if measured is None or measured.busbw_gbps is None or measured.time_us is not None:
            continue
        if any(key.startswith(P.BASELINE) for key in props):
            continue  # a split-cost test: two runs in one
        run, collective = measured.run, measured.collective.value
        title = collective if run == DEFAULT else f"{collective} ({run} run)"
        charts.setdefault((run, collective), Series(title)).add(
            measured.nbytes, measured.busbw_gbps, measured.busbw_repeats,
            measured.threshold_gbps, warn_top(measured), test,
        )  # fmt: skip
    return [s.sort() for s in charts.values()]


def latency_charts(tests: Sequence[Mapping[str, Any]]) -> list[Series]:
    charts: dict[str, Series] = {}
    for test in tests:
        measured = P.read(test.get("properties", {}))
        if measured is None or measured.time_us is None:
            continue
        collective = measured.collective.value
        charts.setdefault(collective, Series(f"{collective} latency")).add(
            measured.nbytes, measured.time_us, (), measured.ceiling_us, None, test
        )
    return [s.sort() for s in charts.values()]


NCCL_TESTS_MAX_BYTES = 4 << 20  # an nccl-tests stdout is small; a NCCL log is not one


def nccl_tests_curves(places: Sequence[Path]) -> dict[str, tuple[dict[int, float], str]]:
    """nccl-tests' busbw (out-of-place, as it prints it) by collective and size, from every
    nccl-tests stdout in ``places`` (files, or directories searched to any depth)."""
    curves: dict[str, tuple[dict[int, float], str]] = {}
    for place in places:
        found = [place] if place.is_file() else sorted(place.rglob("*")) if place.is_dir() else []
        for path in found:
            if not path.is_file() or path.name.endswith((".nccl.log", ".json", ".prom")):
                continue
            if path.stat().st_size > NCCL_TESTS_MAX_BYTES:
                continue
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if "nccl-tests" not in text and "# nThread" not in text:
                continue
            for m in nccl_tests_measurements(path, text):
                if m.time_ms is None:
                    continue
                _, busbw = bandwidth(m.collective, m.nbytes, m.nranks, m.time_ms)
                points, _ = curves.setdefault(m.collective.value, ({}, str(path)))
                points[m.nbytes] = busbw
    return curves


def add_reference(charts: Sequence[Series], curves: Mapping[str, tuple[dict[int, float], str]]
                  ) -> None:  # fmt: skip
    """nccl-tests' curve into the default run's chart of each collective, size by size
    (sizes nccl-tests measured and we did not are added as points of their own)."""
    for series in charts:
        if series.title not in curves:
            continue  # only the default run: nccl-tests ran with the host's own settings
        points, where = curves[series.title]
        for nbytes in sorted(set(points) - set(series.sizes)):
            series.sizes.append(nbytes)
            for name in ("median", "limit", "warn"):
                getattr(series, name).append(None)
            series.repeats.append([])
            series.outcomes.append("")
            series.nodeids.append("")
        series.sort()
        series.reference = [points.get(n) for n in series.sizes]
        series.reference_where = where


@dataclass
class Cell:
    transports: dict[str, int] = field(default_factory=dict)  # detail -> connections
    evidence: str = ""  # the first line's file:line
    line: str = ""  # its text


@dataclass
class Matrix:
    """Who talked to whom over what, on one host: GPU (cuda device) × GPU."""

    host: str
    devices: list[int]
    cells: dict[tuple[int, int], Cell]


def transport_matrices(bundle: Path | None) -> tuple[list[Matrix], str]:
    """From the main run's NCCL logs in ``bundle`` (``default/rank*.nccl.log``); ([], why)
    when there are none."""
    if bundle is None:
        return [], "no bundle given: the transport matrix needs the run's NCCL logs"
    files = sorted((bundle / "default").glob("rank*.nccl.log")) or sorted(bundle.glob("*.nccl.log"))
    if not files:
        return [], f"no NCCL logs in {bundle} (a gloo run, or a report without its bundle)"
    log = parse_files(files)
    matrices: dict[str, Matrix] = {}
    texts: dict[Path, list[str]] = {}
    for conn in log.connections:
        host = conn.process.host
        if conn.transport == "NET" and conn.direction == "receive":
            continue  # the sender's line says the same
        matrix = matrices.setdefault(host, Matrix(host, [], {}))
        for dev in (conn.src_dev, conn.dst_dev):
            if dev not in matrix.devices:
                matrix.devices.append(dev)
        cell = matrix.cells.setdefault((conn.src_dev, conn.dst_dev), Cell())
        # NET lines name the NIC index; the matrix says which network, with GDR or not
        net = f"NET/{conn.net or '?'}" + ("/GDRDMA" if conn.gdr else "")
        detail = net if conn.transport == "NET" else conn.detail
        cell.transports[detail] = cell.transports.get(detail, 0) + 1
        if not cell.evidence:
            cell.evidence = str(conn.where)
            cell.line = _line(texts, conn.where.file, conn.where.line)
    for matrix in matrices.values():
        matrix.devices.sort()
    return list(matrices.values()), ""


def _line(texts: dict[Path, list[str]], path: Path, number: int) -> str:
    """Line ``number`` of ``path``, each file read once (``texts`` keeps them)."""
    if path not in texts:
        try:
            texts[path] = path.read_text(errors="replace").splitlines()
        except OSError:
            texts[path] = []
    lines = texts[path]
    return lines[number - 1].strip() if 0 < number <= len(lines) else ""


def bundle_of(data: Mapping[str, Any], given: Path | None) -> Path | None:
    """The run's bundle: given, else the replayed or the artifacts directory it names."""
    if given is not None:
        return given
    run = data.get("run", {})
    for key in ("replay", "artifacts"):
        value = run.get(key)
        if value and Path(str(value)).is_dir():
            return Path(str(value))
    return None


@dataclass(frozen=True)
class GroupRow:
    """One group of a workload test (suites/test_workload.py), as its properties have it."""

    layout: str
    kind: str  # tp, pp, dp
    traffic: str  # "all_reduce 16MiB"
    ranks: str
    link: str
    busbw: float
    floor: float | None
    alone: float | None  # measured again alone (below its floor)
    beside: str  # the traffic beside it and its slowest group, or ""
    outcome: str


def workload_rows(tests: Sequence[Mapping[str, Any]]) -> list[GroupRow]:
    rows = []
    for test in tests:
        found = workload_properties.read(test.get("properties") or {})
        if found is None:
            continue
        traffic = f"{found.collective} {format_size(found.nbytes)}"
        beside = ""
        if found.beside_collective:
            slowest = min(g.busbw_gbps for g in found.beside if g.busbw_gbps is not None)
            beside = f"{found.beside_collective} on the TP groups, slowest {slowest:.3g} GB/s"
        rows += [GroupRow(found.layout, found.kind, traffic, ",".join(map(str, g.ranks)), g.link,
                          g.busbw_gbps or 0.0, found.threshold_gbps, g.alone_gbps, beside,
                          str(test.get("outcome", "")))
                 for g in found.groups]  # fmt: skip
    return rows
