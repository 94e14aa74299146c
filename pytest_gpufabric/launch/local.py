"""Ranks as local processes: one ``python -m pytest_gpufabric.rank.worker`` per rank, talking
to the controller over TCP on 127.0.0.1 (controller.py, wire.py).

Each rank runs in its own session (process group), so a terminal's Ctrl-C reaches only
pytest, which then stops the ranks itself; a rank whose controller disappears (even by
SIGKILL) sees its connection close and exits. The node is this machine: its facts are read
in process (evidence/probe.py), as the ranks would see them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..evidence.host import HostFacts, collect
from ..evidence.nccl_log import NcclLog, parse_files
from ..evidence.node import Node
from ..evidence.probe import probe
from ..evidence.ras import hang_lines
from .controller import RankServer
from .environment import nccl_log_name, rank_environment
from .protocol import POOL_FILE, PoolSpec, Shape
from .wire import Job, JobResult, RankHello

TAIL_LINES = 15
EXIT_GRACE_S = 10.0
_PROC_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "in uninterruptible wait",
    "T": "stopped",
    "t": "stopped by a tracer",
    "Z": "zombie",
}


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(stream.tell() - 64 * 1024, 0))
            data = stream.read().decode("utf-8", "replace")
    except OSError:
        return "(no such file)"
    return "\n".join(data.splitlines()[-lines:])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"exited on signal {signal.Signals(-code).name}"
        except ValueError:
            return f"exited on signal {-code}"
    return f"exited with code {code}"


def process_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "alive"
    code = stat.rsplit(")", 1)[-1].split()[0]
    return _PROC_STATES.get(code, f"state {code}")


class LocalLauncher:
    name = "local"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self._node: Node | None = None
        self._held: dict[str, LocalPool] = {}  # pools started ahead, by name

    def nodes(self, *, detect: bool) -> Sequence[Node]:
        if self._node is None or (detect and self._node.rdma is None):
            self._node = probe(self.environ, detect=detect)
        return [self._node]

    def shape(self) -> Shape | None:
        return None

    def rank_nodes(self) -> Sequence[str] | None:
        return None

    def read_host(self, node: Node, when: str) -> HostFacts:
        return collect([g.index for g in node.inventory.gpus])

    def start(self, spec: PoolSpec) -> LocalPool:
        held = self._held.pop(spec.name, None)
        if held is not None and held.spec != spec:
            held.kill()
            held = None
        pool = held or LocalPool(spec, self.environ)
        try:
            pool.start()
        except BaseException:
            pool.kill()
            raise
        return pool

    def prestart(self, spec: PoolSpec) -> bool:
        """Spawn the pool's ranks now; they import torch and wait for their go (rank/worker.py
        GPUFABRIC_RANK_HELD) before touching a GPU."""
        if spec.name in self._held:
            return True
        pool = LocalPool(spec, self.environ)
        try:
            pool.spawn(hold=True)
        except BaseException:
            pool.kill()
            raise
        self._held[spec.name] = pool
        return True

    def close(self) -> None:
        """Pools started ahead and never used are killed."""
        for pool in self._held.values():
            pool.kill()
        self._held.clear()


@dataclass
class _Rank:
    rank: int
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    out_path: Path
    nccl_path: Path


class LocalPool:
    def __init__(self, spec: PoolSpec, environ: dict[str, str]) -> None:
        self.spec = spec
        self.environ = environ
        self._ranks: list[_Rank] = []
        self._killed = False
        self._spawned = False
        self.server = RankServer(spec.name, spec.nranks, self)

    @property
    def hello(self) -> Sequence[RankHello]:
        return self.server.hello

    @property
    def pids(self) -> list[int]:
        return [r.process.pid for r in self._ranks]

    def spawn(self, *, hold: bool) -> None:
        """The rank processes; ``hold``: they wait, imports done, until :meth:`start`."""
        self._spawned = True
        self.spec.directory.mkdir(parents=True, exist_ok=True)
        # Tells a later replay which run these logs belong to.
        (self.spec.directory / POOL_FILE).write_text(
            json.dumps(self.spec.record(), indent=1) + "\n"
        )
        for rank in range(self.spec.nranks):
            self._ranks.append(self._spawn(rank, hold))

    def start(self) -> None:
        """Spawn the ranks (unless they were, ahead) and wait until every one joined."""
        if not self._spawned:
            self.spawn(hold=False)
        self.server.start(self.spec.startup_timeout)

    def _spawn(self, rank: int, hold: bool = False) -> _Rank:
        spec = self.spec
        env = rank_environment(
            self.environ,
            spec.environment(rank),
            rank=rank,
            nranks=spec.nranks,
            backend=spec.backend,
            controller=self.server.address,
            token=self.server.token,
            rank_addr="127.0.0.1",
            local=(spec.slot(rank), max([spec.nranks, *(d + 1 for d in spec.slots)])),
            startup_timeout=spec.startup_timeout,
            job_timeout=spec.job_timeout,
            log_dir=spec.directory,
        )
        env["GPUFABRIC_RANK_PARENT"] = str(os.getpid())  # ranks die with pytest (rank/channel.py)
        if hold:
            env["GPUFABRIC_RANK_HELD"] = "1"
        out_path = spec.directory / f"rank{rank}.out.log"
        log = out_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "pytest_gpufabric.rank.worker"],
            env=env,
            cwd=spec.directory,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return _Rank(rank, process, log, out_path, spec.directory / nccl_log_name(rank))

    def run(self, job: Job, what: str) -> list[JobResult]:
        try:
            return self.server.run(job, what, self.spec.job_timeout)
        except BaseException:
            self.kill()
            raise

    # --- RankWatch: what the controller asks about a rank ------------------------------------

    def exited(self, rank: int) -> str | None:
        if rank >= len(self._ranks):
            return "never started"
        code = self._ranks[rank].process.poll()
        return None if code is None else describe_exit(code)

    def describe(self, rank: int) -> str:
        pid = self._ranks[rank].process.pid
        node = self.spec.environment(rank).get("NCCL_HOSTID")  # an emulated node's name
        where = f" on NCCL node {node}" if node else ""
        return f"process {pid}{where} alive ({process_state(pid)})"

    def logs(self, rank: int) -> Sequence[tuple[Path, str]]:
        if rank >= len(self._ranks):
            return ()
        entry = self._ranks[rank]
        entry.log.flush()
        logs = [(entry.out_path, tail(entry.out_path))]
        if entry.nccl_path.exists():
            logs.append((entry.nccl_path, tail(entry.nccl_path)))
        return logs

    def hang_evidence(self, ranks: Sequence[int]) -> Sequence[str]:
        """NCCL RAS on this host (NCCL_RAS_ADDR, default localhost:28028), asked for the job's
        processes; nothing for gloo or where the operator disabled RAS."""
        env = {**self.environ, **self.spec.env}
        if self.spec.backend != "nccl" or env.get("NCCL_RAS_ENABLE") == "0":
            return []
        return hang_lines(env.get("NCCL_RAS_ADDR") or "localhost:28028", self.pids)

    # --- evidence and the end ----------------------------------------------------------------

    def nccl_log(self) -> NcclLog:
        return parse_files(sorted(self.spec.directory.glob(nccl_log_name("*"))))

    def close(self) -> None:
        """Ask every rank to leave; whatever has not gone after a grace period is killed."""
        if self.server.broken is None and not self._killed:
            self.server.say_goodbye()
            deadline = time.monotonic() + EXIT_GRACE_S
            for rank in self._ranks:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    rank.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        self.kill()

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        for rank in self._ranks:
            if rank.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rank.process.pid, signal.SIGKILL)
        for rank in self._ranks:
            with contextlib.suppress(subprocess.TimeoutExpired):
                rank.process.wait(timeout=10)
            with contextlib.suppress(OSError):
                rank.log.close()
        self.server.close()
