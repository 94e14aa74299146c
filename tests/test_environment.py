"""Rank environments keep what the operator set and add NCCL's evidence settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpufabric.launch.environment import (
    EVIDENCE_SUBSYS,
    merge_debug_subsys,
    rank_environment,
)

OPERATOR = {
    "NCCL_NVLS_ENABLE": "0",
    "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
    "NVSHMEM_DISABLE_NVLS": "1",
    "NCCL_SOCKET_IFNAME": "^docker0,lo",
    "PYTHONPATH": "/opt/site",
}


def env(
    overrides: dict[str, str] | None = None, base: dict[str, str] | None = None
) -> dict[str, str]:
    return rank_environment(
        base if base is not None else OPERATOR, overrides or {}, rank=2, nranks=4,
        backend="nccl", controller="127.0.0.1:4711", token="t0ken", rank_addr="10.0.0.2",
        startup_timeout=600.0, job_timeout=60.0, log_dir=Path("/art/default"),
    )  # fmt: skip


def test_operator_variables_reach_the_rank() -> None:
    e = env({"NCCL_P2P_DISABLE": "1"})
    for key, value in OPERATOR.items():
        if key != "PYTHONPATH":
            assert e[key] == value
    assert e["NCCL_P2P_DISABLE"] == "1"
    assert e["PYTHONPATH"].endswith(":/opt/site")


def test_rendezvous_and_evidence() -> None:
    e = env()
    assert (e["RANK"], e["WORLD_SIZE"], e["LOCAL_RANK"]) == ("2", "4", "2")
    assert e["GPUFABRIC_RANK_CONTROLLER"] == "127.0.0.1:4711"
    assert e["GPUFABRIC_RANK_TOKEN"] == "t0ken"
    assert e["GPUFABRIC_RANK_ADDR"] == "10.0.0.2"
    assert (e["GPUFABRIC_RANK_STARTUP_TIMEOUT"], e["GPUFABRIC_RANK_JOB_TIMEOUT"]) == (
        "600.0",
        "60.0",
    )
    assert "MASTER_PORT" not in e  # rank 0 binds the store itself and reports the port
    assert e["NCCL_DEBUG"] == "INFO"
    assert e["NCCL_DEBUG_FILE"] == "/art/default/rank2.nccl.log"
    assert e["NCCL_DEBUG_SUBSYS"] == ",".join(EVIDENCE_SUBSYS)
    assert e["OMP_NUM_THREADS"] == "1"


def test_operator_trace_level_is_kept() -> None:
    assert env(base={"NCCL_DEBUG": "TRACE"})["NCCL_DEBUG"] == "TRACE"
    assert env(base={"NCCL_DEBUG": "WARN"})["NCCL_DEBUG"] == "INFO"


@pytest.mark.parametrize(
    ("current", "merged"),
    [
        (None, "INIT,BOOTSTRAP,ENV,NET,GRAPH,P2P,SHM"),
        ("COLL,INIT", "COLL,INIT,BOOTSTRAP,ENV,NET,GRAPH,P2P,SHM"),
        ("ALL", "ALL"),
        ("^COLL,PROXY", "^COLL,PROXY"),
        ("^NET,COLL", "^COLL"),
        ("^INIT", "ALL"),
    ],
)
def test_debug_subsystems_are_merged(current: str | None, merged: str) -> None:
    assert merge_debug_subsys(current) == merged


def test_protected_safety_variables_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="refusing to override NCCL_NVLS_ENABLE=0"):
        env({"NCCL_NVLS_ENABLE": "1"})
    assert env({"NCCL_NVLS_ENABLE": "0"})["NCCL_NVLS_ENABLE"] == "0"
