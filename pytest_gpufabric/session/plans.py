"""A run kind (runs.py) as a profile asks for it: the pool's name, the section that judges
it, the environment on top of the caller's, and how the ranks are split into NCCL nodes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ..profiles.model import Profile
from ..runs import (
    DEFAULT,
    GDR_ANYWHERE,
    ISOLATION_RUNS,
    KINDS,
    NETWORK_ONLY,
    SPLIT,
    main_kind,
)


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
        split = f"ranks split into {self.nodes} NCCL nodes (NCCL_HOSTID)" if self.nodes > 1 else ""
        parts = ", ".join(part for part in (settings, split) if part)
        return f"{self.name} run" + (f" ({parts})" if parts else "")


def default_plan(emulated_nodes: int = 1) -> RunPlan:
    return RunPlan(DEFAULT, main_kind(emulated_nodes), nodes=emulated_nodes)


def isolation_plan(profile: Profile, kind: str) -> RunPlan | None:
    """The isolation run ``kind`` as the profile asks for it; None when it does not."""
    if kind not in ISOLATION_RUNS:
        raise ValueError(f"{kind!r} is not an isolation run (known: {', '.join(ISOLATION_RUNS)})")
    run = profile.runs.get(kind)
    if run is None:
        return None
    env = dict(KINDS[kind].env)
    if kind == NETWORK_ONLY:
        gdr = profile.nccl.gdr is not None and bool(profile.nccl.gdr.value)
        env.update(GDR_ANYWHERE if gdr else {})
        env.update(run.env)
        return RunPlan(kind, kind, MappingProxyType(env), run.nodes)
    return RunPlan(kind, kind, MappingProxyType(env))


def split_plan(nranks: int) -> RunPlan:
    """Every rank its own NCCL host: one NCCL_HOSTID per rank, as one pod per GPU is to NCCL
    (its host hash comes from the host name, or NCCL_HOSTID)."""
    return RunPlan(SPLIT, SPLIT, nodes=max(nranks, 1))
