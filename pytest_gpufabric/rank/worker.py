"""Entry point of one rank process: ``python -m pytest_gpufabric.rank.worker``.

It connects to the controller (rank/channel.py), joins the process group once (``import
torch``, rendezvous and NCCL init are paid once per pool), then answers jobs until told to
exit. Rendezvous never guesses a free port: rank 0 starts the store on a port the kernel
gives it and reports it; the controller passes it on to the other ranks.

Its environment (launch/environment.py): RANK, WORLD_SIZE, LOCAL_RANK and the
GPUFABRIC_RANK_* variables (controller address, the run's token, backend, deadlines).
``GPUFABRIC_TEST_RANK_FREEZE=<job id>`` is a test hook: the rank stops itself (SIGSTOP) when
it receives that job, before it says it began it: a frozen process, for hang tests.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..launch.wire import (
    Begun,
    DeviceInfo,
    Exit,
    Failed,
    Job,
    JobResult,
    Join,
    RankHello,
    Ready,
    Rendezvous,
    Result,
    StoreReady,
)
from .channel import Channel, die_with_parent

FREEZE_HOOK = "GPUFABRIC_TEST_RANK_FREEZE"
HELD_S = 7 * 24 * 3600.0  # a held rank waits for its go as long as its controller lives


class Rank:
    """This process's member of the process group."""

    def __init__(self, environ: Mapping[str, str], channel: Channel) -> None:
        t0 = time.perf_counter()
        import torch
        import torch.distributed as dist
        from torch.distributed import TCPStore  # type: ignore[attr-defined]

        self.import_s = time.perf_counter() - t0
        self.rank = int(environ["RANK"])
        self.world_size = int(environ["WORLD_SIZE"])
        self.local_rank = int(environ["LOCAL_RANK"])
        self.backend = environ["GPUFABRIC_RANK_BACKEND"]
        startup = timedelta(seconds=float(environ["GPUFABRIC_RANK_STARTUP_TIMEOUT"]))
        job = timedelta(seconds=float(environ["GPUFABRIC_RANK_JOB_TIMEOUT"]))
        if self.rank == 0:  # the kernel picks the port: nothing can take it in between
            addr = environ.get("GPUFABRIC_RANK_ADDR") or socket.gethostname()
            self.store = TCPStore(
                addr, 0, self.world_size, True, timeout=startup, wait_for_workers=False
            )
            channel.send(StoreReady(addr, self.store.port))
        # No GPU is touched before the controller says go (Rendezvous): a pool started ahead
        # (GPUFABRIC_RANK_HELD, launch/local.py prestart) waits here, imports done, while
        # another pool measures; the controller's start deadline counts from its go.
        held = environ.get("GPUFABRIC_RANK_HELD") == "1"
        where = channel.wait_for(Rendezvous, HELD_S if held else startup.total_seconds())
        t1 = time.perf_counter()
        if self.backend == "nccl":
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        if self.rank != 0:
            self.store = TCPStore(where.addr, where.port, self.world_size, False,
                                       timeout=startup)  # fmt: skip
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = where.addr, str(where.port)
        dist.init_process_group(
            self.backend,
            store=self.store,
            rank=self.rank,
            world_size=self.world_size,
            timeout=job,
            # Eager NCCL communicator creation, so "Init COMPLETE" is in the log at hello.
            device_id=self.device if self.backend == "nccl" else None,
        )
        # One tiny all_reduce proves every rank can reach every other before tests start.
        probe = torch.ones(1, device=self.device)
        dist.all_reduce(probe)
        if int(probe.item()) != self.world_size:
            raise RuntimeError(f"join probe summed to {probe.item()}, expected {self.world_size}")
        self.init_s = time.perf_counter() - t1
        self._groups: dict[tuple[tuple[int, ...], ...], dict[tuple[int, ...], Any]] = {}

    def hello(self) -> RankHello:
        import torch

        try:  # NCCL >= 2.24 refuses P2P/SHM between ranks whose /dev/shm differ
            shm: int | None = os.stat("/dev/shm").st_dev
        except OSError:
            shm = None
        nccl = cuda = None
        device = None
        if self.backend == "nccl":
            props = torch.cuda.get_device_properties(self.device)
            version = torch.cuda.nccl.version()  # type: ignore[no-untyped-call]
            nccl = ".".join(str(v) for v in version)
            cuda = torch.version.cuda
            device = DeviceInfo(
                props.name,
                "GPU-" + str(getattr(props, "uuid", "")),
                _pci_address(props),
                props.total_memory // (1 << 20),
            )
        return RankHello(
            rank=self.rank,
            host=socket.gethostname(),
            node=os.environ.get("NCCL_HOSTID") or socket.gethostname(),  # NCCL's node
            pid=os.getpid(),
            backend=self.backend,
            local_rank=self.local_rank,
            world_size=self.world_size,
            torch=torch.__version__,
            nccl=nccl,
            cuda=cuda,
            device=device,
            shm_dev=shm,
            import_s=round(self.import_s, 3),
            init_s=round(self.init_s, 3),
        )

    def collective(self, job: Job) -> JobResult:
        from ..collectives import Collective, layout
        from .ops import Group, Side, Timing, run_collective

        timing = Timing(job.warmup, job.iters, job.repeats, job.timing)
        if not job.groups:
            spec = layout(Collective(job.collective), job.nbytes, self.world_size, job.dtype)
            return run_collective(spec, self.rank, self.device, timing, job.verify)
        mine = next((g for g in job.groups if self.rank in g), None)
        beside_groups = job.beside.groups if job.beside else ()
        theirs = next((g for g in beside_groups if self.rank in g), None)
        if job.beside is not None and (mine is None or theirs is None):
            raise ValueError(f"job {job.id}: traffic beside a job needs every rank in a group "
                             f"of both (rank {self.rank} is not)")  # fmt: skip
        made = self.process_groups(job.groups)
        if mine is None:  # a group measured alone: the others keep the loop count agreed
            from .ops import idle

            return idle(self.device, timing)
        side = None
        if job.beside is not None and theirs is not None:
            spec = layout(Collective(job.beside.collective), job.beside.nbytes, len(theirs),
                          job.dtype)  # fmt: skip
            handle = self.process_groups(job.beside.groups)[theirs]
            side = Side(spec, theirs.index(self.rank), Group(handle, theirs))
        group = Group(made[mine], mine, job.chain)
        spec = layout(Collective(job.collective), job.nbytes, len(mine), job.dtype)
        return run_collective(spec, mine.index(self.rank), self.device, timing, job.verify,
                              group, side)  # fmt: skip

    def process_groups(self, groups: tuple[tuple[int, ...], ...]) -> dict[tuple[int, ...], Any]:
        """The process groups of a layout, made once: every rank makes every group, in the
        same order (dist.new_group is collective over the world)."""
        import torch.distributed as dist

        made = self._groups.get(groups)
        if made is None:
            made = {ranks: dist.new_group(list(ranks)) for ranks in groups}
            self._groups[groups] = made
        return made

    def close(self) -> None:
        import torch.distributed as dist

        dist.destroy_process_group()


def _pci_address(props: object) -> str | None:
    """The GPU's PCI address as NVML writes it ("00000000:19:00.0"): torch gives its parts."""
    parts = [getattr(props, f"pci_{part}_id", None) for part in ("domain", "bus", "device")]
    if not all(isinstance(p, int) for p in parts):
        return None
    domain, bus, device = parts
    return f"{domain:08x}:{bus:02x}:{device:02x}.0"


def _failed(job_id: int, rank: int, exc: BaseException) -> Failed:
    return Failed(job_id, rank, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8))


def main() -> int:
    environ = dict(os.environ)
    die_with_parent(environ.get("GPUFABRIC_RANK_PARENT"))
    number = int(environ["RANK"])
    debug_file = environ.get("NCCL_DEBUG_FILE")
    if debug_file:  # in a pod the pool's directory is new; NCCL would not make it
        os.makedirs(os.path.dirname(debug_file) or ".", exist_ok=True)
    startup_s = float(environ["GPUFABRIC_RANK_STARTUP_TIMEOUT"])
    channel = Channel(environ["GPUFABRIC_RANK_CONTROLLER"], startup_s)
    channel.send(Join(environ["GPUFABRIC_RANK_TOKEN"], number, os.getpid(), socket.gethostname()))
    try:
        rank = Rank(environ, channel)
    except Exception as exc:
        traceback.print_exc()
        channel.send(_failed(0, number, exc))
        return 1
    channel.send(Ready(rank.hello()))
    while True:
        message = channel.next()
        if isinstance(message, Exit):
            break
        if not isinstance(message, Job):
            continue
        if environ.get(FREEZE_HOOK) == str(message.id):
            os.kill(os.getpid(), signal.SIGSTOP)  # test hook: a frozen process (until killed)
        channel.send(Begun(message.id, number))
        try:
            result = rank.collective(message)
        except Exception as exc:
            traceback.print_exc()
            channel.send(_failed(message.id, number, exc))
            continue
        channel.send(Result(message.id, number, result))
    rank.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
