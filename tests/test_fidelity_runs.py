"""Replays of the 2 × H200 runs of docs/validation.md run K (timing as nccl-tests, latency,
a node no profile fits): the verdicts the live runs gave, from their bundles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
K = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-K"
LAB2 = REPO / "validation" / "profiles-lab2"
AS_IT_WAS = REPO / "tests" / "data" / "profiles" / "lab2-run-k"  # the lab profile of run K


def test_a_healthy_run_is_certified_by_the_floors_and_ceilings_derived_from_it(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    metrics = tmp_path / "gpufabric.prom"
    result = pytester.runpytest(
        str(REPO / "suites"), "-p", "no:cacheprovider", "-rs",
        f"--gpufabric-replay={K / 'healthy1'}", f"--gpufabric-thresholds={LAB2}",
        f"--gpufabric-thresholds={AS_IT_WAS}", "--gpufabric-instance=h200-2gpu-lab-k",
        f"--gpufabric-metrics={metrics}",
    )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "CERTIFIED: every check and floor that profile h200-2gpu-lab-k asks for was judged and "
            "passed (97 tests)"
        ]
    )
    assert result.ret == 0
    result.assert_outcomes(passed=97, skipped=20)
    prom = metrics.read_text()  # Prometheus text format, for node-exporter's textfile collector
    assert 'gpufabric_certified{instance="h200-2gpu-lab-k",node="vm"} 1\n' in prom
    assert 'gpufabric_busbw_gbps{collective="all_reduce",bytes="1073741824",run="default"} ' in prom
    assert 'gpufabric_latency_us{collective="all_reduce",bytes="8"} 18.4' in prom
    assert re.search(r"gpufabric_run_timestamp_seconds\{[^}]*\} \d{10}\.", prom)  # full time


def test_latency_over_its_ceiling_says_by_how_much(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    tight = tmp_path / "h200-2gpu-tight.yaml"
    tight.write_text(
        "name: h200-2gpu-tight\nextends: h200-2gpu-lab\nlatency:\n  source: a test, a tenth of "
        "the lab ceiling\n  ceilings:\n    all_reduce: {8B: 2.8}\n"
    )
    result = pytester.runpytest(
        str(REPO / "suites" / "test_latency.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={K / 'healthy1'}", f"--gpufabric-thresholds={LAB2}",
        f"--gpufabric-thresholds={tight}", "--gpufabric-instance=h200-2gpu-tight",
    )  # fmt: skip
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines([
        "all_reduce 8B (bfloat16, 2 ranks): * µs per call is *% above the ceiling of 2.8 µs (*×)",
        f"  ceiling: 2.8 µs from {tight}:6 (profile h200-2gpu-tight)",
    ])  # fmt: skip


def test_p2p_off_on_a_node_no_profile_fits_fails_naming_shm(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(REPO / "suites" / "test_transports.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={K / 'noprofile-p2p-off'}", "--gpufabric-instance=auto",
    )  # fmt: skip
    result.stdout.fnmatch_lines([
        "12 of 12 connections between ranks of one node use SHM/direct/direct, not P2P*",
        "  expected: P2P between every pair of ranks on one node (nccl.intra_node.transport in "
        "the hardware of vm; source: implied by the hardware: NVML reports NVLink and P2P "
        "read/write OK between every GPU pair*",
    ])  # fmt: skip
    assert result.ret == 1
