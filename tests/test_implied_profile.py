"""A GPU node that no profile fits is judged by what its own hardware implies (profiles/
implied.py): real 4 × H200 captures and a real 2 × H200 bundle (no shipped profile has
2 × H200)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from pytest_gpufabric.evidence import recorded
from pytest_gpufabric.evidence.inventory import Inventory
from pytest_gpufabric.evidence.nccl_log import parse_files
from pytest_gpufabric.evidence.node import Node
from pytest_gpufabric.judge.nccl import judge_intra_node
from pytest_gpufabric.profiles.implied import implied_nccl, implied_profile

REPO = Path(__file__).resolve().parent.parent
BUNDLE = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-diagnosis" / "nchannels1"


def node(rdma: dict[str, int] | None = None) -> Node:
    return Node(
        "vm", Inventory((), None, "vm", None, None), rdma=rdma, rdma_origin="/sys/class/infiniband"
    )


def test_nvlinked_gpus_must_talk_p2p_and_a_p2p_off_run_fails_naming_shm(
    h200_capture: Path,
) -> None:
    host = recorded.load(h200_capture / "host").host
    assert host is not None
    profile = implied_profile(node(), "auto: no profile fits this node (4 × NVIDIA H200)")
    nccl = implied_nccl(profile, [node()], [host])
    assert nccl.transport is not None
    assert nccl.transport.value == "P2P"
    assert "NVLink and P2P read/write OK between every GPU pair" in nccl.transport.source
    assert nccl.networks is None  # no RDMA device: no network is implied
    healthy = judge_intra_node(parse_files(sorted((h200_capture / "default").glob("*.log"))), nccl)
    assert healthy.passed, healthy.message
    off = judge_intra_node(parse_files(sorted((h200_capture / "p2p_disabled").glob("*.log"))), nccl)
    assert not off.passed
    assert "SHM" in off.message
    assert "the hardware of vm" in off.message  # cited where the expectation comes from


def test_a_pair_without_nvlink_implies_no_transport(h200_capture: Path) -> None:
    host = recorded.load(h200_capture / "host").host
    assert host is not None
    pairs = dict(host.p2p)
    pairs[(0, 1)] = {**pairs[(0, 1)], "nvlink": "NS"}
    cut = dataclasses.replace(host, p2p=pairs)
    profile = implied_profile(node(), "test")
    assert implied_nccl(profile, [node()], [cut]).transport is None


def test_rdma_devices_imply_a_network_that_is_not_sockets() -> None:
    profile = implied_profile(node({"ib": 8, "efa": 0}), "test")
    nccl = implied_nccl(profile, [node({"ib": 8, "efa": 0})], [])
    assert nccl.networks is not None
    assert "IB" in nccl.networks.names
    assert "Socket" not in nccl.networks.names


def test_replay_of_a_node_no_profile_fits(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(REPO / "suites"), "-p", "no:cacheprovider", "-rs",
        f"--gpufabric-replay={BUNDLE}", "--gpufabric-instance=auto",
    )  # fmt: skip
    result.stdout.fnmatch_lines_random([
        "gpufabric: instance hardware-implied (the hardware of vm) [auto: no profile fits this "
        "node (2 × NVIDIA H200; closest: *hgx-h200-4gpu expects 4 GPUs, this node shows 2;*",
        "*all_reduce 1GiB: busbw 21.1 GB/s; no floor: auto: no profile fits this node*",
        "NOT CERTIFIED: * check(s) that profile hardware-implied asks for were not judged",
        "make a profile of this node from this run: python -m pytest_gpufabric.floors "
        "REPORT.json --name NAME > NAME.yaml",
    ])  # fmt: skip
    assert result.ret == 1
    result.stdout.no_fnmatch_line("*test_nccl*intra_node_transport*")  # neither failed nor skipped
