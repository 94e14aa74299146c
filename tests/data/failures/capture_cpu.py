"""Provoke rank failures for real through the local launcher and keep what the controller saw.

Run from the repository root (``python tests/data/failures/capture_cpu.py [SCENARIO ...]``): each
scenario starts a real rank pool (torch + gloo on this CPU machine), makes it fail, and writes
``tests/data/failures/<scenario>/``:

- ``failure.json``: what failed, the summary, and each failed rank's state ("error: ...", "no
  reply: exited on signal SIGKILL") and whether its process ended without a word;
- ``rank<N>.report.txt``: what the rank reported, its exception then its traceback (only ranks
  that reported one);
- ``rank<N>.out.log`` (and ``rank<N>.nccl.log`` for NCCL): the rank's whole output, as the
  launcher wrote it.

On a GPU host the same script captures NCCL failures: ``--backend nccl --env
NCCL_SOCKET_IFNAME=bogus0 NAME`` starts a pool with that environment and keeps its failure
under NAME; ``gpu-nccl-oom`` runs a collective larger than the GPU. Each capture's expected
causes go into expected.json beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from pytest_gpufabric.launch.local import LocalLauncher, LocalPool, _Rank
from pytest_gpufabric.launch.protocol import PoolSpec, RankFailure
from pytest_gpufabric.launch.wire import Job

HERE = Path(__file__).resolve().parent
Scenario = Callable[[Path, argparse.Namespace], RankFailure]


def spec(directory: Path, backend: str, nranks: int = 2, startup: float = 120.0,
         env: dict[str, str] | None = None) -> PoolSpec:  # fmt: skip
    return PoolSpec("default", nranks, backend, directory, startup, 30.0, env or {})


def later(seconds: float, action: Callable[[], None]) -> None:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()


class FrozenAtSpawn(LocalPool):
    """Ranks in ``frozen`` are stopped the moment they are spawned."""

    frozen: tuple[int, ...] = ()

    def _spawn(self, rank: int, hold: bool = False) -> _Rank:
        spawned = super()._spawn(rank, hold)
        if rank in self.frozen:
            os.kill(spawned.process.pid, signal.SIGSTOP)
        return spawned


def start_failure(pool: LocalPool) -> RankFailure:
    try:
        pool.start()
    except RankFailure as failure:
        return failure
    finally:
        pool.kill()
    raise SystemExit("the pool started: nothing was provoked")


def custom(directory: Path, args: argparse.Namespace) -> RankFailure:
    """The plain start-up of a pool with the environment given on the command line."""
    env = dict(item.split("=", 1) for item in args.env)
    made = spec(directory, args.backend, args.nranks, env=env)
    return start_failure(LocalPool(made, dict(os.environ)))


def gloo_ifname_bogus0(directory: Path, args: argparse.Namespace) -> RankFailure:
    """Every rank asks gloo for an interface this host does not have."""
    made = spec(directory, "gloo", env={"GLOO_SOCKET_IFNAME": "bogus0"})
    return start_failure(LocalPool(made, dict(os.environ)))


def nccl_without_cuda(directory: Path, args: argparse.Namespace) -> RankFailure:
    """NCCL ranks with a torch that has no CUDA (the CPU wheel of this machine)."""
    return start_failure(LocalPool(spec(directory, "nccl"), dict(os.environ)))


def gloo_killed_mid_job(directory: Path, args: argparse.Namespace) -> RankFailure:
    """Rank 1 is stopped, rank 0 waits for it inside all_reduce, then rank 1 is killed."""
    pool = LocalLauncher().start(spec(directory, "gloo"))
    victim = pool.pids[1]
    os.kill(victim, signal.SIGSTOP)
    later(2.0, lambda: os.kill(victim, signal.SIGKILL))
    try:
        pool.run(Job(1, "all_reduce", 1 << 20, "float32", 1, 5, True), "all_reduce 1MiB")
    except RankFailure as failure:
        return failure
    finally:
        pool.close()
    raise SystemExit("the job passed: nothing was provoked")


def gloo_rendezvous_timeout(directory: Path, args: argparse.Namespace) -> RankFailure:
    """Rank 1 never starts: rank 0 waits for it in gloo's rendezvous until the process
    group's timeout (the job timeout, 30 s) runs out; the controller waits 60 s, so what
    rank 0 says reaches it."""

    class Pool(FrozenAtSpawn):
        frozen = (1,)

        def start(self) -> None:
            self.spec.directory.mkdir(parents=True, exist_ok=True)
            self._ranks.extend(self._spawn(r) for r in range(self.spec.nranks))
            self.server.start(60.0)

    return start_failure(Pool(spec(directory, "gloo", startup=5.0), dict(os.environ)))


def gloo_store_host_killed(directory: Path, args: argparse.Namespace) -> RankFailure:
    """Three ranks; rank 2 is stopped at spawn, so ranks 0 and 1 wait in the rendezvous;
    then rank 0, which holds the store, is killed and rank 2 let go."""

    class Pool(FrozenAtSpawn):
        frozen = (2,)

    pool = Pool(spec(directory, "gloo", nranks=3, startup=20.0), dict(os.environ))

    def strike() -> None:
        os.kill(pool.pids[0], signal.SIGKILL)
        time.sleep(0.5)
        os.kill(pool.pids[2], signal.SIGCONT)

    later(10.0, strike)
    return start_failure(pool)


def nccl_oom(directory: Path, args: argparse.Namespace) -> RankFailure:
    """A pool that starts, then an all_reduce of 1 TiB per rank: more than a GPU holds."""
    pool = LocalLauncher().start(spec(directory, "nccl", args.nranks))
    try:
        pool.run(Job(1, "all_reduce", 1 << 40, "float32", 0, 1, False), "all_reduce 1TiB")
    except RankFailure as failure:
        return failure
    finally:
        pool.close()
    raise SystemExit("the job passed: nothing was provoked")


SCENARIOS: dict[str, Scenario] = {
    "cpu-gloo-ifname-bogus0": gloo_ifname_bogus0,
    "cpu-nccl-without-cuda": nccl_without_cuda,
    "cpu-gloo-killed-mid-job": gloo_killed_mid_job,
    "cpu-gloo-rendezvous-timeout": gloo_rendezvous_timeout,
    "cpu-gloo-store-host-killed": gloo_store_host_killed,
}
# Named on the command line, on a GPU host.
GPU_SCENARIOS: dict[str, Scenario] = {"gpu-nccl-oom": nccl_oom}


def keep(failure: RankFailure, pool_dir: Path, out: Path) -> None:
    """What the controller saw of each failed rank (failure.json, rank<N>.report.txt) and
    every rank's whole logs."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ranks = [{"rank": p.rank, "state": p.state, "ended": p.ended} for p in failure.problems]
    record = {"what": failure.what, "summary": failure.summary, "ranks": ranks}
    (out / "failure.json").write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n")
    for problem in failure.problems:
        if problem.report:
            (out / f"rank{problem.rank}.report.txt").write_text(problem.report)
    for log in sorted(pool_dir.glob("rank*.log")):
        shutil.copyfile(log, out / log.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="scenarios (default: all) or, with --env, "
                        "the name of one custom capture")  # fmt: skip
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--nranks", type=int, default=2)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the ranks")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    chosen: dict[str, Scenario]
    if args.env:
        chosen = dict.fromkeys(args.names, custom)
    else:
        known = {**SCENARIOS, **GPU_SCENARIOS}
        chosen = {n: known[n] for n in args.names or SCENARIOS}
    for name, scenario in chosen.items():
        with tempfile.TemporaryDirectory(prefix="gpufabric-capture-") as tmp:
            failure = scenario(Path(tmp), args)
            keep(failure, Path(tmp), args.out / name)
        print(f"--- {name}\n{failure}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
