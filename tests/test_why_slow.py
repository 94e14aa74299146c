"""A failing bandwidth test says why, from the same run's evidence: replays of real 2 × H200
bundles (tests/data/runs/2026-11-30-h200x2-diagnosis) against one real floor."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-diagnosis"
PROFILES = REPO / "tests" / "data" / "profiles" / "h200x2-check"


def replay(pytester: pytest.Pytester, bundle: str) -> pytest.RunResult:
    return pytester.runpytest(
        str(REPO / "suites" / "test_bandwidth.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={RUNS / bundle}", f"--gpufabric-thresholds={PROFILES}",
        "--gpufabric-instance=h200-2gpu-check",
    )  # fmt: skip


def test_one_channel_is_named_with_its_log_line(pytester: pytest.Pytester) -> None:
    result = replay(pytester, "nchannels1")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "all_reduce 1GiB (bfloat16, 2 ranks): busbw 21.1 GB/s is below the floor of 300 GB/s*",
        "  probable causes (most likely first):",
        "  1. NCCL limited to 1 channel by the environment (NCCL_MAX_NCHANNELS=1); a healthy run "
        "uses 24 (nccl.intra_node.channels in */thresholds/hgx-h200-4gpu.yaml:*",
        '     evidence: "NCCL_MAX_NCHANNELS set by environment to 1" (*rank0.nccl.log:95)',
    ])  # fmt: skip


def test_another_process_and_the_power_cap_are_named(pytester: pytest.Pytester) -> None:
    result = replay(pytester, "hog")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "all_reduce 1GiB (bfloat16, 2 ranks): busbw 153.1 GB/s is below the floor of 300 GB/s*",
        "  1. another process on GPU 0 of vm during the run: pid 698 (1130 MiB), not one of the "
        "ranks (757, 758)",
        "  2. GPU clocks held down during the run on vm: GPU 0 by the power cap 7.1 s of 7.3 s",
    ])  # fmt: skip
