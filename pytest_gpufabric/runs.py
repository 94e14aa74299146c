"""The kinds of runs a session launches, each in its own rank pool and environment:

- ``default``: NCCL's own choice of transports; judged with ``bandwidth.intra_node`` (or
  ``bandwidth.inter_node`` when the ranks span several NCCL nodes);
- ``network_only``: P2P and SHM disabled, so every byte goes through the NIC, with GPUDirect
  RDMA allowed at any distance where the profile expects it (as SuperBench's ``gdr-only`` and
  AzNHC's IB loopback run);
- ``nvlink_only``: P2P limited to NVLink, no SHM, no network plugin, InfiniBand off: a pair
  that cannot use NVLink shows up as NET/Socket in the logs and in the bandwidth.

Pure: no processes here; session.py starts the pools.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .profiles.model import INTER_NODE, INTRA_NODE, NETWORK_ONLY, NVLINK_ONLY, Profile

DEFAULT = "default"
ISOLATION_RUNS = (NETWORK_ONLY, NVLINK_ONLY)

NETWORK_ONLY_ENV = {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1"}
GDR_ANYWHERE = {"NCCL_NET_GDR_LEVEL": "SYS"}  # AzNHC/SuperBench use 5, the same level
NVLINK_ONLY_ENV = {
    "NCCL_P2P_LEVEL": "NVL",
    "NCCL_SHM_DISABLE": "1",
    "NCCL_NET_PLUGIN": "none",
    "NCCL_IB_DISABLE": "1",
}


@dataclass(frozen=True)
class RunPlan:
    """One pool: its name (also its artifacts directory), the bandwidth section that judges
    it, the environment on top of the caller's, and how many NCCL nodes the host is split
    into (NCCL_HOSTID per group of ranks)."""

    name: str
    kind: str
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    nodes: int = 1

    def rank_env(self, nranks: int) -> tuple[dict[str, str], ...]:
        """Ranks in contiguous groups, one NCCL_HOSTID per group (as ranks of one node are)."""
        if self.nodes <= 1:
            return ()
        return tuple(
            {"NCCL_HOSTID": f"gpufabric-node{rank * self.nodes // nranks}"}
            for rank in range(nranks)
        )

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in sorted(self.env.items()))
        split = (
            f", ranks split into {self.nodes} NCCL nodes (NCCL_HOSTID)" if self.nodes > 1 else ""
        )
        return f"{self.name} run" + (f" ({settings}{split})" if settings or split else "")


def default_plan(emulated_nodes: int = 1) -> RunPlan:
    kind = INTER_NODE if emulated_nodes > 1 else INTRA_NODE
    return RunPlan(DEFAULT, kind, nodes=emulated_nodes)


def isolation_plan(profile: Profile, kind: str) -> RunPlan | None:
    """The isolation run ``kind`` as the profile asks for it; None when it does not."""
    run = profile.runs.get(kind)
    if run is None:
        return None
    if kind == NETWORK_ONLY:
        gdr = profile.nccl.gdr is not None and bool(profile.nccl.gdr.value)
        env = {**NETWORK_ONLY_ENV, **(GDR_ANYWHERE if gdr else {}), **run.env}
        return RunPlan(NETWORK_ONLY, kind, MappingProxyType(env), run.nodes)
    if kind == NVLINK_ONLY:
        return RunPlan(NVLINK_ONLY, kind, MappingProxyType(dict(NVLINK_ONLY_ENV)))
    raise ValueError(f"{kind!r} is not an isolation run (known: {', '.join(ISOLATION_RUNS)})")
