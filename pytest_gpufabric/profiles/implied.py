"""What a GPU node that matches no profile must still do, implied by its own hardware.

``--gpufabric-instance auto`` on an on-premises or smaller cloud node used to stop: nothing
fitted. The gate now judges what the hardware itself promises and measures the rest:

- GPUs that NVML says are joined by NVLink with P2P OK between every pair must talk P2P over
  NVLink in NCCL (a fallback to SHM or the network is a fault, whatever the instance type);
- RDMA NICs present means NCCL's network must be one that uses them, not TCP sockets;
- /dev/shm of at least 1 GiB (NCCL's troubleshooting guide), and NVLink error counters that do
  not grow beyond DCGM's limits during the run.

busbw and latency are measured and reported without floors; the run is NOT CERTIFIED for
bandwidth, and the terminal prints the command that turns its report into a profile.
Expectations here cite the reading they come from instead of a file and line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..evidence.host import HostFacts
from ..evidence.node import Node
from .model import Expectation, HostExpectations, NcclExpectations, Profile

NAME = "hardware-implied"
SHM_SOURCE = (
    "NCCL troubleshooting guide: --shm-size=1g at least (https://docs.nvidia.com/deeplearning/"
    "nccl/user-guide/docs/troubleshooting/runtime_and_mpi_issues.html)"
)
NVLINK_ERRORS_SOURCE = (
    "DCGM diag NVLink thresholds: CRC errors up to 100 per second, no recovery error "
    "(NVIDIA/DCGM nvvs/plugin_src/pcie/Pcie.cpp); no replay error either"
)
NETWORKS = {"ib": ("IB", "IBext", "IBext_v8", "IBext_v9", "IBext_v10"),
            "efa": ("Libfabric", "AWS Libfabric")}  # fmt: skip


def _expect(key: str, value: object, where: str, source: str) -> Expectation:
    return Expectation(key, value, Path(where), 0, source)


def implied_profile(node: Node, why: str) -> Profile:
    """The profile of a GPU node that no profile fits: its GPUs, no floors, the host checks
    every NVIDIA node needs. ``why``: the detection's reason (kept in the description)."""
    inv = node.inventory
    where = f"the hardware of {node.name}"
    errors = "host.nvlink_errors."
    host = HostExpectations(
        shm_min_gib=_expect("host.shm_min_gib", 1, where, SHM_SOURCE),
        max_crc_per_s=_expect(f"{errors}max_crc_per_s", 100, where, NVLINK_ERRORS_SOURCE),
        max_replay=_expect(f"{errors}max_replay", 0, where, NVLINK_ERRORS_SOURCE),
        max_recovery=_expect(f"{errors}max_recovery", 0, where, NVLINK_ERRORS_SOURCE),
    )
    return Profile(
        NAME,
        Path(where),
        f"no profile fits this node ({why}); judged against what its own hardware implies",
        inv.gpu_model or "none",
        len(inv.gpus),
        "bfloat16",
        5,
        20,
        host=host,
        implied=True,
    )


def implied_nccl(
    profile: Profile, nodes: Sequence[Node], facts: Sequence[HostFacts]
) -> NcclExpectations:
    """NCCL expectations from the hosts as read (NVML P2P and NVLink) and the nodes' RDMA
    devices: P2P over NVLink where every GPU pair has it, an RDMA network where NICs exist."""
    nccl = profile.nccl
    nvlinked = [f for f in facts if _all_pairs_nvlink(f)]
    if facts and len(nvlinked) == len(facts):
        origin = "; ".join(sorted({f.origin for f in facts}))
        source = (f"implied by the hardware: NVML reports NVLink and P2P read/write OK between "
                  f"every GPU pair ({origin})")  # fmt: skip
        where = f"the hardware of {', '.join(n.name for n in nodes)}"
        nccl = dataclasses.replace(
            nccl,
            transport=_expect("nccl.intra_node.transport", "P2P", where, source),
            path=_expect("nccl.intra_node.path", "NVL", where, source),
        )
    kinds = sorted({k for n in nodes if n.rdma for k, count in n.rdma.items() if count})
    names = tuple(name for kind in kinds for name in NETWORKS.get(kind, ()))
    if names:
        counts = ", ".join(f"{n.name}: {dict(n.rdma or {})}" for n in nodes)
        origins = "; ".join(sorted({n.rdma_origin for n in nodes if n.rdma_origin}))
        source = (f"implied by the hardware: RDMA devices present ({counts}; {origins}), so "
                  "NCCL must not fall back to TCP sockets")  # fmt: skip
        where = f"the RDMA devices of {', '.join(n.name for n in nodes)}"
        nccl = dataclasses.replace(
            nccl, networks=_expect("nccl.network.names", names, where, source)
        )
    return nccl


def _all_pairs_nvlink(facts: HostFacts) -> bool:
    """Two or more GPUs, each with an active NVLink, and NVLink and P2P read/write OK between
    every pair as NVML reports it."""
    gpus = [g.index for g in facts.gpus]
    if len(gpus) < 2 or not all(any(link.active for link in g.links.values()) for g in facts.gpus):
        return False
    for i in gpus:
        for j in gpus:
            if i == j:
                continue
            caps = facts.p2p.get((i, j)) or facts.p2p.get((j, i))
            if not caps or any(caps.get(c) != "OK" for c in ("nvlink", "read", "write")):
                return False
    return True
