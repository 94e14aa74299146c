"""suites/test_workload.py with 4 real gloo ranks: a TP 2 × DP 2 layout and a PP 2 × DP 2
layout, every group of a kind at once (DP groups while the TP groups all_reduce), judged
against the profile's floors for the layout or the fair share of the whole-world floors; a floor no CPU reaches names each group, its link, and how it did alone; a layout
that does not fit is one line naming the value."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "suites" / "test_workload.py"
PROFILES = (f"--gpufabric-thresholds={REPO / 'tests/data/profiles/cpu'}",
            f"--gpufabric-thresholds={REPO / 'tests/data/profiles/cpu-workload'}")  # fmt: skip


def test_tp_dp_and_pp_dp_layouts_pass_group_by_group(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", *PROFILES, "--gpufabric-instance=cpu-gloo-4rank",
        "--gpufabric-layout=2x1x2,1x2x2", f"--gpufabric-json={report}",
        "--gpufabric-allow-uncertified",
    )  # fmt: skip
    result.assert_outcomes(passed=7)
    tests = {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert sorted(tests) == [
        "test_workload[tp1pp2dp2-dp-all_gather-64KiB]",
        "test_workload[tp1pp2dp2-dp-reduce_scatter-64KiB]",
        "test_workload[tp1pp2dp2-pp-sendrecv-64KiB]",
        "test_workload[tp2pp1dp2-dp-all_gather-64KiB]",
        "test_workload[tp2pp1dp2-dp-reduce_scatter-64KiB]",
        "test_workload[tp2pp1dp2-tp-all_gather-64KiB]",
        "test_workload[tp2pp1dp2-tp-all_reduce-64KiB]",
    ]
    tp = tests["test_workload[tp2pp1dp2-tp-all_reduce-64KiB]"]["properties"]
    assert (tp["group0_ranks"], tp["group1_ranks"]) == ("0,1", "2,3")  # consecutive ranks
    dp = tests["test_workload[tp2pp1dp2-dp-reduce_scatter-64KiB]"]["properties"]
    assert (dp["group0_ranks"], dp["group1_ranks"]) == ("0,2", "1,3")
    pp = tests["test_workload[tp1pp2dp2-pp-sendrecv-64KiB]"]["properties"]
    assert (pp["group0_ranks"], pp["group1_ranks"]) == ("0,2", "1,3")  # stage 0, stage 1
    assert tp["group0_link"] == "gloo over TCP"
    assert tp["threshold_gbps"] == pytest.approx(0.0000005)  # 2 of 4 ranks' share


def test_a_group_below_its_floor_is_named_with_its_link_and_measured_alone(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", *PROFILES,
        "--gpufabric-instance=cpu-gloo-4rank-tight", "--gpufabric-layout=2x1x2",
        "-k", "tp-all_gather",
    )  # fmt: skip
    result.assert_outcomes(failed=1, deselected=3)
    result.stdout.fnmatch_lines([
        "all_gather 64KiB, 2 tensor-parallel groups at once: 2 of 2 groups below 500 GB/s busbw",
        "  tensor-parallel group of ranks 0, 1 (on *) over gloo over TCP: * GB/s (median of *",
        "    alone: * GB/s busbw: the group itself is slow: alone it is below the floor too",
        "  tensor-parallel group of ranks 2, 3 (on *) over gloo over TCP: * GB/s (median of *",
        "    alone: * GB/s busbw: the group itself is slow: alone it is below the floor too",
        "  expected: fair share of the whole-world floor: 1000 GB/s (*cpu-gloo-4rank-tight.yaml:11)"
        " × 2 ranks per group / 4 ranks = 500 GB/s (no per-layout floor in profile "
        "cpu-gloo-4rank-tight yet)",
    ])  # fmt: skip


def test_per_layout_floors_of_the_profile_judge_their_groups(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Section workload: its layouts are the ones run (no --gpufabric-layout); a group with
    a floor for its layout is judged against it (named with its file and line), one without
    against its fair share; a DP group runs while the TP groups all_reduce, and says so."""
    report, html = tmp_path / "r.json", tmp_path / "r.html"
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", *PROFILES,
        "--gpufabric-instance=cpu-gloo-4rank-layout", f"--gpufabric-json={report}",
        f"--gpufabric-html={html}", "--gpufabric-allow-uncertified",
    )  # fmt: skip
    result.assert_outcomes(passed=3, failed=1)
    failed = "suites/test_workload.py::test_workload[tp2pp1dp2-tp-all_gather-64KiB]"
    certification = json.loads(report.read_text())["certification"]
    assert [f[-len(failed):] for f in certification["failed"]] == [failed]  # it counts
    result.stdout.fnmatch_lines([
        "all_gather 64KiB, 2 tensor-parallel groups at once: 2 of 2 groups below 1000 GB/s busbw",
        "  expected: 1000 GB/s per tp group of layout 2x1x2 from *cpu-gloo-4rank-layout.yaml:10 "
        "(profile cpu-gloo-4rank-layout)",
        "  source: test profile; a TP all_gather floor no CPU reaches",
        "  margin policy: none (test)",
    ])  # fmt: skip
    tests = {t["nodeid"].split("[")[1][:-1]: t["properties"]
             for t in json.loads(report.read_text())["tests"]}  # fmt: skip
    assert sorted(tests) == [
        "tp2pp1dp2-dp-all_gather-64KiB", "tp2pp1dp2-dp-reduce_scatter-64KiB",
        "tp2pp1dp2-tp-all_gather-64KiB", "tp2pp1dp2-tp-all_reduce-64KiB",
    ]  # fmt: skip
    rs = tests["tp2pp1dp2-dp-reduce_scatter-64KiB"]
    assert rs["threshold_from"].startswith("2e-06 GB/s per dp group of layout 2x1x2 from ")
    assert tests["tp2pp1dp2-dp-all_gather-64KiB"]["threshold_from"].startswith("fair share")
    assert (rs["beside_collective"], rs["beside0_ranks"], rs["beside1_ranks"]) == (
        "all_reduce", "0,1", "2,3",
    )  # fmt: skip
    assert rs["beside0_busbw_gbps"] > 0
    assert not any(k.startswith("beside") for k in tests["tp2pp1dp2-tp-all_reduce-64KiB"])
    page = html.read_text()  # the HTML report's table: the DP rows say what ran beside them
    assert page.count("<td>all_reduce on the TP groups, slowest ") == 4  # 2 DP cases × 2
    alone = tests["tp2pp1dp2-tp-all_gather-64KiB"]["alone_0_1_gbps"]
    assert f"<td>1000</td><td>{alone:.4g}</td>" in page


def test_a_layout_that_does_not_fit_is_one_line(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", *PROFILES, "--gpufabric-instance=cpu-gloo-4rank",
        "--gpufabric-layout=2x2x2",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "ERROR: --gpufabric-layout (from --gpufabric-layout): '2x2x2' places 8 ranks "
        "(tp 2 × pp 2 × dp 2); this run has 4"
    ])  # fmt: skip
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_recorded_workload_run_replays_to_the_same_verdicts(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """A live 4-rank run with its bundle, then the bundle judged again without any rank:
    the same outcomes, each group's busbw as measured, and the alone runs too."""
    bundle, live_json, again_json = tmp_path / "b", tmp_path / "live.json", tmp_path / "again.json"
    args = ("-p", "no:cacheprovider", *PROFILES, "--gpufabric-instance=cpu-gloo-4rank-tight",
            "--gpufabric-layout=2x1x2", "--gpufabric-allow-uncertified")  # fmt: skip
    pytester.runpytest(str(SUITE), *args, f"--gpufabric-artifacts={bundle}",
                       f"--gpufabric-json={live_json}")  # fmt: skip
    again = pytester.runpytest(str(SUITE), *args, f"--gpufabric-replay={bundle}",
                               f"--gpufabric-json={again_json}")  # fmt: skip
    again.assert_outcomes(passed=2, failed=2)

    def outcomes(path: Path) -> dict[str, tuple[str, object, object]]:
        return {t["nodeid"].split("::")[1]: (t["outcome"],
                                             t["properties"].get("group0_busbw_gbps"),
                                             t["properties"].get("alone_0_1_gbps"))
                for t in json.loads(path.read_text())["tests"]}  # fmt: skip

    assert outcomes(again_json) == outcomes(live_json)


RUN_M = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-workload-floors"


@pytest.mark.parametrize(
    ("run", "outcomes"),
    [("judged", {"passed": 10}), ("p2p-off", {"failed": 10}), ("nodes2", {"skipped": 10})],
)
def test_the_2xh200_workload_runs_replay_to_their_verdicts(
    pytester: pytest.Pytester, tmp_path: Path, run: str, outcomes: dict[str, int]
) -> None:
    """Run M (validation/workload.sh): the layouts of 2 GPUs judged by the per-layout floors
    derived from three healthy runs; with P2P off every group over SHM, named as such; over
    2 emulated nodes every group on the network, the TP group said to cross nodes (not
    judged: the lab profile has no floors for 2 nodes)."""
    again = tmp_path / "again.json"
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", f"--gpufabric-replay={RUN_M / run}",
        f"--gpufabric-thresholds={REPO / 'validation' / 'profiles-lab2'}",
        "--gpufabric-instance=h200-2gpu-lab", f"--gpufabric-json={again}",
        "--gpufabric-layout=2x1x1,1x2x1,1x1x2", "-rs",
    )  # fmt: skip
    result.assert_outcomes(**outcomes)
    live = json.loads((RUN_M / run / "report.json").read_text())["tests"]
    replayed = json.loads(again.read_text())["tests"]
    assert [(t["outcome"], t["properties"].get("group0_busbw_gbps")) for t in replayed] == [
        (t["outcome"], t["properties"].get("group0_busbw_gbps")) for t in live
    ]
    if run == "p2p-off":
        result.stdout.fnmatch_lines([
            "all_reduce 16MiB, 1 tensor-parallel group at once: 1 of 1 groups below 175 GB/s busbw",
            "  tensor-parallel group of ranks 0, 1 (on vm) over SHM/direct/direct: 28.1 GB/s *",
            "    it ran alone (the only group of its kind): the group itself is slow",
            "  expected: 175 GB/s per tp group of layout 2x1x1 from *h200-2gpu-lab.yaml:* "
            "(profile h200-2gpu-lab)",
        ])  # fmt: skip
    if run == "nodes2":
        result.stdout.fnmatch_lines([
            "SKIPPED * all_reduce 16MiB, 1 tensor-parallel group at once: slowest group 3.56 GB/s "
            "busbw; no floor to judge it (*) (layout: tp group of ranks 0, 1 on gpufabric-node0, "
            "gpufabric-node1: tensor-parallel traffic crosses nodes)",
        ])  # fmt: skip
        links = {t["properties"]["group0_link"] for t in replayed}
        assert links <= {"the network (NET/Socket/0)",
                         "the network (NET/Socket/0, NET/Socket/0/Shared)"}  # fmt: skip


def test_a_tp_group_across_nodes_is_said_to_be_the_layouts_doing(
    pytester: pytest.Pytester,
) -> None:
    """4 ranks on 2 emulated nodes (NCCL_HOSTID): TP 4 spans both, TP 2 × DP 2 does not."""
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", *PROFILES, "--gpufabric-instance=cpu-gloo-4rank",
        "--gpufabric-emulate-nodes=2", "--gpufabric-layout=4x1x1,2x1x2", "-W",
        "always::pytest_gpufabric.GpufabricWarning", "--gpufabric-allow-uncertified",
    )  # fmt: skip
    result.assert_outcomes(passed=6, warnings=2)  # TP 4's all_reduce and all_gather
    result.stdout.fnmatch_lines([
        "*layout: tp group of ranks 0, 1, 2, 3 on gpufabric-node0, gpufabric-node1: "
        "tensor-parallel traffic crosses nodes*",
    ])  # fmt: skip
    assert "ranks 0, 1 on gpufabric-node0: tensor" not in result.stdout.str()
