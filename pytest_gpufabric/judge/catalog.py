"""Every check by name, as the suites parametrize over them: the NCCL checks (one test each
in test_transports.py), the host checks (test_host.py) and the isolation-run path checks
(test_isolation.py)."""

from __future__ import annotations

from collections.abc import Callable

from ..evidence.nccl_log import NcclLog
from ..profiles.model import HostExpectations, NcclExpectations
from ..runs import NETWORK_ONLY, NVLINK_ONLY
from .host import (
    HostEvidence,
    judge_fabric_manager,
    judge_nic_affinity,
    judge_pcie,
    judge_rdma,
    judge_shm,
    judge_shm_shared,
)
from .isolation import judge_network_only, judge_nvlink_only
from .judgement import Judgement
from .links import judge_nvlink, judge_nvlink_errors, judge_p2p
from .nccl import (
    judge_init,
    judge_intra_node,
    judge_nodes,
    judge_nvls,
    judge_p2p_mode,
    judge_warnings,
)
from .network import judge_inter_node, judge_net_plugin, judge_network

NcclCheck = Callable[[NcclLog, NcclExpectations], Judgement]
HostCheck = Callable[[HostEvidence, HostExpectations], Judgement]

CHECKS: dict[str, NcclCheck] = {
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

HOST_CHECKS: dict[str, HostCheck] = {
    "shm": judge_shm,
    "shm_shared": judge_shm_shared,
    "fabric_manager": judge_fabric_manager,
    "nvlink": judge_nvlink,
    "nvlink_errors": judge_nvlink_errors,
    "p2p": judge_p2p,
    "pcie": judge_pcie,
    "nic_affinity": judge_nic_affinity,
    "rdma": judge_rdma,
}
# Host checks about GPUs: a profile of a node without GPUs does not ask for them.
GPU_HOST_CHECKS = frozenset(HOST_CHECKS) - {"shm", "shm_shared", "rdma"}

ISOLATION_CHECKS: dict[str, NcclCheck] = {
    NETWORK_ONLY: judge_network_only,
    NVLINK_ONLY: judge_nvlink_only,
}
