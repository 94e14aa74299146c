"""Every collective returns the exact expected result on every rank (one case per
collective × size; the cases come from the plugin, see docs/architecture.md)."""

from __future__ import annotations

from pytest_gpufabric import CorrectnessCase, Fabric


def test_exact_result(gpufabric: Fabric, gpufabric_correctness_case: CorrectnessCase) -> None:
    gpufabric.check_correctness(gpufabric_correctness_case)
