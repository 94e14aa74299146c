"""Issue 14 on 2 GPUs: the concurrent timing of rank/ops.py (time_beside) on real NCCL.
Two communicators over the same two GPUs (two process groups of ranks 0 and 1): the job's
all_reduce timed alone, the traffic beside it (reduce_scatter) timed alone, then both at
once, each on its own stream with its own events. Shared NVLink shows as each getting part
of its alone bandwidth; a hang or a serialised pair would show as a timeout or as times
that add up. Run: python3 validation/beside_gpu.py (from the repo root, 2 GPUs)."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.getcwd())

from pytest_gpufabric.collectives import Collective, layout
from pytest_gpufabric.judge.measure import bandwidth
from pytest_gpufabric.rank.ops import (
    LOOP,
    Buffers,
    Group,
    Timing,
    operation,
    time_beside,
    time_loops,
)

NBYTES = 256 << 20


def busbw(collective: Collective, ms: float) -> float:
    spec = layout(collective, NBYTES, 2, "bfloat16")
    return bandwidth(collective, spec.nbytes, 2, ms)[1]


def worker(rank: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = torch.device("cuda", rank)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=rank, world_size=2, device_id=device)
    mine, theirs = dist.new_group([0, 1]), dist.new_group([0, 1])
    calls = {}
    for name, collective, handle in (("job", Collective.ALL_REDUCE, mine),
                                     ("beside", Collective.REDUCE_SCATTER, theirs)):  # fmt: skip
        spec = layout(collective, NBYTES, 2, "bfloat16")
        buffers = Buffers(spec, device)
        buffers.fill(spec, rank, 97)
        calls[name] = (collective, operation(spec, buffers, rank, Group(handle, (0, 1))), buffers)
    timing = Timing(5, 20, 3, LOOP)
    alone = {n: time_loops(fn, timing, True, device) for n, (_, fn, _) in calls.items()}
    both, side_ms = time_beside(calls["job"][1], calls["beside"][1], timing, True, device)
    if rank == 0:
        for name, timed in alone.items():
            collective = calls[name][0]
            ms = sorted(timed.times_ms)[1]
            print(f"alone  {name:6} {collective.value:14} {ms:.3f} ms  "
                  f"busbw {busbw(collective, ms):6.1f} GB/s")  # fmt: skip
        together = (("job", Collective.ALL_REDUCE, both.times_ms),
                    ("beside", Collective.REDUCE_SCATTER, side_ms))  # fmt: skip
        for name, collective, times in together:
            ms = sorted(times)[1]
            print(f"both   {name:6} {collective.value:14} {ms:.3f} ms  "
                  f"busbw {busbw(collective, ms):6.1f} GB/s  (per repeat: "
                  f"{', '.join(f'{t:.3f}' for t in times)} ms)")  # fmt: skip
        print(f"note: {both.note}; {both.iters} calls of the job per loop")
    dist.destroy_process_group()


if __name__ == "__main__":
    mp.spawn(worker, args=(29577,), nprocs=2)  # type: ignore[attr-defined,no-untyped-call]
