"""What each collective moves, how nccl-tests turns its time into bus bandwidth, and the
deterministic data pattern whose exact result every rank checks.

Pure Python: the worker uses the same definitions with torch tensors, the controller and
the unit tests use them with plain integers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Collective(str, Enum):
    ALL_REDUCE = "all_reduce"
    ALL_GATHER = "all_gather"
    REDUCE_SCATTER = "reduce_scatter"
    ALLTOALL = "alltoall"
    BROADCAST = "broadcast"
    SENDRECV = "sendrecv"

    def busbw_factor(self, nranks: int) -> float:
        """nccl-tests' busbw/algbw ratio (doc/PERFORMANCE.md in NVIDIA/nccl-tests)."""
        if self is Collective.ALL_REDUCE:
            return 2 * (nranks - 1) / nranks
        if self in (Collective.ALL_GATHER, Collective.REDUCE_SCATTER, Collective.ALLTOALL):
            return (nranks - 1) / nranks
        return 1.0


ALL_COLLECTIVES: tuple[Collective, ...] = tuple(Collective)

DTYPE_SIZES = {"float32": 4, "bfloat16": 2, "float16": 2}

# Largest integer every value up to which the dtype represents exactly (significand + 1 bits).
_EXACT_LIMIT = {"float32": 1 << 24, "bfloat16": 1 << 8, "float16": 1 << 11}


@dataclass(frozen=True)
class Layout:
    """Element counts of one rank's buffers for a message of ``nbytes`` (nccl-tests' size)."""

    collective: Collective
    nranks: int
    dtype: str
    chunk: int  # elements per rank-chunk (all_gather, reduce_scatter, alltoall); else == count
    send: int  # elements in the input buffer
    recv: int  # elements in the output buffer (0: in place)

    @property
    def nbytes(self) -> int:
        """The size nccl-tests would print for this layout, after rounding to whole chunks."""
        itemsize = DTYPE_SIZES[self.dtype]
        if self.collective is Collective.ALL_GATHER:
            return self.recv * itemsize
        return self.send * itemsize


def layout(collective: Collective, nbytes: int, nranks: int, dtype: str) -> Layout:
    """Buffers as nccl-tests sizes them: all_gather's size is the gathered output,
    reduce_scatter's and alltoall's the full input; counts are rounded down to whole chunks."""
    if nranks < 1:
        raise ValueError("nranks must be >= 1")
    itemsize = DTYPE_SIZES[dtype]
    count = max(nbytes // itemsize, 1)
    if collective in (Collective.ALL_GATHER, Collective.REDUCE_SCATTER, Collective.ALLTOALL):
        chunk = max(count // nranks, 1)
        full = chunk * nranks
        if collective is Collective.ALL_GATHER:
            return Layout(collective, nranks, dtype, chunk, send=chunk, recv=full)
        if collective is Collective.REDUCE_SCATTER:
            return Layout(collective, nranks, dtype, chunk, send=full, recv=chunk)
        return Layout(collective, nranks, dtype, chunk, send=full, recv=full)
    if collective is Collective.SENDRECV:
        return Layout(collective, nranks, dtype, count, send=count, recv=count)
    return Layout(collective, nranks, dtype, count, send=count, recv=0)


def pattern_modulus(dtype: str, nranks: int) -> int:
    """Values of the pattern are 0..m-1, with m chosen so that a sum over all ranks stays an
    exactly representable integer: any wrong, lost or duplicated contribution then shows up
    as an exact mismatch instead of hiding in rounding."""
    limit = _EXACT_LIMIT[dtype]
    modulus = min(limit // max(nranks, 1), 97)
    if modulus < 3:
        raise ValueError(
            f"{dtype} cannot hold an exact {nranks}-rank sum; use float32 for correctness runs"
        )
    return modulus


def pattern_value(rank: int, index: int, modulus: int) -> int:
    """Value rank ``rank`` puts at ``index`` of its input.

    Consecutive integers from ``7 * rank``, wrapped at ``modulus``: the same shape as the
    all-reduce demo in tests/data/seeds/001_4d4b157738f4d5a3.txt (rank r holds r, r+1, ...).
    """
    return (rank * 7 + index) % modulus


def expected_value(layout_: Layout, rank: int, index: int, modulus: int) -> int:
    """Exact value rank ``rank`` must hold at ``index`` of its result buffer."""
    n = layout_.nranks
    op = layout_.collective
    if op is Collective.ALL_REDUCE:
        return sum(pattern_value(r, index, modulus) for r in range(n))
    if op is Collective.ALL_GATHER:
        src, offset = divmod(index, layout_.chunk)
        return pattern_value(src, offset, modulus)
    if op is Collective.REDUCE_SCATTER:
        return sum(pattern_value(r, rank * layout_.chunk + index, modulus) for r in range(n))
    if op is Collective.ALLTOALL:
        src, offset = divmod(index, layout_.chunk)
        return pattern_value(src, rank * layout_.chunk + offset, modulus)
    if op is Collective.BROADCAST:
        return pattern_value(0, index, modulus)
    return pattern_value((rank - 1) % n, index, modulus)  # sendrecv ring: from the left
