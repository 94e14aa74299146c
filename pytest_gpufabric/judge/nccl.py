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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from ..evidence.nccl_log import Comm, Connection, Fact, NcclLog, OfiInit, Process, ProcessLog
from ..profiles.model import Expectation, NcclExpectations
from .judgement import Finding, Judgement, Property, judged, passed, quote, skipped

EXAMPLES = 3


def connection_evidence(conns: Sequence[Connection]) -> tuple[str, ...]:
    return tuple(
        f"rank {c.printed_by} ({c.process}) channel {c.channel}: {quote(c.text, c.where)}"
        for c in conns[:EXAMPLES]
    )


# --- who is where ----------------------------------------------------------------------------


@dataclass
class CommGroup:
    """One communicator across all processes that logged it."""

    key: str
    nranks: int
    members: dict[int, ProcessLog] = field(default_factory=dict)
    comms: dict[int, Comm] = field(default_factory=dict)

    @property
    def missing(self) -> list[int]:
        return [r for r in range(self.nranks) if r not in self.members]


def comm_groups(log: NcclLog) -> list[CommGroup]:
    """Communicators joined across processes by commId (else by size and creation order);
    the largest first."""
    groups: dict[str, CommGroup] = {}
    for proc in log.processes.values():
        for index, comm in enumerate(proc.comms):
            key = comm.comm_id or f"{comm.nranks} ranks, communicator #{index + 1}"
            group = groups.setdefault(key, CommGroup(key, comm.nranks))
            group.members[comm.rank] = proc
            group.comms[comm.rank] = comm
    return sorted(groups.values(), key=lambda g: (-g.nranks, g.key))


class Topology:
    """Which node each rank's process is on, for classifying connections."""

    def __init__(self, log: NcclLog) -> None:
        self.log = log
        self.groups = comm_groups(log)
        self._peers: dict[tuple[Process, int, int], tuple[str, str | None]] = {}

    def nodes(self, conn: Connection) -> tuple[str, str | None]:
        """(node of the printing rank, node of its peer or None when the peer's log is absent).
        Senders print P2P/SHM/NET [send] lines; NET [receive] lines come from the receiver."""
        mine = conn.printed_by
        other = conn.src if mine == conn.dst else conn.dst
        key = (conn.process, mine, other)
        if key not in self._peers:
            proc = self.log.processes.get(conn.process)
            here = proc.node if proc else conn.process.host
            there: str | None = None
            for group in self.groups:
                if group.members.get(mine) is proc:
                    peer = group.members.get(other)
                    there = peer.node if peer else None
                    break
            self._peers[key] = (here, there)
        return self._peers[key]

    def split(self) -> tuple[list[Connection], list[Connection], list[Connection]]:
        """Connections between ranks on one node, on two nodes, and to ranks without a log."""
        same, cross, unknown = [], [], []
        for conn in self.log.connections:
            if conn.transport == "COLLNET":
                cross.append(conn)
                continue
            here, there = self.nodes(conn)
            if there is None:
                unknown.append(conn)
            elif here == there:
                same.append(conn)
            else:
                cross.append(conn)
        return same, cross, unknown


def env_facts(log: NcclLog, names: Iterable[str]) -> list[str]:
    """'NCCL_X set by environment to Y' lines for these variables, one per distinct value."""
    seen: dict[tuple[str, str], Fact] = {}
    for proc in log.processes.values():
        for name in names:
            fact = proc.env.get(name)
            if fact is not None:
                seen.setdefault((name, fact.value), fact)
    return [
        quote(f"{name} set by environment to {value}", fact.where)
        for (name, value), fact in seen.items()
    ]


def _expected(exp: Expectation, text: str) -> str:
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


def connections(conns: Iterable[Connection]) -> list[Connection]:
    """One line per connection: NET connections are logged by both ends ([send], [receive]);
    every other transport only by the sender (and SHM lines carry no connIndex to merge on)."""
    seen: set[tuple[int, int, int, int | None]] = set()
    unique = []
    for conn in conns:
        if conn.transport == "NET":
            key = (conn.src, conn.dst, conn.channel, conn.conn)
            if key in seen:
                continue
            seen.add(key)
        unique.append(conn)
    return unique


def transport_counts(conns: Iterable[Connection]) -> str:
    counts = Counter(c.detail for c in connections(conns))
    return ", ".join(f"{detail}×{n}" for detail, n in counts.most_common())


def judge_intra_node(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every connection between ranks of one node uses the expected transport (and path)."""
    if exp.transport is None:
        return skipped("the profile sets no nccl.intra_node.transport")
    topo = Topology(log)
    same, _, _ = topo.split()
    same = connections(same)
    findings = unknown_via(log)
    props: list[Property] = [
        ("intra_node_connections", len(same)),
        ("intra_node_transports", transport_counts(same)),
    ]
    if not same and not findings:
        return skipped(
            no_connections_reason(log) if not log.connections else "no two ranks on one node",
            props,
        )
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
                _expected(exp.transport, f"{want} between every pair of ranks on one node"),
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
            _expected(exp, f"intra-node path type {want}"),
            "NCCL does not see the expected links between the GPUs: check NVLink state "
            "(nvidia-smi nvlink -s), the fabric manager, and nvidia-smi topo -m",
        )
    ]


def pairs_text(pairs: Sequence[tuple[int, int]]) -> str:
    shown = ", ".join(f"{a}->{b}" for a, b in pairs[:8])
    return shown + (f" and {len(pairs) - 8} more" if len(pairs) > 8 else "")


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
        return skipped("the profile sets no nccl.intra_node.p2p_read", props)
    if not p2p:
        return skipped("no P2P connection in the logs", props)
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
                _expected(exp.p2p_read, f"P2P {'with' if want else 'without'} /read"),
                "NCCL turns read mode on by itself only between A100s (compute capability 8.0) "
                "over NVLink; NCCL_P2P_READ_ENABLE=0/1 forces it off/on",
            )
        )
    mode_text = ", ".join(str(m) for m in modes)
    return judged(findings, f"{len(p2p)} P2P connections ({mode_text}), read={want}", props)


def judge_inter_node(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Connections between nodes use the expected network, with GPUDirect RDMA if required."""
    topo = Topology(log)
    _, cross, unknown = topo.split()
    cross = connections(cross + [c for c in unknown if c.transport == "NET"])
    props: list[Property] = [
        ("inter_node_connections", len(cross)),
        ("inter_node_transports", transport_counts(cross)),
    ]
    if not cross:
        return skipped("single-node run: no connection between nodes", props)
    if exp.networks is None:
        return skipped("the profile sets no nccl.network.names", props)
    findings = unknown_via(log) + network_findings(
        log,
        cross,
        exp.networks,
        exp.gdr,
        "connections between nodes",
        "ranks on different nodes must talk through a NIC; check NCCL_HOSTID and hostnames",
    )
    wanted = " or ".join(exp.networks.names)
    return judged(findings, f"{len(cross)} inter-node connections over {wanted}", props)


def network_findings(
    log: NcclLog,
    conns: Sequence[Connection],
    networks: Expectation,
    gdr_exp: Expectation | None,
    scope: str,
    not_net_remedy: str,
) -> list[Finding]:
    """``conns`` must all be NET connections over one of the profile's networks, with
    /GDRDMA where the profile expects GPUDirect RDMA."""
    names = {n.lower() for n in networks.names}
    not_net = [c for c in conns if c.transport != "NET"]
    wrong_net = [c for c in conns if c.transport == "NET" and (c.net or "").lower() not in names]
    gdr = gdr_exp is not None and bool(gdr_exp.value)
    no_gdr = [c for c in conns if c.transport == "NET" and gdr and not c.gdr]
    wanted = " or ".join(networks.names)
    findings = []
    if not_net:
        findings.append(
            Finding(
                f"{len(not_net)} of {len(conns)} {scope} do not use the network "
                f"({not_net[0].detail})",
                connection_evidence(not_net),
                _expected(networks, f"NET/{wanted} for {scope}"),
                not_net_remedy,
            )
        )
    if wrong_net:
        findings.append(
            Finding(
                f"{len(wrong_net)} of {len(conns)} {scope} use NET/{wrong_net[0].net}, "
                f"not {wanted}",
                connection_evidence(wrong_net),
                _expected(networks, f"NET/{wanted}"),
                _network_remedy(log),
            )
        )
    if no_gdr and gdr_exp is not None:
        findings.append(
            Finding(
                f"{len(no_gdr)} of {len(conns)} {scope} run without GPUDirect RDMA "
                f"({no_gdr[0].detail})",
                connection_evidence(no_gdr),
                _expected(gdr_exp, f"/GDRDMA on every one of the {scope}"),
                "GPUDirect RDMA needs nvidia_peermem or dma-buf support, the NIC close to the GPU "
                "(NCCL_NET_GDR_LEVEL) and, on EFA, aws-ofi-nccl with FI_HMEM support",
            )
        )
    return findings


def _network_remedy(log: NcclLog) -> str:
    failures = [f for p in log.processes.values() if p.ofi for f in p.ofi.failures]
    if failures:
        return (
            f"aws-ofi-nccl did not initialise ({failures[0].value}, {failures[0].where}), so NCCL "
            "fell back to TCP sockets. " + EFA_REMEDY
        )
    return (
        "NCCL did not pick the expected network plugin: check NCCL_NET / NCCL_NET_PLUGIN, that the "
        "plugin library is in the image and on LD_LIBRARY_PATH, and the NICs in the container"
    )


EFA_REMEDY = (
    "Check that the pod requests the vpc.amazonaws.com/efa resource and has the IPC_LOCK "
    "capability, that memlock is unlimited (ulimit -l), that /dev/infiniband/uverbs* exist in "
    "the container, and that the image's libfabric has the efa provider (fi_info -p efa)."
)


def judge_network(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every rank chose the expected network ('Using network X'), single node or not."""
    chosen = [(p, f) for p in log.processes.values() for f in p.networks]
    props: list[Property] = [("networks", ",".join(sorted({f.value for _, f in chosen})))]
    if exp.networks is None:
        return skipped("the profile sets no nccl.network.names", props)
    if not chosen:
        return skipped("no 'Using network' line in the logs", props)
    names = {n.lower() for n in exp.networks.names}
    wrong = [(p, f) for p, f in chosen if f.value.lower() not in names]
    findings = []
    if wrong:
        wanted = " or ".join(exp.networks.names)
        procs = sorted({p.process for p, _ in wrong})
        findings.append(
            Finding(
                f"{len(procs)} of {len(log.processes)} ranks use network {wrong[0][1].value}, not "
                f"{wanted}",
                tuple(
                    f"{p.process}: {quote('Using network ' + f.value, f.where)}"
                    for p, f in wrong[:EXAMPLES]
                ),
                _expected(exp.networks, f"'Using network {wanted}' on every rank"),
                _network_remedy(log),
            )
        )
    return judged(findings, f"every rank uses {props[0][1]}", props)


def judge_net_plugin(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """The expected network plugin initialised, with the expected provider, NICs and protocol."""
    if exp.plugin is None:
        return skipped("the profile sets no nccl.network.plugin")
    procs = list(log.processes.values())
    if not procs:
        return skipped("no NCCL debug lines found")
    findings = []
    missing = [p for p in procs if p.ofi is None or p.ofi.version is None]
    failed = [(p, p.ofi) for p in procs if p.ofi is not None and p.ofi.failures]
    if missing:
        findings.append(
            Finding(
                f"aws-ofi-nccl was not loaded by {len(missing)} of {len(procs)} ranks (no 'NET/OFI "
                "Initializing aws-ofi-nccl' line)",
                tuple(
                    f"{p.process}: plugins loaded: "
                    + (", ".join(f.value for f in p.plugins_loaded) or "none")
                    for p in missing[:EXAMPLES]
                ),
                _expected(exp.plugin, "aws-ofi-nccl initialised on every rank"),
                "install aws-ofi-nccl in the image (libnccl-net.so on LD_LIBRARY_PATH, or "
                "NCCL_NET_PLUGIN pointing at it)",
            )
        )
    if failed:
        proc, ofi = failed[0]
        findings.append(
            Finding(
                f"aws-ofi-nccl failed to initialise on {len(failed)} of {len(procs)} ranks: "
                f"{ofi.failures[0].value}",
                tuple(
                    f"{proc.process}: {quote('NET/OFI ' + f.value, f.where)}"
                    for f in ofi.failures[:EXAMPLES]
                ),
                _expected(exp.plugin, "aws-ofi-nccl initialised on every rank"),
                EFA_REMEDY,
            )
        )
    ok = [p.ofi for p in procs if p.ofi is not None and not p.ofi.failures and p.ofi.version]
    props: list[Property] = []
    if ok:
        props += [("ofi_version", ok[0].version.value if ok[0].version else "")]
        for key, getter in _OFI_FIELDS:
            want: Expectation | None = getattr(exp, key)
            got = [getter(o) for o in ok]
            props.append((f"ofi_{key}", ",".join(sorted({str(g) for g in got}))))
            if want is None:
                continue
            bad = [g for g in got if g != want.value]
            if bad:
                findings.append(
                    Finding(
                        f"aws-ofi-nccl {key} is {bad[0]}, expected {want.value}",
                        (),
                        _expected(want, f"{key} {want.value}"),
                        "fewer NICs than the instance has: check the vpc.amazonaws.com/efa "
                        "resource count in the pod spec and FI_PROVIDER / OFI_NCCL_PROTOCOL in the "
                        "environment",
                    )
                )
    return judged(findings, "aws-ofi-nccl initialised on every rank", props)


_OFI_FIELDS: tuple[tuple[str, Callable[[OfiInit], object]], ...] = (
    ("provider", lambda o: o.provider.value if o.provider else None),
    ("nics", lambda o: o.nics),
    ("protocol", lambda o: o.protocol.value if o.protocol else None),
)


def judge_nvls(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """NVLink SHARP (NVLS) is used, or not, as the profile says."""
    comms = log.comms()
    channels = [c.nvls_channels for c in comms if c.nvls_channels is not None]
    used = any(n > 0 for n in channels)
    props: list[Property] = [("nvls_used", used)]
    if exp.nvls is None:
        return skipped("the profile sets no nccl.intra_node.nvls", props)
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
                _expected(exp.nvls, f"NVLS {'on' if want else 'off'}"),
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


CHECKS: dict[str, Callable[[NcclLog, NcclExpectations], Judgement]] = {
    "init": judge_init,
    "nodes": judge_nodes,
    "intra_node_transport": judge_intra_node,
    "p2p_mode": judge_p2p_mode,
    "inter_node_transport": judge_inter_node,
    "network": judge_network,
    "net_plugin": judge_net_plugin,
    "nvls": judge_nvls,
    "warnings": judge_warnings,
}
