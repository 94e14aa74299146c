"""What splitting one node into one NCCL host per GPU costs (runs.SPLIT_RUN): the same
collective on one NCCL host (the main run) and with NCCL_HOSTID per rank, as one pod per GPU
is to NCCL, the transports NCCL chose in each, against ``bandwidth.split.max_slowdown``.
Pure: no pytest here.

Seed 000: on p4d.24xlarge, 4 pods × 1 GPU ran 43% longer than 1 pod × 4 GPUs, because NCCL
talked between the pods of one node over the network instead of NVLink."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from ..evidence.nccl_log import Connection, NcclLog
from ..evidence.topology import comm_groups, connections, env_facts
from ..profiles.model import SplitLimit
from . import properties
from .bandwidth import judge_correctness
from .judgement import Finding, Judgement, Property, failed, judged, not_asked, quote
from .measure import Measurement

SPLIT_REMEDY = (
    "Keep all GPUs of a node in one pod (1 pod × N GPUs, one rank per GPU inside it, e.g. "
    "torchrun --nproc-per-node N): NCCL then sees one host and uses NVLink P2P. NCCL takes "
    "processes for one host only when their host hash (host name + kernel boot_id, or "
    "NCCL_HOSTID) matches, so every pod of a node is a host of its own. hostIPC plus one "
    "hostname (or one NCCL_HOSTID) is not enough: P2P also needs every process to map the peer "
    "GPU's memory, which fails when the device plugin shows each pod only its own GPU "
    "(NVIDIA/nccl#324), and with cuMem NCCL passes those handles over abstract Unix sockets, "
    "which do not cross network namespaces (src/misc/ipcsocket.cc); across pods it works only "
    "with every GPU visible in each pod, hostIPC, hostNetwork and one NCCL_HOSTID. Pods that "
    "must stay split talk through the network fallback: make it NET/IB or NET/Libfabric with "
    "GPUDirect RDMA (the pod requests the node's RDMA devices), never NET/Socket (TCP)."
)


@dataclass(frozen=True)
class Side:
    """One run of the comparison: where it ran, what it measured, what NCCL logged (None:
    gloo, which has no NCCL logs and ignores NCCL_HOSTID)."""

    run: str
    settings: str
    measured: Measurement
    log: NcclLog | None


def transport_label(conn: Connection) -> str:
    """P2P/CUMEM, P2P/IPC, SHM, NET/Socket, NET/IB/GDRDMA, NET/Libfabric/GDRDMA, ..."""
    if conn.transport == "P2P":
        return f"P2P/{conn.p2p_mode}"
    if conn.transport in ("NET", "COLLNET"):
        return f"{conn.transport}/{conn.net}" + ("/GDRDMA" if conn.gdr else "")
    return conn.transport


def transports(log: NcclLog | None) -> str:
    """What NCCL chose in one run, most used first: "P2P/CUMEM×8" or "NET/Socket×16"."""
    if log is None:
        return "gloo (TCP; NCCL_HOSTID does not apply)"
    counts = Counter(transport_label(c) for c in connections(log.connections))
    if not counts:
        return "unknown (no 'Channel ... via' lines in the NCCL logs)"
    return ", ".join(f"{label}×{n}" for label, n in counts.most_common())


def nccl_nodes(log: NcclLog | None) -> int | None:
    """NCCL's nNodes for the run's largest communicator (2.20+ logs it)."""
    for group in comm_groups(log) if log is not None else ():
        counts = [c.nnodes for c in group.comms.values() if c.nnodes is not None]
        if counts:
            return max(counts)
    return None


def _evidence(side: Side, label: str) -> list[str]:
    if side.log is None:
        return []
    lines = []
    conns = connections(side.log.connections)
    if conns:
        c = conns[0]
        lines.append(f"{label}: rank {c.printed_by} ({c.process}) channel {c.channel}: "
                     f"{quote(c.text, c.where)}")  # fmt: skip
    for group in comm_groups(side.log)[:1]:
        comm = next((c for c in group.comms.values() if c.summary is not None), None)
        if comm is not None and comm.summary is not None:
            lines.append(f"{label}: rank {comm.rank}: NCCL reports nNodes {comm.nnodes}, "
                         f"localRanks {comm.local_ranks} ({comm.summary})")  # fmt: skip
    return lines + [f"{label}: {fact}" for fact in env_facts(side.log, ("NCCL_HOSTID",))[:1]]


def _timing(one: Side, split: Side) -> str:
    a, b = one.measured, split.measured
    if a.recorded or b.recorded:
        where = {a.recorded or one.run, b.recorded or split.run}  # one test holds both
        return f"recorded in {' and '.join(sorted(where))}"
    return (f"{a.time_ms:.3f} ms on one host, {b.time_ms:.3f} ms split; median of {b.iters} "
            f"iterations after {b.warmup} warm-up, slowest rank")  # fmt: skip


def judge_split(one: Side, split: Side, limit: SplitLimit | None, profile: str | None) -> Judgement:
    """busbw on one host ÷ busbw split against ``limit``; a wrong result fails either way."""
    a, b = one.measured, split.measured
    ratio = b.busbw_gbps / a.busbw_gbps if a.busbw_gbps else 0.0
    slowdown = a.busbw_gbps / b.busbw_gbps if b.busbw_gbps else float("inf")
    props: list[Property] = [
        *properties.of_measurement(b),
        (properties.TRANSPORT, transports(split.log)),
        *properties.of_baseline(a, one.run),
        (properties.BASELINE + properties.TRANSPORT, transports(one.log)),
        (properties.SPLIT_RATIO, round(ratio, 4)),
        (properties.SLOWDOWN, round(slowdown, 2)),
    ]
    for side, name in ((split, properties.NCCL_NODES), (one, properties.BASELINE + "nccl_nodes")):
        nodes = nccl_nodes(side.log)
        if nodes is not None:
            props.append((name, nodes))
    for m in (a, b):
        if m.checked and m.mismatches:
            return failed(judge_correctness(m).message, props)
    hosts = f"{b.nranks} NCCL hosts (one per rank, as one pod per GPU)"
    cost = (
        f"{a.label} ({a.dtype}, {a.nranks} ranks): split into {hosts}, busbw {b.busbw_gbps:.1f} "
        f"GB/s over {transports(split.log)} against {a.busbw_gbps:.1f} GB/s over "
        f"{transports(one.log)} on one host: {slowdown:.1f}× slower (ratio {ratio:.3f})"
    )
    if limit is None:
        why = f"profile {profile} sets no bandwidth.split" if profile else "no instance profile"
        return not_asked(f"{cost}; reported, not judged: {why}", props)
    floor = a.busbw_gbps / limit.max_slowdown
    props += [
        (properties.MAX_SLOWDOWN, limit.max_slowdown),
        (properties.THRESHOLD, round(floor, 3)),
        (properties.THRESHOLD_SOURCE, limit.source),
        (properties.THRESHOLD_FILE, limit.where),
        (properties.PROFILE, profile or ""),
    ]
    findings = []
    if slowdown > limit.max_slowdown:
        findings.append(
            Finding(
                f"{cost}, more than the {limit.max_slowdown:g}× the profile allows",
                (
                    *_evidence(one, "one host"),
                    *_evidence(split, "split"),
                    f"measured: {_timing(one, split)}",
                ),
                f"busbw split >= busbw on one host / {limit.max_slowdown:g} = {floor:.1f} GB/s "
                f"({limit.cite()})",
                SPLIT_REMEDY,
            )
        )
    return judged(findings, f"{cost}, within the {limit.max_slowdown:g}× allowed", props)
