"""The one interface every launcher offers to the rest of the plugin (local processes, replay
of a recorded run, and later Kubernetes pods or Slurm): a launcher says what its nodes are
(each as read where the ranks run), reads their host facts, and starts rank pools. A pool
answers jobs (launch/wire.py) and hands over its ranks' NCCL debug output.

Launchers are chosen by name (registry.py, ``--gpufabric-launcher``) or supplied by another
plugin through the ``pytest_gpufabric_make_launcher`` hook (hookspecs.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..evidence.host import HostFacts
from ..evidence.nccl_log import NcclLog
from ..evidence.node import Node
from .causes import (
    QUOTE_CHARS,
    Evidence,
    RankText,
    classify,
    cut_native_frames,
    head_lines,
    rank_line,
    versions_cause,
)
from .wire import Job, JobResult, RankHello

if TYPE_CHECKING:
    from ..fleet.summary import NodeRow

POOL_SCHEMA = "pytest-gpufabric-pool/1"
POOL_FILE = "pool.json"


@dataclass(frozen=True)
class PoolSpec:
    """A set of ranks sharing one environment; a run with other NCCL settings gets another."""

    name: str  # the run's pool: "default", "network_only", ...
    nranks: int
    backend: str  # "nccl" or "gloo"
    directory: Path  # this pool's artifacts: per-rank output and NCCL debug logs
    startup_timeout: float  # seconds to start, import, rendezvous and join the process group
    job_timeout: float  # seconds for each job once the pool runs
    env: Mapping[str, str] = field(default_factory=dict)  # on top of the caller's environment
    rank_env: Sequence[Mapping[str, str]] = ()  # per rank, on top of env (e.g. NCCL_HOSTID)
    # per rank, the launcher's rank slot it takes (a pool on some of the launcher's ranks:
    # fleet probes): the local launcher's GPU on the host, the kubernetes launcher's n-th rank
    # of the run's pods (a pod's GPU). Empty: rank r takes slot r.
    slots: Sequence[int] = ()

    def slot(self, rank: int) -> int:
        return self.slots[rank] if rank < len(self.slots) else rank

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
class Shape:
    """Ranks, NCCL nodes and backend of a run the launcher decides itself (a recording)."""

    nranks: int
    nodes: int
    backend: str


@dataclass(frozen=True)
class RankProblem:
    rank: int
    state: str  # "no reply: exited on signal SIGKILL", "error: ...", "no reply: process 9 alive"
    logs: Sequence[tuple[Path, str]] = ()  # (file, its last lines)
    report: str = ""  # what the rank reported in full: its exception, then its traceback
    ended: bool = False  # its process ended without reporting an error


class RankFailure(Exception):
    """Some ranks did not finish a job. ``str()`` says why first (each recognised cause, its
    remedy and evidence: launch/causes.py), then names the ranks and shows their logs."""

    def __init__(
        self,
        pool: str,
        what: str,
        summary: str,
        problems: Sequence[RankProblem],
        notes: Sequence[str] = (),
        versions: Mapping[int, str] | None = None,
        never_began: Sequence[int] = (),
    ) -> None:
        self.pool = pool
        self.never_began = tuple(never_began)  # ranks that never arrived at the job
        self.what = what
        self.summary = summary  # one line, reused as such (a pool that is down says it)
        self.problems = tuple(problems)
        self.notes = tuple(notes)  # what else the controller saw (connections it refused)
        self.verdicts = classify([_rank_text(p) for p in self.problems])
        found = versions_cause(versions or {})
        self.extra_causes = (found,) if found else ()  # ranks that joined with other versions
        super().__init__(self.render())

    @property
    def ranks(self) -> list[int]:
        return [p.rank for p in self.problems]

    @property
    def cause(self) -> str | None:
        """The first recognised cause in one line ("rank 0: ..."), None when none was."""
        for verdict in self.verdicts:
            if verdict.cause is not None:
                return f"rank {verdict.rank}: {verdict.cause.cause}"
        return self.extra_causes[0].cause if self.extra_causes else None

    def render(self) -> str:
        lines = [f"rank pool {self.pool!r}: {self.what}: {self.summary}"]
        lines += [f"  {line}" for line in head_lines(self.verdicts, self.extra_causes, _where)]
        for problem, verdict in zip(self.problems, self.verdicts, strict=True):
            lines.append(f"  rank {problem.rank}: {rank_line(verdict, problem.state)}")
        lines += [f"  {note}" for note in self.notes]
        for problem in self.problems:
            for path, tail in problem.logs:
                lines.append(f"--- rank {problem.rank}: last lines of {path}")
                lines.append(cut_native_frames(tail).rstrip("\n") or "(empty)")
        return "\n".join(lines)


def _rank_text(problem: RankProblem) -> RankText:
    return RankText(problem.rank, problem.report or problem.state, problem.logs, problem.ended)


def _where(evidence: Evidence) -> str:
    """The evidence's file and its line in that file (a log's tail starts somewhere inside)."""
    path = Path(evidence.path or "")
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return str(path)
    found = [n for n, line in enumerate(lines, 1) if line.strip()[:QUOTE_CHARS] == evidence.text]
    return f"{path}:{found[-1]}" if found else str(path)


class EvidenceMissing(Exception):
    """A replayed run holds no evidence for this job; the test is skipped with this reason."""


class RankPool(Protocol):
    spec: PoolSpec

    @property
    def hello(self) -> Sequence[RankHello]:
        """What each rank reported after joining (host, pid, versions, device), by rank."""

    def run(self, job: Job, what: str) -> list[JobResult]:
        """Send ``job`` to every rank; return the results by rank or raise RankFailure
        (EvidenceMissing when a recorded run has nothing for this job). A "traffic" job's
        results may be empty."""

    def nccl_log(self) -> NcclLog:
        """What the ranks' NCCL debug output says so far."""

    def close(self) -> None:
        """Stop every rank; after this no process of the pool is left."""


class Launcher(Protocol):
    name: str

    def nodes(self, *, detect: bool) -> Sequence[Node]:
        """The nodes the ranks will run on, each read where the ranks run. ``detect``: also
        what auto-detection looks at (node label, DMI product name, RDMA devices)."""

    def shape(self) -> Shape | None:
        """The run's ranks, nodes and backend when the launcher decides them (a recording);
        None: the session decides from the options and the nodes."""

    def rank_nodes(self) -> Sequence[str] | None:
        """The node (its name in :meth:`nodes`) each rank runs on, by rank; None when every
        rank runs on the one node (or a recording does not say)."""

    def read_host(self, node: Node, when: str) -> HostFacts | None:
        """The host facts of ``node`` now (``when``: "before" or "after" the collectives);
        None when there is no such reading (a recording without it)."""

    def start(self, spec: PoolSpec) -> RankPool:
        """Start ``spec.nranks`` ranks and wait until all joined; RankFailure otherwise."""

    def prestart(self, spec: PoolSpec) -> bool:
        """Begin what a later :meth:`start` of the same spec needs (processes, imports) without
        touching a GPU, while another pool runs; False when this launcher cannot."""

    def close(self) -> None:
        """Release whatever the launcher holds (pools are closed by their owner)."""


@runtime_checkable
class NodeFleet(Protocol):
    """A launcher that picks a fleet's nodes itself (leaving some out, saying why) and can
    leave a fleet run's verdicts on them (labels, taints)."""

    skipped_nodes: Mapping[str, str]  # node -> why the fleet left it out
    node_labels: Mapping[str, Mapping[str, str]]  # node -> its labels (topology domains)

    def mark_nodes(self, rows: Sequence[NodeRow]) -> list[str]:
        """Mark each node as the options ask (nothing unless asked); one line per problem."""
