"""A recorded run, for ``--gpufabric-replay DIR``: every file under DIR is recognised by its
content, not its name, and may contribute several kinds of evidence:

- NCCL debug output (per-rank logs, or NCCL lines mixed into any text file);
- nccl-tests stdout (``# Collective test starting: all_reduce_perf`` and its table) and its
  ``-J`` JSON file (NVIDIA/nccl-tests src/util.cu: ``results[].out_of_place.time``, µs);
- the JSON report this plugin writes (``--gpufabric-json``, and report.json in every
  ``--gpufabric-artifacts`` bundle);
- a plain results JSON ``{"world": N, "results": [{"op", "bytes", "ms", "ok"}]}``;
- host captures (``nvidia-smi -q [-x]``, ``topo -m``, ``topo -p2p``, ``nvlink -s/-e``, an NVML
  probe JSON, /proc/mounts lines) and the host snapshots a live run keeps (host-*.json).

A live run's bundle keeps each rank pool (the main run, the isolation runs) in a directory
with a pool.json: NCCL logs below it belong to that run, and report measurements name their
run, so a replay judges each run on its own evidence. Files outside any pool directory
belong to the main run.

Files nothing recognises are listed in ``ignored`` with the reason.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..collectives import Collective
from ..judge import properties
from ..launch.protocol import POOL_FILE, POOL_SCHEMA
from ..report.schema import SCHEMA_PREFIX, report_problem, run_facts
from ..runs import DEFAULT
from ..workload import properties as workload_properties
from . import host_captures
from .host import HOST_SCHEMA, HostFacts
from .host import from_json as host_from_json
from .nccl_log import NcclLog, looks_like_nccl, parse_files
from .node import NODE_SCHEMA, Node
from .node import from_json as node_from_json

MAX_FILE_BYTES = 256 << 20  # larger files are not read (a core dump is no evidence)

_NCCL_TESTS_DTYPES = {
    "bfloat16": "bfloat16", "float": "float32", "float32": "float32", "half": "float16",
    "float16": "float16",
}  # fmt: skip
_OP = re.compile(r"# Collective test starting: (\w+?)_perf")
_RANK = re.compile(
    r"#\s+Rank\s+(\d+) Group\s+(\d+) Pid\s+(\d+) on\s+(\S+) device\s+(\d+) "
    r"\[([0-9a-fA-F:.]+)\] (.+?)\s*$"
)
_ROW = re.compile(
    r"^\s+(\d+)\s+(\d+)\s+(\w+)\s+(\S+)\s+(-?\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)"
)


@dataclass(frozen=True)
class RecordedMeasurement:
    collective: Collective
    nbytes: int
    nranks: int
    time_ms: float | None  # None: only a correctness result was recorded
    mismatches: int | None
    checked: int | None
    dtype: str | None
    where: str  # file (and line)
    origin: str  # which kind of file it came from
    run: str = DEFAULT  # the rank pool it was measured in (runs.py)


@dataclass(frozen=True)
class RecordedDevice:
    rank: int
    host: str
    pid: int
    name: str  # GPU model


GroupJob = tuple[str, int, tuple[tuple[int, ...], ...]]  # collective, bytes, groups


@dataclass(frozen=True)
class GroupRecord:
    """One recorded job on a layout's groups: each group's time per call in ms and wrong
    elements; ``beside``: each group's time of the traffic beside it (wire.Beside)."""

    groups: dict[tuple[int, ...], tuple[float, int]]
    beside: dict[tuple[int, ...], float] = field(default_factory=dict)


@dataclass
class RecordedRun:
    directory: Path
    nccl_files: list[Path] = field(default_factory=list)  # every NCCL log, any run
    pools: dict[Path, str] = field(default_factory=dict)  # pool directory -> run name
    measurements: list[RecordedMeasurement] = field(default_factory=list)
    devices: list[RecordedDevice] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)  # our own JSON reports
    host: HostFacts | None = None  # from host captures, or a live run's "after" snapshot
    host_before: HostFacts | None = None  # a live run's snapshot before its collectives
    nodes: list[Node] = field(default_factory=list)  # node probes a live run kept
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    # jobs on a layout's groups (suites/test_workload.py), in the report's order: one key
    # can be several tests' (on 2 GPUs a TP and a DP group are the same ranks); a group
    # measured alone is a job of one group
    group_jobs: dict[GroupJob, list[GroupRecord]] = field(default_factory=dict)
    _logs: dict[str, NcclLog] = field(default_factory=dict)

    def run_of(self, path: Path) -> str:
        """The run a file belongs to: that of the nearest pool directory above it."""
        for parent in path.parents:
            if parent in self.pools:
                return self.pools[parent]
            if parent == self.directory:
                break
        return DEFAULT

    @property
    def runs(self) -> list[str]:
        """The runs the recording holds evidence of (the main run always)."""
        return sorted({DEFAULT, *self.pools.values()})

    def nccl_log(self, run: str = DEFAULT) -> NcclLog:
        """The recorded NCCL logs of one run, parsed once."""
        if run not in self._logs:
            self._logs[run] = parse_files([f for f in self.nccl_files if self.run_of(f) == run])
        return self._logs[run]

    def find(
        self, collective: Collective, nbytes: int, *, timed: bool, run: str = DEFAULT
    ) -> RecordedMeasurement | None:
        """The recorded result for this case; our own report first, then nccl-tests, then others."""
        for m in self.measurements:
            if (
                m.collective is collective
                and m.nbytes == nbytes
                and m.run == run
                and (m.time_ms is not None or not timed)
            ):
                if not timed and m.mismatches is None:
                    continue
                return m
        return None

    @property
    def report_facts(self) -> dict[str, Any]:
        """The run facts of the first recorded report (report/schema.py: either version)."""
        return run_facts(self.reports[0]) if self.reports else {}

    @property
    def rank_shm_devs(self) -> list[int | None]:
        """st_dev of the /dev/shm each rank saw, as a recorded report keeps it."""
        devs = str(self.report_facts.get("rank_shm_devs", ""))
        return [int(d) if d.isdigit() else None for d in devs.split(",")] if devs else []


class RecordingError(ValueError):
    """A file that looks like evidence but cannot be read; the message names it."""


def load(directory: Path) -> RecordedRun:
    """Read every file under ``directory`` (recursively) and keep what is evidence."""
    run = RecordedRun(directory)
    files = sorted(p for p in directory.rglob("*") if p.is_file())
    for path in files:
        if path.name == POOL_FILE:
            name = _pool_name(path)
            if name is not None:
                run.pools[path.parent] = name
                continue
        if path.stat().st_size > MAX_FILE_BYTES:
            run.ignored.append((path, f"larger than {MAX_FILE_BYTES >> 20} MiB"))
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        kinds = _classify(run, path, text)
        if not kinds:
            run.ignored.append((path, "no NCCL lines, nccl-tests output or known JSON"))
    # Our own measurements first: same method as a live run, so they are preferred.
    order = {"pytest-gpufabric report": 0, "nccl-tests JSON": 1, "nccl-tests": 2, "results JSON": 3}
    run.measurements.sort(key=lambda m: order.get(m.origin, 9))
    return run


def _pool_name(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and data.get("schema") == POOL_SCHEMA:
        return str(data.get("name", DEFAULT))
    return None


def _classify(run: RecordedRun, path: Path, text: str) -> list[str]:
    kinds = []
    stripped = text.lstrip()
    if stripped.startswith("{") or path.suffix == ".json":
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            looks = next((kind for marker, kind in _JSON_MARKERS if marker in text[:4096]), None)
            if looks is None and path.suffix == ".json":
                looks = "a JSON file (by its name)"
            if looks is not None:
                raise RecordingError(
                    f"{path}: looks like {looks} but is not valid JSON: "
                    f"{exc if isinstance(exc, ValueError) else 'nested too deeply'}"
                ) from None
            data = None
        if isinstance(data, dict):
            try:
                kind = _json(run, path, data) or _host_json(run, path, data)
            except RecordingError:
                raise
            except (TypeError, ValueError, AttributeError, KeyError, IndexError) as exc:
                raise RecordingError(
                    f"{path}: JSON of a known kind with something unexpected in it "
                    f"({type(exc).__name__}: {exc})"
                ) from None
            return [kind] if kind else []
    if host_captures.is_host_capture(text):
        if run.host is None:
            run.host = HostFacts(f"host captures in {run.directory}")
        kinds += host_captures.merge(run.host, text, path)
    if looks_like_nccl(text):
        run.nccl_files.append(path)
        kinds.append("NCCL log")
    nccl_tests = "# Collective test starting:" in text or "#  Rank " in text
    if nccl_tests and _nccl_tests_text(run, path, text):
        kinds.append("nccl-tests")
    return kinds


# Text in the first 4 KiB that says which kind of JSON a file means to be.
_JSON_MARKERS = (
    ('"pytest-gpufabric/', "a pytest-gpufabric report"),
    ('"pytest-gpufabric-', "a pytest-gpufabric snapshot"),
    ('"results"', "a results or nccl-tests JSON file"),
    ('"world"', "a results JSON file"),
)


def _host_json(run: RecordedRun, path: Path, data: dict[str, Any]) -> str | None:
    if data.get("schema") == NODE_SCHEMA:
        try:
            run.nodes.append(node_from_json(data, str(path)))
        except ValueError as exc:
            raise RecordingError(str(exc)) from None
        return "node probe"
    if data.get("schema") == HOST_SCHEMA:
        facts = host_from_json(data, str(path))
        if data.get("when") == "before":
            run.host_before = facts
        else:
            run.host = facts
        return "host snapshot"
    if host_captures.is_nvml_probe(data):
        if run.host is None:
            run.host = HostFacts(f"host captures in {run.directory}")
        host_captures.merge_nvml_probe(run.host, data, path)
        return "NVML probe"
    return None


def _collective(name: str) -> Collective | None:
    try:
        return Collective(name)
    except ValueError:
        return None


def nccl_tests_measurements(path: Path, text: str) -> list[RecordedMeasurement]:
    """The measurements of one nccl-tests stdout (benchmarks/nccl_compare.py)."""
    run = RecordedRun(path.parent)
    _nccl_tests_text(run, path, text)
    return run.measurements


def _nccl_tests_text(run: RecordedRun, path: Path, text: str) -> bool:
    op: Collective | None = None
    ranks: list[RecordedDevice] = []
    found = False
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("#"):
            if match := _OP.search(line):
                op = _collective(match[1])
                ranks = []
            elif match := _RANK.match(line):
                ranks.append(RecordedDevice(int(match[1]), match[4], int(match[3]), match[7]))
            continue
        match = _ROW.match(line)
        if match is None or op is None or not ranks:
            continue
        wrong = match[9]
        run.measurements.append(
            RecordedMeasurement(
                op,
                int(match[1]),
                len(ranks),
                float(match[6]) / 1e3,
                int(wrong) if wrong.isdigit() else None,
                int(match[2]) if wrong.isdigit() else None,
                _NCCL_TESTS_DTYPES.get(match[3]),
                f"{path}:{number}",
                "nccl-tests",
            )
        )
        found = True
    if found and not run.devices:
        run.devices = ranks
    return found


def _json(run: RecordedRun, path: Path, data: dict[str, Any]) -> str | None:
    if str(data.get("schema", "")).startswith(SCHEMA_PREFIX):
        problem = report_problem(data)
        if problem is not None:
            raise RecordingError(f"{path}: {problem}")
        tests = data["tests"]
        run.reports.append(data)
        for test in tests:
            props = test.get("properties", {})
            _group_jobs(run, props)
            # A comparison (the split cost) also measured its baseline in another run.
            for measured in (properties.read(props), properties.read_baseline(props)):
                if measured is None:
                    continue
                run.measurements.append(
                    RecordedMeasurement(
                        measured.collective,
                        measured.nbytes,
                        measured.nranks,
                        measured.time_ms,
                        measured.mismatches,
                        measured.checked,
                        measured.dtype,
                        f"{path} ({test.get('nodeid')})",
                        "pytest-gpufabric report",
                        measured.run,
                    )
                )
        return "pytest-gpufabric report"
    if (
        isinstance(data.get("results"), list)
        and isinstance(data.get("args"), list)
        and "config" in data
    ):
        return _nccl_tests_json(run, path, data)
    if isinstance(data.get("world"), int) and isinstance(data.get("results"), list):
        for entry in data["results"]:
            collective = _collective(str(entry.get("op", "")))
            if collective is None or "bytes" not in entry or "ms" not in entry:
                continue
            ok = entry.get("ok")
            run.measurements.append(
                RecordedMeasurement(
                    collective, int(entry["bytes"]), int(data["world"]), float(entry["ms"]),
                    None if ok is None else (0 if ok else 1), None, None, str(path), "results JSON",
                )
            )  # fmt: skip
        return "results JSON"
    return None


def _group_jobs(run: RecordedRun, props: dict[str, Any]) -> None:
    """A workload test's groups (all at once) and the groups measured alone, if any."""
    test = workload_properties.read(props)
    if test is None or any(g.time_ms is None for g in test.groups):
        return  # not a workload test, or a report from before times were kept
    collective, nbytes = test.collective, test.nbytes
    for group in test.groups:
        if group.alone_ms is not None:
            record = GroupRecord({group.ranks: (group.alone_ms, 0)})
            run.group_jobs.setdefault((collective, nbytes, (group.ranks,)), []).append(record)
    groups = {g.ranks: (g.time_ms or 0.0, g.mismatches) for g in test.groups}
    beside = {g.ranks: g.time_ms for g in test.beside if g.time_ms is not None}
    key = (collective, nbytes, tuple(groups))
    run.group_jobs.setdefault(key, []).append(GroupRecord(groups, beside))


def _nccl_tests_json(run: RecordedRun, path: Path, data: dict[str, Any]) -> str | None:
    program = Path(str(data["args"][0])).name if data["args"] else ""
    collective = _collective(program.removesuffix("_perf"))
    if collective is None:
        return None
    config = data.get("config", {})
    devices = config.get("devices", [])
    nranks = max(len(devices), 1) * int(config.get("nthreads", 1)) * int(config.get("ngpus", 1))
    for entry in data["results"]:
        body = entry.get("out_of_place") or entry.get("in_place")
        if not isinstance(body, dict) or "time" not in body:
            continue
        wrong = body.get("nwrong")
        run.measurements.append(
            RecordedMeasurement(
                collective, int(entry["size"]), nranks, float(body["time"]) / 1e3,
                None if wrong is None else int(wrong), int(entry.get("count", 0)) or None,
                _NCCL_TESTS_DTYPES.get(str(entry.get("type"))), str(path), "nccl-tests JSON",
            )
        )  # fmt: skip
    if not run.devices:  # one entry per process; each drives nthreads × ngpus GPUs
        per_process = int(config.get("nthreads", 1)) * int(config.get("ngpus", 1))
        for d in devices:
            for _ in range(per_process):
                run.devices.append(
                    RecordedDevice(
                        len(run.devices),
                        str(d.get("hostname", "")),
                        int(d.get("pid", 0)),
                        str(d.get("device_info", "")),
                    )
                )
    return "nccl-tests JSON"
