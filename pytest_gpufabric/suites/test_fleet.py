"""Fleet mode (--gpufabric-fleet): rounds of probes over the run's nodes name the bad nodes and
links (docs/fleet.md); then one test per node with its verdict, so that a CI system shows
which node failed. Skipped, as not asked, without --gpufabric-fleet."""

from __future__ import annotations

import pytest

from pytest_gpufabric import Fabric


@pytest.mark.gpufabric_last
def test_fleet_isolation(gpufabric: Fabric) -> None:
    gpufabric.check_fleet()


def test_fleet_node(gpufabric: Fabric, gpufabric_fleet_node: str) -> None:
    gpufabric.check_fleet_node(gpufabric_fleet_node)
