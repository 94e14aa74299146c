"""The kinds of runs a profile gates, defined once: each is a ``bandwidth.<kind>`` section of
a profile and runs in one rank pool with its own NCCL settings.

- ``intra_node``: the main run on one node, NCCL's own choice of transports;
- ``inter_node``: the main run with ranks on several nodes (real ones, or one host split
  into NCCL nodes with NCCL_HOSTID);
- ``network_only``: P2P and SHM disabled, so every byte goes through the NIC (as SuperBench's
  ``gdr-only`` and AzNHC's IB loopback run), GPUDirect RDMA allowed at any distance where the
  profile expects it;
- ``nvlink_only``: P2P limited to NVLink, no SHM, no network plugin, InfiniBand off: a pair
  that cannot use NVLink shows up as NET/Socket in the logs and in the bandwidth.

One more pool is not a floors section: ``split`` (:data:`SPLIT_RUN`) gives every rank its own
NCCL host (NCCL_HOSTID per rank), as one pod per GPU on a node does (NCCL's host hash comes
from the host name, so pods of one node are separate hosts to it). The split-cost check
compares its busbw with the main run's on the same node (``bandwidth.split``).

Pure vocabulary: session/plans.py turns a kind and a profile into a pool's plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

DEFAULT = "default"  # the main run's pool (and artifacts directory)
INTRA_NODE = "intra_node"
INTER_NODE = "inter_node"
NETWORK_ONLY = "network_only"
NVLINK_ONLY = "nvlink_only"

GDR_ANYWHERE = MappingProxyType({"NCCL_NET_GDR_LEVEL": "SYS"})  # AzNHC/SuperBench use 5 = SYS


@dataclass(frozen=True)
class RunKind:
    name: str  # the profile section bandwidth.<name>
    pool: str  # the rank pool it runs in
    isolation: bool  # a run of its own that forces one path
    env: Mapping[str, str]  # NCCL settings the run forces on top of the caller's
    summary: str


KINDS: Mapping[str, RunKind] = MappingProxyType(
    {
        INTRA_NODE: RunKind(
            INTRA_NODE, DEFAULT, False, MappingProxyType({}),
            "one node, NCCL's own choice of transports",
        ),
        INTER_NODE: RunKind(
            INTER_NODE, DEFAULT, False, MappingProxyType({}),
            "ranks on several nodes, NCCL's own choice of transports",
        ),
        NETWORK_ONLY: RunKind(
            NETWORK_ONLY, NETWORK_ONLY, True,
            MappingProxyType({"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1"}),
            "P2P and SHM disabled: every byte through the NIC",
        ),
        NVLINK_ONLY: RunKind(
            NVLINK_ONLY, NVLINK_ONLY, True,
            MappingProxyType(
                {
                    "NCCL_P2P_LEVEL": "NVL",
                    "NCCL_SHM_DISABLE": "1",
                    "NCCL_NET_PLUGIN": "none",
                    "NCCL_IB_DISABLE": "1",
                }
            ),
            "P2P over NVLink only: no SHM, no network plugin, no InfiniBand",
        ),
    }
)  # fmt: skip
RUN_KINDS = tuple(KINDS)

SPLIT = "split"
# Compared with the main run, not judged against floors of its own: kept out of KINDS (the
# bandwidth.<kind> floors sections, the floors tool's --section).
SPLIT_RUN = RunKind(
    SPLIT, SPLIT, False, MappingProxyType({}),
    "every rank its own NCCL host (NCCL_HOSTID per rank), as one pod per GPU",
)  # fmt: skip
ISOLATION_RUNS = tuple(name for name, kind in KINDS.items() if kind.isolation)


def main_kind(nodes: int) -> str:
    """The section that judges the main run: intra_node on one node, else inter_node."""
    return INTER_NODE if nodes > 1 else INTRA_NODE
