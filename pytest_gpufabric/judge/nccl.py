"""Judge what NCCL did (a parsed :class:`~.nccl_log.NcclLog`) against what the instance
profile expects (:class:`~.profiles.NcclExpectations`). Each check returns a
:class:`Judgement` whose findings name what was found, the evidence (rank, channel, file and
line), the expectation with its source, and one remedy. Pure: no pytest here.

Nodes are NCCL's nodes: a process's node is its ``NCCL_HOSTID`` when set, else its host
name, so a host split on purpose with NCCL_HOSTID counts as several nodes, and a host that
NCCL split by itself (P2P and SHM both impossible) shows up as a mismatch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ..evidence.nccl_log import Comm, Connection, NcclLog
from ..evidence.topology import (
    Topology,
    comm_groups,
    connections,
    env_facts,
    pairs_text,
    transport_counts,
)
from ..profiles.model import Expectation, NcclExpectations
from .judgement import (
    Finding,
    Judgement,
    Property,
    judged,
    not_applicable,
    not_asked,
    passed,
    quote,
    skipped,
)

EXAMPLES = 3
# What aws-ofi-nccl needs on EFA (its WARNs and its failed initialisation, network.py)
EFA_REMEDY = (
    "Check that the pod requests the vpc.amazonaws.com/efa resource and has the IPC_LOCK "
    "capability, that memlock is unlimited (ulimit -l), that /dev/infiniband/uverbs* exist in "
    "the container, and that the image's libfabric has the efa provider (fi_info -p efa)."
)


def connection_evidence(conns: Sequence[Connection]) -> tuple[str, ...]:
    return tuple(
        f"rank {c.printed_by} ({c.process}) channel {c.channel}: {quote(c.text, c.where)}"
        for c in conns[:EXAMPLES]
    )


def expected(exp: Expectation, text: str) -> str:
    return f"{text} ({exp.cite()})"


def no_connections_reason(log: NcclLog) -> str:
    if not log.processes:
        return "no NCCL debug lines found"
    return (
        "no 'Channel ... via ...' lines: NCCL logs them at the first collective (NCCL >= 2.22 "
        "connects lazily) and only with NCCL_DEBUG=INFO and the INIT subsystem"
    )


# --- checks ----------------------------------------------------------------------------------


def judge_init(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every rank of every communicator logged Init COMPLETE."""
    groups = comm_groups(log)
    if not groups:
        return skipped(
            "no communicator in the NCCL logs ('Init COMPLETE' / 'comm ... nRanks' lines)"
        )
    findings = []
    for group in groups:
        incomplete = [r for r, c in sorted(group.comms.items()) if c.init_complete is None]
        if group.missing:
            findings.append(
                Finding(
                    f"communicator {group.key} ({group.nranks} ranks): no log from rank(s) "
                    f"{', '.join(map(str, group.missing))}",
                    (),
                    "one NCCL debug log per rank",
                    "a rank's log is missing: that rank did not start NCCL or its NCCL_DEBUG_FILE "
                    "was not collected; look at the rank's own output",
                )
            )
        if incomplete:
            comm = group.comms[incomplete[0]]
            where = comm.summary or "its log"
            findings.append(
                Finding(
                    f"communicator {group.key}: rank(s) {', '.join(map(str, incomplete))} never "
                    "reached Init COMPLETE",
                    (f"rank {comm.rank} ({comm.process}) last seen at {where}",),
                    "'Init COMPLETE' from every rank",
                    "look at the NCCL WARN lines and the rank's output for the failing call",
                )
            )
    world = groups[0]
    props: list[Property] = [
        ("nccl_communicators", len(groups)),
        ("nccl_world_ranks", world.nranks),
    ]
    versions = sorted(log.versions)
    if versions:
        props.append(("nccl_log_version", ",".join(versions)))
    return judged(findings, f"{len(groups)} communicator(s), all ranks initialised", props)


def judge_nodes(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """NCCL's nNodes and localRanks equal the nodes the ranks actually ran on."""
    groups = [g for g in comm_groups(log) if any(c.nnodes is not None for c in g.comms.values())]
    if not groups:
        return skipped("no 'comm ... nRanks ... nNodes' lines (NCCL < 2.20, or INIT not logged)")
    findings = []
    world = groups[0]
    per_node = Counter(p.node for p in world.members.values())
    for group in groups:
        nodes = Counter(p.node for p in group.members.values())
        for rank, comm in sorted(group.comms.items()):
            node = group.members[rank].node
            if comm.nnodes == len(nodes) and comm.local_ranks == nodes[node]:
                continue
            split = comm.nnodes is not None and comm.nnodes > len(nodes)
            remedy = (
                "NCCL could not connect GPUs of one node by P2P or SHM, so it made each its own "
                "node and sends their traffic through the network. Check NCCL_P2P_DISABLE / "
                "NCCL_SHM_DISABLE / NCCL_P2P_LEVEL, that /dev/shm is mounted and the same mount "
                "for all ranks (NCCL >= 2.24 refuses P2P and SHM across different /dev/shm), "
                "and GPU peer access (nvidia-smi topo -p2p r)"
                if split
                else "ranks of one node are reported on different nodes or vice versa: check "
                "NCCL_HOSTID and the hostnames of the pods"
            )
            env = env_facts(
                log, ("NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_P2P_LEVEL", "NCCL_HOSTID")
            )
            findings.append(
                Finding(
                    f"rank {rank} ({comm.process}) reports nNodes {comm.nnodes} localRanks "
                    f"{comm.local_ranks}, but {len(nodes)} node(s) ran ({_node_text(nodes)})"
                    + (": NCCL split the node into one-GPU nodes" if split else ""),
                    (quote(_summary_text(comm), comm.summary), *env[:EXAMPLES]),
                    f"nNodes {len(nodes)}, localRanks {nodes[node]} for rank {rank} (from the "
                    "processes' host names and NCCL_HOSTID)",
                    remedy,
                )
            )
            break  # one finding per communicator says it
    props = [
        ("nodes", len(per_node)),
        ("ranks_per_node", ",".join(f"{n}={c}" for n, c in sorted(per_node.items()))),
    ]
    return judged(findings, f"{len(per_node)} node(s) as launched", props)


def _summary_text(comm: Comm) -> str:
    return (
        f"comm {comm.comm} rank {comm.rank} nRanks {comm.nranks} nNodes {comm.nnodes} "
        f"localRanks {comm.local_ranks}"
    )


def _node_text(nodes: Counter[str]) -> str:
    return ", ".join(
        f"{node}: {count} rank{'s' if count > 1 else ''}" for node, count in sorted(nodes.items())
    )


def judge_intra_node(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every connection between ranks of one node uses the expected transport (and path)."""
    if exp.transport is None:
        return not_asked("the profile sets no nccl.intra_node.transport")
    topo = Topology(log)
    same, _, _ = topo.split()
    same = connections(same)
    findings = unknown_via(log)
    props: list[Property] = [
        ("intra_node_connections", len(same)),
        ("intra_node_transports", transport_counts(same)),
    ]
    if not same and not findings:
        if not log.connections:
            return skipped(no_connections_reason(log), props)
        # Every rank is alone on its node (one GPU per node, or NCCL_HOSTID per rank).
        return not_applicable("no two ranks on one node", props)
    want = str(exp.transport.value)
    wrong = [c for c in same if c.transport != want]
    by_detail: dict[str, list[Connection]] = {}
    for conn in wrong:
        by_detail.setdefault(conn.detail, []).append(conn)
    for detail, conns in sorted(by_detail.items(), key=lambda kv: -len(kv[1])):
        pairs = sorted({(c.src, c.dst) for c in conns})
        env = env_facts(
            log,
            (
                "NCCL_P2P_DISABLE",
                "NCCL_SHM_DISABLE",
                "NCCL_P2P_LEVEL",
                "NCCL_NET",
                "NCCL_P2P_USE_CUDA_MEMCPY",
            ),
        )
        transport = conns[0].transport
        if transport == "NET":
            remedy = (
                "GPUs of one node talk through the network: NCCL found neither P2P nor SHM between "
                "them. Check NCCL_P2P_DISABLE / NCCL_SHM_DISABLE, /dev/shm (mounted, one mount for "
                "all ranks), and GPU peer access (nvidia-smi topo -p2p r)"
            )
        else:
            remedy = (
                f"NCCL fell back from {want} to {transport}: check NCCL_P2P_DISABLE / "
                "NCCL_P2P_LEVEL in the environment, GPU peer access (nvidia-smi topo -p2p r), the "
                "fabric manager on NVSwitch systems, and that all ranks share one /dev/shm "
                "(NCCL >= 2.24 refuses P2P across different /dev/shm mounts)"
            )
        findings.append(
            Finding(
                f"{len(conns)} of {len(same)} connections between ranks of one node use {detail}, "
                f"not {want} (pairs {pairs_text(pairs)})",
                connection_evidence(conns) + tuple(env[:EXAMPLES]),
                expected(exp.transport, f"{want} between every pair of ranks on one node"),
                remedy,
            )
        )
    if exp.path is not None:
        findings += judge_paths(log, exp.path)
    return judged(findings, f"{len(same)} same-node connections use {want}", props)


def judge_paths(log: NcclLog, exp: Expectation) -> list[Finding]:
    want = str(exp.value)
    wrong = [
        f for p in log.processes.values() for f in p.graph_paths if f.value.split("/")[0] != want
    ]
    if not wrong:
        return []
    return [
        Finding(
            f"NCCL's graph search found intra-node path {wrong[0].value.split('/')[0]}, not {want}",
            tuple(quote(f"type {f.value}", f.where) for f in wrong[:EXAMPLES]),
            expected(exp, f"intra-node path type {want}"),
            "NCCL does not see the expected links between the GPUs: check NVLink state "
            "(nvidia-smi nvlink -s), the fabric manager, and nvidia-smi topo -m",
        )
    ]


def unknown_via(log: NcclLog) -> list[Finding]:
    if not log.unknown_via:
        return []
    return [
        Finding(
            f"{len(log.unknown_via)} connection line(s) of a shape this tool does not know: it "
            "cannot certify transports it cannot read",
            tuple(quote(f.value, f.where) for f in log.unknown_via[:EXAMPLES]),
            "only known transport formats (P2P, SHM, NET, COLLNET; NCCL 2.18-2.30)",
            "report the line to pytest-gpufabric with the NCCL version: probably a new format",
        )
    ]


def judge_p2p_mode(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """P2P connections run in read mode exactly where the profile expects it."""
    p2p = [c for c in log.connections if c.transport == "P2P"]
    modes = Counter(c.p2p_mode for c in p2p)
    props: list[Property] = [
        ("p2p_connections", len(p2p)),
        ("p2p_modes", ", ".join(f"{m}×{n}" for m, n in modes.most_common())),
        ("p2p_read_connections", sum(c.read for c in p2p)),
    ]
    if exp.p2p_read is None:
        return not_asked("the profile sets no nccl.intra_node.p2p_read", props)
    if not p2p:
        if not log.connections:
            return skipped(no_connections_reason(log), props)
        # Connections, none over P2P: intra_node_transport judges why (P2P off, one rank
        # per node); there is no P2P mode to judge.
        return not_applicable("no P2P connection in the logs", props)
    want = bool(exp.p2p_read.value)
    wrong = [c for c in p2p if c.read != want]
    findings = []
    if wrong:
        env = env_facts(log, ("NCCL_P2P_READ_ENABLE",))
        findings.append(
            Finding(
                f"{len(wrong)} of {len(p2p)} P2P connections run in "
                f"{'read' if not want else 'write'} "
                f"mode ({wrong[0].detail}), expected {'read' if want else 'write'} mode",
                connection_evidence(wrong) + tuple(env),
                expected(exp.p2p_read, f"P2P {'with' if want else 'without'} /read"),
                "NCCL turns read mode on by itself only between A100s (compute capability 8.0) "
                "over NVLink; NCCL_P2P_READ_ENABLE=0/1 forces it off/on",
            )
        )
    mode_text = ", ".join(str(m) for m in modes)
    return judged(findings, f"{len(p2p)} P2P connections ({mode_text}), read={want}", props)


def judge_nvls(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """NVLink SHARP (NVLS) is used, or not, as the profile says."""
    comms = log.comms()
    channels = [c.nvls_channels for c in comms if c.nvls_channels is not None]
    used = any(n > 0 for n in channels)
    props: list[Property] = [("nvls_used", used)]
    if exp.nvls is None:
        return not_asked("the profile sets no nccl.intra_node.nvls", props)
    if not channels:
        return skipped("no 'nvls channels' line in the logs (INIT not logged?)", props)
    want = bool(exp.nvls.value)
    findings = []
    if used != want:
        env = env_facts(log, ("NCCL_NVLS_ENABLE",))
        avail = [
            quote(f"NVLS multicast support is {p.nvls_available.value}", p.nvls_available.where)
            for p in log.processes.values()
            if p.nvls_available
        ][:1]
        findings.append(
            Finding(
                f"NVLS is {'used' if used else 'not used'} ({max(channels)} nvls channels), "
                f"expected {'used' if want else 'not used'}",
                tuple(env + avail),
                expected(exp.nvls, f"NVLS {'on' if want else 'off'}"),
                "NVLS needs NVSwitch multicast (fabric manager) and NCCL_NVLS_ENABLE not 0; a "
                "host that must keep it off needs NCCL_NVLS_ENABLE=0 in every rank's environment",
            )
        )
    return judged(findings, f"NVLS {'on' if used else 'off'} as expected", props)


def judge_warnings(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """No NCCL WARN line."""
    props: list[Property] = [("nccl_warnings", len(log.warnings))]
    if not log.processes:
        return skipped("no NCCL debug lines found", props)
    if not log.warnings:
        return passed("no NCCL WARN line", props)
    distinct = Counter(w.message for w in log.warnings)
    first = {w.message: w for w in reversed(log.warnings)}
    evidence = tuple(
        f"{first[m].process} ({n}×): {quote(first[m].origin + ' NCCL WARN ' + m, first[m].where)}"
        for m, n in distinct.most_common(EXAMPLES)
    )
    remedy = (
        EFA_REMEDY
        if any(m.startswith("NET/OFI") for m in distinct)
        else ("each WARN names the call that failed; fix the first one first")
    )
    finding = Finding(
        f"{len(log.warnings)} NCCL WARN line(s), {len(distinct)} distinct",
        evidence,
        "no NCCL WARN line",
        remedy,
    )
    return judged([finding], "", props)
