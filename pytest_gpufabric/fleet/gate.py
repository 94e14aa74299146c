"""The per-node gate of a fleet run: each node alone, before any node is paired with another.

A node's ranks (all its GPUs) run one pool: it must start, all_reduce exactly, reach the
profile's intra-node busbw floor where the profile has one for that many ranks, use the
intra-node transports the profile expects (NCCL's log), and the node's host facts must pass
the host checks the profile asks for. Nodes gate at the same time (their pools are
disjoint); only nodes that pass go on to the pair isolation (planner.py), so a node that is
bad on its own is named by its own findings, not by a bisection.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..collectives import Collective
from ..evidence.host import HostFacts
from ..judge.bandwidth import judge_busbw
from ..judge.catalog import HOST_CHECKS
from ..judge.host import HostEvidence
from ..judge.judgement import Judgement
from ..judge.measure import from_results
from ..judge.nccl import judge_intra_node
from ..launch.protocol import RankFailure, RankPool
from ..launch.wire import Job
from ..profiles.model import HostExpectations, NcclExpectations, Profile
from ..settings import SettingError
from ..units import format_size

GATE_BYTES_DEFAULT = 1 << 20  # exact all_reduce where the profile has no floor to judge
GATE_BYTES_MAX = 256 << 20


@dataclass(frozen=True)
class GateRules:
    """What a node is held to: the run's profile (None: only that it works exactly)."""

    profile: Profile | None
    nccl: NcclExpectations
    host: HostExpectations
    host_checks: Sequence[str]  # the host checks the profile asks for
    dtype: str


@dataclass(frozen=True)
class NodeGate:
    node: str
    passed: bool
    findings: tuple[str, ...]  # one block per failed check: what, evidence, expectation
    measured: str  # what the gate measured, one line

    def record(self) -> dict[str, object]:
        return {"passed": self.passed, "findings": list(self.findings), "measured": self.measured}


def gate_bytes(rules: GateRules, nranks: int) -> int:
    """The largest all_reduce size (<= 256 MiB) with an intra-node floor for ``nranks`` ranks."""
    profile = rules.profile
    if profile is None or profile.ranks != nranks:
        return GATE_BYTES_DEFAULT
    sizes = [f.nbytes for f in profile.floors
             if f.collective is Collective.ALL_REDUCE and f.nbytes <= GATE_BYTES_MAX]  # fmt: skip
    return max(sizes, default=GATE_BYTES_DEFAULT)


def _failures(name: str, judgement: Judgement) -> list[str]:
    if judgement.status != "failed":
        return []
    return [f"{name}: {judgement.message}"]


def judge_gate(
    node: str,
    start: Callable[[], RankPool],
    read_host: Callable[[], HostFacts | None],
    rules: GateRules,
    nranks: int,
) -> NodeGate:
    """Run the node's pool and judge it; every failure is a finding, none raises."""
    nbytes = gate_bytes(rules, nranks)
    node_of = [node] * nranks
    began = time.monotonic()
    try:
        pool = start()
    except RankFailure as exc:
        return NodeGate(
            node, False, (failure("start-up", exc, node_of, time.monotonic() - began),), ""
        )
    except SettingError as exc:  # a launcher that cannot reach this node's ranks
        return NodeGate(node, False, (f"start-up: {exc}",), "")
    began = time.monotonic()
    findings: list[str] = []
    try:
        job = Job(1, Collective.ALL_REDUCE.value, nbytes, rules.dtype, 5, 20, True, repeats=3)
        results = pool.run(job, f"all_reduce {nbytes} {rules.dtype}")
        log = pool.nccl_log() if pool.spec.backend == "nccl" else None
        shm = [(h.rank, h.shm_dev, h.host) for h in pool.hello]
    except RankFailure as exc:
        return NodeGate(
            node, False, (failure("all_reduce", exc, node_of, time.monotonic() - began),), ""
        )
    finally:
        pool.close()
    measured = from_results(Collective.ALL_REDUCE, rules.dtype, 5, 20, results)
    summary = (f"all_reduce {format_size(nbytes)} on {nranks} rank(s): "
               f"{measured.busbw_gbps:.1f} GB/s busbw")  # fmt: skip
    if measured.mismatches:
        findings.append(f"all_reduce: {measured.mismatches} wrong elements")
    profile = rules.profile
    floor = profile.floor_for(Collective.ALL_REDUCE, nbytes) if profile is not None else None
    if floor is not None and profile is not None and profile.ranks == nranks:
        findings += _failures("busbw", judge_busbw(measured, floor, profile.name))
    if log is not None and nranks > 1:
        findings += _failures("transports", judge_intra_node(log, rules.nccl))
    facts = read_host()
    if facts is not None:
        evidence = HostEvidence(facts, None, shm if any(s[1] is not None for s in shm) else None)
        for check in rules.host_checks:
            findings += _failures(f"host {check}", HOST_CHECKS[check](evidence, rules.host))
    return NodeGate(node, not findings, tuple(findings), summary)


def failure(stage: str, exc: RankFailure, node_of: Sequence[str], elapsed_s: float) -> str:
    """One line: what failed, the ranks (and nodes) that never arrived, the first recognised
    cause, what NCCL RAS said, and how long it took to tell."""
    text = f"{stage}: {exc.summary}"
    if exc.never_began:
        who = ", ".join(f"rank {r} on node {node_of[r]}" for r in exc.never_began)
        text += f"; never arrived: {who}"
    if exc.cause:
        text += f"; {exc.cause}"
    text += "".join(f"; {note}" for note in exc.notes if note.startswith("NCCL RAS"))
    return text + f" (after {elapsed_s:.1f} s)"
