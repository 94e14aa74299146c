"""busbw conventions and buffer layouts, checked against real nccl-tests output and the
measurements recorded on a 4×H200 host."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import (
    Collective,
    expected_value,
    layout,
    pattern_modulus,
    pattern_value,
)
from pytest_gpufabric.judge.measure import bandwidth

NCCL_TESTS_OP = {
    "all_reduce": Collective.ALL_REDUCE,
    "all_gather": Collective.ALL_GATHER,
    "reduce_scatter": Collective.REDUCE_SCATTER,
    "alltoall": Collective.ALLTOALL,
    "sendrecv": Collective.SENDRECV,
}
ROW = re.compile(r"^\s+(\d+)\s+(\d+)\s+bfloat16\s+\S+\s+-?\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s")


def nccl_tests_rows(path: Path) -> list[tuple[int, int, float, float, float]]:
    """(size, count, time_us, algbw, busbw) of the out-of-place columns."""
    rows = []
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match:
            size, count, time_us, algbw, busbw = match.groups()
            rows.append((int(size), int(count), float(time_us), float(algbw), float(busbw)))
    return rows


@pytest.mark.parametrize("name", sorted(NCCL_TESTS_OP))
def test_busbw_matches_nccl_tests_output(h200_capture: Path, name: str) -> None:
    rows = nccl_tests_rows(h200_capture / "nccl-tests" / f"{name}_perf.txt")
    assert len(rows) == 3
    for size, _count, time_us, algbw, busbw in rows:
        ours_alg, ours_bus = bandwidth(NCCL_TESTS_OP[name], size, 4, time_us / 1e3)
        # nccl-tests prints time and bandwidth rounded to 2 decimals
        assert ours_alg == pytest.approx(algbw, rel=3e-4, abs=0.011)
        assert ours_bus == pytest.approx(busbw, rel=3e-4, abs=0.011)


@pytest.mark.parametrize("name", ["all_gather", "reduce_scatter", "alltoall"])
def test_layout_counts_match_nccl_tests(h200_capture: Path, name: str) -> None:
    """nccl-tests' count column is the per-rank chunk for these collectives."""
    for size, count, *_ in nccl_tests_rows(h200_capture / "nccl-tests" / f"{name}_perf.txt"):
        shape = layout(NCCL_TESTS_OP[name], size, 4, "bfloat16")
        assert shape.chunk == count
        assert shape.nbytes == size


def test_recorded_h200_results_use_the_same_conventions(h200_capture: Path) -> None:
    recorded = json.loads((h200_capture / "default" / "result.json").read_text())
    assert recorded["world"] == 4
    for entry in recorded["results"]:
        algbw, busbw = bandwidth(Collective(entry["op"]), entry["bytes"], 4, entry["ms"])
        assert algbw == pytest.approx(entry["algbw"], rel=1e-9)
        assert busbw == pytest.approx(entry["busbw"], rel=1e-9)


@pytest.mark.parametrize(
    ("collective", "factor"),
    [(Collective.ALL_REDUCE, 1.5), (Collective.ALL_GATHER, 0.75), (Collective.REDUCE_SCATTER, 0.75),
     (Collective.ALLTOALL, 0.75), (Collective.BROADCAST, 1.0), (Collective.SENDRECV, 1.0)],
)  # fmt: skip
def test_busbw_factors_for_four_ranks(collective: Collective, factor: float) -> None:
    assert collective.busbw_factor(4) == factor


def test_layout_rounds_down_to_whole_chunks() -> None:
    shape = layout(Collective.REDUCE_SCATTER, 1000, 3, "float32")  # 250 elements, 3 ranks
    assert (shape.chunk, shape.send, shape.recv, shape.nbytes) == (83, 249, 83, 996)
    assert layout(Collective.ALL_REDUCE, 1000, 3, "float32").recv == 0  # in place


@pytest.mark.parametrize(
    ("dtype", "nranks"), [("bfloat16", 4), ("bfloat16", 8), ("bfloat16", 64), ("float32", 1024)]
)
def test_pattern_sums_stay_exact(dtype: str, nranks: int) -> None:
    limit = {"bfloat16": 256, "float32": 1 << 24}[dtype]
    modulus = pattern_modulus(dtype, nranks)
    assert modulus >= 3
    assert nranks * (modulus - 1) <= limit


def test_pattern_refuses_sums_it_cannot_hold() -> None:
    with pytest.raises(ValueError, match="float32"):
        pattern_modulus("bfloat16", 128)


def test_expected_values_follow_seed_001() -> None:
    """Seed 001: rank r holds r, r+1, ...; the sum over 4 ranks of element i is 4i + 6."""
    shape = layout(Collective.ALL_REDUCE, 4 * 4, 4, "float32")
    modulus = 97
    assert [pattern_value(0, i, modulus) for i in range(4)] == [0, 1, 2, 3]
    assert [expected_value(shape, 0, i, modulus) for i in range(4)] == [
        sum(pattern_value(r, i, modulus) for r in range(4)) for i in range(4)
    ]
    ring = layout(Collective.SENDRECV, 16, 4, "float32")
    assert expected_value(ring, 0, 0, modulus) == pattern_value(3, 0, modulus)  # from the left
