"""From per-rank replies to one measurement, with nccl-tests' conventions: a rank's time is
the median of its iterations, the collective's time is the slowest rank's, algbw is the
message size over that time and busbw is algbw times the collective's factor."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..collectives import Collective
from ..launch.wire import JobResult
from ..units import format_size


@dataclass(frozen=True)
class Mismatch:
    rank: int
    index: int
    got: float
    want: float


@dataclass(frozen=True)
class Measurement:
    collective: Collective
    nbytes: int
    dtype: str
    nranks: int
    warmup: int
    iters: int
    rank_median_ms: tuple[float, ...]  # by rank; empty when nothing was timed
    checked: int  # result elements compared on each rank (0: not verified)
    mismatches: int  # summed over ranks
    first_mismatch: Mismatch | None
    recorded: str | None = None  # where a replayed measurement came from

    @property
    def label(self) -> str:
        return f"{self.collective.value} {format_size(self.nbytes)}"

    @property
    def time_ms(self) -> float:
        return max(self.rank_median_ms)

    @property
    def slowest_rank(self) -> int:
        return self.rank_median_ms.index(self.time_ms)

    @property
    def algbw_gbps(self) -> float:
        return bandwidth(self.collective, self.nbytes, self.nranks, self.time_ms)[0]

    @property
    def busbw_gbps(self) -> float:
        return bandwidth(self.collective, self.nbytes, self.nranks, self.time_ms)[1]


def bandwidth(
    collective: Collective, nbytes: int, nranks: int, time_ms: float
) -> tuple[float, float]:
    """(algbw, busbw) in GB/s (10^9 bytes per second, as nccl-tests prints)."""
    algbw = nbytes / (time_ms / 1e3) / 1e9
    return algbw, algbw * collective.busbw_factor(nranks)


def from_results(
    collective: Collective, dtype: str, warmup: int, iters: int, results: Sequence[JobResult]
) -> Measurement:
    """Combine the replies of every rank (index = rank) to one collective job."""
    medians = tuple(r.median_ms for r in results if r.median_ms is not None)
    if medians and len(medians) != len(results):
        raise ValueError("some ranks timed the collective and others did not")
    first: Mismatch | None = None
    for rank, reply in enumerate(results):
        bad = reply.first_mismatch
        if bad is not None and first is None:
            first = Mismatch(rank, bad.index, bad.got, bad.want)
    return Measurement(
        collective=collective,
        nbytes=results[0].nbytes,
        dtype=dtype,
        nranks=len(results),
        warmup=warmup,
        iters=iters,
        rank_median_ms=medians,
        checked=results[0].checked,
        mismatches=sum(r.mismatches for r in results),
        first_mismatch=first,
        recorded=results[0].recorded,
    )
