"""The plugin seen from outside: options, usage errors, the shipped suites on this CPU machine,
JUnit properties, the JSON report, failure messages, and no rank outliving pytest."""

from __future__ import annotations

import json
import os
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
BROKEN = Path(__file__).parent / "data" / "profiles" / "broken"


def junit(path: Path) -> tuple[dict[str, str], dict[str, ET.Element]]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    facts = {p.get("name", ""): p.get("value", "") for p in suite.findall("properties/property")}
    cases = {f"{c.get('classname')}::{c.get('name')}": c for c in suite.findall("testcase")}
    return facts, cases


def case_properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.findall("properties/property")}


def test_help_lists_every_option_with_env_and_ini(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for name in ("instance", "nprocs", "timeout", "artifacts", "json", "thresholds"):
        result.stdout.fnmatch_lines([f"*--gpufabric-{name}=*"])
        result.stdout.fnmatch_lines([f"*GPUFABRIC_{name.upper()}*"])
        result.stdout.fnmatch_lines([f"*gpufabric_{name} *"])


def test_inactive_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "gpufabric:" not in result.stdout.str()  # no header, no session


@pytest.mark.parametrize(
    ("args", "env", "ini", "message"),
    [
        (["--gpufabric-timeout=0"], {}, "",
         "ERROR: --gpufabric-timeout: invalid value '0' from --gpufabric-timeout: must be a number of seconds > 0"),
        (["--gpufabric-instance=auto"], {"GPUFABRIC_NPROCS": "lots"}, "",
         "ERROR: --gpufabric-nprocs: invalid value 'lots' from environment variable GPUFABRIC_NPROCS: not an integer"),
        (["--gpufabric-instance=auto"], {}, "gpufabric_timeout = x",
         "ERROR: --gpufabric-timeout: invalid value 'x' from ini option gpufabric_timeout in */tox.ini: not a number of seconds"),
        (["--gpufabric-instance=p9.96xlarge"], {}, "",
         "ERROR: --gpufabric-instance: unknown instance type 'p9.96xlarge' (from --gpufabric-instance); known: Standard_ND96asr_v4, *"),
        (["--gpufabric-instance=auto", f"--gpufabric-thresholds={BROKEN / 'bad-floor.yaml'}"], {}, "",
         f"ERROR: {BROKEN}/bad-floor.yaml:8: bandwidth.intra_node.floors.all_reduce.1GiB: busbw floor must be a number > 0 (GB/s), got -5"),
    ],
)  # fmt: skip
def test_bad_input_is_a_one_line_usage_error(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    ini: str,
    message: str,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_shipped_suites_on_a_machine_without_gpu(pytester: pytest.Pytester, tmp_path: Path) -> None:
    report, report_json = tmp_path / "report.xml", tmp_path / "report.json"
    result = pytester.runpytest(
        str(SUITES), "-p", "no:cacheprovider", "-rs", "--gpufabric-instance=auto",
        f"--junitxml={report}", f"--gpufabric-json={report_json}",
        f"--gpufabric-artifacts={tmp_path / 'art'}",
    )  # fmt: skip
    result.assert_outcomes(passed=15, skipped=27)
    result.stdout.fnmatch_lines(
        [
            "gpufabric: instance none [[]auto: no GPU visible (*); gloo on CPU, no floors]",
            "gpufabric: backend gloo, 2 ranks, torch *, GPUs none",
            "*SKIPPED [[]6] *test_bandwidth.py*: no instance profile (auto: no GPU visible*",
            "*SKIPPED [[]9] *test_transports.py*: gloo backend: NCCL is not used on this run",
            "*SKIPPED [[]1] *test_host.py*: NVLink state unknown: NVML unavailable*",
            "*SKIPPED [[]1] *test_isolation.py*: network_only is an NCCL isolation run; this run uses gloo",
        ]
    )
    facts, cases = junit(report)
    assert facts["backend"] == "gloo"
    assert facts["nranks"] == "2"
    assert facts["instance"] == "none"
    correctness = case_properties(
        cases["suites.test_correctness::test_exact_result[alltoall-65537xfloat32]"]
    )
    assert correctness["checked_elements"] == "131074"
    assert correctness["mismatches"] == "0"
    data = json.loads(report_json.read_text())
    assert data["schema"] == "pytest-gpufabric/1"
    assert {k: str(v) for k, v in data["run"].items()} == facts
    assert data["summary"] == {"passed": 15, "skipped": 27}
    assert len(data["tests"]) == len(cases)
    logs = sorted(p.name for p in (tmp_path / "art" / "default").iterdir())
    assert logs == ["pool.json", "rank0.out.log", "rank1.out.log"]  # gloo: no NCCL log
    assert json.loads((tmp_path / "art" / "report.json").read_text())["run"] == data["run"]


def test_bandwidth_verdicts_end_to_end_with_a_cpu_profile(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Real gloo measurements judged against a CPU profile whose floors are made to pass
    (all_reduce) and to fail (alltoall)."""
    report = tmp_path / "report.xml"
    result = pytester.runpytest(
        str(SUITES / "test_bandwidth.py"), "-p", "no:cacheprovider",
        "--gpufabric-instance=cpu-gloo-2rank", f"--gpufabric-thresholds={CPU_PROFILES}",
        f"--junitxml={report}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    profile = CPU_PROFILES / "cpu-gloo-2rank.yaml"
    result.stdout.fnmatch_lines(
        [
            "alltoall 64KiB (float32, 2 ranks): busbw * GB/s is below the floor of 1e+06 GB/s by * GB/s (-100.0%)",
            "  measured: * ms (median of 5 iterations after 1 warm-up, slowest rank *; per rank *, * ms), algbw * GB/s",
            f"  floor: 1e+06 GB/s from {profile}:15 (profile cpu-gloo-2rank)",
            "  source: test profile; floors chosen to pass (all_reduce) and to fail (alltoall) on any CPU",
            "  margin policy: none (test)",
        ]
    )
    _, cases = junit(report)
    failed = cases["suites.test_bandwidth::test_busbw[alltoall-64KiB]"]
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(
        "Failed: alltoall 64KiB (float32, 2 ranks): busbw "
    )
    props = case_properties(failed)
    assert float(props["busbw_gbps"]) > 0
    assert props["threshold_gbps"] == "1000000.0"
    assert props["threshold_file"] == f"{profile}:15"
    assert props["nranks"] == "2"
    assert (props["backend"], props["instance"]) == ("gloo", "cpu-gloo-2rank")
    passed = case_properties(cases["suites.test_bandwidth::test_busbw[all_reduce-64KiB]"])
    assert float(passed["margin_pct"]) > 0


def test_gpu_profile_on_a_node_without_gpus_is_one_failure(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        str(SUITES), "-p", "no:cacheprovider", "--gpufabric-instance=hgx-h200-4gpu"
    )
    result.assert_outcomes(passed=13, failed=1, skipped=75)
    result.stdout.fnmatch_lines(
        [
            "profile hgx-h200-4gpu expects 4 × NVIDIA H200 (*hgx-h200-4gpu.yaml); this node has no GPU visible (*)",
            "SKIPPED [[]24] *test_bandwidth.py*: node does not match the profile: profile hgx-h200-4gpu expects *",
            "FAILED *test_node.py::test_gpu_inventory*",
        ]
    )


RANK_FAULTS = """
import os, signal
from pathlib import Path
from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.session.session import CorrectnessCase

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
        ("hung", 0, "SIGSTOP", "ranks 0, 1 did not finish within 3 s"),
    ],
)
def test_dead_or_hung_rank_fails_in_time_and_leaves_nothing(
    pytester: pytest.Pytester, name: str, victim: int, sig: str, summary: str
) -> None:
    pytester.makepyfile(RANK_FAULTS.format(name=name, victim=victim, signal=sig))
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-rs", "--gpufabric-instance=auto", "--gpufabric-timeout=3"
    )
    assert time.monotonic() - t0 < 40
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


CTRL_C = """
import os, signal
from pathlib import Path
from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.session.session import CorrectnessCase

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
    )  # fmt: skip
    pid_file = pytester.path / "pids"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # rank 0 is now inside all_reduce, waiting for the frozen rank 1
    pytest_run.send_signal(signal.SIGINT)
    out, _ = pytest_run.communicate(timeout=30)
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
    result = pytester.runpytest("-p", "no:cacheprovider", "--gpufabric-instance=auto")
    result.assert_outcomes(passed=1)


def test_xdist_is_refused(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    pytester.makepyfile("def test_x(gpufabric): pass")
    result = pytester.runpytest("-n", "2", "--gpufabric-instance=auto")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*cannot run under pytest-xdist*"])


def test_environment_variable_enables_the_plugin(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GPUFABRIC_INSTANCE", "auto")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["gpufabric: instance none*"])
    assert os.environ["GPUFABRIC_INSTANCE"] == "auto"


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
