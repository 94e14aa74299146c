"""Instance profiles as data: what a node of a given type must have and how fast its
collectives must be. One YAML file per profile in ``thresholds/`` (parse.py reads it;
docs/profiles.md documents every key and thresholds/profile.schema.json describes them).

Every floor and expectation keeps the file and line it came from and its ``source``, so a
failing test can say where the expectation came from. A profile may ``extends:`` another:
it inherits every value with the parent's file, line and source, and whatever it states
itself replaces the inherited value (``null`` removes it). catalogue.py resolves the chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from ..collectives import Collective
from ..runs import INTRA_NODE


class ProfileError(Exception):
    """One or more problems in profile files, each ``file:line: key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems")
        self.problems = problems


@dataclass(frozen=True)
class Floor:
    """Minimum bus bandwidth for one collective at one message size in one kind of run."""

    collective: Collective
    nbytes: int
    busbw_gbps: float
    source: str
    margin: str
    file: Path
    line: int
    run: str = "intra_node"  # the bandwidth section it belongs to
    warn_band_pct: float = 0.0  # pass, with a warning, below floor × (1 + warn_band_pct/100)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def warn_below_gbps(self) -> float:
        return self.busbw_gbps * (1 + self.warn_band_pct / 100)


@dataclass(frozen=True)
class Expectation:
    """One expected behaviour, with where it is written and why."""

    key: str  # "nccl.intra_node.transport"
    value: object
    file: Path
    line: int
    source: str

    @property
    def where(self) -> str:
        # Line 0: not from a file (implied.py: "the hardware of <node>").
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    def cite(self) -> str:
        return f"{self.key} in {self.where}; source: {self.source}"

    @property
    def integer(self) -> int:
        return int(self.value) if isinstance(self.value, (int, float, str)) else 0

    @property
    def number(self) -> float:
        return float(self.value) if isinstance(self.value, (int, float, str)) else 0.0

    @property
    def names(self) -> tuple[str, ...]:
        """The value as a tuple of strings (lists such as nccl.network.names)."""
        if isinstance(self.value, (tuple, list)):
            return tuple(str(v) for v in self.value)
        return (str(self.value),)


TRANSPORTS = ("P2P", "SHM", "NET")
KNOWN_PLUGINS = ("aws-ofi-nccl",)


@dataclass(frozen=True)
class NcclExpectations:
    """What NCCL must do on this instance type (profile section ``nccl``); None = not judged."""

    transport: Expectation | None = None  # intra-node: P2P | SHM | NET
    path: Expectation | None = None  # intra-node graph path type, e.g. NVL
    p2p_read: Expectation | None = None
    nvls: Expectation | None = None
    channels: Expectation | None = None  # coll channels a healthy run uses (diagnosis only)
    networks: Expectation | None = None  # tuple of accepted net names ("Using network X")
    gdr: Expectation | None = None
    plugin: Expectation | None = None
    provider: Expectation | None = None
    nics: Expectation | None = None
    protocol: Expectation | None = None


@dataclass(frozen=True)
class HostExpectations:
    """What the host must have (profile section ``host``); None = not judged."""

    shm_min_gib: Expectation | None = None
    fabric_manager: Expectation | None = None
    nvlink_links: Expectation | None = None  # active links per GPU
    nvlink_version: Expectation | None = None  # "4.0"
    max_crc_per_s: Expectation | None = None  # NVLink CRC errors per second and link
    max_replay: Expectation | None = None
    max_recovery: Expectation | None = None
    p2p: Expectation | None = None  # capabilities every GPU pair must have
    pcie_gen: Expectation | None = None
    pcie_width: Expectation | None = None
    nic_affinity: Expectation | None = None  # farthest allowed GPU-NIC distance
    rdma_kind: Expectation | None = None  # efa | ib
    rdma_devices: Expectation | None = None
    memlock_unlimited: Expectation | None = None
    rdma_gdr: Expectation | None = None


@dataclass(frozen=True)
class BandwidthRun:
    """One kind of run a profile gates (a ``bandwidth.<kind>`` section) and its floors."""

    kind: str
    floors: tuple[Floor, ...] = ()
    nodes: int = 1  # inter_node: nodes the floors hold for; network_only: NCCL_HOSTID groups
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # extra env
    warn_band_pct: float | None = None  # None: the profile's bandwidth.warn_band

    def floor_for(self, collective: Collective, nbytes: int) -> Floor | None:
        for floor in self.floors:
            if floor.collective is collective and floor.nbytes == nbytes:
                return floor
        return None


@dataclass(frozen=True)
class SplitLimit:
    """``bandwidth.split``: how much splitting a node into one NCCL host per GPU (one pod per
    GPU) may cost: busbw on one host ÷ busbw split, at most ``max_slowdown``."""

    max_slowdown: float
    nbytes: int | None  # message size of the comparison; None: the default for the backend
    source: str
    margin: str
    file: Path
    line: int  # of max_slowdown

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def cite(self) -> str:
        margin = f"; margin: {self.margin}" if self.margin else ""
        return f"bandwidth.split.max_slowdown in {self.where}; source: {self.source}{margin}"


@dataclass(frozen=True)
class Ceiling:
    """Longest time one small collective may take (profile section ``latency``): the
    slowest rank's time per call, in microseconds."""

    collective: Collective
    nbytes: int
    max_us: float
    source: str
    margin: str
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


Shape = tuple[int, int, int]  # a parallel layout: tp, pp, dp (workload/layout.py)


@dataclass(frozen=True)
class WorkloadFloors:
    """Section ``workload``: busbw floors per parallel layout, group kind ("tp", "pp",
    "dp"), collective and size, for each group while every group of its kind runs
    (suites/test_workload.py), on runs over ``nodes`` nodes."""

    floors: Mapping[tuple[Shape, str], tuple[Floor, ...]]
    nodes: int = 1
    line: int = 0  # of the section

    @property
    def layouts(self) -> tuple[Shape, ...]:
        """The layouts with floors, in the file's order (suites/test_workload.py runs them
        when --gpufabric-layout is not given)."""
        return tuple(dict.fromkeys(shape for shape, _ in self.floors))

    def floor_for(
        self, shape: Shape, kind: str, collective: Collective, nbytes: int
    ) -> Floor | None:
        for floor in self.floors.get((shape, kind), ()):
            if floor.collective is collective and floor.nbytes == nbytes:
                return floor
        return None


DEFAULT_WARN_BAND_PCT = 5.0
# How collectives are timed when a profile does not say (bandwidth.warmup, iters, repeats,
# timing), and for a run without a profile.
DEFAULT_WARMUP, DEFAULT_ITERS, DEFAULT_REPEATS, DEFAULT_TIMING = 5, 20, 3, "auto"
TIMINGS = ("auto", "graph", "loop")  # bandwidth.timing; auto: session/cases.py timing_method


@dataclass(frozen=True)
class Profile:
    name: str
    file: Path
    description: str
    gpu_model: str
    gpu_count: int
    dtype: str
    warmup: int
    iters: int
    ranks_set: int | None = None  # bandwidth.ranks as written; None: one rank per GPU
    runs: Mapping[str, BandwidthRun] = field(default_factory=lambda: MappingProxyType({}))
    nccl: NcclExpectations = field(default_factory=NcclExpectations)
    host: HostExpectations = field(default_factory=HostExpectations)
    gpu_memory_gib: float | None = None
    warn_band_pct: float = DEFAULT_WARN_BAND_PCT
    extends: tuple[str, ...] = ()  # the parent chain, nearest first
    files: tuple[Path, ...] = ()  # this file and its ancestors' files
    split: SplitLimit | None = None  # bandwidth.split; None: the split cost is not judged
    repeats: int = DEFAULT_REPEATS  # timed loops of ``iters`` calls (their spread is kept)
    timing: str = DEFAULT_TIMING  # TIMINGS
    latency: tuple[Ceiling, ...] = ()  # section latency; empty: measured, not judged
    implied: bool = False  # no profile fits the node: expectations from its hardware (implied.py)
    workload: WorkloadFloors | None = None  # section workload; None: groups get a fair share

    @property
    def backend(self) -> str:
        """gpu.count 0 describes a CPU-only node: its floors are for gloo."""
        return "nccl" if self.gpu_count else "gloo"

    @property
    def ranks(self) -> int:
        """The rank count the floors hold for (default: one per GPU; 2 gloo ranks on CPU)."""
        return self.ranks_set or self.gpu_count or 2

    @property
    def floors(self) -> tuple[Floor, ...]:
        """The single-node floors (bandwidth.intra_node)."""
        run = self.runs.get(INTRA_NODE)
        return run.floors if run else ()

    def floor_for(self, collective: Collective, nbytes: int) -> Floor | None:
        run = self.runs.get(INTRA_NODE)
        return run.floor_for(collective, nbytes) if run else None
