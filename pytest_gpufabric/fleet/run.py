"""A fleet run: the planner's rounds (planner.py) executed as rank pools on the fleet's nodes.

Each probe is one pool over its nodes' ranks (each node's ranks one NCCL host, NCCL_HOSTID),
running one exact all_reduce; a probe passes when the pool starts and every element is right
(and busbw reaches the profile's inter-node floor for that size, where it has one). The
probes of a round run at the same time, on disjoint nodes.

Nodes today are the local launcher's emulated nodes (``--gpufabric-emulate-nodes``): node j
owns GPUs j·k .. j·k+k-1 of this host. ``GPUFABRIC_TEST_FLEET_FAULT="node:VAR=VALUE,..."`` is
a test hook: it adds those variables to that node's ranks in every probe (a fault made on
purpose, e.g. ``GLOO_SOCKET_IFNAME=bogus0``), so that tests can make one node bad.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..collectives import Collective
from ..launch.protocol import Launcher, PoolSpec, RankFailure
from ..launch.wire import Job
from .planner import Planner, Probe

FAULT_HOOK = "GPUFABRIC_TEST_FLEET_FAULT"
PROBE_BYTES = 1 << 20


@dataclass(frozen=True)
class FleetNode:
    name: str
    devices: tuple[int, ...]  # its GPUs on the host (ranks on CPU)


def emulated_nodes(nranks: int, count: int) -> list[FleetNode]:
    """``count`` nodes of ``nranks // count`` ranks each, named as NCCL_HOSTID names them."""
    per = nranks // count
    return [FleetNode(f"gpufabric-node{j}", tuple(range(j * per, (j + 1) * per)))
            for j in range(count)]  # fmt: skip


def faults(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """The test hook's variables by node: "node2:A=1,B=2;node3:C=3"."""
    found: dict[str, dict[str, str]] = {}
    for part in filter(None, environ.get(FAULT_HOOK, "").split(";")):
        node, _, settings = part.partition(":")
        for item in filter(None, settings.split(",")):
            name, _, value = item.partition("=")
            found.setdefault(node.strip(), {})[name.strip()] = value
    return found


@dataclass
class FleetResult:
    planner: Planner
    details: dict[int, str] = field(
        default_factory=dict
    )  # probe id -> what it measured or why it failed


class FleetRun:
    def __init__(
        self,
        launcher: Launcher,
        nodes: Sequence[FleetNode],
        *,
        backend: str,
        dtype: str,
        directory: Path,
        startup_timeout: float,
        job_timeout: float,
        environ: Mapping[str, str],
    ) -> None:
        self.launcher = launcher
        self.nodes = {n.name: n for n in nodes}
        self.backend = backend
        self.dtype = dtype
        self.directory = directory
        self.startup_timeout = startup_timeout
        self.job_timeout = job_timeout
        self.faults = faults(environ)

    def spec(self, probe: Probe) -> PoolSpec:
        placed = [(node, device) for node in probe.nodes for device in self.nodes[node].devices]
        return PoolSpec(
            name=f"fleet-probe{probe.id}",
            nranks=len(placed),
            backend=self.backend,
            directory=self.directory / f"probe{probe.id}",
            startup_timeout=self.startup_timeout,
            job_timeout=self.job_timeout,
            rank_env=tuple(
                {"NCCL_HOSTID": node, **self.faults.get(node, {})} for node, _ in placed
            ),
            devices=tuple(device for _, device in placed),
        )

    def probe(self, probe: Probe) -> tuple[bool, str]:
        """(passed, what it measured or why it failed)."""
        spec = self.spec(probe)
        try:
            pool = self.launcher.start(spec)
        except RankFailure as exc:
            return False, f"start-up: {exc.summary}" + (f"; {exc.cause}" if exc.cause else "")
        try:
            job = Job(1, Collective.ALL_REDUCE.value, PROBE_BYTES, self.dtype, 1, 5, True,
                      repeats=1)  # fmt: skip
            results = pool.run(job, f"all_reduce {PROBE_BYTES} {self.dtype}")
        except RankFailure as exc:
            return False, f"all_reduce: {exc.summary}" + (f"; {exc.cause}" if exc.cause else "")
        finally:
            pool.close()
        wrong = sum(r.mismatches for r in results)
        if wrong:
            return False, f"all_reduce: {wrong} wrong elements"
        slowest = max((r.median_ms or 0.0) for r in results)
        return (
            True,
            f"all_reduce {PROBE_BYTES >> 20} MiB exact on {spec.nranks} ranks, {slowest:.3f} ms",
        )

    def run(self, planner: Planner, max_rounds: int = 64) -> FleetResult:
        result = FleetResult(planner)
        while planner.rounds < max_rounds:
            probes = planner.plan()
            if not probes:
                break
            # Each probe's pool starts, runs and closes inside one thread: a local rank's
            # PR_SET_PDEATHSIG follows the thread that spawned it, not the process.
            with ThreadPoolExecutor(max_workers=len(probes)) as pool:
                outcomes = list(pool.map(self.probe, probes))
            for probe, (passed, detail) in zip(probes, outcomes, strict=True):
                result.details[probe.id] = detail
                planner.record(probe.id, passed)
        return result
