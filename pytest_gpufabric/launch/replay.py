"""A "pool" that replays a recorded run: collective jobs are answered from recorded
measurements (nccl-tests, this plugin's reports, results JSON), NCCL evidence comes from the
recorded logs, and nothing is launched. Used with ``--gpufabric-replay DIR``."""

from __future__ import annotations

from ..collectives import Collective
from ..evidence.inventory import Gpu, Inventory
from ..evidence.nccl_log import NcclLog
from ..evidence.recorded import RecordedRun
from ..judge.nccl import comm_groups
from ..runs import DEFAULT
from ..units import format_size
from .protocol import EvidenceMissing, Message, PoolSpec


class ReplayLauncher:
    name = "replay"

    def __init__(self, run: RecordedRun) -> None:
        self.run = run

    def start(self, spec: PoolSpec) -> ReplayPool:
        if spec.name not in self.run.runs:
            raise EvidenceMissing(
                f"the recording in {self.run.directory} has no {spec.name} run "
                f"(it has: {', '.join(self.run.runs)})"
            )
        return ReplayPool(spec, self.run)


class ReplayPool:
    recorded = True

    def __init__(self, spec: PoolSpec, run: RecordedRun) -> None:
        self.spec = spec
        self.run_ = run
        self._hello = self._ranks()

    @property
    def hello(self) -> list[Message]:
        return self._hello

    def _ranks(self) -> list[Message]:
        """Who took part: the ranks of the largest communicator in the NCCL logs, else the
        devices listed by nccl-tests, else the facts of a recorded report."""
        groups = comm_groups(self.nccl_log())
        if groups:
            world = groups[0]
            return [
                {
                    "rank": rank,
                    "host": proc.process.host,
                    "pid": proc.process.pid,
                    "backend": "nccl",
                    "nccl": proc.nccl_version.value if proc.nccl_version else None,
                    "node": proc.node,
                }
                for rank, proc in sorted(world.members.items())
            ]
        if self.run_.devices:
            return [
                {"rank": d.rank, "host": d.host, "pid": d.pid, "backend": "nccl", "gpu": d.name}
                for d in self.run_.devices
            ]
        nranks = int(self.run_.report_facts.get("nranks", 0))
        return [{"rank": r, "backend": "nccl"} for r in range(nranks)]

    def run(self, job: Message, what: str) -> list[Message]:
        if job.get("op") != "collective":
            raise EvidenceMissing(f"nothing recorded for {what}")
        collective, nbytes = Collective(job["collective"]), int(job["nbytes"])
        timed = int(job["iters"]) > 0
        found = self.run_.find(collective, nbytes, timed=timed, run=self.spec.name)
        if found is None:
            kind = "measurement" if timed else "correctness result"
            where = "" if self.spec.name == DEFAULT else f" the {self.spec.name} run of"
            raise EvidenceMissing(
                f"no recorded {kind} of {collective.value} {format_size(nbytes)} in"
                f"{where} {self.run_.directory}"
            )
        result: Message = {
            "nbytes": found.nbytes,
            "times_ms": [],
            "median_ms": found.time_ms if timed else None,
            "recorded": f"{found.origin}: {found.where}",
        }
        if found.mismatches is not None:
            result["checked"] = found.checked or 1
            result["mismatches"] = found.mismatches
        # nccl-tests and reports keep the slowest rank's time only: every rank reports it.
        return [dict(result) for _ in range(max(found.nranks, 1))]

    def nccl_log(self) -> NcclLog:
        return self.run_.nccl_log(self.spec.name)

    def close(self) -> None:
        """Nothing runs."""


def recorded_inventory(run: RecordedRun) -> Inventory:
    """The recorded node's GPUs: from a recorded report, else nccl-tests' device lines (GPUs
    of the first host); when neither exists the inventory is unknown, not empty."""
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


def recorded_world(run: RecordedRun) -> tuple[int, int, str]:
    """(ranks, NCCL nodes, backend) of the recorded run; a recorded report names its backend,
    anything else recorded is NCCL."""
    hello = ReplayPool(PoolSpec(DEFAULT, 0, "nccl", run.directory, 0.0), run).hello
    nodes = {h.get("node", h.get("host")) for h in hello}
    backend = str(run.report_facts.get("backend", "nccl"))
    return len(hello), max(len(nodes), 1), backend
