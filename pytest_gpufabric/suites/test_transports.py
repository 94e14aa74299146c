"""What NCCL did, read from every rank's NCCL debug log, against the instance profile: init,
nodes, intra-node transport and P2P mode, inter-node transport, network choice, network
plugin, NVLS, and WARN lines (one test per check; see pytest_gpufabric/transports.py)."""

from __future__ import annotations

from pytest_gpufabric import Fabric


def test_nccl(gpufabric: Fabric, gpufabric_nccl_check: str) -> None:
    gpufabric.check_nccl(gpufabric_nccl_check)
