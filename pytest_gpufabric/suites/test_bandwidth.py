"""Bus bandwidth of every collective × message size the instance profile has a floor for."""

from __future__ import annotations

from pytest_gpufabric import BandwidthCase, Fabric


def test_busbw(gpufabric: Fabric, gpufabric_bandwidth_case: BandwidthCase) -> None:
    gpufabric.check_busbw(gpufabric_bandwidth_case)
