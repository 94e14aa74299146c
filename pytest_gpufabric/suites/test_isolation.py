"""Isolation runs: the network path on its own (P2P and SHM off, every byte through the NIC)
and NVLink on its own (P2P over NVLink only, no SHM, no network plugin), each in its own
rank pool and environment, judged apart from the main run. A profile asks for them with
bandwidth.network_only and bandwidth.nvlink_only."""

from __future__ import annotations

from pytest_gpufabric import BandwidthCase, Fabric


def test_isolation_path(gpufabric: Fabric, gpufabric_isolation_run: str) -> None:
    gpufabric.check_isolation_path(gpufabric_isolation_run)


def test_isolation_busbw(gpufabric: Fabric, gpufabric_isolation_case: BandwidthCase) -> None:
    gpufabric.check_busbw(gpufabric_isolation_case)
