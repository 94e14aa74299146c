"""A fleet run: each node's gate (gate.py), then the planner's rounds (planner.py) among the
nodes that passed, executed as rank pools on the fleet's nodes.

Each probe is one pool over its nodes' ranks, running one exact all_reduce; a probe passes
when the pool starts and every element is right. The gates run at the same time, as do the
probes of a round (on disjoint nodes).

Nodes are where the launcher places its ranks: the kubernetes launcher's nodes (a pool on
some of them takes their pods' ranks: ``PoolSpec.slots``), or the local launcher's emulated
nodes (``--gpufabric-emulate-nodes``: node j owns GPUs j·k .. j·k+k-1 of this host, its ranks
one NCCL host by NCCL_HOSTID; with more nodes than GPUs every node has all of them).
``GPUFABRIC_TEST_FLEET_FAULT="node:VAR=VALUE,..."`` is a test hook: it adds those variables
to that node's ranks in every pool (a fault made on purpose, e.g. ``GLOO_SOCKET_IFNAME=bogus0``),
so that tests can make one node bad; ``pairs@node:...`` only in pools with other nodes.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..collectives import Collective
from ..evidence.host import HostFacts
from ..judge.measure import bandwidth
from ..launch.protocol import Launcher, PoolSpec, RankFailure
from ..launch.wire import Job
from ..settings import SettingError
from .gate import GateRules, NodeGate, failure, judge_gate
from .planner import Planner, Probe

FAULT_HOOK = "GPUFABRIC_TEST_FLEET_FAULT"
PROBE_BYTES = 1 << 20


@dataclass(frozen=True)
class FleetNode:
    name: str
    slots: tuple[int, ...]  # the launcher's rank slots on this node (PoolSpec.slots)
    hostid: str | None = None  # NCCL_HOSTID of its ranks (an emulated node)


# Node labels that name a topology domain, most specific first: an NVLink domain (GB200
# NVL72 clique, as NVIDIA's GPU operator labels it), a network block or spine, a zone.
DOMAIN_LABELS = (
    "nvidia.com/gpu.clique",
    "cloud.google.com/gce-topology-block",
    "topology.k8s.aws/network-node-layer-3",
    "topology.kubernetes.io/zone",
)


def domains_of(labels: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    """Each node's domain by the first of DOMAIN_LABELS that every node carries; {} if none."""
    for key in DOMAIN_LABELS:
        if labels and all(key in node_labels for node_labels in labels.values()):
            return {node: f"{key}={node_labels[key]}" for node, node_labels in labels.items()}
    return {}


def emulated_nodes(nranks: int, count: int) -> list[FleetNode]:
    """``count`` nodes of this host's ``nranks`` ranks, named as NCCL_HOSTID names them; with
    more nodes than ranks every node has all of them (the nodes share the host's GPUs: a
    fleet of multi-GPU nodes on one host, each node's ranks talking over NVLink)."""
    if count > nranks:
        return [FleetNode(f"gpufabric-node{j}", tuple(range(nranks)), f"gpufabric-node{j}")
                for j in range(count)]  # fmt: skip
    per = nranks // count
    return [FleetNode(f"gpufabric-node{j}", tuple(range(j * per, (j + 1) * per)),
                      f"gpufabric-node{j}") for j in range(count)]  # fmt: skip


def waves(nodes: Sequence[FleetNode]) -> list[list[str]]:
    """The nodes in waves whose slots do not overlap: nodes that share GPUs gate one after
    another, so that each gate's busbw is its own."""
    found: list[tuple[set[int], list[str]]] = []
    for node in nodes:
        wave = next((w for w in found if not w[0] & set(node.slots)), None)
        if wave is None:
            wave = (set(), [])
            found.append(wave)
        wave[0].update(node.slots)
        wave[1].append(node.name)
    return [names for _, names in found]


def ras_address() -> str:
    """A fresh localhost port for one pool's NCCL RAS service: pools running at once on one
    host would otherwise share the default port and answer for each other (SO_REUSEPORT).
    Should another process take the port before NCCL binds it, NCCL goes on without RAS
    ("Continuing in spite of a RAS initialization error", src/bootstrap.cc): only the hang
    evidence is lost, never the run."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def placed_nodes(rank_nodes: Sequence[str]) -> list[FleetNode]:
    """The launcher's nodes, each with the slots of the ranks it holds, in first-seen order."""
    slots: dict[str, list[int]] = {}
    for slot, node in enumerate(rank_nodes):
        slots.setdefault(node, []).append(slot)
    return [FleetNode(name, tuple(held)) for name, held in slots.items()]


def faults(environ: Mapping[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    """The test hook's variables by (scope, node): "node2:A=1,B=2;pairs@node3:C=3". Scope
    "all" (no prefix): every pool of the node; "pairs": only pools with other nodes (a node
    fine alone whose traffic to others fails, as with a broken NIC)."""
    found: dict[tuple[str, str], dict[str, str]] = {}
    for part in filter(None, environ.get(FAULT_HOOK, "").split(";")):
        where, _, settings = part.partition(":")
        scope, _, node = where.strip().rpartition("@")
        for item in filter(None, settings.split(",")):
            name, _, value = item.partition("=")
            found.setdefault((scope or "all", node), {})[name.strip()] = value
    return found


@dataclass
class FleetResult:
    planner: Planner
    details: dict[int, str] = field(
        default_factory=dict
    )  # probe id -> what it measured or why it failed
    busbw: dict[int, float] = field(default_factory=dict)  # probe id -> busbw of a pass
    gates: dict[str, NodeGate] = field(default_factory=dict)  # node -> its own gate
    left_out: dict[str, str] = field(default_factory=dict)  # node -> why it was not tested


class FleetRun:
    def __init__(
        self,
        launcher: Launcher,
        nodes: Sequence[FleetNode],
        rules: GateRules,
        *,
        backend: str,
        directory: Path,
        startup_timeout: float,
        job_timeout: float,
        environ: Mapping[str, str],
        read_host: Callable[[str], HostFacts | None],
        domains: Mapping[str, str] | None = None,
    ) -> None:
        self.launcher = launcher
        self.nodes = {n.name: n for n in nodes}
        self.rules = rules
        self.backend = backend
        self.directory = directory
        self.startup_timeout = startup_timeout
        self.job_timeout = job_timeout
        self.faults = faults(environ)
        self.ras_set = "NCCL_RAS_ADDR" in environ  # the operator's choice stands
        self.read_host = read_host
        self.domains = dict(domains or {})

    def spec(self, name: str, nodes: Sequence[str]) -> PoolSpec:
        placed = [(node, slot) for node in nodes for slot in self.nodes[node].slots]
        return PoolSpec(
            name=name,
            nranks=len(placed),
            backend=self.backend,
            directory=self.directory / name,
            startup_timeout=self.startup_timeout,
            job_timeout=self.job_timeout,
            env=self._pool_env(),
            rank_env=tuple(self._env(node, len(nodes) > 1) for node, _ in placed),
            slots=tuple(slot for _, slot in placed),
        )

    def _pool_env(self) -> dict[str, str]:
        own = self.launcher.name == "local" and self.backend == "nccl"
        return {"NCCL_RAS_ADDR": ras_address()} if own and not self.ras_set else {}

    def _env(self, node: str, paired: bool) -> dict[str, str]:
        hostid = self.nodes[node].hostid
        env = {"NCCL_HOSTID": hostid} if hostid else {}
        env |= self.faults.get(("all", node), {})
        return env | (self.faults.get(("pairs", node), {}) if paired else {})

    def gate(self, node: str) -> NodeGate:
        spec = self.spec(f"fleet-gate-{node}", [node])
        return judge_gate(
            node, lambda: self.launcher.start(spec), lambda: self.read_host(node), self.rules,
            spec.nranks,
        )  # fmt: skip

    def probe(self, probe: Probe) -> tuple[bool, str, float | None]:
        """(passed, what it measured or why it failed, its busbw when it passed)."""
        spec = self.spec(f"fleet-probe{probe.id}", probe.nodes)
        node_of = [node for node in probe.nodes for _ in self.nodes[node].slots]
        began = time.monotonic()
        try:
            pool = self.launcher.start(spec)
        except RankFailure as exc:
            return False, failure("start-up", exc, node_of, time.monotonic() - began), None
        except SettingError as exc:  # a launcher that cannot reach these nodes' ranks
            return False, f"start-up: {exc}", None
        began = time.monotonic()
        try:
            job = Job(1, Collective.ALL_REDUCE.value, PROBE_BYTES, self.rules.dtype, 1, 5, True,
                      repeats=1)  # fmt: skip
            results = pool.run(job, f"all_reduce {PROBE_BYTES} {self.rules.dtype}")
        except RankFailure as exc:
            return False, failure("all_reduce", exc, node_of, time.monotonic() - began), None
        finally:
            pool.close()
        wrong = sum(r.mismatches for r in results)
        if wrong:
            return False, f"all_reduce: {wrong} wrong elements", None
        slowest = max((r.median_ms or 0.0) for r in results)
        _, busbw = bandwidth(Collective.ALL_REDUCE, PROBE_BYTES, spec.nranks, slowest or 1e-9)
        detail = (f"all_reduce {PROBE_BYTES >> 20} MiB exact on {spec.nranks} ranks, "
                  f"{slowest:.3f} ms, busbw {busbw:.3g} GB/s")  # fmt: skip
        return True, detail, busbw

    def run(self, max_rounds: int = 64) -> FleetResult:
        # Each pool starts, runs and closes inside one thread: a local rank's
        # PR_SET_PDEATHSIG follows the thread that spawned it, not the process.
        gates: list[NodeGate] = []
        for wave in waves(list(self.nodes.values())):
            with ThreadPoolExecutor(max_workers=len(wave)) as pool:
                gates += pool.map(self.gate, wave)
        result = FleetResult(Planner([g.node for g in gates if g.passed], self.domains or None))
        result.gates = {g.node: g for g in gates}
        planner = result.planner
        while planner.rounds < max_rounds:
            probes = planner.plan()
            if not probes:
                break
            with ThreadPoolExecutor(max_workers=len(probes)) as pool:
                outcomes = list(pool.map(self.probe, probes))
            for probe, (passed, detail, busbw) in zip(probes, outcomes, strict=True):
                result.details[probe.id] = detail
                if busbw is not None:
                    result.busbw[probe.id] = busbw
                planner.record(probe.id, passed)
        return result
