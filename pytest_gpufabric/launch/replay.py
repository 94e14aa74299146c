"""The launcher of ``--gpufabric-replay DIR``: nothing is launched. The node is the recorded
one (a node probe in a bundle, else what the recording says about its GPUs), a pool's ranks
are those of the recorded NCCL logs, collective jobs are answered from recorded measurements
(this plugin's reports, nccl-tests, results JSON), host facts from recorded snapshots and
captures, and NCCL evidence from the recorded logs of the same run.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..collectives import Collective, layout
from ..evidence.host import HostFacts
from ..evidence.inventory import Gpu, Inventory
from ..evidence.nccl_log import NcclLog
from ..evidence.node import Node
from ..evidence.recorded import RecordedRun
from ..evidence.topology import comm_groups
from ..profiles.detect import rdma_of
from ..runs import DEFAULT
from ..units import format_size
from .protocol import EvidenceMissing, PoolSpec, Shape
from .wire import Job, JobResult, RankHello


class ReplayLauncher:
    name = "replay"

    def __init__(self, run: RecordedRun) -> None:
        self.run = run

    def nodes(self, *, detect: bool) -> Sequence[Node]:
        if self.run.nodes:
            return list(self.run.nodes)
        inventory = recorded_inventory(self.run)
        rdma, origin = rdma_of(self.run.host)
        name = inventory.hostname or f"the recorded node ({self.run.directory})"
        return [Node(name, inventory, rdma=rdma, rdma_origin=origin)]

    def rank_nodes(self) -> Sequence[str] | None:
        return None

    def shape(self) -> Shape:
        hello = recorded_hello(self.run, DEFAULT)
        nodes = {h.node or h.host for h in hello}
        backend = str(self.run.report_facts.get("backend", "nccl"))
        return Shape(len(hello), max(len(nodes), 1), backend)

    def read_host(self, node: Node, when: str) -> HostFacts | None:
        return self.run.host_before if when == "before" else self.run.host

    def start(self, spec: PoolSpec) -> ReplayPool:
        if spec.name not in self.run.runs:
            raise EvidenceMissing(
                f"the recording in {self.run.directory} has no {spec.name} run "
                f"(it has: {', '.join(self.run.runs)})"
            )
        return ReplayPool(spec, self.run)

    def prestart(self, spec: PoolSpec) -> bool:
        """Nothing to start ahead."""
        return False

    def close(self) -> None:
        """Nothing runs."""


class ReplayPool:
    def __init__(self, spec: PoolSpec, run: RecordedRun) -> None:
        self.spec = spec
        self.recording = run
        self._hello = recorded_hello(run, spec.name)
        self._served: dict[tuple[str, int, tuple[tuple[int, ...], ...]], int] = {}  # per key

    @property
    def hello(self) -> Sequence[RankHello]:
        return self._hello

    def run(self, job: Job, what: str) -> list[JobResult]:
        if job.purpose == "traffic":
            return []  # the recorded logs are what they are
        if job.groups:
            return self._group_job(job)
        collective, nbytes = Collective(job.collective), job.nbytes
        timed = job.iters > 0
        found = self.recording.find(collective, nbytes, timed=timed, run=self.spec.name)
        if found is None:
            kind = "measurement" if timed else "correctness result"
            where = "" if self.spec.name == DEFAULT else f" the {self.spec.name} run of"
            raise EvidenceMissing(
                f"no recorded {kind} of {collective.value} {format_size(nbytes)} in"
                f"{where} {self.recording.directory}"
            )
        result = JobResult(
            nbytes=found.nbytes,
            median_ms=found.time_ms if timed else None,
            checked=(found.checked or 1) if found.mismatches is not None else 0,
            mismatches=found.mismatches or 0,
            recorded=f"{found.origin}: {found.where}",
        )
        # nccl-tests and reports keep the slowest rank's time only: every rank reports it.
        return [result for _ in range(max(found.nranks, 1))]

    def _group_job(self, job: Job) -> list[JobResult]:
        """Each rank's result of a job on a layout's groups, as the recording has it (every
        rank of a group reports the group's slowest time, as a live group's slowest does).
        Jobs recorded under one key are served in the recording's order (the tests run in
        the same order)."""
        key = (job.collective, job.nbytes, job.groups)
        found = self.recording.group_jobs.get(key)
        if not found:
            raise EvidenceMissing(
                f"no recorded job of {job.collective} {format_size(job.nbytes)} on "
                f"{len(job.groups)} groups ({', '.join(map(str, job.groups))}) in "
                f"{self.recording.directory}"
            )
        served = self._served.get(key, 0)
        self._served[key] = served + 1
        record = found[min(served, len(found) - 1)]
        beside = {rank: (ms,) for group, ms in record.beside.items() for rank in group}
        if job.beside is not None and not beside:
            raise EvidenceMissing(
                f"no recorded traffic beside {job.collective} {format_size(job.nbytes)} in "
                f"{self.recording.directory}"
            )
        results = [JobResult(nbytes=0) for _ in range(self.spec.nranks)]
        for group, (time_ms, wrong) in record.groups.items():
            size = layout(Collective(job.collective), job.nbytes, len(group), job.dtype).nbytes
            for rank in group:
                results[rank] = JobResult(
                    nbytes=size, times_ms=(time_ms,), median_ms=time_ms,
                    checked=1 if job.verify else 0, mismatches=wrong,
                    recorded=f"pytest-gpufabric report in {self.recording.directory}",
                    beside_times_ms=beside.get(rank, ()) if job.beside else (),
                )  # fmt: skip
        return results

    def nccl_log(self) -> NcclLog:
        return self.recording.nccl_log(self.spec.name)

    def close(self) -> None:
        """Nothing runs."""


def recorded_hello(run: RecordedRun, pool: str) -> list[RankHello]:
    """Who took part: the ranks of the largest communicator in the NCCL logs, else the
    devices listed by nccl-tests, else the facts of a recorded report."""
    shm = run.rank_shm_devs
    groups = comm_groups(run.nccl_log(pool))
    if groups:
        world = groups[0]
        return [
            RankHello(
                rank=rank,
                host=proc.process.host,
                node=proc.node,
                pid=proc.process.pid,
                backend="nccl",
                nccl=proc.nccl_version.value if proc.nccl_version else None,
                shm_dev=shm[rank] if rank < len(shm) else None,
            )
            for rank, proc in sorted(world.members.items())
        ]
    if run.devices:
        return [RankHello(d.rank, d.host, d.host, d.pid, "nccl") for d in run.devices]
    nranks = int(run.report_facts.get("nranks", 0))
    backend = str(run.report_facts.get("backend", "nccl"))
    return [
        RankHello(rank, backend=backend, shm_dev=shm[rank] if rank < len(shm) else None)
        for rank in range(nranks)
    ]


def recorded_inventory(run: RecordedRun) -> Inventory:
    """The recorded node's GPUs: from a recorded report, else the host captures, else
    nccl-tests' device lines (GPUs of the first host); unknown, not empty, without any."""
    facts = run.report_facts
    where = f"the recording in {run.directory}"
    if facts.get("gpu_count"):
        model, count = str(facts["gpu_model"]), int(facts["gpu_count"])
        gpus = tuple(Gpu(i, model, "", "", 0) for i in range(count))
        return Inventory(gpus, facts.get("driver"), str(facts.get("hostname", "")), None, None,
                         origin=f"the report in {where}")  # fmt: skip
    if run.host is not None and any(g.name for g in run.host.gpus):
        gpus = tuple(
            Gpu(g.index, g.name, g.uuid, g.pci_bus_id, g.memory_mib or 0) for g in run.host.gpus
        )
        return Inventory(gpus, run.host.driver, "", None, None, origin=run.host.origin)
    if run.devices:
        host = run.devices[0].host
        gpus = tuple(Gpu(d.rank, d.name, "", "", 0) for d in run.devices if d.host == host)
        return Inventory(gpus, None, host, None, None, origin=f"nccl-tests device lines in {where}")
    return Inventory((), None, "", None, None, known=False, origin=where)
