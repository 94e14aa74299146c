"""GPU visibility as CUDA applies CUDA_VISIBLE_DEVICES, over the GPUs of the real H200 capture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpufabric.evidence.inventory import Gpu, Inventory, take_inventory, visible_gpus


@pytest.fixture
def h200_gpus(h200_capture: Path) -> list[Gpu]:
    probe = json.loads((h200_capture / "host" / "nvml-probe.json").read_text())
    return [Gpu(g["index"], g["name"], g["uuid"], g["pci"], 143771) for g in probe["gpus"]]


def test_all_visible_without_the_variable(h200_gpus: list[Gpu]) -> None:
    assert visible_gpus(h200_gpus, None) == tuple(h200_gpus)


@pytest.mark.parametrize(
    ("value", "indices"),
    [
        ("0,1", [0, 1]),
        ("3,1", [3, 1]),
        ("", []),
        ("2,9,0", [2]),
        ("1,1", [1]),
        ("-1", []),
        ("0, 2", [0, 2]),
    ],
)
def test_indices(h200_gpus: list[Gpu], value: str, indices: list[int]) -> None:
    assert [g.index for g in visible_gpus(h200_gpus, value)] == indices


def test_uuid_prefixes(h200_gpus: list[Gpu]) -> None:
    third = h200_gpus[2].uuid
    assert [g.index for g in visible_gpus(h200_gpus, f"{third[:12]},0")] == [2, 0]
    assert visible_gpus(h200_gpus, "GPU-") == ()  # ambiguous prefix ends the list


def test_model_of_a_mixed_node(h200_gpus: list[Gpu]) -> None:
    mixed = (*h200_gpus[:2], Gpu(4, "NVIDIA H100 80GB HBM3", "GPU-x", "0:0:0", 81559))
    inv = Inventory(mixed, "580", "host", None, None)
    assert inv.gpu_model == "mixed: NVIDIA H100 80GB HBM3, NVIDIA H200"
    assert Inventory(tuple(h200_gpus), "580", "host", None, None).gpu_model == "NVIDIA H200"


def test_this_machine_without_gpu_says_why() -> None:
    inv = take_inventory({})
    if inv.gpus:
        pytest.skip("this machine has GPUs")
    assert inv.gpu_model is None
    assert inv.no_gpu_reason
    assert inv.torch_version  # read from metadata, torch not imported
