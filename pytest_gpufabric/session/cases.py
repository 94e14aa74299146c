"""What the suites parametrize over: one correctness case per collective × size, one
bandwidth case per floor of the profile (the main run's section, and each isolation run's).
A run the profile does not ask for is one placeholder case, skipped with the reason."""

from __future__ import annotations

from dataclasses import dataclass

from ..collectives import ALL_COLLECTIVES, DTYPE_SIZES, Collective, pattern_modulus
from ..profiles.latency import LATENCY_COLLECTIVES, LATENCY_SIZES, ceiling_for
from ..profiles.model import Ceiling, Floor, Profile, SplitLimit
from ..runs import DEFAULT, ISOLATION_RUNS, NVLINK_ONLY, SPLIT, main_kind
from ..units import format_size

# Correctness runs use element counts that are prime per rank-chunk, so tails, unaligned
# chunks and uneven channel splits are all exercised.
CORRECTNESS_CHUNKS_CPU = (1021, 65537)
CORRECTNESS_CHUNKS_GPU = (1021, 65537, 4194319)


@dataclass(frozen=True)
class BandwidthCase:
    collective: Collective
    nbytes: int
    floor: Floor | None
    kind: str  # the bandwidth section that judges it
    run: str = DEFAULT  # the pool it runs in (runs.py)

    @property
    def id(self) -> str:
        size = f"{self.collective.value}-{format_size(self.nbytes)}"
        if self.run == DEFAULT:
            return size
        return f"{self.run}-{size}" if self.floor is not None else self.run


@dataclass(frozen=True)
class CorrectnessCase:
    collective: Collective
    chunk: int  # elements per rank-chunk
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.collective.value}-{self.chunk}x{self.dtype}"

    def nbytes(self, nranks: int) -> int:
        """The nccl-tests size whose layout has exactly ``chunk`` elements per rank-chunk."""
        per_rank = self.chunk * DTYPE_SIZES[self.dtype]
        if self.collective in (
            Collective.ALL_GATHER,
            Collective.REDUCE_SCATTER,
            Collective.ALLTOALL,
        ):
            return per_rank * nranks
        return per_rank


# The split-cost comparison (runs.SPLIT_RUN): the collectives whose traffic crosses every
# pair of ranks, at a size where bandwidth, not latency, decides (1 GiB as the intra_node
# floors and nccl-tests use; gloo on CPU moves 1 GiB slowly, so 1 MiB there).
SPLIT_COLLECTIVES = (Collective.ALL_REDUCE, Collective.ALL_GATHER, Collective.REDUCE_SCATTER)
SPLIT_SIZE = {"nccl": 1 << 30, "gloo": 1 << 20}


@dataclass(frozen=True)
class SplitCase:
    """One collective measured on one NCCL host and with every rank its own host."""

    collective: Collective
    nbytes: int
    limit: SplitLimit | None  # None: the profile does not ask (compared, not judged)

    @property
    def id(self) -> str:
        return f"{self.collective.value}-{format_size(self.nbytes)}"

    @property
    def key(self) -> str:
        """Its certification key."""
        return f"{SPLIT}/{self.id}"


def split_case(collective: Collective, profile: Profile | None, backend: str) -> SplitCase:
    limit = profile.split if profile is not None else None
    if limit is not None and limit.nbytes:
        return SplitCase(collective, limit.nbytes, limit)
    return SplitCase(collective, SPLIT_SIZE.get(backend, 1 << 20), limit)


# busbw of a node no profile fits (profiles/implied.py): the sizes of the shipped profiles.
IMPLIED_SIZES = (1 << 20, 16 << 20, 256 << 20, 1 << 30)


def bandwidth_key(case: BandwidthCase) -> str:
    """The certification key of a floor: its section and case (one id may be in two sections)."""
    return f"bandwidth/{case.kind}/{case.id}"


def bandwidth_cases(profile: Profile | None, nodes: int) -> list[BandwidthCase]:
    """The main run's cases: bandwidth.intra_node floors, or bandwidth.inter_node ones when
    the ranks span several NCCL nodes."""
    kind = main_kind(nodes)
    run = profile.runs.get(kind) if profile is not None else None
    if profile is not None and profile.implied:  # measured at the sizes floors usually have
        return [BandwidthCase(c, n, None, kind) for c in ALL_COLLECTIVES for n in IMPLIED_SIZES]
    if run is None or not run.floors:
        return [BandwidthCase(c, 1 << 20, None, kind) for c in ALL_COLLECTIVES]
    return [BandwidthCase(f.collective, f.nbytes, f, kind) for f in run.floors]


def isolation_cases(profile: Profile | None) -> list[BandwidthCase]:
    """The isolation runs' cases; a run the profile does not ask for is one skipped case.
    nvlink_only without floors of its own is judged against bandwidth.intra_node."""
    cases: list[BandwidthCase] = []
    for kind in ISOLATION_RUNS:
        run = profile.runs.get(kind) if profile is not None else None
        floors = run.floors if run is not None else ()
        if run is not None and not floors and kind == NVLINK_ONLY and profile is not None:
            floors = profile.floors
        if not floors:
            cases.append(BandwidthCase(Collective.ALL_REDUCE, 1 << 30, None, kind, kind))
        cases += [BandwidthCase(f.collective, f.nbytes, f, kind, kind) for f in floors]
    return cases


@dataclass(frozen=True)
class LatencyCase:
    """Time per call of a small collective in the main run, against ``latency`` ceilings."""

    collective: Collective
    nbytes: int
    ceiling: Ceiling | None

    @property
    def id(self) -> str:
        return f"{self.collective.value}-{format_size(self.nbytes)}"

    @property
    def key(self) -> str:
        return f"latency/{self.id}"


# Latency loops are longer than bandwidth ones: a call takes microseconds, and a loop of
# 100 still ends in a few milliseconds.
LATENCY_ITERS = 100


def latency_cases(profile: Profile | None) -> list[LatencyCase]:
    """Every default size of every latency collective, and any size the profile has a
    ceiling for."""
    ceilings = profile.latency if profile is not None else ()
    wanted = {(c, n) for c in LATENCY_COLLECTIVES for n in LATENCY_SIZES}
    wanted |= {(c.collective, c.nbytes) for c in ceilings}
    ordered = sorted(wanted, key=lambda k: (ALL_COLLECTIVES.index(k[0]), k[1]))
    return [LatencyCase(c, n, ceiling_for(ceilings, c, n)) for c, n in ordered]


# bandwidth.timing "auto": a CUDA graph below this size, calls launched back to back from it.
# Measured on 2 × H200 against nccl-tests, median of 3 rounds (docs/validation.md, run K): at
# 1 and 4 MiB the Python launch cost of each call is most of the call (loop: 0.25-0.78 of
# nccl-tests' busbw; graph: 0.91-1.39); from 16 MiB the launch overlaps the previous call and
# a loop matches nccl-tests (0.98-1.08) where a graph is a little slower (0.90-1.03).
GRAPH_BELOW = 16 << 20


def timing_method(setting: str, nbytes: int) -> str:
    """The method a rank is asked to time with (rank/ops.py; CPU ranks use the host clock)."""
    if setting != "auto":
        return setting
    return "graph" if nbytes < GRAPH_BELOW else "loop"


def correctness_cases(backend: str, dtype: str, nranks: int) -> list[CorrectnessCase]:
    chunks = CORRECTNESS_CHUNKS_GPU if backend == "nccl" else CORRECTNESS_CHUNKS_CPU
    try:
        pattern_modulus(dtype, nranks)
    except ValueError:
        dtype = "float32"  # too many ranks for an exact bf16 sum
    return [CorrectnessCase(c, n, dtype) for c in ALL_COLLECTIVES for n in chunks]
