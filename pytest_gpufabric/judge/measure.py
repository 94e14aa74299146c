"""From per-rank replies to one measurement, with nccl-tests' conventions: each rank times
loops of back-to-back calls (rank/ops.py), a rank's time is the median over its loops of the
time per call, the collective's time is the slowest rank's, algbw is the message size over
that time and busbw is algbw times the collective's factor. Every loop's time is kept, so the
spread between repeats shows a flaky link."""

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
    repeats_ms: tuple[tuple[float, ...], ...] = ()  # by rank, each loop's time per call
    method: str = ""  # how the ranks timed it (rank/ops.py: graph, loop, host)
    note: str = ""  # why the method is not the one asked for

    @property
    def repeats(self) -> int:
        return min((len(r) for r in self.repeats_ms), default=0)

    @property
    def repeat_busbw(self) -> tuple[float, ...]:
        """busbw of each repeat (its slowest rank)."""
        return tuple(
            bandwidth(
                self.collective, self.nbytes, self.nranks, max(r[i] for r in self.repeats_ms)
            )[1]
            for i in range(self.repeats)
        )

    @property
    def spread_pct(self) -> float | None:
        """(fastest - slowest repeat) / the judged busbw, in %; None with fewer than 2."""
        values = self.repeat_busbw
        if len(values) < 2 or not self.busbw_gbps:
            return None
        return (max(values) - min(values)) / self.busbw_gbps * 100

    @property
    def time_us(self) -> float:
        return self.time_ms * 1e3

    def how(self) -> str:
        """How it was measured, in words, for failure messages."""
        if self.recorded:
            return f"recorded in {self.recorded}"
        per_rank = ", ".join(f"{t:.4g}" for t in self.rank_median_ms)
        if not self.repeats:
            return (f"median of {self.iters} iterations after {self.warmup} warm-up, slowest "
                    f"rank {self.slowest_rank}; per rank {per_rank} ms")  # fmt: skip
        method = {"graph": "replayed as a CUDA graph", "loop": "launched back to back",
                  "host": "host clock"}.get(self.method, self.method)  # fmt: skip
        spread = "" if self.spread_pct is None else f", spread {self.spread_pct:.1f}%"
        repeats = ", ".join(f"{b:.1f}" for b in self.repeat_busbw)
        note = f"; {self.note}" if self.note else ""
        return (
            f"median of {self.repeats} timed loops of {self.iters} calls ({method}) after "
            f"{self.warmup} warm-up, slowest rank {self.slowest_rank}; per rank {per_rank} ms; "
            f"busbw per loop {repeats} GB/s{spread}{note}"
        )

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
        warmup=results[0].warmup or warmup,  # what the ranks made (a slow call: fewer)
        iters=results[0].iters or iters,
        rank_median_ms=medians,
        checked=results[0].checked,
        mismatches=sum(r.mismatches for r in results),
        first_mismatch=first,
        recorded=results[0].recorded,
        repeats_ms=tuple(r.times_ms for r in results) if medians else (),
        method=results[0].method,
        note=next((r.note for r in results if r.note), ""),
    )
