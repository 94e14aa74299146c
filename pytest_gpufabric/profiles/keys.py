"""The keys each profile section allows (tests check thresholds/profile.schema.json against
these) and the values some of them take."""

from __future__ import annotations

from ..runs import INTER_NODE, INTRA_NODE, NETWORK_ONLY, NVLINK_ONLY, RUN_KINDS, SPLIT

TOP_KEYS = (
    "name", "description", "extends", "gpu", "bandwidth", "latency", "workload", "nccl", "host",
)  # fmt: skip
GPU_KEYS = ("model", "count", "memory_gib")
BANDWIDTH_KEYS = (
    "dtype", "warmup", "iters", "repeats", "timing", "ranks", "warn_band", *RUN_KINDS, SPLIT,
)  # fmt: skip
LATENCY_KEYS = ("source", "margin", "ceilings")
WORKLOAD_KEYS = ("source", "margin", "nodes", "layouts")
GROUP_KINDS = ("tp", "pp", "dp")  # a layout's tensor-parallel, pipeline, data-parallel groups
RUN_KEYS: dict[str, tuple[str, ...]] = {
    INTRA_NODE: ("source", "margin", "warn_band", "floors"),
    INTER_NODE: ("source", "margin", "warn_band", "nodes", "floors"),
    NETWORK_ONLY: ("source", "margin", "warn_band", "nodes", "env", "floors"),
    NVLINK_ONLY: ("source", "margin", "warn_band", "floors"),
}
SPLIT_KEYS = ("source", "margin", "max_slowdown", "size")  # a limit, not floors
FLOOR_KEYS = ("busbw_gbps", "source")
NCCL_KEYS = ("source", "intra_node", "network")
NCCL_INTRA_KEYS = ("transport", "path", "p2p_read", "nvls", "channels")
NCCL_NETWORK_KEYS = ("names", "gdr", "plugin", "provider", "nics", "protocol")
HOST_KEYS = (
    "source", "shm_min_gib", "fabric_manager", "nvlink", "nvlink_errors", "p2p", "pcie",
    "nic_affinity", "rdma",
)  # fmt: skip
HOST_PARTS: dict[str, tuple[str, ...]] = {
    "nvlink": ("links", "version"),
    "nvlink_errors": ("max_crc_per_s", "max_replay", "max_recovery"),
    "pcie": ("gen", "width"),
    "rdma": ("kind", "devices", "memlock_unlimited", "gdr"),
}
P2P_CAPABILITIES = ("read", "write", "nvlink", "atomics")
TOPOLOGY_DISTANCES = ("PIX", "PXB", "PHB", "NODE", "SYS")  # nvidia-smi topo -m, nearest first
# Set by an operator to keep a shared host safe (launch/environment.py enforces it at run
# time too): a profile may never change them.
PROTECTED_ENV = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")
