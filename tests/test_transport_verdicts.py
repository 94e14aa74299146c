"""Transport verdicts on the real captures and the seed's p4d log, against shipped profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpufabric.evidence.nccl_log import NcclLog, parse_files, parse_text
from pytest_gpufabric.judge.catalog import CHECKS
from pytest_gpufabric.judge.judgement import Judgement
from pytest_gpufabric.judge.nccl import judge_intra_node, judge_nvls
from pytest_gpufabric.profiles.catalogue import load_catalogue

SEED = Path(__file__).parent / "data" / "seeds" / "000_c5442fdf6457d6ce.txt"
PROFILES = load_catalogue().profiles
H200, P4D = PROFILES["hgx-h200-4gpu"], PROFILES["p4d.24xlarge"]


def verdicts(log: NcclLog, profile_name: str) -> dict[str, Judgement]:
    expectations = PROFILES[profile_name].nccl
    return {name: check(log, expectations) for name, check in CHECKS.items()}


def statuses(judgements: dict[str, Judgement]) -> dict[str, str]:
    return {name: j.status for name, j in judgements.items()}


def capture(h200_capture: Path, name: str) -> NcclLog:
    return parse_files(sorted((h200_capture / name).glob("*.log")))


def test_healthy_h200_run_passes(h200_capture: Path) -> None:
    result = verdicts(capture(h200_capture, "default"), "hgx-h200-4gpu")
    assert statuses(result) == {
        "init": "passed", "nodes": "passed", "intra_node_transport": "passed",
        "p2p_mode": "passed", "inter_node_transport": "skipped", "network": "passed",
        "net_plugin": "skipped", "nvls": "passed", "warnings": "passed",
    }  # fmt: skip
    props = dict(result["intra_node_transport"].properties)
    assert props == {"intra_node_connections": 480, "intra_node_transports": "P2P/CUMEM×480"}
    assert dict(result["p2p_mode"].properties)["p2p_modes"] == "CUMEM×480"
    assert result["inter_node_transport"].summary == "single-node run: no connection between nodes"


def test_p2p_disabled_is_named_shm(h200_capture: Path) -> None:
    result = verdicts(capture(h200_capture, "p2p_disabled"), "hgx-h200-4gpu")
    failed = {n for n, j in result.items() if j.status == "failed"}
    assert failed == {"intra_node_transport"}
    message = result["intra_node_transport"].message
    first, *rest = message.splitlines()
    assert first == (
        "24 of 24 connections between ranks of one node use SHM/direct/direct, not P2P "
        "(pairs 0->1, 1->2, 2->3, 3->0)"
    )
    assert rest[0].startswith(
        '  evidence: rank 0 (vm:1156) channel 0: "Channel 00 : 0[0] -> 1[1] via SHM/direct/direct" ('
    )
    assert rest[0].endswith("p2p_disabled/nccl.vm.1156.log:120)")
    assert any('"NCCL_P2P_DISABLE set by environment to 1"' in line for line in rest)
    expected = next(line for line in rest if line.startswith("  expected:"))
    assert f"nccl.intra_node.transport in {H200.file}:" in expected
    assert "source: tests/data/h200x4-nccl2.28.9/default" in expected
    assert next(line for line in rest if line.startswith("  remedy:")).startswith(
        "  remedy: NCCL fell back from P2P to SHM"
    )


def test_socket_only_is_named_socket_and_a_split_node(h200_capture: Path) -> None:
    result = verdicts(capture(h200_capture, "socket_only"), "hgx-h200-4gpu")
    assert {n for n, j in result.items() if j.status == "failed"} == {
        "nodes",
        "intra_node_transport",
    }
    nodes = result["nodes"].message
    assert nodes.startswith(
        "rank 0 (vm:1280) reports nNodes 4 localRanks 1, but 1 node(s) ran (vm: 4 ranks): "
        "NCCL split the node into one-GPU nodes"
    )
    assert '"NCCL_SHM_DISABLE set by environment to 1"' in nodes
    intra = result["intra_node_transport"].message
    assert intra.startswith(
        "16 of 16 connections between ranks of one node use NET/Socket/0, not P2P"
    )
    assert "NCCL's graph search found intra-node path LOC, not NVL" in intra


def test_two_hostid_nodes_with_socket_between_them(h200_capture: Path) -> None:
    log = capture(h200_capture, "two_node_hostid")
    lab = verdicts(log, "hgx-h200-4gpu")
    assert all(j.status in ("passed", "skipped") for j in lab.values()), statuses(lab)
    assert dict(lab["nodes"].properties) == {
        "nodes": 2,
        "ranks_per_node": "fabric-node-0=2,fabric-node-1=2",
    }
    assert dict(lab["inter_node_transport"].properties) == {
        "inter_node_connections": 12,
        "inter_node_transports": "NET/Socket/0×8, NET/Socket/0/Shared×4",
    }
    assert dict(lab["intra_node_transport"].properties)["intra_node_connections"] == 12
    p4d = verdicts(log, "p4d.24xlarge")
    assert {n for n, j in p4d.items() if j.status == "failed"} == {
        "p2p_mode",
        "inter_node_transport",
        "network",
        "net_plugin",
    }
    assert (
        "12 of 12 connections between nodes use NET/Socket, not Libfabric or AWS Libfabric"
        in p4d["inter_node_transport"].message
    )
    assert "run without GPUDirect RDMA" in p4d["inter_node_transport"].message


def test_seed_p4d_flags_efa_failure_and_socket_and_accepts_read_mode() -> None:
    result = verdicts(parse_files([SEED]), "p4d.24xlarge")
    assert statuses(result) == {
        "init": "passed", "nodes": "passed", "intra_node_transport": "passed",
        "p2p_mode": "passed", "inter_node_transport": "skipped", "network": "failed",
        "net_plugin": "failed", "nvls": "passed", "warnings": "failed",
    }  # fmt: skip
    assert dict(result["p2p_mode"].properties)["p2p_read_connections"] == 192
    network = result["network"].message
    assert network.startswith("4 of 4 ranks use network Socket, not Libfabric or AWS Libfabric")
    assert "aws-ofi-nccl did not initialise (Failed to initialize sendrecv protocol, " in network
    plugin = result["net_plugin"].message
    assert plugin.startswith(
        "aws-ofi-nccl failed to initialise on 4 of 4 ranks: Failed to initialize sendrecv protocol"
    )
    for remedy in ("vpc.amazonaws.com/efa", "IPC_LOCK", "memlock", "fi_info -p efa"):
        assert remedy in plugin
    assert f"nccl.network.plugin in {P4D.file}:" in plugin
    assert result["warnings"].message.startswith("12 NCCL WARN line(s), 3 distinct")


def test_nvls_in_use_where_the_profile_forbids_it(h200_capture: Path) -> None:
    lines = (h200_capture / "default" / "nccl.vm.1034.log").read_text()
    nvls = lines.replace("0 nvls channels", "16 nvls channels")
    assert nvls != lines
    judgement = judge_nvls(parse_text([(nvls, Path("rank0.log"))]), H200.nccl)
    assert judgement.status == "failed"
    assert judgement.message.startswith("NVLS is used (16 nvls channels), expected not used")
    assert '"NCCL_NVLS_ENABLE set by environment to 0"' in judgement.message


def test_unknown_connection_line_cannot_be_certified(h200_capture: Path) -> None:
    text = (h200_capture / "default" / "nccl.vm.1034.log").read_text()
    text += "vm:1034:1034 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/NVLINK5\n"
    judgement = judge_intra_node(parse_text([(text, Path("rank0.log"))]), H200.nccl)
    assert judgement.status == "failed"
    assert "1 connection line(s) of a shape this tool does not know" in judgement.message


def test_no_connection_lines_skips_with_the_reason() -> None:
    text = "vm:9:9 [0] NCCL INFO NCCL version 2.28.9+cuda13.0\n"
    judgement = judge_intra_node(parse_text([(text, Path("a.log"))]), H200.nccl)
    assert judgement.status == "skipped"
    assert "NCCL >= 2.22 connects lazily" in judgement.summary


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_check_skips_without_logs(name: str) -> None:
    assert CHECKS[name](NcclLog(), P4D.nccl).status == "skipped"
