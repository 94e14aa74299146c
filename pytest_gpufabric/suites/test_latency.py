"""Time per call of small collectives (all_reduce and sendrecv, 8 B to 64 KiB): a NIC or PCIe
path gone slow, or a starved proxy thread, shows here before it shows in bandwidth."""

from __future__ import annotations

from pytest_gpufabric import Fabric, LatencyCase


def test_latency(gpufabric: Fabric, gpufabric_latency_case: LatencyCase) -> None:
    gpufabric.check_latency(gpufabric_latency_case)
