"""The network half of the NCCL checks: which network every rank chose, the connections
between nodes (and GPUDirect RDMA on them), and the network plugin (aws-ofi-nccl: provider,
NICs, protocol). Pure: no pytest here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..evidence.nccl_log import Connection, NcclLog, OfiInit
from ..evidence.topology import Topology, connections, transport_counts
from ..profiles.model import Expectation, NcclExpectations
from .judgement import (
    Finding,
    Judgement,
    Property,
    judged,
    not_applicable,
    not_asked,
    quote,
    skipped,
)
from .nccl import EFA_REMEDY, EXAMPLES, connection_evidence, expected, unknown_via

_OFI_FIELDS: tuple[tuple[str, Callable[[OfiInit], object]], ...] = (
    ("provider", lambda o: o.provider.value if o.provider else None),
    ("nics", lambda o: o.nics),
    ("protocol", lambda o: o.protocol.value if o.protocol else None),
)


def judge_inter_node(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Connections between nodes use the expected network, with GPUDirect RDMA if required."""
    topo = Topology(log)
    _, cross, unknown = topo.split()
    cross = connections(cross + [c for c in unknown if c.transport == "NET"])
    props: list[Property] = [
        ("inter_node_connections", len(cross)),
        ("inter_node_transports", transport_counts(cross)),
    ]
    if exp.networks is None:
        return not_asked("the profile sets no nccl.network.names", props)
    if not cross:
        return not_applicable("single-node run: no connection between nodes", props)
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
                expected(networks, f"NET/{wanted} for {scope}"),
                not_net_remedy,
            )
        )
    if wrong_net:
        findings.append(
            Finding(
                f"{len(wrong_net)} of {len(conns)} {scope} use NET/{wrong_net[0].net}, "
                f"not {wanted}",
                connection_evidence(wrong_net),
                expected(networks, f"NET/{wanted}"),
                _network_remedy(log),
            )
        )
    if no_gdr and gdr_exp is not None:
        findings.append(
            Finding(
                f"{len(no_gdr)} of {len(conns)} {scope} run without GPUDirect RDMA "
                f"({no_gdr[0].detail})",
                connection_evidence(no_gdr),
                expected(gdr_exp, f"/GDRDMA on every one of the {scope}"),
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


def judge_network(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every rank chose the expected network ('Using network X'), single node or not."""
    chosen = [(p, f) for p in log.processes.values() for f in p.networks]
    props: list[Property] = [("networks", ",".join(sorted({f.value for _, f in chosen})))]
    if exp.networks is None:
        return not_asked("the profile sets no nccl.network.names", props)
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
                expected(exp.networks, f"'Using network {wanted}' on every rank"),
                _network_remedy(log),
            )
        )
    return judged(findings, f"every rank uses {props[0][1]}", props)


def judge_net_plugin(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """The expected network plugin initialised, with the expected provider, NICs and protocol."""
    if exp.plugin is None:
        return not_asked("the profile sets no nccl.network.plugin")
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
                expected(exp.plugin, "aws-ofi-nccl initialised on every rank"),
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
                expected(exp.plugin, "aws-ofi-nccl initialised on every rank"),
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
                        expected(want, f"{key} {want.value}"),
                        "fewer NICs than the instance has: check the vpc.amazonaws.com/efa "
                        "resource count in the pod spec and FI_PROVIDER / OFI_NCCL_PROTOCOL in the "
                        "environment",
                    )
                )
    return judged(findings, "aws-ofi-nccl initialised on every rank", props)
