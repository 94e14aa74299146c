"""The plugin seen from outside, with real rank processes: the shipped suites on this CPU
machine (not certified without a profile, certified with one it meets), JUnit and JSON
reports, dead, hung and interrupted ranks, the ranks' environment, emulated nodes.

The plugin's logic without processes (verdict messages, certification, launchers, bad
input) is in test_plugin_logic.py, on the test launcher of launchers.py."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from processes import gone

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "suites"
CPU_PROFILES = Path(__file__).parent / "data" / "profiles" / "cpu"


def junit(path: Path) -> tuple[dict[str, str], dict[str, ET.Element]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    facts = {p.get("name", ""): p.get("value", "") for p in suite.findall("properties/property")}
    cases = {f"{c.get('classname')}::{c.get('name')}": c for c in suite.findall("testcase")}
    return facts, cases


def case_properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.findall("properties/property")}


def test_shipped_suites_on_a_machine_without_gpu(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """Real gloo ranks: exact results are judged, the rest is skipped with the reason, and
    the run says NOT CERTIFIED (no profile judged it) in the exit code and every report."""
    report, report_json = tmp_path / "report.xml", tmp_path / "report.json"
    result = pytester.runpytest(
        str(SUITES), "-p", "no:cacheprovider", "-rs", "--gpufabric-instance=auto",
        f"--junitxml={report}", f"--gpufabric-json={report_json}",
        f"--gpufabric-artifacts={tmp_path / 'art'}",
    )  # fmt: skip
    result.assert_outcomes(passed=15, skipped=44)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "gpufabric: instance none [[]auto: no GPU visible (*); gloo on CPU, no floors]",
            "gpufabric: launcher local, backend gloo, 2 ranks, torch *, GPUs none",
            "NOT CERTIFIED: no instance profile judged this run (auto: no GPU visible (*)",
            "*SKIPPED [[]6] *test_bandwidth.py*: no instance profile (auto: no GPU visible*",
            "*SKIPPED [[]9] *test_transports.py*: gloo backend: NCCL is not used on this run",
            "*SKIPPED [[]1] *test_host.py*: NVLink state unknown: NVML unavailable*",
            "*SKIPPED [[]1] *test_isolation.py*: network_only is an NCCL isolation run; this run uses gloo",
        ]
    )
    facts, cases = junit(report)
    assert (facts["backend"], facts["nranks"], facts["instance"]) == ("gloo", "2", "none")
    assert facts["launcher"] == "local"
    assert facts["certification"] == "NOT CERTIFIED"
    correctness = case_properties(
        cases["suites.test_correctness::test_exact_result[alltoall-65537xfloat32]"]
    )
    assert correctness["checked_elements"] == "131074"
    assert correctness["mismatches"] == "0"
    data = json.loads(report_json.read_text())
    assert data["schema"] == "pytest-gpufabric/2"
    assert data["exitstatus"] == 1
    run = dict(data["run"])
    nodes = run.pop("nodes")
    assert {k: str(v) for k, v in run.items()} == {
        k: v for k, v in facts.items() if not k.startswith("certification")
    }
    assert [n["gpu_count"] for n in nodes] == [0]
    assert data["certification"]["verdict"] == "NOT CERTIFIED"
    assert data["summary"] == {"passed": 15, "skipped": 44}
    assert len(data["tests"]) == len(cases)
    logs = sorted(p.name for p in (tmp_path / "art" / "default").iterdir())
    assert logs == ["pool.json", "rank0.out.log", "rank1.out.log"]  # gloo: no NCCL log
    assert json.loads((tmp_path / "art" / "report.json").read_text())["run"] == data["run"]
    assert json.loads((tmp_path / "art" / "node.json").read_text())["name"] == nodes[0]["name"]


def test_a_cpu_node_that_meets_its_profile_is_certified(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The whole gate on real gloo ranks against a profile this machine meets: every check
    the profile asks for is judged, and the run ends CERTIFIED with exit code 0."""
    report = tmp_path / "report.xml"
    result = pytester.runpytest(
        str(SUITES), "-p", "no:cacheprovider", "--gpufabric-instance=cpu-gloo-certify",
        f"--gpufabric-thresholds={CPU_PROFILES}", f"--junitxml={report}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["CERTIFIED: every check and floor that profile cpu-gloo-certify asks for was judged *"]
    )
    facts, _ = junit(report)
    assert facts["certification"] == "CERTIFIED"


RANK_FAULTS = """
import os, signal
from pathlib import Path
from pytest_gpufabric import CorrectnessCase
from pytest_gpufabric.collectives import Collective

CASE = CorrectnessCase(Collective.ALL_REDUCE, 1021, "float32")

def test_{name}(gpufabric):
    pool = gpufabric.pool()
    Path("pids").write_text(" ".join(map(str, pool.pids)))
    os.kill(pool.pids[{victim}], signal.{signal})
    gpufabric.check_correctness(CASE)

def test_after(gpufabric):
    gpufabric.check_correctness(CASE)
"""


@pytest.mark.parametrize(
    ("name", "victim", "sig", "summary"),
    [
        ("killed", 1, "SIGKILL", "rank 1 died"),
        (
            "hung",
            0,
            "SIGSTOP",
            "rank 0 never began it; rank 1 did not finish within 3 s (waiting in the collective)",
        ),
    ],
)
def test_dead_or_hung_rank_fails_in_time_and_leaves_nothing(
    pytester: pytest.Pytester, name: str, victim: int, sig: str, summary: str
) -> None:
    """A 3 s job deadline; start-up keeps its own (default) deadline, so a slow cold
    ``import torch`` on a loaded machine cannot be mistaken for a hung rank."""
    pytester.makepyfile(RANK_FAULTS.format(name=name, victim=victim, signal=sig))
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", "--gpufabric-instance=auto", "--gpufabric-timeout=3"
    )
    elapsed = time.monotonic() - t0
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(
        [
            f"rank pool 'default': all_reduce 4084B float32: {summary}*",
            f"--- rank {victim}: last lines of *rank{victim}.out.log",
            f"SKIPPED [[]1] *: rank pool 'default' is down since *test_{name} (all_reduce 4084B float32: {summary}*",
        ]
    )
    pids = [int(p) for p in (pytester.path / "pids").read_text().split()]
    assert all(gone(p) for p in pids)
    assert (
        elapsed < 120
    )  # start-up (minutes at worst) plus a 3 s job deadline, never the default 120 s


CTRL_C = """
import os, signal
from pathlib import Path
from pytest_gpufabric import CorrectnessCase
from pytest_gpufabric.collectives import Collective

def test_blocks(gpufabric):
    pool = gpufabric.pool()
    os.kill(pool.pids[1], signal.SIGSTOP)
    Path("pids").write_text(" ".join(map(str, pool.pids)))
    gpufabric.check_correctness(CorrectnessCase(Collective.ALL_REDUCE, 1021, "float32"))
"""


def test_ctrl_c_stops_every_rank(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(CTRL_C)
    pytest_run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--gpufabric-instance=auto",
         "--gpufabric-timeout=120"],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # As from a terminal: a background job of a non-interactive shell (how CI scripts
        # often run) inherits SIGINT ignored, and Python then installs no KeyboardInterrupt.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        pid_file = pytester.path / "pids"
        deadline = time.monotonic() + 120
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert pid_file.exists(), "the ranks did not start"
        time.sleep(0.5)  # rank 0 is now inside all_reduce, waiting for the frozen rank 1
        pytest_run.send_signal(signal.SIGINT)
        out, _ = pytest_run.communicate(timeout=60)
    finally:
        if pytest_run.poll() is None:  # never leave the inner pytest behind
            pytest_run.kill()
            pytest_run.communicate()
    assert pytest_run.returncode == pytest.ExitCode.INTERRUPTED, out
    assert "KeyboardInterrupt" in out
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(gone(p) for p in pids), out


def test_rank_environment_keeps_operator_settings(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The variables an operator exports reach the ranks unchanged (read back from a rank)."""
    monkeypatch.setenv("NCCL_NVLS_ENABLE", "0")
    monkeypatch.setenv("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    pytester.makepyfile(
        """
        from pathlib import Path

        def test_env(gpufabric):
            pool = gpufabric.pool()
            environ = Path(f"/proc/{pool.pids[1]}/environ").read_bytes().split(b"\\0")
            assert b"NCCL_NVLS_ENABLE=0" in environ
            assert b"TORCH_SYMM_MEM_DISABLE_MULTICAST=1" in environ
            assert b"NCCL_DEBUG=INFO" in environ
        """
    )
    result = pytester.runpytest(
        "-p", "no:cacheprovider", "--gpufabric-instance=auto", "--gpufabric-allow-uncertified"
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_emulated_nodes_split_the_ranks_with_nccl_hostid(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Real ranks, each with its NCCL_HOSTID; the run counts as two nodes."""
    report = tmp_path / "r.json"
    result = pytester.runpytest(
        str(SUITES / "test_node.py"), "-p", "no:cacheprovider", "--gpufabric-emulate-nodes=2",
        f"--gpufabric-artifacts={tmp_path / 'art'}", f"--gpufabric-json={report}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, skipped=1)
    assert json.loads(report.read_text())["run"]["nnodes"] == 2
    pool = json.loads((tmp_path / "art" / "default" / "pool.json").read_text())
    assert pool["rank_env"] == [
        {"NCCL_HOSTID": "gpufabric-node0"},
        {"NCCL_HOSTID": "gpufabric-node1"},
    ]
    too_many = pytester.runpytest(str(SUITES / "test_node.py"), "--gpufabric-emulate-nodes=3")
    assert too_many.ret == pytest.ExitCode.USAGE_ERROR
    too_many.stderr.fnmatch_lines(
        [
            "ERROR: --gpufabric-emulate-nodes: 3 nodes (from --gpufabric-emulate-nodes) but only 2 ranks"
        ]
    )


def test_list_option_prints_the_catalogue_and_the_detection(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--gpufabric-list", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "profile * GPUs * network * floors * file",
            "p4de.24xlarge < p4d.24xlarge * 8 × NVIDIA A100-SXM4-80GB *",
            "on this node: no profile [[]auto: no GPU visible (*); gloo on CPU, no floors]",
        ]
    )
    labelled = pytester.runpytest(
        "--gpufabric-list", "-p", "no:cacheprovider", "--gpufabric-thresholds=nope"
    )
    assert labelled.ret == pytest.ExitCode.USAGE_ERROR
    labelled.stderr.fnmatch_lines(["ERROR: */nope: no such file or directory"])


def test_shipped_suites_run_from_the_installed_package(pytester: pytest.Pytester) -> None:
    """A container image has no checkout: --pyargs finds the suites in the package."""
    result = pytester.runpytest(
        "--pyargs", "pytest_gpufabric.suites", "-p", "no:cacheprovider", "--collect-only", "-q",
        "--gpufabric-instance=auto",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_node.py::test_ranks_joined", "59 tests collected*"])


def test_the_next_pool_is_started_ahead_when_asked(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """--gpufabric-prestart on (auto keeps it off for gloo): the split pool's ranks are spawned
    while the main pool measures, and the split-cost comparison runs on them."""
    report_json = tmp_path / "report.json"
    result = pytester.runpytest(
        str(SUITES / "test_topology.py"), "-p", "no:cacheprovider", "-rs",
        "--gpufabric-instance=auto", "--gpufabric-prestart=on", f"--gpufabric-json={report_json}",
    )  # fmt: skip
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(["*all_reduce 1MiB (float32, 2 ranks): split into 2 NCCL hosts*"])
    assert json.loads(report_json.read_text())["run"]["pools_started_ahead"] == "split"
