"""The ranks start, join and agree; the node has the GPUs its profile says."""

from __future__ import annotations

from pytest_gpufabric import Fabric


def test_ranks_joined(gpufabric: Fabric) -> None:
    gpufabric.check_ranks_joined()


def test_gpu_inventory(gpufabric: Fabric) -> None:
    gpufabric.check_inventory()
