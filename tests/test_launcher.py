"""The local launcher with real gloo ranks: start-up, jobs, and every way a rank can fail.
After each failure no process of the pool may be left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from processes import gone

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.launch.local import LocalLauncher, LocalPool, _Rank
from pytest_gpufabric.launch.protocol import PoolSpec, RankFailure


def wait_gone(pids: list[int], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def job(collective: Collective, nbytes: int = 4 * 1021 * 2) -> dict[str, object]:
    return {
        "op": "collective", "collective": collective.value, "nbytes": nbytes,
        "dtype": "float32", "warmup": 1, "iters": 2, "verify": True,
    }  # fmt: skip


def spec(tmp_path: Path, timeout: float = 30.0, nranks: int = 2) -> PoolSpec:
    return PoolSpec("default", nranks, "gloo", tmp_path / "pool", timeout)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[LocalPool]:
    started = LocalLauncher().start(spec(tmp_path, timeout=20.0))
    yield started
    started.close()
    assert wait_gone(started.pids)


def test_ranks_join_and_run_every_collective_exactly(pool: LocalPool) -> None:
    assert [h["rank"] for h in pool.hello] == [0, 1]
    assert {h["backend"] for h in pool.hello} == {"gloo"}
    assert len({h["pid"] for h in pool.hello}) == 2
    for collective in Collective:
        results = pool.run(job(collective), collective.value)
        assert [r["mismatches"] for r in results] == [0, 0]
        assert all(len(r["times_ms"]) == 2 for r in results)


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

    def _spawn(self, rank: int, port: int) -> _Rank:
        spawned = super()._spawn(rank, port)
        if rank == 1:
            os.kill(spawned.process.pid, signal.SIGSTOP)
        return spawned


def test_rank_that_never_joins_fails_start_up(tmp_path: Path) -> None:
    never = _NeverJoins(spec(tmp_path, timeout=4.0))
    t0 = time.monotonic()
    with pytest.raises(RankFailure) as info:
        never.start()
    assert time.monotonic() - t0 < 8.0
    assert info.value.what == "start-up (import torch, join the process group)"
    assert "rank 1: no reply: process" in str(info.value)
    assert "(stopped)" in str(info.value)
    assert wait_gone(never.pids, 2)


def test_rank_errors_are_reported_with_their_text(pool: LocalPool) -> None:
    with pytest.raises(RankFailure) as info:
        pool.run({**job(Collective.ALL_REDUCE), "dtype": "int4"}, "bad dtype")
    assert info.value.summary == "ranks 0, 1 reported an error (of 2 ranks)"
    assert "rank 0: error: KeyError: 'int4'" in str(info.value)


def test_ranks_leave_when_the_controller_dies(tmp_path: Path) -> None:
    """A controller killed with SIGKILL runs no cleanup: ranks notice the closed pipe and
    exit, also the one blocked inside a collective waiting for a frozen peer."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from pytest_gpufabric.launch.protocol import PoolSpec
        from pytest_gpufabric.launch.local import LocalLauncher
        pool = LocalLauncher().start(PoolSpec("default", 2, "gloo", Path({str(tmp_path)!r}), 30.0))
        os.kill(pool.pids[1], signal.SIGSTOP)
        pool._ranks[0].send({{"op": "collective", "collective": "all_reduce", "nbytes": 4096,
                              "dtype": "float32", "warmup": 0, "iters": 1, "verify": False, "id": 1}})
        print(*pool.pids, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    controller = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert controller.returncode == -signal.SIGKILL, controller.stderr
    blocked, frozen = (int(p) for p in controller.stdout.split())
    assert wait_gone([blocked], 10), "rank blocked in all_reduce outlived its controller"
    os.kill(frozen, signal.SIGCONT)  # a frozen process runs nothing until continued
    assert wait_gone([frozen], 10)
