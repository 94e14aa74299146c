"""Deriving floors from the three healthy runs measured on the 4×H200 host (run A)."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.profiles.catalogue import load_catalogue
from pytest_gpufabric.profiles.floors import (
    DEFAULT_MARGINS,
    collect,
    derive,
    main,
    parse_margins,
    render,
    round_down,
)
from pytest_gpufabric.profiles.parse import load_profile

RUNS = sorted((Path(__file__).parent / "data" / "runs" / "2026-11-22-h200x4-A").glob("run*.json"))


@pytest.fixture
def reports() -> list[dict[str, Any]]:
    assert len(RUNS) == 3
    return [json.loads(p.read_text()) for p in RUNS]


def test_floors_follow_the_margin_policy(reports: list[dict[str, Any]]) -> None:
    samples = collect(reports)
    assert samples[(Collective.ALL_REDUCE, 1 << 30)] == [353.95, 353.98, 353.67]
    floors = derive(samples)
    assert floors[(Collective.ALL_REDUCE, 1 << 30)] == 318.0  # floor(0.9 × 353.67)
    assert floors[(Collective.ALLTOALL, 16 << 20)] == 121.0  # floor(0.8 × 152.44)
    assert floors[(Collective.REDUCE_SCATTER, 1 << 20)] == 4.0  # 0.5 × 8.11, one decimal
    assert len(floors) == 20


def test_rendered_profile_is_valid_and_cites_its_runs(
    reports: list[dict[str, Any]], tmp_path: Path
) -> None:
    text = render(reports, name="lab-node", host_label="nvidia-h200-x4")
    path = tmp_path / "lab-node.yaml"
    path.write_text(text)
    profile = load_profile(path)
    assert (profile.gpu_model, profile.gpu_count, profile.dtype, profile.iters) == (
        "NVIDIA H200",
        4,
        "bfloat16",
        20,
    )
    floor = profile.floor_for(Collective.ALL_REDUCE, 1 << 30)
    assert floor is not None
    assert floor.busbw_gbps == 318.0
    assert floor.source.startswith(
        "measured on nvidia-h200-x4 (4×NVIDIA H200, driver 580.159.04, torch 2.11.0+cu130, NCCL 2.28.9"
    )
    assert "3 runs, median of 20 iterations, slowest rank" in floor.source
    assert (
        floor.margin
        == "floor = 90% of the lowest run at >= 256MiB, 80% of the lowest run at >= 16MiB, 50% of the lowest run below 16MiB"
    )


def test_command_line(reports: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*map(str, RUNS), "--name", "x", "--margins", "1GiB=1,0=0.5"]) == 0
    out = capsys.readouterr().out
    assert "      all_reduce: {1MiB: 9, 16MiB: 129, 256MiB: 170, 1GiB: 353}" in out


@pytest.mark.parametrize(
    ("value", "floor"), [(353.67, 353.0), (9.06, 9.0), (4.055, 4.0), (10.0, 10.0)]
)
def test_round_down(value: float, floor: float) -> None:
    assert round_down(value) == floor


def test_parse_margins() -> None:
    assert parse_margins("16MiB=0.8,0=0.5,256MiB=0.9") == DEFAULT_MARGINS
    with pytest.raises(ValueError, match="size 0"):
        parse_margins("16MiB=0.8")
    with pytest.raises(ValueError, match="fraction"):
        parse_margins("0=1.5")


H200_RUNS = sorted((Path(__file__).parent / "data" / "runs").glob("2026-11-22-h200x4-*/run*.json"))


def test_shipped_h200_floors_are_what_the_nine_recorded_runs_give() -> None:
    """Guards the lab profile against hand edits: its floors must be re-derivable."""
    healthy = [json.loads(p.read_text()) for p in H200_RUNS if "nchannels1" not in str(p)]
    assert len(healthy) == 9
    shipped = load_catalogue().profiles["hgx-h200-4gpu"]
    assert {(f.collective, f.nbytes): f.busbw_gbps for f in shipped.floors} == derive(
        collect(healthy)
    )
    assert "9 runs" in shipped.floors[0].source


def test_one_channel_run_fails_every_floor_from_16mib_up() -> None:
    """The recorded NCCL_MAX_NCHANNELS=1 run, re-judged against the shipped floors."""
    (path,) = [p for p in H200_RUNS if "nchannels1" in str(p)]
    shipped = load_catalogue().profiles["hgx-h200-4gpu"]
    for (collective, nbytes), (busbw,) in collect([json.loads(path.read_text())]).items():
        floor = shipped.floor_for(collective, nbytes)
        assert floor is not None
        if nbytes >= 16 << 20:
            assert busbw < floor.busbw_gbps / 4, (collective, nbytes)


FLOORS_BAD_INPUT = [
    (["{tmp}/missing.json", "--name", "n"], "{tmp}/missing.json: cannot read: No such file or directory"),
    (["{tmp}/binary.json", "--name", "n"], "{tmp}/binary.json: not a text file"),
    (["{tmp}/broken.json", "--name", "n"], "{tmp}/broken.json: not JSON: Expecting value: line 1 column 1 (char 0)"),
    (["{tmp}/other.json", "--name", "n"], "{tmp}/other.json: not a pytest-gpufabric report (--gpufabric-json)"),
    (["{tmp}"], "the following arguments are required: --name"),
    (["{run}", "--name", "../etc/x"], "argument --name: '../etc/x' is not a profile name (letters, digits, - _ .)"),
    (["{run}", "--name", "n", "--margins", "16MiB=2"], "argument --margins: '16MiB=2': fraction must be in (0, 1], got '2'"),
    (["{run}", "--name", "n", "--margins", "lots"], "argument --margins: 'lots': 'lots' is not SIZE=FRACTION (e.g. 16MiB=0.8)"),
    (["{run}", "--name", "n", "--margins", "16MiB=0.8"], "argument --margins: '16MiB=0.8': the margins need an entry for size 0 (the smallest messages)"),
    (["{run}", "--name", "n", "--section", "inter_node"], "no bandwidth measurement of the inter_node run in these reports"),
    (["{run}", "--name", "n", "--section", "sideways"], "argument --section: invalid choice: 'sideways' *"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "message"), FLOORS_BAD_INPUT)
def test_floors_bad_input_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    (tmp_path / "binary.json").write_bytes(bytes(range(256)))
    (tmp_path / "broken.json").write_text("")
    (tmp_path / "other.json").write_text('{"results": []}')
    fill = {"tmp": str(tmp_path), "run": str(RUNS[0])}
    with pytest.raises(SystemExit) as info:
        main([a.format(**fill) for a in argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage block, no traceback
    want = f"python -m pytest_gpufabric.floors: error: {message.format(**fill)}"
    assert fnmatch.fnmatch(err.strip(), want), err


K = Path(__file__).parent / "data" / "runs" / "2026-11-30-h200x2-K"
M = Path(__file__).parent / "data" / "runs" / "2026-11-30-h200x2-workload-floors"
G = Path(__file__).parent / "data" / "runs" / "2026-11-30-h200x2-workload-gate"
LAB2 = Path(__file__).parent.parent / "validation" / "profiles-lab2" / "h200-2gpu-lab.yaml"


def test_the_2gpu_lab_overlay_is_what_its_three_runs_give(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Floors, latency ceilings, per-layout workload floors (runs K, M, N) and the overlay's form
    (another GPU count than its parent: gpu.count set, the parent's other sections removed)
    from the tool, as committed."""
    argv = [
        *(str(K / f"healthy{i}" / "report.json") for i in (1, 2, 3)),
        *(str(M / f"healthy{i}.report.json") for i in (1, 2, 3)),
        *(str(G / f"{run}.report.json") for run in ("smoke", "full1", "full2", "full3")),
        "--name", "h200-2gpu-lab", "--extends", "hgx-h200-4gpu",
        "--host-label", "nvidia-h200-x2 (2×H200 NVSwitch VM)",
        "--section", "intra_node", "--section", "network_only", "--section", "nvlink_only",
        "--section", "workload", "--section-margins", "network_only:0=0.5",
        "--section-margins", "nvlink_only:256MiB=0.9,0=0.5",
    ]  # fmt: skip
    assert main(argv) == 0
    body = LAB2.read_text().split("\nname: ", 1)[1]
    assert capsys.readouterr().out == "name: " + body
    assert "gpu: {count: 2}\n" in body
    assert "  inter_node: null  # hgx-h200-4gpu's are for 4 GPUs\n" in body
    assert "    all_reduce: {8B: 29, 1KiB: 32, 64KiB: 34}\n" in body  # 1.5 × the slowest run
    # TP all_reduce 16 MiB: the slowest group of the lowest of 7 runs (219.3) × 0.8; pipeline
    # sendrecv 16 MiB: 140.8 in the gate on one lent machine, 186–209 on the others
    assert "      tp: {all_reduce: {16MiB: 175, 256MiB: 271}," in body
    assert "      pp: {sendrecv: {16MiB: 112, 64MiB: 211}}" in body


def test_section_margins_must_name_a_section(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(K / "healthy1" / "report.json"), "--name", "x", "--section-margins", "nope:0=1"])
    assert "'nope' is not one of intra_node, inter_node, network_only, nvlink_only, workload" in (
        capsys.readouterr().err
    )


def test_latency_tests_never_become_floors() -> None:
    """A latency test records busbw too; with a ceiling it passes, and it must still not add
    8 B floors to intra_node."""
    report = json.loads((K / "healthy1" / "report.json").read_text())
    for test in report["tests"]:
        if "test_latency" in test["nodeid"]:
            test["outcome"] = "passed"
    assert {nbytes for _, nbytes in collect([report])} == {1 << 20, 16 << 20, 256 << 20, 1 << 30}


def test_workload_floors_per_layout_from_the_slowest_group(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """--section workload: per layout, group kind, collective and size, the margin policy
    applied to the slowest group of the lowest run; the K runs given too add nothing to it
    (they have no workload test) and the workload run adds no bandwidth floor."""
    argv = [*(str(K / f"healthy{i}" / "report.json") for i in (1, 2, 3)),
            str(M / "healthy2.report.json"), str(M / "healthy3.report.json"), "--name",
            "h200-2gpu-lab", "--extends", "hgx-h200-4gpu", "--section", "intra_node",
            "--section", "workload"]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "  intra_node:\n    source: \"measured on vm (2×NVIDIA H200" in text
    assert ": 3 runs, median of 3 timed loops" in text  # the K runs only
    assert "suites/test_workload.py: 2 runs, each group while every group of its kind" in text
    (tmp_path / "h200-2gpu-lab.yaml").write_text(text)
    profile = load_catalogue([tmp_path]).profiles["h200-2gpu-lab"]
    assert profile.workload is not None
    measured = [
        next(t["properties"]["group0_busbw_gbps"]
             for t in json.loads((M / f"healthy{i}.report.json").read_text())["tests"]
             if t["nodeid"].endswith("[tp2pp1dp1-tp-all_reduce-256MiB]"))
        for i in (2, 3)
    ]  # fmt: skip
    floor = profile.workload.floor_for((2, 1, 1), "tp", Collective.ALL_REDUCE, 256 << 20)
    assert floor is not None
    assert floor.busbw_gbps == round_down(0.9 * min(measured))
    pp = profile.workload.floor_for((1, 2, 1), "pp", Collective.SENDRECV, 64 << 20)
    assert pp is not None  # measured, not judged (no whole-world floor at 64 MiB): still a floor


def test_workload_floors_need_workload_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([str(K / "healthy1" / "report.json"), "--name", "x", "--section", "workload"])
    assert capsys.readouterr().err.strip().endswith(
        "error: no workload test (suites/test_workload.py) in these reports"
    )
