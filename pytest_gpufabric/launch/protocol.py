"""The one interface every launcher (local processes, Kubernetes pods, replay of recorded
runs) offers to the rest of the plugin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..evidence.nccl_log import NcclLog

Message = dict[str, Any]
POOL_SCHEMA = "pytest-gpufabric-pool/1"
POOL_FILE = "pool.json"


@dataclass(frozen=True)
class PoolSpec:
    """A set of ranks sharing one environment; tests with other NCCL settings get another."""

    name: str  # "default", or the overrides spelled out, e.g. "NCCL_P2P_DISABLE=1"
    nranks: int
    backend: str  # "nccl" or "gloo"
    directory: Path  # this pool's artifacts: per-rank output and NCCL debug logs
    timeout: float  # seconds for start-up and for each job
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the caller's environment
    rank_env: Sequence[Mapping[str, str]] = ()  # per rank, on top of env (e.g. NCCL_HOSTID)

    def environment(self, rank: int) -> dict[str, str]:
        """This rank's overrides: the pool's, then its own."""
        return {**self.env, **(self.rank_env[rank] if rank < len(self.rank_env) else {})}

    def record(self) -> dict[str, object]:
        """What a replay needs to know about this pool (written as pool.json)."""
        return {
            "schema": POOL_SCHEMA,
            "name": self.name,
            "nranks": self.nranks,
            "backend": self.backend,
            "env": dict(self.env),
            "rank_env": [dict(e) for e in self.rank_env],
        }


@dataclass(frozen=True)
class RankProblem:
    rank: int
    state: (
        str  # "no reply (process alive, sleeping)", "exited with code -9 (SIGKILL)", "error: ..."
    )
    logs: Sequence[tuple[Path, str]] = ()  # (file, its last lines)


class RankFailure(Exception):
    """Some ranks did not finish a job. ``str()`` names them, says why and shows their logs."""

    def __init__(self, pool: str, what: str, summary: str, problems: Sequence[RankProblem]) -> None:
        self.pool = pool
        self.what = what
        self.summary = summary
        self.problems = tuple(problems)
        super().__init__(self.render())

    @property
    def ranks(self) -> list[int]:
        return [p.rank for p in self.problems]

    def render(self) -> str:
        lines = [f"rank pool {self.pool!r}: {self.what}: {self.summary}"]
        lines += [f"  rank {p.rank}: {p.state}" for p in self.problems]
        for problem in self.problems:
            for path, tail in problem.logs:
                lines.append(f"--- rank {problem.rank}: last lines of {path}")
                lines.append(tail.rstrip("\n") or "(empty)")
        return "\n".join(lines)


class EvidenceMissing(Exception):
    """A replayed run holds no evidence for this job; the test is skipped with this reason."""


class RankPool(Protocol):
    spec: PoolSpec
    recorded: bool  # True when the pool replays a recorded run instead of running ranks

    @property
    def hello(self) -> list[Message]:
        """What each rank reported after joining (host, pid, versions, device), by rank."""

    def run(self, job: Message, what: str) -> list[Message]:
        """Send ``job`` to every rank; return the results by rank or raise RankFailure
        (EvidenceMissing when a recorded run has nothing for this job)."""

    def nccl_log(self) -> NcclLog:
        """What the ranks' NCCL debug output says so far."""

    def close(self) -> None:
        """Stop every rank; after this no process of the pool is left."""


class Launcher(Protocol):
    name: str

    def start(self, spec: PoolSpec) -> RankPool:
        """Start ``spec.nranks`` ranks and wait until all joined; RankFailure otherwise."""
