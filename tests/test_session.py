"""Which profile judges a node, what is skipped and why: decisions made before any rank runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from launchers import ScriptedLauncher

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.evidence.inventory import Gpu, Inventory
from pytest_gpufabric.evidence.node import Node
from pytest_gpufabric.profiles.catalogue import load_catalogue
from pytest_gpufabric.session.cases import correctness_cases
from pytest_gpufabric.session.session import FabricSession
from pytest_gpufabric.session.world import inventory_problem
from pytest_gpufabric.settings import SettingError, resolve

CPU_PROFILES = Path(__file__).parent / "data" / "profiles" / "cpu"


@pytest.fixture
def h200_node(h200_capture: Path) -> Inventory:
    probe = json.loads((h200_capture / "host" / "nvml-probe.json").read_text())
    gpus = tuple(Gpu(g["index"], g["name"], g["uuid"], g["pci"], 143771) for g in probe["gpus"])
    return Inventory(gpus, probe["driver"], "vm", "2.11.0", "2.28.9 (nvidia-nccl-cu13)")


CPU_NODE = Inventory((), None, "ci", "2.13.0", None, no_gpu_reason="NVML unavailable")


def session(inventory: Inventory, **options: str) -> FabricSession:
    """The session built for a node with ``inventory``; its launcher is the test launcher,
    so nothing is read from this machine."""
    cli = {f"gpufabric_{k}": v for k, v in options.items()}
    settings = resolve(cli, {}, {}, cwd=Path("/w"))
    launcher = ScriptedLauncher([Node(inventory.hostname, inventory)])
    return FabricSession.build(settings, load_catalogue([CPU_PROFILES]), launcher)


def test_auto_picks_the_h200_lab_profile(h200_node: Inventory) -> None:
    s = session(h200_node)
    assert s.world.profile is not None
    assert s.world.profile.name == "hgx-h200-4gpu"
    assert (s.world.backend, s.world.nranks, s.world.dtype) == ("nccl", 4, "bfloat16")
    assert s.world.profile_reason == "auto: hardware fingerprint 4 × NVIDIA H200 (140.4 GiB)"
    assert s.world.inventory_problem is None
    assert all(s.bandwidth_skip_reason(c) is None for c in s.bandwidth_cases())


def test_auto_on_a_node_no_profile_fits_judges_its_hardware(h200_node: Inventory) -> None:
    """No longer a usage error (issue 11): the node is judged by what its hardware implies,
    and the reason still names the nearest profiles."""
    two = Inventory(h200_node.gpus[:2], "580", "vm", None, None)
    world = session(two).world
    assert world.profile is not None
    assert world.profile.implied
    assert world.profile.name == "hardware-implied"
    assert (world.profile.gpu_count, world.profile.gpu_model) == (2, "NVIDIA H200")
    assert world.profile_reason.startswith(
        "auto: no profile fits this node (2 × NVIDIA H200; closest: "
    )
    assert "hgx-h200-4gpu expects 4 GPUs, this node shows 2" in world.profile_reason
    assert world.profile_reason.endswith("; judged by what its hardware implies")


def test_unknown_instance_type_names_its_source(h200_node: Inventory) -> None:
    with pytest.raises(SettingError) as info:
        session(h200_node, instance="p9.96xlarge")
    assert str(info.value).startswith(
        "--gpufabric-instance: unknown instance type 'p9.96xlarge' (from --gpufabric-instance); "
        "known: Standard_ND96asr_v4, Standard_ND96isr_H100_v5, "
    )
    assert ", cpu-gloo-2rank, cpu-gloo-certify, hgx-h200-4gpu, p4d.24xlarge, " in str(info.value)


def test_more_ranks_than_gpus_is_refused(h200_node: Inventory) -> None:
    with pytest.raises(SettingError, match=r"8 ranks \(from --gpufabric-nprocs\) but only 4 GPUs"):
        session(h200_node, nprocs="8")


def test_cpu_node_runs_gloo_without_floors() -> None:
    s = session(CPU_NODE)
    assert (s.world.profile, s.world.backend, s.world.nranks, s.world.dtype) == (
        None,
        "gloo",
        2,
        "float32",
    )
    case = s.bandwidth_cases()[0]
    reason = s.bandwidth_skip_reason(case)
    assert reason is not None
    assert reason.startswith("no instance profile (auto: no GPU visible (NVML unavailable)")
    assert {c.collective for c in s.correctness_cases()} == set(Collective)


def test_wrong_node_for_the_profile_is_one_problem(h200_node: Inventory) -> None:
    s = session(h200_node, instance="p4d.24xlarge")
    problem = s.world.inventory_problem
    assert problem is not None
    assert problem.startswith("profile p4d.24xlarge expects 8 × NVIDIA A100-SXM4-40GB (")
    assert problem.endswith("this node has 4 × NVIDIA H200 visible")
    reasons = {s.bandwidth_skip_reason(c) for c in s.bandwidth_cases()}
    assert reasons == {f"node does not match the profile: {problem}"}


def test_gpu_profile_on_a_cpu_node(h200_node: Inventory) -> None:
    s = session(CPU_NODE, instance="hgx-h200-4gpu")
    assert s.world.backend == "gloo"
    assert s.world.inventory_problem == (
        f"profile hgx-h200-4gpu expects 4 × NVIDIA H200 ({s.world.profile.file if s.world.profile else ''}); "
        "this node has no GPU visible (NVML unavailable)"
    )


def test_floors_are_for_the_profiles_rank_count(h200_node: Inventory) -> None:
    s = session(h200_node, nprocs="2")
    reason = s.bandwidth_skip_reason(s.bandwidth_cases()[0])
    assert reason == (
        "the floors of hgx-h200-4gpu are for 4 ranks; this run has 2 (from --gpufabric-nprocs)"
    )


def test_cpu_profile_gates_gloo() -> None:
    s = session(CPU_NODE, instance="cpu-gloo-2rank")
    assert (s.world.backend, s.world.nranks, s.world.dtype, s.world.inventory_problem) == (
        "gloo",
        2,
        "float32",
        None,
    )
    assert [c.id for c in s.bandwidth_cases()] == ["all_reduce-64KiB", "alltoall-64KiB"]
    assert all(s.bandwidth_skip_reason(c) is None for c in s.bandwidth_cases())


def test_cpu_profile_refuses_a_gpu_node(h200_node: Inventory) -> None:
    assert inventory_problem(
        load_catalogue([CPU_PROFILES]).profiles["cpu-gloo-2rank"], h200_node
    ) == ("profile cpu-gloo-2rank is for a node without GPUs; this node has 4 × NVIDIA H200")


def test_correctness_cases_fall_back_to_float32_when_bf16_cannot_sum_exactly(
    h200_node: Inventory,
) -> None:
    s = session(h200_node)
    assert {c.dtype for c in s.correctness_cases()} == {"bfloat16"}
    assert {c.dtype for c in correctness_cases("nccl", "bfloat16", 200)} == {"float32"}


def test_correctness_case_sizes_give_prime_chunks(h200_node: Inventory) -> None:
    s = session(h200_node)
    for case in s.correctness_cases():
        from pytest_gpufabric.collectives import layout

        assert layout(case.collective, case.nbytes(4), 4, case.dtype).chunk == case.chunk
