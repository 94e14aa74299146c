"""Fleet mode with real gloo ranks: four emulated nodes on this host, one made bad by the
test hook (GPUFABRIC_TEST_FLEET_FAULT), found and named by the planner's rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent.parent / "suites" / "test_fleet.py"
FLEET = ("--gpufabric-fleet", "--gpufabric-emulate-nodes=4", "--gpufabric-nprocs=4",
         "--gpufabric-instance=auto")  # fmt: skip


def test_a_bad_node_among_four_is_named_and_the_others_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GPUFABRIC_TEST_FLEET_FAULT", "gpufabric-node2:GLOO_SOCKET_IFNAME=bogus0")
    report, metrics = tmp_path / "report.json", tmp_path / "gpufabric.prom"
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *FLEET,
                                f"--gpufabric-json={report}", f"--gpufabric-metrics={metrics}")  # fmt: skip
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "4 nodes in * rounds of * probes: 1 bad node(s), 0 bad link(s)",
        "node gpufabric-node2 is bad:",
        "  probe * (confirm: suspect gpufabric-node2 with cleared gpufabric-node*) over "
        "gpufabric-node2, gpufabric-node* failed: start-up: *no network interface matches "
        "GLOO_SOCKET_IFNAME=bogus0*",
    ])  # fmt: skip
    tests = {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert tests["test_fleet_node[gpufabric-node2]"]["outcome"] == "failed"
    assert all(
        tests[f"test_fleet_node[gpufabric-node{j}]"]["outcome"] == "passed" for j in (0, 1, 3)
    )
    props = tests["test_fleet_isolation"]["properties"]
    assert props["fleet_bad_nodes"] == "gpufabric-node2"
    assert props["fleet_rounds"] <= 5
    assert "gpufabric-node2: failed with 2 cleared partners" in props["fleet_decisions"]
    prom = metrics.read_text()
    assert 'gpufabric_fleet_node_bad{node="gpufabric-node2"} 1\n' in prom
    assert 'gpufabric_fleet_node_bad{node="gpufabric-node0"} 0\n' in prom
    assert "# TYPE gpufabric_fleet_node_bad gauge\n" in prom


def test_without_the_option_fleet_mode_is_not_asked(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", "-rs",
                                "--gpufabric-instance=auto")  # fmt: skip
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*fleet mode is off (--gpufabric-fleet)"])


def test_fleet_mode_needs_nodes(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", "-rs",
                                "--gpufabric-instance=auto", "--gpufabric-fleet")  # fmt: skip
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["*fleet mode needs nodes: --gpufabric-emulate-nodes N (N >= 2) on one host"]
    )


def test_a_fleet_run_replays_from_its_bundle_to_the_same_decisions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("GPUFABRIC_TEST_FLEET_FAULT", "gpufabric-node1:GLOO_SOCKET_IFNAME=bogus0")
    bundle, live_json, again_json = (
        tmp_path / "bundle",
        tmp_path / "live.json",
        tmp_path / "again.json",
    )
    live = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *FLEET,
                              f"--gpufabric-artifacts={bundle}", f"--gpufabric-json={live_json}")  # fmt: skip
    live.assert_outcomes(passed=3, failed=2)
    monkeypatch.delenv("GPUFABRIC_TEST_FLEET_FAULT")
    again = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", "--gpufabric-fleet",
                               f"--gpufabric-replay={bundle}", "--gpufabric-instance=auto",
                               f"--gpufabric-json={again_json}")  # fmt: skip
    again.assert_outcomes(passed=3, failed=2)
    again.stdout.fnmatch_lines(["node gpufabric-node1 is bad:"])

    def isolation(path: Path) -> dict[str, object]:
        tests = json.loads(path.read_text())["tests"]
        return next(t["properties"] for t in tests if "test_fleet_isolation" in t["nodeid"])

    live_props, replayed = isolation(live_json), isolation(again_json)
    for key in ("fleet_decisions", "fleet_bad_nodes", "fleet_rounds", "fleet_probes"):
        assert replayed[key] == live_props[key]
