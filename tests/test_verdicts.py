"""Judgements and their messages, fed with the numbers recorded on the 4×H200 host."""

from __future__ import annotations

import json
from pathlib import Path

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.judge.bandwidth import judge_busbw, judge_correctness
from pytest_gpufabric.judge.measure import from_results
from pytest_gpufabric.launch.wire import FirstMismatch, JobResult
from pytest_gpufabric.profiles.model import Floor

FLOOR = Floor(
    Collective.ALL_REDUCE, 1 << 30, 318.0, "measured on test host", "0.9 x min", Path("t.yaml"), 12
)


def recorded(h200_capture: Path, op: str, nbytes: int, folder: str = "default") -> float:
    data = json.loads((h200_capture / folder / "result.json").read_text())
    return float(next(r["ms"] for r in data["results"] if r["op"] == op and r["bytes"] == nbytes))


def replies(ms: list[float], nbytes: int, mismatches: int = 0) -> list[JobResult]:
    out = []
    for rank, t in enumerate(ms):
        bad = mismatches and rank == 2
        out.append(
            JobResult(
                nbytes, median_ms=t, checked=100, mismatches=mismatches if bad else 0,
                first_mismatch=FirstMismatch(7, -1.0, 6.0) if bad else None,
            )
        )  # fmt: skip
    return out


def test_healthy_h200_all_reduce_passes(h200_capture: Path) -> None:
    ms = recorded(h200_capture, "all_reduce", 1 << 30)
    m = from_results(
        Collective.ALL_REDUCE, "bfloat16", 5, 20, replies([ms * 0.99, ms, ms * 0.98, ms], 1 << 30)
    )
    assert m.time_ms == ms  # the slowest rank
    assert m.slowest_rank == 1
    verdict = judge_busbw(m, FLOOR, "hgx-h200-4gpu")
    assert verdict.passed
    props = dict(verdict.properties)
    assert props["busbw_gbps"] == 356.3
    assert props["threshold_gbps"] == 318.0
    assert props["threshold_source"] == "measured on test host"
    assert props["threshold_file"] == "t.yaml:12"
    assert props["margin_pct"] == 12.0


def test_p2p_disabled_run_fails_with_measured_floor_and_source(h200_capture: Path) -> None:
    ms = recorded(h200_capture, "all_reduce", 256 << 20, "p2p_disabled")  # SHM instead of NVLink
    m = from_results(Collective.ALL_REDUCE, "bfloat16", 5, 20, replies([ms] * 4, 256 << 20))
    floor = Floor(
        Collective.ALL_REDUCE,
        256 << 20,
        306.0,
        "measured on test host",
        "0.9 x min",
        Path("t.yaml"),
        12,
    )
    verdict = judge_busbw(m, floor, "hgx-h200-4gpu")
    assert not verdict.passed
    first, *details = verdict.message.splitlines()
    assert first.startswith("all_reduce 256MiB (bfloat16, 4 ranks): busbw 2")
    assert "GB/s is below the floor of 306 GB/s by 2" in first
    assert details[1] == "  floor: 306 GB/s from t.yaml:12 (profile hgx-h200-4gpu)"
    assert details[2] == "  source: measured on test host"
    assert details[3] == "  margin policy: 0.9 x min"


def test_wrong_data_fails_a_fast_run_too() -> None:
    m = from_results(
        Collective.ALL_GATHER, "bfloat16", 0, 1, replies([0.001] * 4, 1 << 20, mismatches=3)
    )
    verdict = judge_busbw(m, FLOOR, "p")
    assert not verdict.passed
    assert "3 wrong result elements" in verdict.message
    assert "first on rank 2 at element 7: got -1, want 6" in verdict.message


def test_correctness_verdicts() -> None:
    ok = judge_correctness(
        from_results(Collective.BROADCAST, "float32", 0, 0, [JobResult(400, checked=100)] * 2)
    )
    assert ok.passed
    assert ok.message == "broadcast 400B: 100 elements exact on 2 ranks"
    unchecked = judge_correctness(
        from_results(Collective.BROADCAST, "float32", 0, 0, [JobResult(400)] * 2)
    )
    assert not unchecked.passed
