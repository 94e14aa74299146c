"""The HTML report (--gpufabric-html, python -m pytest_gpufabric.report html) of real recorded
runs, opened in a real headless Chromium (Debian's package; skipped, saying so, where it is
missing): the charts and the transport matrix are drawn, and the page asks for nothing but
itself."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser import Browser, find

from pytest_gpufabric.fleet.planner import Planner
from pytest_gpufabric.fleet.record import encode
from pytest_gpufabric.fleet.run import FleetResult
from pytest_gpufabric.fleet.simulate import model
from pytest_gpufabric.fleet.summary import fleet_section
from pytest_gpufabric.report.html import render

REPO = Path(__file__).resolve().parent.parent
K = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-K"
FLEET = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-fleet"
LAB2 = REPO / "validation" / "profiles-lab2"
LAB2_K = REPO / "tests" / "data" / "profiles" / "lab2-run-k"  # the lab profile of run K
PAGE_FACTS = """JSON.stringify({
  charts: document.querySelectorAll('.uplot canvas').length,
  titles: Array.from(document.querySelectorAll('.chart')).map(c => c.dataset.title),
  cells: Array.from(document.querySelectorAll('#transports td.cell')).map(
    c => [c.className, c.querySelector('a').textContent, c.title]),
  banner: document.querySelector('.banner h1').textContent,
  first: document.querySelector('body > section').id,
  heat: document.querySelectorAll('#fleet .heat td.cell').length,
  badnodes: Array.from(document.querySelectorAll('#fleet th.badnode')).map(t => t.textContent),
})"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    binary = find()
    if binary is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium)")
    started = Browser(binary)
    try:
        yield started
    finally:
        started.close()


def _look(browser: Browser, page: Path) -> dict[str, Any]:
    requests = browser.open(page)
    assert requests == [page.resolve().as_uri()]  # no font, script, style or image fetched
    found: dict[str, Any] = json.loads(browser.evaluate(PAGE_FACTS))
    return found


def test_a_healthy_run_shows_its_curves_against_the_floors_and_its_transports(
    pytester: pytest.Pytester, browser: Browser, tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    result = pytester.runpytest(
        str(REPO / "suites"), "-p", "no:cacheprovider", f"--gpufabric-replay={K / 'healthy1'}",
        f"--gpufabric-thresholds={LAB2}", f"--gpufabric-thresholds={LAB2_K}",
        "--gpufabric-instance=h200-2gpu-lab-k", f"--gpufabric-html={page}",
    )  # fmt: skip
    assert result.ret == 0
    seen = _look(browser, page)
    assert seen["banner"] == "CERTIFIED"
    # busbw of 6 collectives in 3 runs (default, network_only, nvlink_only) minus network_only's
    # collectives without floors, and 2 latency charts: each drawn on its canvases
    assert {"all_reduce", "sendrecv", "all_reduce (nvlink_only run)", "all_reduce latency"} <= set(
        seen["titles"]
    )
    assert seen["charts"] >= len(seen["titles"])
    assert sorted(c[1] for c in seen["cells"]) == ["P2P/CUMEM ×56", "P2P/CUMEM ×56"]
    assert all("ok" in c[0] for c in seen["cells"])
    assert all("via P2P/CUMEM" in c[2] for c in seen["cells"])  # the evidence line itself
    html = page.read_text()
    assert '"limit":[' in html  # the floors travel with the points
    assert "271" in html  # the 256 MiB all_reduce floor of the lab profile


def test_a_failing_run_puts_its_failures_first_and_marks_the_wrong_transport(
    pytester: pytest.Pytester, browser: Browser, tmp_path: Path
) -> None:
    """2 × H200 with NCCL_P2P_LEVEL=LOC: SHM between the GPUs, busbw below the lab floors."""
    page = tmp_path / "report.html"
    pytester.runpytest(
        str(REPO / "suites"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={REPO / 'tests/data/runs/2026-11-30-h200x2-p2p-loc/bundle'}",
        f"--gpufabric-thresholds={LAB2}", "--gpufabric-instance=h200-2gpu-lab",
        f"--gpufabric-html={page}",
    )  # fmt: skip
    seen = _look(browser, page)
    assert seen["banner"] == "NOT CERTIFIED"
    assert seen["first"] == "failures"
    assert seen["cells"]
    assert all("bad" in c[0] and c[1].startswith("SHM") for c in seen["cells"])
    html = page.read_text()
    assert "<h2>25 failed</h2>" in html
    assert "12 of 12 connections between ranks of one node use SHM/direct/direct" in html
    assert html.count("<details open class=failure>") == 3  # the rest one click away


def test_a_fleet_page_from_a_saved_report_marks_bad_nodes(browser: Browser, tmp_path: Path) -> None:
    page = tmp_path / "fleet.html"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpufabric.report", "html",
         str(FLEET / "faults.report.json"), "-o", str(page), "--bundle", str(FLEET / "faults")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    seen = _look(browser, page)
    assert seen["badnodes"] == ["gpufabric-node2", "gpufabric-node2"] or set(seen["badnodes"]) == {
        "gpufabric-node1",
        "gpufabric-node2",
    }
    assert seen["heat"] == 6  # node0-node2, node2-node3, node0-node3, both ways
    assert "failed its own gate" in page.read_text()


def test_a_report_that_is_not_one_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"tests": []}')
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpufabric.report", "html", str(bad), "-o",
         str(tmp_path / "r.html")], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == f"error: {bad}: not a pytest-gpufabric report (--gpufabric-json)\n"


def test_a_64_node_fleet_page_stays_small() -> None:
    """A model fleet of 64 nodes with 3 bad ones, as the planner tests it: under 2 MB."""
    fleet = model(64, 3, 1, 0.0, seed=1)
    planner = Planner(fleet.nodes)
    while probes := planner.plan():
        for probe in probes:
            planner.record(probe.id, fleet.run(probe))
    result = FleetResult(planner, dict.fromkeys(planner.probes, "all_reduce 1 MiB exact on 16 ranks, 0.412 ms"))  # fmt: skip
    tests = [{"nodeid": f"suites/test_fleet.py::test_fleet_node[{n}]", "outcome": "passed",
              "duration_s": 0.1, "properties": {"fleet_node": n}} for n in fleet.nodes]  # fmt: skip
    tests.append({"nodeid": "suites/test_fleet.py::test_fleet_isolation", "outcome": "failed",
                  "duration_s": 1.0, "properties": {"fleet_record": encode(result)},
                  "message": "3 bad nodes"})  # fmt: skip
    data = {"schema": "pytest-gpufabric/2", "run": {"instance": "p5.48xlarge"},
            "certification": {"verdict": "NOT CERTIFIED", "reason": "3 failed"},
            "tests": tests, "fleet": fleet_section(result)}  # fmt: skip
    size = len(render(data).encode())
    assert size < 2_000_000, size


def test_nccl_tests_output_is_drawn_next_to_our_curve(browser: Browser, tmp_path: Path) -> None:
    """The 4 × H200 gate of 2026-11-22 with nccl-tests' stdout captured on the same host."""
    page = tmp_path / "h200x4.html"
    done = subprocess.run(
        [sys.executable, "-m", "pytest_gpufabric.report", "html",
         str(REPO / "tests/data/runs/2026-11-22-h200x4-B-final-healthy/run1.json"),
         "-o", str(page), "--nccl-tests", str(REPO / "tests/data/h200x4-nccl2.28.9/nccl-tests")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    browser.open(page)
    labels = json.loads(browser.evaluate(
        "JSON.stringify(Object.fromEntries(Array.from(document.querySelectorAll('.chart'))"
        ".map(c => [c.dataset.title, c.dataset.series])))"
    ))  # fmt: skip
    assert "nccl-tests busbw, GB/s" in labels["all_reduce"]
    assert "nccl-tests" not in labels.get("all_reduce (network_only run)", "")
    assert '"reference":[' in page.read_text()
    assert "340.87" in page.read_text() or "340.8" in page.read_text()  # 256 MiB, as printed


def test_pytest_html_reports_carry_each_busbw_picture(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """With pytest-html installed (an optional dependency), each busbw test of the replayed
    2 × H200 run gets its picture: every loop against the floor and warn band."""
    pytest.importorskip("pytest_html")
    page = tmp_path / "pytest-html.html"
    result = pytester.runpytest(
        str(REPO / "suites" / "test_bandwidth.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={K / 'healthy1'}", f"--gpufabric-thresholds={LAB2}",
        "--gpufabric-instance=h200-2gpu-lab", f"--html={page}", "--self-contained-html",
    )  # fmt: skip
    result.assert_outcomes(passed=24)
    html = page.read_text()
    assert html.count("gf-busbw") >= 20  # one per busbw test (escaped into pytest-html's data)
    assert "floor 271 GB/s" in html


def test_the_groups_of_parallel_layouts_are_a_table_with_link_and_floor() -> None:
    """Run M with P2P off: every group's row names its link and its busbw under its floor."""
    run = REPO / "tests" / "data" / "runs" / "2026-11-30-h200x2-workload-floors" / "p2p-off"
    page = render(json.loads((run / "report.json").read_text()), run)
    section = page[page.index("<section id=workload>"):]
    section = section[: section.index("</section>")]
    assert section.count("<tr>") == 1 + 10  # the head, one group per test on 2 GPUs
    assert ("<td>tp2×pp1×dp1</td><td>tp</td><td>all_reduce 256MiB</td><td>0,1</td>"
            "<td>SHM/direct/direct</td><td>28.8</td><td>272</td><td></td><td></td>"
            "<td class='failed'>failed</td>") in section  # fmt: skip
