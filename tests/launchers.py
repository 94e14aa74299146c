"""A launcher written for the tests of the plugin's logic (options, ordering, verdicts,
reports, certification): its node is given, and its "ranks" are not processes: each
collective job is answered at the busbw the test asks for, with an exact result unless the
test corrupts one. Everything about real processes is tested with the local launcher
(test_launcher.py, and the real-rank tests of test_plugin.py).

Plugged in like any third-party launcher, through the pytest_gpufabric_make_launcher hook:
a pytester conftest says ``from launchers import scripted_plugin`` and
``pytest_gpufabric_make_launcher = scripted_plugin(...)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective, layout
from pytest_gpufabric.evidence.host import HostFacts
from pytest_gpufabric.evidence.inventory import Gpu, Inventory
from pytest_gpufabric.evidence.nccl_log import NcclLog, parse_files
from pytest_gpufabric.evidence.node import Node
from pytest_gpufabric.launch.protocol import Launcher, PoolSpec, RankFailure, RankProblem, Shape
from pytest_gpufabric.launch.wire import FirstMismatch, Job, JobResult, RankHello

H200 = tuple(Gpu(i, "NVIDIA H200", f"GPU-{i}", f"0000:{i:02x}:00.0", 143771) for i in range(4))


def node(gpus: Sequence[Gpu] = (), name: str = "testnode") -> Node:
    reason = None if gpus else "no GPU in this test node"
    return Node(name, Inventory(tuple(gpus), "580.1" if gpus else None, name, "2.13.0", None,
                                no_gpu_reason=reason))  # fmt: skip


@dataclass
class Script:
    """What the scripted ranks do: busbw (GB/s) per pool or collective, results to corrupt, a
    start-up failure, the NCCL logs their pools hand over, the host facts of the node."""

    busbw: Mapping[str, float] = field(default_factory=dict)
    default_busbw: float = 100.0
    pool_busbw: Mapping[str, float] = field(default_factory=dict)  # pool -> busbw, first
    corrupt: frozenset[str] = frozenset()  # collectives whose result is wrong on rank 0
    fail_start: str | None = None  # a pool of this name fails to start
    nccl_logs: Mapping[str, Sequence[Path]] = field(default_factory=dict)  # pool -> files
    host: HostFacts | None = None
    jobs: list[tuple[str, Job]] = field(default_factory=list)  # (pool, job) as received


class ScriptedLauncher:
    name = "scripted"

    def __init__(self, nodes: Sequence[Node], script: Script | None = None) -> None:
        self._nodes = list(nodes)
        self.script = script or Script()

    def nodes(self, *, detect: bool) -> Sequence[Node]:
        return self._nodes

    def rank_nodes(self) -> Sequence[str] | None:
        return None

    def shape(self) -> Shape | None:
        return None

    def read_host(self, node: Node, when: str) -> HostFacts | None:
        return self.script.host

    def start(self, spec: PoolSpec) -> ScriptedPool:
        if spec.name == self.script.fail_start:
            raise RankFailure(spec.name, "start-up", "rank 1 died (of 2 ranks)",
                              [RankProblem(1, "no reply: exited with code 1")])  # fmt: skip
        return ScriptedPool(spec, self.script)

    def prestart(self, spec: PoolSpec) -> bool:
        """Nothing to start ahead."""
        return False

    def close(self) -> None:
        pass


class ScriptedPool:
    def __init__(self, spec: PoolSpec, script: Script) -> None:
        self.spec = spec
        self.script = script
        self.hello = [
            RankHello(rank, "testnode", "testnode", 1000 + rank, spec.backend, torch="2.13.0",
                      shm_dev=42, init_s=0.1)
            for rank in range(spec.nranks)
        ]  # fmt: skip

    def run(self, job: Job, what: str) -> list[JobResult]:
        self.script.jobs.append((self.spec.name, job))
        collective = Collective(job.collective)
        n = self.spec.nranks
        shape = layout(collective, job.nbytes, n, job.dtype)
        busbw = self.script.pool_busbw.get(self.spec.name) or self.script.busbw.get(
            job.collective, self.script.default_busbw
        )
        # time = bytes × busbw factor / busbw: what a run at exactly this busbw would take
        ms = shape.nbytes * collective.busbw_factor(n) / (busbw * 1e9) * 1e3
        checked = (shape.recv or shape.send) if job.verify else 0
        results = []
        for rank in range(n):
            bad = job.verify and rank == 0 and job.collective in self.script.corrupt
            results.append(
                JobResult(
                    shape.nbytes,
                    times_ms=(ms,) * job.repeats if job.iters else (),
                    median_ms=ms if job.iters else None,
                    method="loop" if job.iters else "",
                    checked=checked,
                    mismatches=1 if bad else 0,
                    first_mismatch=FirstMismatch(3, -1.0, 7.0) if bad else None,
                )
            )
        return results

    def nccl_log(self) -> NcclLog:
        return parse_files(list(self.script.nccl_logs.get(self.spec.name, ())))

    def close(self) -> None:
        pass


def scripted_plugin(
    nodes: Sequence[Node], script: Script | None = None
) -> Callable[[pytest.Config, str], Launcher | None]:
    """A pytest_gpufabric_make_launcher implementation that offers "scripted"."""

    def pytest_gpufabric_make_launcher(config: pytest.Config, name: str) -> Launcher | None:
        return ScriptedLauncher(nodes, script) if name == "scripted" else None

    return pytest_gpufabric_make_launcher
