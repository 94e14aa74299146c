"""The host around the GPUs, against the instance profile: /dev/shm (size, one mount for all
ranks), fabric manager, NVLink links and error counters during the run, P2P capability, PCIe
links, GPU-NIC distance and RDMA support (one test per check; see
pytest_gpufabric/host_checks.py). Every fact is recorded, also when a check passes."""

from __future__ import annotations

from pytest_gpufabric import Fabric


def test_host(gpufabric: Fabric, gpufabric_host_check: str) -> None:
    gpufabric.check_host(gpufabric_host_check)
