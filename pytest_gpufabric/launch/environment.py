"""Environment of a rank process: the caller's environment untouched (operators set things
like NCCL_NVLS_ENABLE=0 for good reasons), the pool's overrides, rendezvous variables, and
the NCCL debug settings that make transport evidence appear in a per-rank log."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pytest_gpufabric

# INIT carries the "via" transport lines, NET the plugin/GDR lines, GRAPH topology and graph
# search, ENV the "set by environment" lines; P2P/SHM add detail on those transports.
EVIDENCE_SUBSYS = ("INIT", "BOOTSTRAP", "ENV", "NET", "GRAPH", "P2P", "SHM")


# Variables an operator sets to keep a shared host safe (NVLink multicast can take every GPU
# of a host down); a pool's overrides may never change them.
PROTECTED = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")


def merge_debug_subsys(current: str | None) -> str:
    """Add the subsystems we need to whatever the operator asked for, keeping theirs."""
    if not current or not current.strip():
        return ",".join(EVIDENCE_SUBSYS)
    items = [i.strip() for i in current.split(",") if i.strip()]
    if any(i.upper() == "ALL" for i in items):
        return current
    if items[0].startswith("^"):
        # "^X,Y" = everything but X and Y: stop excluding what we need.
        excluded = [items[0][1:], *items[1:]]
        kept = [i for i in excluded if i.upper() not in EVIDENCE_SUBSYS]
        return "^" + ",".join(kept) if kept else "ALL"
    upper = {i.upper() for i in items}
    return ",".join(items + [s for s in EVIDENCE_SUBSYS if s not in upper])


def nccl_log_name(rank: int | str) -> str:  # "*" gives the glob of all ranks
    return f"rank{rank}.nccl.log"


def rank_environment(
    base: Mapping[str, str],
    overrides: Mapping[str, str],
    *,
    rank: int,
    nranks: int,
    backend: str,
    controller: str,
    token: str,
    rank_addr: str | None,
    startup_timeout: float,
    job_timeout: float,
    log_dir: Path | PurePosixPath,
    local: tuple[int, int] | None = None,
    package_path: bool = True,
) -> dict[str, str]:
    """The environment of one rank. ``controller`` (host:port, or "stdio") and ``token`` let
    it join the pool (launch/wire.py); ``rank_addr`` is where the other ranks reach it (rank 0
    serves the rendezvous store there; None: the environment already says, as a pod's
    downward API does). ``local``: (local rank, ranks on this host), default (rank, nranks).
    ``package_path``: put this very package first on PYTHONPATH (local processes; a pod's
    image has its own)."""
    for name in PROTECTED:
        if name in base and name in overrides and overrides[name] != base[name]:
            raise ValueError(
                f"refusing to override {name}={base[name]} set by the caller with {overrides[name]}"
            )
    env = dict(base)
    env.update(overrides)
    local_rank, local_size = local or (rank, nranks)
    env.update(
        RANK=str(rank),
        WORLD_SIZE=str(nranks),
        LOCAL_RANK=str(local_rank),
        LOCAL_WORLD_SIZE=str(local_size),
        GPUFABRIC_RANK_CONTROLLER=controller,
        GPUFABRIC_RANK_TOKEN=token,
        GPUFABRIC_RANK_BACKEND=backend,
        GPUFABRIC_RANK_STARTUP_TIMEOUT=str(startup_timeout),
        GPUFABRIC_RANK_JOB_TIMEOUT=str(job_timeout),
    )
    if rank_addr is not None:
        env["GPUFABRIC_RANK_ADDR"] = rank_addr
    env.setdefault("OMP_NUM_THREADS", "1")  # as torchrun: N ranks must not each take every core
    if env.get("NCCL_DEBUG", "").upper() not in ("INFO", "TRACE"):
        env["NCCL_DEBUG"] = "INFO"
    env["NCCL_DEBUG_SUBSYS"] = merge_debug_subsys(env.get("NCCL_DEBUG_SUBSYS"))
    env["NCCL_DEBUG_FILE"] = str(log_dir / nccl_log_name(rank))
    if not package_path:
        return env
    # Ranks run with the artifacts directory as cwd; make sure they import this very package.
    package_root = str(Path(pytest_gpufabric.__file__).resolve().parent.parent)
    existing = env.get("PYTHONPATH")
    env["PYTHONPATH"] = package_root + (os.pathsep + existing if existing else "")
    return env
