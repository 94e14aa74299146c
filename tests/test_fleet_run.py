"""Fleet mode with real gloo ranks: four emulated nodes on this host, two made bad by the
test hook (GPUFABRIC_TEST_FLEET_FAULT): one fails its own gate, one fails only with other
nodes and is found and named by the planner's rounds among the nodes that passed their gate."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

SUITE = Path(__file__).resolve().parent.parent / "suites" / "test_fleet.py"
FLEET = ("--gpufabric-fleet", "--gpufabric-emulate-nodes=4", "--gpufabric-nprocs=4",
         "--gpufabric-instance=auto")  # fmt: skip


def test_bad_nodes_among_four_are_named_and_the_others_pass(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "GPUFABRIC_TEST_FLEET_FAULT",
        "gpufabric-node1:GLOO_SOCKET_IFNAME=bogus0;pairs@gpufabric-node2:GLOO_SOCKET_IFNAME=bogus0",
    )
    report, metrics = tmp_path / "report.json", tmp_path / "gpufabric.prom"
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *FLEET,
                                f"--gpufabric-json={report}", f"--gpufabric-metrics={metrics}")  # fmt: skip
    result.assert_outcomes(passed=2, failed=3)
    result.stdout.fnmatch_lines([
        "gpufabric-node1 failed its own gate (alone, before any pairing):",
        "  start-up: *no network interface matches GLOO_SOCKET_IFNAME=bogus0*",
    ])  # fmt: skip
    result.stdout.fnmatch_lines([
        "3 nodes in * rounds of * probes: 1 bad node(s), 0 bad link(s); not paired, failed "
        "their own gate: gpufabric-node1",
        "node gpufabric-node2 is bad:",
        "  probe * (pair: every pair once, round *) over *gpufabric-node2* failed: start-up: "
        "*no network interface matches GLOO_SOCKET_IFNAME=bogus0*",
    ])  # fmt: skip
    tests = {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    for j, outcome in enumerate(("passed", "failed", "failed", "passed")):
        assert tests[f"test_fleet_node[gpufabric-node{j}]"]["outcome"] == outcome, j
    assert tests["test_fleet_node[gpufabric-node0]"]["properties"]["fleet_gate"] == "passed"
    props = tests["test_fleet_isolation"]["properties"]
    assert props["fleet_bad_nodes"] == "gpufabric-node2"
    assert props["fleet_gate_failed"] == "gpufabric-node1"
    fleet = json.loads(report.read_text())["fleet"]  # each passing pair with its busbw
    assert all(p["busbw_gbps"] > 0 for p in fleet["probes"] if p["passed"])
    assert all(p["busbw_gbps"] is None for p in fleet["probes"] if not p["passed"])
    assert props["fleet_rounds"] == 3  # every pair of the three nodes that passed their gate
    assert "gpufabric-node2: failed with 2 cleared partners" in props["fleet_decisions"]
    prom = metrics.read_text()
    assert 'gpufabric_fleet_node_bad{node="gpufabric-node1"} 1\n' in prom
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
        ["*fleet mode on one host needs nodes: --gpufabric-emulate-nodes N (N >= 2)"]
    )


def test_a_fleet_run_replays_from_its_bundle_to_the_same_decisions(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(
        "GPUFABRIC_TEST_FLEET_FAULT",
        "gpufabric-node1:GLOO_SOCKET_IFNAME=bogus0;pairs@gpufabric-node3:GLOO_SOCKET_IFNAME=bogus0",
    )
    bundle, live_json, again_json = (
        tmp_path / "bundle",
        tmp_path / "live.json",
        tmp_path / "again.json",
    )
    live = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *FLEET,
                              f"--gpufabric-artifacts={bundle}", f"--gpufabric-json={live_json}")  # fmt: skip
    live.assert_outcomes(passed=2, failed=3)
    live.stdout.fnmatch_lines(["gpufabric-node1 failed its own gate*"])
    monkeypatch.delenv("GPUFABRIC_TEST_FLEET_FAULT")
    again = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", "--gpufabric-fleet",
                               f"--gpufabric-replay={bundle}", "--gpufabric-instance=auto",
                               f"--gpufabric-json={again_json}")  # fmt: skip
    again.assert_outcomes(passed=2, failed=3)
    again.stdout.fnmatch_lines(["gpufabric-node1 failed its own gate*", "  start-up: *bogus0*"])

    def isolation(path: Path) -> dict[str, object]:
        tests = json.loads(path.read_text())["tests"]
        return next(t["properties"] for t in tests if "test_fleet_isolation" in t["nodeid"])

    live_props, replayed = isolation(live_json), isolation(again_json)
    assert live_props["fleet_bad_nodes"] == "gpufabric-node3"
    for key in ("fleet_decisions", "fleet_bad_nodes", "fleet_rounds", "fleet_probes",
                "fleet_gate_failed"):  # fmt: skip
        assert replayed[key] == live_props[key]


def _my_ranks() -> list[int]:
    """Rank processes this test process started (GPUFABRIC_RANK_PARENT), still alive."""
    mine = f"GPUFABRIC_RANK_PARENT={os.getpid()}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and mine in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def test_a_frozen_rank_is_named_with_its_node_within_the_timeout(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A rank of node 2 stops itself (SIGSTOP) when its all_reduce arrives, in every pool with
    other nodes: it never begins the job; the probe names it and its node once the 5 s job
    deadline passes, node 2 is named bad, and no rank process is left."""
    monkeypatch.setenv(
        "GPUFABRIC_TEST_FLEET_FAULT", "pairs@gpufabric-node2:GPUFABRIC_TEST_RANK_FREEZE=1"
    )
    report = tmp_path / "report.json"
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", *FLEET,
                                "--gpufabric-timeout=5", f"--gpufabric-json={report}")  # fmt: skip
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "node gpufabric-node2 is bad:",
        "  probe * over *gpufabric-node2* failed: all_reduce: rank ? never began it; rank ? did "
        "not finish * (waiting in the collective)*; never arrived: rank ? on node "
        "gpufabric-node2 (after *s)",
    ])  # fmt: skip
    waits = [
        float(w) for w in re.findall(r"never arrived: .*\(after ([\d.]+) s\)", result.stdout.str())
    ]
    assert waits
    assert all(5 <= w < 8 for w in waits), waits  # the deadline, then a few seconds
    tests = {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}
    assert tests["test_fleet_node[gpufabric-node2]"]["outcome"] == "failed"
    assert _my_ranks() == []


def test_a_healthy_fleet_is_certified_node_by_node(pytester: pytest.Pytester) -> None:
    """In fleet mode the certification asks for each node's verdict and the isolation only
    (each node's gate holds its host checks, transports and floor), not the main-run suites."""
    profiles = Path(__file__).resolve().parent / "data" / "profiles" / "cpu"
    result = pytester.runpytest(str(SUITE), "-p", "no:cacheprovider", "--gpufabric-fleet",
                                "--gpufabric-emulate-nodes=4", "--gpufabric-nprocs=4",
                                f"--gpufabric-thresholds={profiles}",
                                "--gpufabric-instance=cpu-gloo-certify")  # fmt: skip
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "CERTIFIED: every check and floor that profile cpu-gloo-certify asks for was judged "
            "and passed (5 tests)"
        ]
    )
    assert result.ret == 0
