"""Profile files: the shipped ones are valid; broken ones fail with file:line: key: problem."""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.profiles.catalogue import load_catalogue, shipped_profile_dir
from pytest_gpufabric.profiles.model import ProfileError
from pytest_gpufabric.profiles.parse import load_profile

DATA = Path(__file__).parent / "data" / "profiles"
BROKEN = DATA / "broken"


def test_every_shipped_profile_validates() -> None:
    catalogue = load_catalogue()
    assert {"hgx-h200-4gpu", "p4d.24xlarge"} <= set(catalogue.names())
    for name in catalogue.names():
        profile = catalogue.profiles[name]
        assert profile.file.parent == shipped_profile_dir()
        for floor in profile.floors:
            assert floor.source, f"{floor.where}: every floor carries its source"


def test_h200_lab_profile() -> None:
    profile = load_catalogue().profiles["hgx-h200-4gpu"]
    assert (profile.gpu_model, profile.gpu_count, profile.ranks, profile.dtype) == (
        "NVIDIA H200",
        4,
        4,
        "bfloat16",
    )
    collectives = {f.collective for f in profile.floors}
    assert collectives == set(Collective)
    floor = profile.floor_for(Collective.ALL_REDUCE, 1 << 30)
    assert floor is not None
    assert "measured on" in floor.source
    assert floor.where.startswith(str(profile.file) + ":")


def test_p4d_floors_come_from_published_figures() -> None:
    profile = load_catalogue().profiles["p4d.24xlarge"]
    assert (profile.gpu_model, profile.gpu_count) == ("NVIDIA A100-SXM4-40GB", 8)
    sources = " ".join(f.source for f in profile.floors)
    assert "azurehpc-health-checks" in sources
    assert "AI-benchmarking-guide" in sources


def test_cpu_profile_is_for_gloo() -> None:
    profile = load_profile(DATA / "cpu" / "cpu-gloo-2rank.yaml")
    assert (profile.gpu_count, profile.backend, profile.ranks, profile.gpu_model) == (
        0,
        "gloo",
        2,
        "none",
    )


CORPUS = {
    "yaml-syntax.yaml": ["yaml-syntax.yaml:4: mapping values are not allowed here"],
    "not-a-mapping.yaml": ["not-a-mapping.yaml:1: a profile must be a YAML mapping, got a list"],
    "unknown-key.yaml": [
        "unknown-key.yaml:5: gpus: unknown key (allowed: bandwidth, description, extends, gpu, host, latency, name, nccl, "
        "workload)"
    ],
    "missing-gpu.yaml": ["missing-gpu.yaml:1: gpu: missing"],
    "name-mismatch.yaml": [
        "name-mismatch.yaml:1: name: 'site-node-a' must match the file name 'name-mismatch'"
    ],
    "bad-floor.yaml": [
        "bad-floor.yaml:8: bandwidth.intra_node.floors.all_reduce.1GiB: busbw floor must be a "
        "number > 0 (GB/s), got -5"
    ],
    "bad-size.yaml": [
        "bad-size.yaml:9: bandwidth.intra_node.floors.all_gather.1TiB: not a size: '1TiB' "
        "(expected e.g. 1048576, 1MiB, 256M, 1GiB)"
    ],
    "unknown-collective.yaml": [
        "unknown-collective.yaml:7: bandwidth.intra_node.floors.allreduce: unknown collective "
        "(known: all_reduce, all_gather, reduce_scatter, alltoall, broadcast, sendrecv)"
    ],
    "no-source.yaml": [
        "no-source.yaml:7: bandwidth.intra_node.floors.all_reduce.1GiB: no source: give one "
        "here or as bandwidth.intra_node.source"
    ],
    "duplicate-key.yaml": ["duplicate-key.yaml:3: duplicate key 'gpu'"],
    "bad-dtype.yaml": [
        "bad-dtype.yaml:4: bandwidth.dtype: 'fp8' is not one of float32, bfloat16, float16"
    ],
    "bad-count.yaml": ["bad-count.yaml:4: gpu.count: must be an integer >= 0, got 'four'"],
    "one-rank-floors.yaml": [
        "one-rank-floors.yaml:3: bandwidth.ranks: floors need at least 2 ranks, got 1 (set "
        "bandwidth.ranks for a CPU node)"
    ],
    "extends-unknown.yaml": [
        "extends-unknown.yaml:3: extends: unknown profile 'p4.24xlarge' (known: "
        "Standard_ND96asr_v4, Standard_ND96isr_H100_v5, *"
    ],
    "override-without-source.yaml": [
        "override-without-source.yaml:6: bandwidth.intra_node.floors.all_reduce.1GiB: no source: "
        "give one here or as bandwidth.intra_node.source"
    ],
    "protected-env.yaml": [
        "protected-env.yaml:6: bandwidth.network_only.env.NCCL_NVLS_ENABLE: protected: operators "
        "set it to keep a shared host safe (NVLink multicast); a profile may not change it"
    ],
    "inter-node-without-nodes.yaml": [
        "inter-node-without-nodes.yaml:4: bandwidth.inter_node.nodes: missing (how many nodes "
        "the floors are for)"
    ],
    "bad-warn-band.yaml": [
        "bad-warn-band.yaml:4: bandwidth.warn_band: must be a number >= 0, got -5"
    ],
    "bad-nvls.yaml": ["bad-nvls.yaml:6: nccl.intra_node.nvls: must be true or false, got 'maybe'"],
    "workload-bad-layout.yaml": [
        "workload-bad-layout.yaml:6: workload.layouts.2x2: '2x2' is not a layout: give TPxPPxDP, "
        "e.g. 2x4x1",
        "workload-bad-layout.yaml:10: workload.layouts.1x1x4.ep: unknown key (allowed: dp, pp, tp)",
        "workload-bad-layout.yaml:9: workload.layouts.1x1x4.tp: this layout has no tp group (tp "
        "size 1)",
    ],
    "workload-bad-floor.yaml": [
        "workload-bad-floor.yaml:7: workload.layouts.2x1x2.dp.reduce_scatter.16MiB: busbw floor "
        "must be a number > 0 (GB/s), got 0"
    ],
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in BROKEN.iterdir()) == sorted(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_broken_profile_names_file_line_and_key(name: str) -> None:
    """Each file loaded as a user overlay over the shipped catalogue (so `extends:` resolves)."""
    with pytest.raises(ProfileError) as info:
        load_catalogue([BROKEN / name])
    assert len(info.value.problems) == len(CORPUS[name])
    for got, want in zip(info.value.problems, CORPUS[name], strict=True):
        assert fnmatch.fnmatchcase(got, f"{BROKEN}/{want}"), got


def test_catalogue_reports_every_broken_file_at_once() -> None:
    with pytest.raises(ProfileError) as info:
        load_catalogue([BROKEN])
    assert len(info.value.problems) == sum(len(p) for p in CORPUS.values())


def test_overlay_replaces_shipped_profile(tmp_path: Path) -> None:
    overlay = tmp_path / "hgx-h200-4gpu.yaml"
    overlay.write_text(
        "name: hgx-h200-4gpu\ngpu: {model: NVIDIA H200, count: 4}\nbandwidth:\n  intra_node:\n"
        "    source: site measurement\n    floors:\n      all_reduce: {1GiB: 340}\n"
    )
    profile = load_catalogue([tmp_path]).profiles["hgx-h200-4gpu"]
    assert profile.file == overlay
    assert [(f.nbytes, f.busbw_gbps, f.source, f.line) for f in profile.floors] == [
        (1 << 30, 340.0, "site measurement", 7)
    ]


def test_duplicate_names_in_overlays_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    text = "name: site-node\ngpu: {model: NVIDIA H200, count: 4}\n"
    (tmp_path / "a" / "site-node.yaml").write_text(text)
    (tmp_path / "b" / "site-node.yaml").write_text(text)
    with pytest.raises(ProfileError, match="is also in"):
        load_catalogue([tmp_path / "a", tmp_path / "b"])


def test_missing_overlay_path(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load_catalogue([tmp_path / "nope.yaml"])
    assert info.value.problems == [f"{tmp_path}/nope.yaml: no such file or directory"]


WORKLOAD = """name: site-node
extends: hgx-h200-4gpu
workload:
  source: measured on site-node
  margin: floor = 80% of the lowest run
  layouts:
    2x1x2:
      tp: {all_reduce: {16MiB: 150, 256MiB: 260}}
      dp: {reduce_scatter: {256MiB: 120}}
    1 × 4 × 1:
      pp: {sendrecv: {64MiB: 90}}
"""


def test_workload_floors_per_layout_and_group_kind(tmp_path: Path) -> None:
    (tmp_path / "site-node.yaml").write_text(WORKLOAD)
    profile = load_catalogue([tmp_path]).profiles["site-node"]
    section = profile.workload
    assert section is not None
    assert section.nodes == 1
    floor = section.floor_for((2, 1, 2), "tp", Collective.ALL_REDUCE, 256 << 20)
    assert floor is not None
    assert (floor.busbw_gbps, floor.line, floor.source, floor.margin) == (
        260.0, 8, "measured on site-node", "floor = 80% of the lowest run",
    )  # fmt: skip
    assert section.floor_for((2, 1, 2), "dp", Collective.REDUCE_SCATTER, 256 << 20) is not None
    assert section.floor_for((1, 4, 1), "pp", Collective.SENDRECV, 64 << 20) is not None
    assert section.floor_for((2, 1, 2), "tp", Collective.ALL_GATHER, 256 << 20) is None
    assert section.floor_for((1, 1, 4), "dp", Collective.REDUCE_SCATTER, 256 << 20) is None


def test_a_workload_section_replaces_the_parents_and_null_removes_it(tmp_path: Path) -> None:
    (tmp_path / "site-node.yaml").write_text(WORKLOAD)
    (tmp_path / "site-child.yaml").write_text(
        "name: site-child\nextends: site-node\nworkload:\n  source: child\n  nodes: 2\n"
        "  layouts:\n    1x1x4: {dp: {all_gather: {16MiB: 10}}}\n"
    )  # fmt: skip
    (tmp_path / "site-plain.yaml").write_text("name: site-plain\nextends: site-node\n")
    (tmp_path / "site-none.yaml").write_text(
        "name: site-none\nextends: site-node\nworkload: null\n"
    )
    profiles = load_catalogue([tmp_path]).profiles
    child = profiles["site-child"].workload
    assert child is not None
    assert child.nodes == 2
    assert list(child.floors) == [((1, 1, 4), "dp")]
    inherited, parent = profiles["site-plain"].workload, profiles["site-node"].workload
    assert inherited is not None
    assert parent is not None
    assert inherited.floors == parent.floors
    assert profiles["site-none"].workload is None
