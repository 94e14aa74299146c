"""What the isolation runs (runs.py) must show in the NCCL logs. Pure: no pytest here.

- network_only: with P2P and SHM disabled every connection, between GPUs of one node too,
  must be NET over the profile's network, with /GDRDMA where GPUDirect RDMA is expected;
- nvlink_only: with P2P limited to NVLink and SHM and the network plugins off, every
  connection must be P2P, on the profile's intra-node path and P2P mode.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..evidence.nccl_log import Connection, NcclLog
from ..evidence.topology import connections, env_facts, pairs_text, transport_counts
from ..profiles.model import NcclExpectations
from ..runs import KINDS, NETWORK_ONLY, NVLINK_ONLY
from .judgement import Finding, Judgement, Property, judged, not_asked, skipped
from .nccl import (
    EXAMPLES,
    connection_evidence,
    judge_p2p_mode,
    judge_paths,
    no_connections_reason,
    unknown_via,
)
from .network import network_findings

NETWORK_ONLY_ENV = KINDS[NETWORK_ONLY].env
NVLINK_ONLY_ENV = KINDS[NVLINK_ONLY].env


def _props(conns: Sequence[Connection], run: str) -> list[Property]:
    return [
        ("isolation_run", run),
        ("connections", len(conns)),
        ("transports", transport_counts(conns)),
    ]


def judge_network_only(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every connection of the network-only run goes through the profile's network."""
    conns = connections(log.connections)
    props = _props(conns, "network_only")
    if not conns:
        return skipped(no_connections_reason(log), props)
    if exp.networks is None:
        return not_asked("the profile sets no nccl.network.names", props)
    settings = env_facts(log, NETWORK_ONLY_ENV)
    findings = unknown_via(log) + network_findings(
        log,
        conns,
        exp.networks,
        exp.gdr,
        "connections of the network-only run",
        "P2P and SHM were disabled for this run"
        + (f" ({', '.join(settings[:2])})" if settings else "")
        + ", so NCCL must go through the NIC even between GPUs of one node",
    )
    over = " or ".join(exp.networks.names)
    return judged(findings, f"{len(conns)} connections over {over}", props)


def judge_nvlink_only(log: NcclLog, exp: NcclExpectations) -> Judgement:
    """Every connection of the NVLink-only run is P2P, on the expected path and P2P mode."""
    conns = connections(log.connections)
    props = _props(conns, "nvlink_only")
    if not conns:
        return skipped(no_connections_reason(log), props)
    findings = unknown_via(log)
    wrong = [c for c in conns if c.transport != "P2P"]
    if wrong:
        pairs = pairs_text(sorted({(c.src, c.dst) for c in wrong}))
        findings.append(
            Finding(
                f"{len(wrong)} of {len(conns)} connections of the NVLink-only run use "
                f"{wrong[0].detail}, not P2P over NVLink (pairs {pairs})",
                connection_evidence(wrong)
                + tuple(env_facts(log, ("NCCL_P2P_DISABLE", *NVLINK_ONLY_ENV))[:EXAMPLES]),
                "P2P between every pair of GPUs: the run allows P2P over NVLink only "
                "(NCCL_P2P_LEVEL=NVL), so any other transport means a pair without NVLink P2P",
                "check NVLink state (nvidia-smi nvlink -s), the fabric manager on NVSwitch "
                "systems, and GPU peer access over NVLink (nvidia-smi topo -p2p n)",
            )
        )
    if exp.path is not None:
        findings += judge_paths(log, exp.path)
    mode = judge_p2p_mode(log, exp)
    if mode.status == "failed":
        findings += mode.findings
    props += list(mode.properties)
    return judged(findings, f"{len(conns)} connections over P2P", props)
