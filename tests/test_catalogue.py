"""The shipped catalogue, `extends:` inheritance, user overlays and the catalogue CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.profiles.catalogue import describe, load_catalogue, main, shipped_profile_dir
from pytest_gpufabric.profiles.model import ProfileError
from pytest_gpufabric.runs import INTER_NODE, INTRA_NODE, NETWORK_ONLY, NVLINK_ONLY

# The instance types docs/profiles.md promises, and what each must state.
REQUIRED = [
    "p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge", "p5e.48xlarge", "p5en.48xlarge",
    "p6-b200.48xlarge", "Standard_ND96asr_v4", "Standard_ND96isr_H100_v5",
    "Standard_ND96isr_H200_v5", "a3-highgpu-8g", "a3-megagpu-8g", "hgx-h200-4gpu",
]  # fmt: skip


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", REQUIRED)
def test_every_required_profile_states_what_the_issue_asks(name: str) -> None:
    profile = load_catalogue().profiles[name]
    assert profile.gpu_model
    assert profile.gpu_count > 0
    assert profile.host.nvlink_links is not None, "NVLink links per GPU"
    assert profile.nccl.transport is not None
    assert profile.nccl.p2p_read is not None
    assert "nvls" in _stated_nccl_keys(profile.files), "NVLS expectation (true, false or null)"
    assert profile.nccl.networks is not None, "network the nodes talk over"
    assert profile.host.fabric_manager is not None
    assert profile.host.shm_min_gib is not None
    assert profile.runs[INTRA_NODE].floors, "single-node floors"
    assert profile.runs[INTER_NODE].floors, "inter-node floors"
    for run in profile.runs.values():
        for floor in run.floors:
            assert floor.source.strip(), f"{floor.where}: every number carries its source"
            assert floor.margin.strip(), f"{floor.where}: and the margin policy used"


def _stated_nccl_keys(files: tuple[Path, ...]) -> str:
    return "".join(f.read_text() for f in files)


def test_profile_files_point_editors_at_the_schema() -> None:
    for path in sorted(shipped_profile_dir().glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=profile.schema.json", path


def test_p4de_inherits_from_p4d_with_the_parents_file_and_sources() -> None:
    catalogue = load_catalogue()
    p4d, p4de = catalogue.profiles["p4d.24xlarge"], catalogue.profiles["p4de.24xlarge"]
    assert p4de.extends == ("p4d.24xlarge",)
    assert p4de.files == (p4de.file, p4d.file)
    assert (p4de.gpu_model, p4de.gpu_count, p4de.gpu_memory_gib) == ("NVIDIA A100-SXM4-80GB", 8, 80)
    inherited = p4de.floor_for(Collective.ALL_REDUCE, 8 << 30)
    assert inherited == p4d.floor_for(Collective.ALL_REDUCE, 8 << 30)
    assert inherited is not None
    assert inherited.file == p4d.file
    assert p4de.nccl == p4d.nccl
    assert p4de.host == p4d.host
    own = p4de.runs[INTER_NODE].floor_for(Collective.ALL_REDUCE, 1 << 30)
    assert own is not None
    assert own.file == p4de.file
    assert "p4de" in own.source


def test_three_level_chain_p5en_p5e_p5() -> None:
    p5en = load_catalogue().profiles["p5en.48xlarge"]
    assert p5en.extends == ("p5e.48xlarge", "p5.48xlarge")
    assert p5en.gpu_model == "NVIDIA H200"  # from p5e
    assert p5en.host.rdma_devices is not None
    assert p5en.host.rdma_devices.value == 16
    assert p5en.host.rdma_kind is not None
    assert p5en.host.rdma_kind.file.name == "p5.48xlarge.yaml"


def test_nvls_expectation_can_be_left_open_with_null() -> None:
    catalogue = load_catalogue()
    assert catalogue.profiles["p5.48xlarge"].nccl.nvls is None
    h200 = catalogue.profiles["Standard_ND96isr_H200_v5"].nccl.nvls
    assert h200 is not None
    assert h200.value is True
    assert "ND_H200_v5" in h200.source


def test_child_value_without_a_source_in_its_own_file_is_an_error(tmp_path: Path) -> None:
    """The parent's section source does not vouch for a number the child changed."""
    path = write(
        tmp_path, "site-p4d",
        "name: site-p4d\nextends: p4d.24xlarge\nbandwidth:\n  intra_node:\n    floors:\n"
        "      all_reduce: {1GiB: 190}\n",
    )  # fmt: skip
    with pytest.raises(ProfileError) as info:
        load_catalogue([tmp_path])
    assert info.value.problems == [
        f"{path}:6: bandwidth.intra_node.floors.all_reduce.1GiB: no source: give one here or "
        "as bandwidth.intra_node.source"
    ]


def test_overlay_extending_its_own_name_replaces_the_shipped_profile(tmp_path: Path) -> None:
    path = write(
        tmp_path, "p5.48xlarge",
        "name: p5.48xlarge\nextends: p5.48xlarge\nbandwidth:\n  warn_band: 10\n  intra_node:\n"
        "    source: site acceptance runs, 2026-11\n    floors:\n      all_reduce: {1GiB: 400}\n"
        "      sendrecv: null\nnccl:\n  intra_node:\n    source: site logs show NVLS\n"
        "    nvls: true\n",
    )  # fmt: skip
    shipped = load_catalogue().profiles["p5.48xlarge"]
    site = load_catalogue([tmp_path]).profiles["p5.48xlarge"]
    assert site.file == path
    assert site.extends == ("p5.48xlarge",)
    floor = site.floor_for(Collective.ALL_REDUCE, 1 << 30)
    assert floor is not None
    assert (floor.busbw_gbps, floor.source, floor.line, floor.warn_band_pct) == (
        400.0, "site acceptance runs, 2026-11", 8, 10.0,
    )  # fmt: skip
    kept = site.floor_for(Collective.ALL_REDUCE, 8 << 30)
    assert kept is not None
    assert kept.file == shipped.file
    assert kept.warn_band_pct == 10.0
    assert site.floor_for(Collective.SENDRECV, 1 << 30) is None  # removed with null
    assert shipped.floor_for(Collective.SENDRECV, 1 << 30) is not None
    assert site.nccl.nvls is not None
    assert site.nccl.nvls.where == f"{path}:13"
    assert site.nccl.networks == shipped.nccl.networks


def test_unknown_parent_and_cycles_are_file_line_errors(tmp_path: Path) -> None:
    a = write(tmp_path, "a", "name: a\nextends: b\n")
    b = write(tmp_path, "b", "name: b\nextends: a\n")
    c = write(tmp_path, "c", "name: c\n\nextends: p4.24xlarge\n")
    with pytest.raises(ProfileError) as info:
        load_catalogue([tmp_path])
    problems = info.value.problems
    # b's `extends: a` closes the loop: the cycle is reported there, and a's parent is invalid.
    assert [p for p in problems if not p.startswith(str(c))] == [
        f"{a}:2: extends: 'b' ({b}) is invalid, see its problems",
        f"{b}:2: extends: cycle a -> b -> a",
    ]
    assert any(
        p.startswith(f"{c}:3: extends: unknown profile 'p4.24xlarge' (known: ") for p in problems
    )


def test_isolation_sections_parse_with_their_environment(tmp_path: Path) -> None:
    write(
        tmp_path, "site-node",
        "name: site-node\ngpu: {model: NVIDIA H200, count: 4}\nbandwidth:\n  network_only:\n"
        "    source: site\n    nodes: 2\n    env: {NCCL_SOCKET_IFNAME: eth0, NCCL_IB_HCA: 4}\n"
        "    floors: {all_reduce: {1GiB: 20}}\n  nvlink_only: {}\n",
    )  # fmt: skip
    profile = load_catalogue([tmp_path]).profiles["site-node"]
    run = profile.runs[NETWORK_ONLY]
    assert (run.nodes, dict(run.env)) == (2, {"NCCL_SOCKET_IFNAME": "eth0", "NCCL_IB_HCA": "4"})
    assert profile.runs[NVLINK_ONLY].floors == ()
    assert profile.floors == ()  # no intra_node section


def test_listing_names_every_profile_and_its_parent() -> None:
    lines = describe(load_catalogue())
    assert lines[0].split()[:4] == ["profile", "GPUs", "network", "floors"]
    body = "\n".join(lines)
    assert "p4de.24xlarge < p4d.24xlarge" in body
    assert "Standard_ND96isr_H200_v5 < Standard_ND96isr_H100_v5" in body
    assert len(lines) == 1 + len(load_catalogue().profiles)


def test_catalogue_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["check"]) == 0
    assert capsys.readouterr().out.strip() == f"{len(REQUIRED)} profiles valid"
    assert main(["schema"]) == 0
    assert capsys.readouterr().out.strip().endswith("thresholds/profile.schema.json")
    bad = write(tmp_path, "x", "name: x\ngpu: {count: two}\n")
    assert main(["check", "--thresholds", str(tmp_path)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"{bad}:2: gpu.count: must be an integer >= 0, got 'two'"
    )
