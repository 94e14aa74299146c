"""The local launcher with real gloo ranks: start-up, jobs, and every way a rank can fail.
After each failure no process of the pool may be left."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import gone

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.launch.controller import STARTUP
from pytest_gpufabric.launch.local import LocalLauncher, LocalPool, _Rank
from pytest_gpufabric.launch.protocol import PoolSpec, RankFailure
from pytest_gpufabric.launch.wire import Job, Join, encode
from pytest_gpufabric.rank.channel import EXIT_CONTROLLER_GONE


def wait_gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def job(collective: Collective, nbytes: int = 4 * 1021 * 2, **changes: object) -> Job:
    made = Job(1, collective.value, nbytes, "float32", warmup=1, iters=2, verify=True, repeats=3)
    return dataclasses.replace(made, **changes)  # type: ignore[arg-type]


# Start-up has its own, generous deadline: a cold `import torch` takes seconds on a busy
# 2-core CI machine, and no test here is about a slow start-up.
STARTUP_S = 300.0


def spec(tmp_path: Path, timeout: float = 30.0, nranks: int = 2) -> PoolSpec:
    return PoolSpec("default", nranks, "gloo", tmp_path / "pool", STARTUP_S, timeout)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[LocalPool]:
    started = LocalLauncher().start(spec(tmp_path, timeout=20.0))
    yield started
    started.close()
    assert wait_gone(started.pids)


def test_ranks_join_and_run_every_collective_exactly(pool: LocalPool) -> None:
    assert [h.rank for h in pool.hello] == [0, 1]
    assert {h.backend for h in pool.hello} == {"gloo"}
    assert len({h.pid for h in pool.hello}) == 2
    for number, collective in enumerate(Collective, 1):
        results = pool.run(job(collective, id=number), collective.value)
        assert [r.mismatches for r in results] == [0, 0]
        # One time per call for each timed loop, by the host clock on CPU.
        assert all(len(r.times_ms) == 3 and r.method == "host" for r in results)
        assert all(r.checked > 0 for r in results)


def test_close_leaves_no_process(tmp_path: Path) -> None:
    started = LocalLauncher().start(spec(tmp_path))
    pids = started.pids
    started.close()
    assert all(gone(p) for p in pids)  # close() waits: nothing to poll for


def test_killed_rank_fails_the_job_at_once_and_the_pool_is_gone(pool: LocalPool) -> None:
    os.kill(pool.pids[1], signal.SIGKILL)
    t0 = time.monotonic()
    with pytest.raises(RankFailure) as info:
        pool.run(job(Collective.ALL_REDUCE), "all_reduce 8KiB")
    assert time.monotonic() - t0 < 10  # timeout is 20 s: a death is not waited out
    failure = info.value
    assert 1 in failure.ranks
    assert failure.summary.startswith("rank 1 died")
    text = str(failure)
    assert "rank 1: no reply: exited on signal SIGKILL" in text
    assert f"last lines of {pool.spec.directory / 'rank1.out.log'}" in text
    assert wait_gone(pool.pids, 2)
    with pytest.raises(RankFailure, match="pool is down"):
        pool.run(job(Collective.ALL_REDUCE), "again")


def test_hung_rank_fails_within_the_timeout(tmp_path: Path) -> None:
    started = LocalLauncher().start(spec(tmp_path, timeout=3.0))
    os.kill(started.pids[0], signal.SIGSTOP)
    t0 = time.monotonic()
    with pytest.raises(RankFailure) as info:
        started.run(job(Collective.ALL_GATHER), "all_gather 8KiB")
    elapsed = time.monotonic() - t0
    assert 3.0 <= elapsed < 6.0
    text = str(info.value)
    assert "did not finish within 3 s" in text
    assert f"rank 0: no reply: process {started.pids[0]} alive (stopped)" in text
    assert wait_gone(started.pids, 2)


class _NeverJoins(LocalPool):
    """Rank 1 is frozen the moment it is spawned: it never reaches the rendezvous."""

    def _spawn(self, rank: int, hold: bool = False) -> _Rank:
        spawned = super()._spawn(rank, hold)
        if rank == 1:
            os.kill(spawned.process.pid, signal.SIGSTOP)
        return spawned


def test_rank_that_never_joins_fails_start_up_within_its_own_deadline(tmp_path: Path) -> None:
    started = dataclasses.replace(spec(tmp_path, timeout=600.0), startup_timeout=4.0)
    never = _NeverJoins(started, dict(os.environ))
    t0 = time.monotonic()
    try:
        with pytest.raises(RankFailure) as info:
            never.start()
    finally:
        never.kill()
    assert time.monotonic() - t0 < 8.0  # the start-up deadline, not the job timeout of 600 s
    assert info.value.what == STARTUP
    assert "ranks 0, 1 did not finish within 4 s" in info.value.summary
    assert "rank 1: no reply: process" in str(info.value)
    assert "(stopped), never connected to the controller" in str(info.value)
    assert wait_gone(never.pids, 2)


def test_rank_errors_are_reported_with_their_text(pool: LocalPool) -> None:
    with pytest.raises(RankFailure) as info:
        pool.run(job(Collective.ALL_REDUCE, dtype="int4"), "bad dtype")
    assert info.value.summary == "ranks 0, 1 reported an error (of 2 ranks)"
    assert "rank 0: error: KeyError: 'int4'" in str(info.value)


CONTROLLER = """
import os, signal
from pathlib import Path
from pytest_gpufabric.launch.local import LocalLauncher
from pytest_gpufabric.launch.protocol import PoolSpec
from pytest_gpufabric.launch.wire import Job

pool = LocalLauncher().start(PoolSpec("default", 2, "gloo", Path({directory!r}), 300.0, 30.0))
os.kill(pool.pids[1], signal.SIGSTOP)
pool.server._ranks[0].send(Job(1, "all_reduce", 4096, "float32", 0, 1, False))
print(*pool.pids, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_ranks_leave_when_the_controller_dies(tmp_path: Path) -> None:
    """A controller killed with SIGKILL runs no cleanup: every rank goes, the one blocked
    inside a collective (its connection closes) and the frozen one too (the kernel kills it
    with its parent: a stopped process runs no code of its own)."""
    script = CONTROLLER.format(directory=str(tmp_path))
    controller = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert controller.returncode == -signal.SIGKILL, controller.stderr
    blocked, frozen = (int(p) for p in controller.stdout.split())
    assert wait_gone([blocked], 10), "rank blocked in all_reduce outlived its controller"
    assert wait_gone([frozen], 10), "the frozen rank outlived its controller"


def test_ranks_leave_when_their_connection_closes(pool: LocalPool) -> None:
    """Ranks on other machines have no parent to die with: a closed connection to the
    controller is how they learn that it is gone, even inside a collective."""
    pool.server._ranks[0].send(Job(3, "all_reduce", 4096, "float32", 0, 1, False))
    os.kill(pool.pids[1], signal.SIGSTOP)  # rank 0 now waits for rank 1 inside all_reduce
    pool.server.close()  # as if the controller's host vanished: both connections close
    processes = [r.process for r in pool._ranks]
    assert processes[0].wait(timeout=10) == EXIT_CONTROLLER_GONE
    os.kill(pool.pids[1], signal.SIGCONT)
    assert processes[1].wait(timeout=10) == EXIT_CONTROLLER_GONE


def test_only_ranks_with_the_runs_token_are_heard(pool: LocalPool) -> None:
    """The controller listens on TCP: a stranger that connects, with a wrong token or with
    something that is not the protocol, is dropped and changes nothing."""
    host, _, port = pool.server.address.rpartition(":")
    strangers = []
    for line in (
        encode(Join("not-the-token", 0, 1, "intruder")),
        b'{"protocol": "gpufabric-rank", "v": 99, "type": "join"}\n',
        b"GET / HTTP/1.0\r\n\r\n",
    ):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(line)
        strangers.append(sock)
    results = pool.run(job(Collective.ALL_REDUCE, id=7), "all_reduce with strangers around")
    assert [r.mismatches for r in results] == [0, 0]
    refused = "\n".join(pool.server.refused)
    assert "first message is not a Join with this run's token" in refused
    assert "gpufabric-rank/99, this side speaks gpufabric-rank/5" in refused
    assert "not JSON" in refused
    for sock in strangers:
        assert sock.recv(1) == b""  # closed by the controller
        sock.close()


def test_rank_zero_binds_the_rendezvous_port_itself(pool: LocalPool) -> None:
    """No port is picked free and bound later by someone else: rank 0's store listens on a
    port the kernel gave it, and every rank learned it from the controller."""
    environ = Path(f"/proc/{pool.pids[1]}/environ").read_bytes().split(b"\0")
    assert not [e for e in environ if e.startswith(b"MASTER_PORT=")]
    store = _ports(pool.pids[0], "0A", local=True)  # LISTEN
    assert store, "rank 0 listens on no TCP port"
    assert store & _ports(pool.pids[1], "01", local=False)  # rank 1 is connected to it


def _ports(pid: int, state: str, *, local: bool) -> set[int]:
    """Local (or remote) TCP ports of ``pid``'s sockets in ``state`` (/proc/net/tcp: 0A
    LISTEN, 01 ESTABLISHED)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == state and fields[9] in inodes:
                    address = fields[1] if local else fields[2]
                    ports.add(int(address.rsplit(":", 1)[1], 16))
    return ports


def test_a_pool_started_ahead_waits_past_its_start_up_deadline(tmp_path: Path) -> None:
    """--gpufabric-prestart: held ranks wait for their go (and touch no GPU before it) for as
    long as it takes. A rank that is not held gives up waiting for its rendezvous once the
    start-up deadline (3 s here) has passed; held ones are still there 10 s later."""
    launcher = LocalLauncher()
    assert launcher.prestart(dataclasses.replace(spec(tmp_path), startup_timeout=3.0))
    held = launcher._held["default"]
    time.sleep(10)
    assert [r.process.poll() for r in held._ranks] == [None, None]
    launcher.close()
    assert wait_gone(held.pids)


def test_a_pool_started_ahead_runs_with_the_same_processes(tmp_path: Path) -> None:
    launcher = LocalLauncher()
    ahead = spec(tmp_path)
    assert launcher.prestart(ahead)
    held = launcher._held["default"]
    started = launcher.start(ahead)
    assert started is held
    assert sorted(h.pid for h in started.hello) == sorted(held.pids)
    results = started.run(job(Collective.ALL_REDUCE), "all_reduce after a held start")
    assert [r.mismatches for r in results] == [0, 0]
    started.close()
    assert wait_gone(started.pids)


def test_a_pool_started_ahead_and_never_used_is_killed_at_close(tmp_path: Path) -> None:
    launcher = LocalLauncher()
    assert launcher.prestart(spec(tmp_path))
    pids = launcher._held["default"].pids
    assert all(not gone(p) for p in pids)
    launcher.close()
    assert wait_gone(pids)
