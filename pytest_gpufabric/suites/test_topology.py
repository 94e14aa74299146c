"""What splitting the node into one pod per GPU costs: each collective on one NCCL host (the
main run) and with every rank its own NCCL host (NCCL_HOSTID per rank, as NCCL sees pods of
one node), with the transports NCCL chose in each; judged against bandwidth.split where the
profile sets it, reported otherwise. Needs a main run on one NCCL node with >= 2 ranks."""

from __future__ import annotations

from pytest_gpufabric import Fabric


def test_split_cost(gpufabric: Fabric, gpufabric_split_collective: str) -> None:
    gpufabric.check_split_cost(gpufabric_split_collective)
