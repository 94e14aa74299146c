"""The rank-side tensor maths against the pure definitions in collectives.py (torch on CPU)."""

from __future__ import annotations

import pytest
import torch

from pytest_gpufabric.collectives import Collective, Layout, expected_value, layout, pattern_modulus
from pytest_gpufabric.launch.wire import FirstMismatch
from pytest_gpufabric.rank import ops as rankops

CPU = torch.device("cpu")


@pytest.mark.parametrize("collective", list(Collective))
@pytest.mark.parametrize("nranks", [2, 3, 4, 8])
def test_expected_tensor_matches_definition(collective: Collective, nranks: int) -> None:
    shape = layout(collective, 4 * 7 * nranks, nranks, "float32")  # 7 elements per chunk
    modulus = pattern_modulus("float32", nranks)
    for rank in range(nranks):
        total = shape.recv or shape.send
        got = rankops.expected(shape, rank, modulus, 0, total, CPU).tolist()
        assert got == [expected_value(shape, rank, i, modulus) for i in range(total)]


def correct_result(
    collective: Collective, nranks: int, rank: int, dtype: str
) -> tuple[rankops.Buffers, Layout, int]:
    """Buffers holding exactly what a correct collective leaves on ``rank``."""
    shape = layout(collective, 2 * 5 * nranks * 3, nranks, dtype)
    modulus = pattern_modulus(dtype, nranks)
    buffers = rankops.Buffers(shape, CPU)
    buffers.fill(shape, rank, modulus)
    total = buffers.recv.numel()
    buffers.recv.copy_(rankops.expected(shape, rank, modulus, 0, total, CPU))
    return buffers, shape, modulus


@pytest.mark.parametrize("collective", list(Collective))
def test_check_accepts_exact_result_across_slices(
    collective: Collective, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rankops, "SLICE", 7)  # many slices, none aligned with chunks
    buffers, shape, modulus = correct_result(collective, 4, 1, "bfloat16")
    assert buffers.check(shape, 1, modulus) == (buffers.recv.numel(), 0, None)


@pytest.mark.parametrize("collective", list(Collective))
def test_check_reports_first_corrupted_element(
    collective: Collective, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rankops, "SLICE", 7)
    buffers, shape, modulus = correct_result(collective, 4, 2, "bfloat16")
    want = float(buffers.recv[9])
    buffers.recv[9] = want + 1
    buffers.recv[13] = rankops.POISON
    _, mismatches, first = buffers.check(shape, 2, modulus)
    assert mismatches == 2
    assert first == FirstMismatch(9, want + 1, want)


def test_unwritten_output_is_caught() -> None:
    shape = layout(Collective.ALL_GATHER, 4 * 16, 4, "float32")
    modulus = pattern_modulus("float32", 4)
    buffers = rankops.Buffers(shape, CPU)
    buffers.fill(shape, 0, modulus)  # output poisoned, collective never ran
    _, mismatches, first = buffers.check(shape, 0, modulus)
    assert mismatches == 16
    assert first is not None
    assert first.got == rankops.POISON


def test_non_root_broadcast_buffer_starts_poisoned() -> None:
    shape = layout(Collective.BROADCAST, 64, 2, "float32")
    buffers = rankops.Buffers(shape, CPU)
    buffers.fill(shape, 1, 97)
    assert set(buffers.send.tolist()) == {rankops.POISON}
    buffers.fill(shape, 0, 97)
    assert buffers.send.tolist() == [float(i % 97) for i in range(16)]
