"""Replays of the fleet runs on 2 × H200 (tests/data/runs/2026-11-30-h200x2-fleet): every
node's gate and every probe's outcome as recorded give the same decisions and verdicts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
RUNS = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-fleet"
SUITE = REPO / "suites" / "test_fleet.py"
KEYS = ("fleet_decisions", "fleet_bad_nodes", "fleet_bad_links", "fleet_rounds",
        "fleet_probes", "fleet_gate_failed")  # fmt: skip


def _tests(report: Path) -> dict[str, dict[str, Any]]:
    return {t["nodeid"].split("::")[1]: t for t in json.loads(report.read_text())["tests"]}


@pytest.mark.parametrize(
    ("run", "bad"),
    [
        ("healthy", ()),
        ("faults", ("gpufabric-node1", "gpufabric-node2")),
        ("frozen", ("gpufabric-node2",)),
    ],
)
def test_a_recorded_fleet_run_replays_to_the_same_decisions(
    pytester: pytest.Pytester, tmp_path: Path, run: str, bad: tuple[str, ...]
) -> None:
    again = tmp_path / "again.json"
    result = pytester.runpytest(
        str(SUITE), "-p", "no:cacheprovider", "--gpufabric-fleet",
        f"--gpufabric-replay={RUNS / run}", f"--gpufabric-thresholds={REPO / 'validation/profiles-lab2'}",
        "--gpufabric-instance=h200-2gpu-lab", f"--gpufabric-json={again}",
    )  # fmt: skip
    live, replayed = _tests(RUNS / f"{run}.report.json"), _tests(again)
    assert {k: t["outcome"] for k, t in replayed.items()} == {
        k: t["outcome"] for k, t in live.items()
    }
    nodes = {k[len("test_fleet_node[") : -1] for k, t in replayed.items()
             if k.startswith("test_fleet_node[") and t["outcome"] == "failed"}  # fmt: skip
    assert nodes == set(bad)
    for key in KEYS:
        assert replayed["test_fleet_isolation"]["properties"].get(key) == live[
            "test_fleet_isolation"
        ]["properties"].get(key)
    pairs = replayed["test_fleet_node[gpufabric-node0]"]["properties"]["fleet_pairs"]
    assert pairs.startswith("probe ")  # each pair it was in, on its own JUnit testcase
    fleet = json.loads(again.read_text())["fleet"]  # the JSON report's fleet section
    assert fleet["bad_nodes"] == list(bad)
    assert {n for n, v in fleet["nodes"].items() if v["verdict"] == "passed"} == {
        f"gpufabric-node{j}" for j in range(4)
    } - set(bad)
    assert all(p["passed"] is not None for p in fleet["probes"])
    assert fleet["rounds"] == 3
    result.stdout.fnmatch_lines(["fleet: 4 nodes, 3 rounds of * probes; bad links: none"])
    if not bad:
        result.stdout.fnmatch_lines(["CERTIFIED: *h200-2gpu-lab* (5 tests)"])
        assert result.ret == 0


def test_the_frozen_ranks_are_named_with_their_node_and_nccl_ras() -> None:
    """What the live run said (pytest's output, kept): the ranks that never arrived, their
    node, NCCL RAS's view, and when."""
    out = (RUNS / "frozen.out.txt").read_text()
    lines = [line for line in out.splitlines() if "never arrived" in line]
    assert lines
    for line in lines:
        assert "on node gpufabric-node2" in line
        assert "NCCL RAS: rank" in line
        assert "sent no data: its process does not respond" in line
        seconds = float(line.rsplit("(after ", 1)[1].split(" s)")[0])
        assert 10 <= seconds < 15  # the 10 s deadline, RAS asked, then named
