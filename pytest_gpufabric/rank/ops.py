"""Tensor work done inside a rank: buffers, the deterministic pattern, timing and the exact
check of results. Imported only by rank processes (and unit tests): it needs torch.

Patterns and expected results are produced in slices so that checking a multi-GiB buffer
needs only a slice's worth of extra memory (an 8 GiB all_reduce on a 40 GB A100 included).
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from ..collectives import Collective, Layout, pattern_modulus
from ..launch.wire import FirstMismatch, JobResult


@dataclass(frozen=True)
class Timing:
    warmup: int
    iters: int  # per repeat; 0: not timed
    repeats: int
    method: str  # GRAPH or LOOP on GPU; the host clock on CPU whatever is asked

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
POISON = -1  # never a pattern value: an output element nobody wrote stays -1
SLICE = 1 << 26  # elements per slice when filling and checking

# torch 2.13 renamed the tensor forms (the old names warn); older torch has only the old ones.
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
_reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor


def _index(start: int, count: int, device: torch.device) -> torch.Tensor:
    dtype = torch.int32 if start + count < 2**31 else torch.int64
    return torch.arange(start, start + count, dtype=dtype, device=device)


def pattern(rank: int, start: int, count: int, modulus: int, device: torch.device) -> torch.Tensor:
    """collectives.pattern_value over indices start..start+count-1, as integers."""
    return (_index(start, count, device) + rank * 7) % modulus


def expected(
    layout: Layout, rank: int, modulus: int, start: int, count: int, device: torch.device
) -> torch.Tensor:
    """collectives.expected_value for result elements start..start+count-1 of ``rank``, as
    integers (exact; compared with the result after conversion)."""
    n, chunk, op = layout.nranks, layout.chunk, layout.collective
    if op in (Collective.ALL_REDUCE, Collective.REDUCE_SCATTER):
        base = start + (rank * chunk if op is Collective.REDUCE_SCATTER else 0)
        total = pattern(0, base, count, modulus, device)
        for src in range(1, n):
            total = total + pattern(src, base, count, modulus, device)
        return total
    if op in (Collective.ALL_GATHER, Collective.ALLTOALL):
        index = _index(start, count, device)
        source, offset = index // chunk, index % chunk
        if op is Collective.ALLTOALL:
            offset = offset + rank * chunk
        return (offset + source * 7) % modulus
    if op is Collective.BROADCAST:
        return pattern(0, start, count, modulus, device)
    return pattern((rank - 1) % n, start, count, modulus, device)


class Buffers:
    def __init__(self, layout: Layout, device: torch.device) -> None:
        dtype = _DTYPES[layout.dtype]
        self.send = torch.empty(layout.send, dtype=dtype, device=device)
        self.recv = (
            torch.empty(layout.recv, dtype=dtype, device=device) if layout.recv else self.send
        )

    def fill(self, layout: Layout, rank: int, modulus: int) -> None:
        """Input pattern in, poison in every output element (and in non-root broadcast buffers)."""
        if layout.collective is Collective.BROADCAST and rank != 0:
            self.send.fill_(POISON)
        else:
            for start in range(0, layout.send, SLICE):
                count = min(SLICE, layout.send - start)
                self.send[start : start + count].copy_(
                    pattern(rank, start, count, modulus, self.send.device)
                )
        if self.recv is not self.send:
            self.recv.fill_(POISON)

    def check(
        self, layout: Layout, rank: int, modulus: int
    ) -> tuple[int, int, FirstMismatch | None]:
        """Compare every result element with its exact expected value, slice by slice:
        (elements checked, mismatches, the first mismatch)."""
        total = self.recv.numel()
        mismatches, first = 0, None
        for start in range(0, total, SLICE):
            count = min(SLICE, total - start)
            want = expected(layout, rank, modulus, start, count, self.recv.device)
            got = self.recv[start : start + count]
            bad = got != want.to(got.dtype)
            nbad = int(bad.sum().item())
            if nbad and first is None:
                at = int(torch.argmax(bad.to(torch.uint8)).item())
                first = FirstMismatch(start + at, float(got[at].item()), float(want[at].item()))
            mismatches += nbad
        return total, mismatches, first


@dataclass(frozen=True)
class Group:
    """The process group a job runs on (a layout's TP, DP or pipeline group), with its
    members' global ranks in order; ``chain``: a pipeline's stage-to-stage traffic."""

    handle: Any  # dist.ProcessGroup
    ranks: tuple[int, ...]
    chain: bool = False


def operation(
    layout: Layout, buffers: Buffers, rank: int, group: Group | None = None
) -> Callable[[], None]:
    """The collective call itself, ready to be timed; ``rank`` is the rank in ``group``."""
    op, n = layout.collective, layout.nranks
    send, recv = buffers.send, buffers.recv
    on = {"group": group.handle} if group is not None else {}
    if op is Collective.ALL_REDUCE:
        return lambda: _wait(dist.all_reduce(send, **on))
    if op is Collective.ALL_GATHER:
        return lambda: _wait(_all_gather(recv, send, **on))
    if op is Collective.REDUCE_SCATTER:
        return lambda: _wait(_reduce_scatter(recv, send, **on))
    if op is Collective.ALLTOALL:
        return lambda: _wait(dist.all_to_all_single(recv, send, **on))
    if op is Collective.BROADCAST:
        src = group.ranks[0] if group is not None else 0
        return lambda: _wait(dist.broadcast(send, src=src, **on))
    members = group.ranks if group is not None else tuple(range(n))

    def peer(index: int) -> int:  # the global rank at a position of the group's ring
        return members[index % n]

    def ring() -> None:  # every rank sends right and receives from the left
        ops = [
            dist.P2POp(dist.isend, send, peer(rank + 1), **on),
            dist.P2POp(dist.irecv, recv, peer(rank - 1), **on),
        ]
        for request in dist.batch_isend_irecv(ops):
            request.wait()

    def chain() -> None:
        """A pipeline step both ways at once, as 1F1B's steady state has it: activations to
        the next stage, gradients to the previous one (the first and last stages have one
        neighbour; the receive buffer is shared: only the timing counts here)."""
        ops = []
        if rank + 1 < n:
            ops += [dist.P2POp(dist.isend, send, peer(rank + 1), **on),
                    dist.P2POp(dist.irecv, recv, peer(rank + 1), **on)]  # fmt: skip
        if rank > 0:
            ops += [dist.P2POp(dist.isend, send, peer(rank - 1), **on),
                    dist.P2POp(dist.irecv, recv, peer(rank - 1), **on)]  # fmt: skip
        for request in dist.batch_isend_irecv(ops) if ops else ():
            request.wait()

    return chain if group is not None and group.chain else ring


def _wait(work: Any) -> None:
    # Blocking collectives return None; keep one spelling for both.
    if work is not None:
        work.wait()


# How a rank times a loop (Job.timing, JobResult.method).
GRAPH = "graph"  # the loop captured once in a CUDA graph, replayed per repeat
LOOP = "loop"  # the loop launched from Python per repeat, CUDA events around it
HOST = "host"  # the host clock around the loop (gloo on CPU blocks in every call)


# A timed loop stops growing at this length: once one call takes more than budget / iters
# (1 GiB over TCP sockets takes ~0.4 s), fewer calls per loop lose no accuracy (the launch
# cost is nothing next to the call) and a loop of 20 would take the gate minutes.
LOOP_BUDGET_S = 0.25


@dataclass(frozen=True)
class Timed:
    times_ms: list[float]  # per repeat: the loop's time per call
    method: str
    note: str  # why the method differs from the one asked for
    warmup: int  # warm-up calls made (the budget probe's two included)
    iters: int  # calls per loop


def time_loops(
    fn: Callable[[], None], timing: Timing, cuda: bool, device: torch.device
) -> Timed:
    """nccl-tests' method: warm-up calls, then loops of calls back to back, each loop timed as
    a whole, so a call's launch cost overlaps the previous call as it does in a training
    step (per-call events add it to every sample: issue 11 measured 0.23 of nccl-tests'
    busbw at 1 MiB that way). A graph removes the Python launch cost altogether (nccl-tests
    ``-G``). Slow calls get shorter loops (LOOP_BUDGET_S), agreed by all ranks."""
    repeats = max(timing.repeats, 1)
    warmup, iters = _budget(fn, timing.warmup, timing.iters, cuda, device)
    made = warmup + 2
    if not cuda:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            times.append((time.perf_counter() - t0) * 1e3 / iters)
        return Timed(times, HOST, "", made, iters)
    if timing.method == GRAPH:
        try:
            return Timed(_time_graph(fn, warmup, iters, repeats), GRAPH, "", made, iters)
        except RuntimeError as exc:  # capture refused: time it launched from Python instead
            # (a rank whose capture worked makes other calls: the job deadline then names
            # the ranks that wait, as for any hang)
            torch.cuda.synchronize()
            note = f"CUDA graph capture failed ({str(exc).splitlines()[0][:160]})"
            return Timed(_time_loop(fn, 0, iters, repeats), LOOP, note, made, iters)
    return Timed(_time_loop(fn, warmup, iters, repeats), LOOP, "", made, iters)


def _budget(
    fn: Callable[[], None], warmup: int, iters: int, cuda: bool, device: torch.device
) -> tuple[int, int]:
    """(warm-up calls still to make, calls per loop): two warm-up calls, the second timed
    (the first may connect), the slowest rank's time agreed by an all_reduce (every rank
    must make the same number of calls)."""
    slowest = torch.tensor([_probe(fn, cuda)], dtype=torch.float32, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    return _fit(float(slowest.item()), warmup, iters)


def _fit(seconds: float, warmup: int, iters: int) -> tuple[int, int]:
    """(warm-up calls still to make, calls per loop) for calls of ``seconds`` each: loops
    within LOOP_BUDGET_S, the two probe calls counted as warm-up."""
    fit = max(1, int(LOOP_BUDGET_S / max(seconds, 1e-9)))
    return max(min(warmup, fit) - 2, 0), max(min(iters, fit), 1)


def time_beside(
    fn: Callable[[], None],
    side: Callable[[], None],
    timing: Timing,
    cuda: bool,
    device: torch.device,
) -> tuple[Timed, list[float]]:
    """The job's calls and the traffic beside them at the same time, each timed on its own:
    per repeat a loop of ``iters`` calls and one of as many side calls as last as long
    alone (each timed alone first, the slowest rank's times agreed over the world, so every
    rank makes the same calls), both loops started together. On GPUs each loop has its
    own stream, the calls issued interleaved in one order every rank shares; on CPU each
    loop has its own thread (gloo blocks in every call). (Timed, side's time per call per
    repeat.)"""
    repeats = max(timing.repeats, 1)
    alone = [_probe(fn, cuda), _probe(side, cuda)]
    slowest = torch.tensor(alone, dtype=torch.float32, device=device)
    dist.all_reduce(slowest, op=dist.ReduceOp.MAX)
    t_fn, t_side = (max(float(t), 1e-9) for t in slowest.tolist())
    warmup, iters = _fit(t_fn, timing.warmup, timing.iters)
    side_iters = max(1, round(iters * t_fn / t_side))
    for call in (fn, side):
        for _ in range(warmup):
            call()
    together = _together_cuda if cuda else _together_host
    times, side_times = together(fn, side, iters, side_iters, repeats)
    note = f"{side_iters} calls of the traffic beside it per loop, timed on their own"
    return Timed(times, LOOP if cuda else HOST, note, warmup + 2, iters), side_times


def _probe(fn: Callable[[], None], cuda: bool) -> float:
    """Seconds of one call, the second of two (the first may connect)."""
    fn()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def _interleaved(iters: int, side_iters: int) -> list[bool]:
    """The issue order of both loops' calls, spread evenly (True: the job's call)."""
    order, made, side_made = [], 0, 0
    while made < iters or side_made < side_iters:
        mine = side_made >= side_iters or (made < iters and made * side_iters <= side_made * iters)
        order.append(mine)
        made, side_made = made + mine, side_made + (not mine)
    return order


def _together_cuda(
    fn: Callable[[], None], side: Callable[[], None], iters: int, side_iters: int, repeats: int
) -> tuple[list[float], list[float]]:
    streams = torch.cuda.Stream(), torch.cuda.Stream()  # type: ignore[no-untyped-call]
    for stream in streams:
        stream.wait_stream(torch.cuda.current_stream())
    mine, theirs = streams
    order = _interleaved(iters, side_iters)
    marks = []
    for _ in range(repeats):
        mine.wait_stream(theirs)  # each repeat starts both loops together
        theirs.wait_stream(mine)
        pair = _events(), _events()
        for stream, (start, _) in zip(streams, pair, strict=True):
            start.record(stream)
        for ours in order:
            with torch.cuda.stream(mine if ours else theirs):
                (fn if ours else side)()
        for stream, (_, end) in zip(streams, pair, strict=True):
            end.record(stream)
        marks.append(pair)
    torch.cuda.synchronize()
    return ([a.elapsed_time(b) / iters for (a, b), _ in marks],
            [a.elapsed_time(b) / side_iters for _, (a, b) in marks])  # fmt: skip


def _together_host(
    fn: Callable[[], None], side: Callable[[], None], iters: int, side_iters: int, repeats: int
) -> tuple[list[float], list[float]]:
    start = threading.Barrier(2)
    side_times: list[float] = []
    errors: list[BaseException] = []

    def beside() -> None:
        try:
            for _ in range(repeats):
                start.wait()
                side_times.append(_host_loop(side, side_iters))
        except BaseException as exc:  # re-raised by the job's thread, which reports it
            errors.append(exc)
            start.abort()

    thread = threading.Thread(target=beside, name="gpufabric-beside", daemon=True)
    thread.start()
    times = []
    try:
        for _ in range(repeats):
            start.wait()
            times.append(_host_loop(fn, iters))
    except threading.BrokenBarrierError:
        pass  # the side's thread failed: its error is raised below
    except BaseException:
        start.abort()
        raise  # not joined: a daemon, it may wait in a call whose peer is gone
    thread.join()
    if errors:
        raise errors[0]
    return times, side_times


def _host_loop(fn: Callable[[], None], iters: int) -> float:
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) * 1e3 / iters


def _events() -> tuple[torch.cuda.Event, torch.cuda.Event]:
    return (
        torch.cuda.Event(enable_timing=True),  # type: ignore[no-untyped-call]
        torch.cuda.Event(enable_timing=True),  # type: ignore[no-untyped-call]
    )


def _time_loop(fn: Callable[[], None], warmup: int, iters: int, repeats: int) -> list[float]:
    """CUDA events on the current stream (the collective's stream is joined to it)."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    marks = [_events() for _ in range(repeats)]
    for start, end in marks:
        start.record()
        for _ in range(iters):
            fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / iters for start, end in marks]


def _time_graph(fn: Callable[[], None], warmup: int, iters: int, repeats: int) -> list[float]:
    """Warm-up on a side stream (NCCL connects outside the capture: capturing the first call
    of a communicator hangs), capture ``iters`` calls on it, replay once untimed, then once
    per repeat between events. The graph is freed before returning: a live graph at
    process-group teardown hangs the exit. A capture that never ends is the controller's job
    deadline's to catch (the rank is then killed)."""
    side = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(max(warmup, 1)):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph, stream=side):
            for _ in range(iters):
                fn()
        graph.replay()
        torch.cuda.synchronize()
        marks = [_events() for _ in range(repeats)]
        for start, end in marks:
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) / iters for start, end in marks]
    finally:
        graph.reset()
        del graph
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Side:
    """The traffic beside a job on this rank (wire.Beside): its layout, this rank's place
    in its group, the group."""

    layout: Layout
    rank: int
    group: Group


def run_collective(
    layout: Layout,
    rank: int,
    device: torch.device,
    timing: Timing,
    verify: bool,
    group: Group | None = None,
    beside: Side | None = None,
) -> JobResult:
    """Time the collective as ``timing`` says, then run once more on fresh pattern data and
    compare every element with the exact expected result. With ``group``, ``layout`` is the
    group's and ``rank`` the rank in it; every group of the job runs at the same time (the
    loop length is agreed over the whole world, so all groups make the same calls); with
    ``beside``, its traffic runs at the same time, timed on its own."""
    modulus = pattern_modulus(layout.dtype, layout.nranks)
    buffers = Buffers(layout, device)
    buffers.fill(layout, rank, modulus)
    fn = operation(layout, buffers, rank, group)
    verify = verify and not (group is not None and group.chain)  # a chain is timed only
    cuda = device.type == "cuda"
    side_times: list[float] = []
    if beside is not None and timing.iters:
        theirs = Buffers(beside.layout, device)
        theirs.fill(beside.layout, beside.rank, pattern_modulus(beside.layout.dtype,
                                                                 beside.layout.nranks))  # fmt: skip
        side = operation(beside.layout, theirs, beside.rank, beside.group)
        timed: Timed | None
        timed, side_times = time_beside(fn, side, timing, cuda, device)
        del theirs, side
    else:
        timed = time_loops(fn, timing, cuda, device) if timing.iters else None
    checked, mismatches, first = 0, 0, None
    if verify:
        buffers.fill(layout, rank, modulus)
        fn()
        checked, mismatches, first = buffers.check(layout, rank, modulus)
    del buffers, fn
    if cuda:
        torch.cuda.synchronize()
    times = timed.times_ms if timed else []
    return JobResult(
        nbytes=layout.nbytes,
        times_ms=tuple(times),
        median_ms=statistics.median(times) if times else None,
        checked=checked,
        mismatches=mismatches,
        first_mismatch=first,
        method=timed.method if timed else "",
        note=timed.note if timed else "",
        warmup=timed.warmup if timed else 0,
        iters=timed.iters if timed else 0,
        beside_times_ms=tuple(side_times),
    )


def idle(device: torch.device, timing: Timing) -> JobResult:
    """A rank outside every group of a job (a group measured alone): it joins the one
    whole-world call the timed ranks make (the loop length, agreed by all_reduce MAX) and
    nothing else."""
    if timing.iters:
        nothing = torch.zeros(1, dtype=torch.float32, device=device)
        dist.all_reduce(nothing, op=dist.ReduceOp.MAX)
    return JobResult(nbytes=0, times_ms=(), median_ms=None, checked=0, mismatches=0)
