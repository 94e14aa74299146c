"""Traffic shaped like training jobs: each parallel layout's tensor-parallel, data-parallel
and pipeline groups, every group of a kind at the same time, each judged on its own
(docs/workload.md). Layouts: --gpufabric-layout, else the seeds' that fit the ranks."""

from __future__ import annotations

from pytest_gpufabric import Fabric, WorkloadCase


def test_workload(gpufabric: Fabric, gpufabric_workload_case: WorkloadCase) -> None:
    gpufabric.check_workload(gpufabric_workload_case)
