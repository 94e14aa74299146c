"""The plugin's logic, with the test launcher of launchers.py instead of rank processes:
options, bad input, verdict messages and properties, the certification verdict and its exit
code, launchers chosen by name and added by a plugin. The NCCL logs and host facts the
scripted pools hand over are real captures of the 4×H200 validation run F."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITES = REPO / "suites"
DATA = Path(__file__).parent / "data"
CPU_PROFILES = DATA / "profiles" / "cpu"
BROKEN = DATA / "profiles" / "broken"
RUN_F = DATA / "runs" / "2026-11-22-h200x4-F-final-one"

# A plugin module that offers the "scripted" launcher; {node} and {script} are Python
# expressions. Loaded with -p, so that it also serves runs of the suites in this checkout.
PLUGIN = """
from pathlib import Path
from launchers import H200, Script, node, scripted_plugin
from pytest_gpufabric.evidence.host import from_json
import json

RUN_F = Path({run_f!r})
def logs(pool):
    return sorted((RUN_F / pool).glob("rank*.nccl.log"))
HOST = from_json(json.loads((RUN_F / "host-after.json").read_text()), "host-after.json")
LOGS = {{pool: logs(pool) for pool in ("default", "network_only", "nvlink_only")}}

pytest_gpufabric_make_launcher = scripted_plugin([{node}], {script})
"""


def scripted(pytester: pytest.Pytester, node: str = "node(H200)", script: str = "Script()") -> None:
    """Runs in ``pytester`` given ``*PLUGIN_ARGS`` offer the scripted launcher."""
    pytester.makepyfile(scripted=PLUGIN.format(run_f=str(RUN_F), node=node, script=script))
    pytester.syspathinsert()


PLUGIN_ARGS = ("-p", "scripted")
HEALTHY_H200 = "Script(default_busbw=1000.0, nccl_logs=LOGS, host=HOST)"


def suites(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(str(SUITES), "-p", "no:cacheprovider", *PLUGIN_ARGS, "--gpufabric-launcher=scripted",
                              *args)  # fmt: skip


def test_help_lists_every_option_with_env_and_ini(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    for name in ("instance", "nprocs", "emulate-nodes", "timeout", "startup-timeout", "launcher",
                 "artifacts", "json", "replay", "thresholds"):  # fmt: skip
        env, ini = name.upper().replace("-", "_"), name.replace("-", "_")
        result.stdout.fnmatch_lines([f"*--gpufabric-{name}=*"])
        result.stdout.fnmatch_lines([f"*GPUFABRIC_{env}*"])
        result.stdout.fnmatch_lines([f"*gpufabric_{ini} *"])
    result.stdout.fnmatch_lines(["*--gpufabric-allow-uncertified*"])


def test_inactive_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert "gpufabric:" not in result.stdout.str()  # no header, no session


def test_an_environment_variable_enables_the_plugin_and_is_named_as_the_source(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    scripted(pytester)
    pytester.makepyfile("def test_plain(): pass")
    monkeypatch.setenv("GPUFABRIC_LAUNCHER", "scripted")
    monkeypatch.setenv("GPUFABRIC_INSTANCE", "hgx-h200-4gpu")
    result = pytester.runpytest("-p", "no:cacheprovider", *PLUGIN_ARGS)
    result.stdout.fnmatch_lines(
        ["gpufabric: instance hgx-h200-4gpu (*) [[]hgx-h200-4gpu from environment variable "
         "GPUFABRIC_INSTANCE]", "gpufabric: launcher scripted, backend nccl, 4 ranks, *"]
    )  # fmt: skip
    # No gpufabric check ran: no verdict, and the exit code is pytest's own.
    assert result.ret == pytest.ExitCode.OK
    assert "CERTIFIED" not in result.stdout.str()


def test_bandwidth_verdicts_name_the_measurement_the_floor_and_its_source(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """busbw at the floor's side of the line: all_reduce passes, alltoall (floor 10^6 GB/s)
    fails with the message users see, and JUnit carries the measurement."""
    scripted(pytester, "node()", "Script(default_busbw=2.0)")
    report = tmp_path / "report.xml"
    result = pytester.runpytest(
        str(SUITES / "test_bandwidth.py"), "-p", "no:cacheprovider", *PLUGIN_ARGS, "--gpufabric-launcher=scripted",
        "--gpufabric-instance=cpu-gloo-2rank", f"--gpufabric-thresholds={CPU_PROFILES}",
        f"--junitxml={report}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    profile = CPU_PROFILES / "cpu-gloo-2rank.yaml"
    result.stdout.fnmatch_lines(
        [
            "alltoall 64KiB (float32, 2 ranks): busbw 2.0 GB/s is below the floor of 1e+06 GB/s by 999998.0 GB/s (-100.0%)",
            "  measured: 0.01638 ms (median of 3 timed loops of 5 calls (launched back to back) after 1 warm-up, slowest rank 0; per rank 0.01638, 0.01638 ms; busbw per loop 2.0, 2.0, 2.0 GB/s, spread 0.0%), algbw 4.0 GB/s",
            f"  floor: 1e+06 GB/s from {profile}:15 (profile cpu-gloo-2rank)",
            "  source: test profile; floors chosen to pass (all_reduce) and to fail (alltoall) on any CPU",
            "  margin policy: none (test)",
        ]
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failed = cases["test_busbw[alltoall-64KiB]"]
    failure = failed.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(
        "Failed: alltoall 64KiB (float32, 2 ranks): busbw "
    )
    props = {p.get("name"): p.get("value") for p in failed.iter("property")}
    assert props["busbw_gbps"] == "2.0"
    assert props["threshold_gbps"] == "1000000.0"
    assert props["threshold_file"] == f"{profile}:15"
    assert (props["nranks"], props["backend"], props["instance"]) == ("2", "gloo", "cpu-gloo-2rank")
    assert (props["run"], props["floors_from"]) == ("default", "bandwidth.intra_node")
    suite_props = {p.get("name"): p.get("value") for p in suite.find("properties") or ()}
    assert suite_props["certification"] == "NOT CERTIFIED"
    assert str(suite_props["certification_reason"]).startswith("1 test(s) failed")


def test_a_wrong_result_fails_whatever_the_speed(pytester: pytest.Pytester) -> None:
    scripted(pytester, "node()", "Script(default_busbw=1e7, corrupt=frozenset({'all_reduce'}))")
    result = pytester.runpytest(
        str(SUITES / "test_bandwidth.py"), "-p", "no:cacheprovider", *PLUGIN_ARGS, "--gpufabric-launcher=scripted",
        "--gpufabric-instance=cpu-gloo-2rank", f"--gpufabric-thresholds={CPU_PROFILES}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["all_reduce 64KiB (float32, 2 ranks): 1 wrong result elements over all ranks (of 16384 per "
         "rank); first on rank 0 at element 3: got -1, want 7. *"]
    )  # fmt: skip


def test_gpu_profile_on_a_node_without_gpus_is_one_failure(pytester: pytest.Pytester) -> None:
    scripted(pytester, "node()")
    result = suites(pytester, "--gpufabric-instance=hgx-h200-4gpu")
    result.assert_outcomes(passed=13, failed=1, skipped=92)
    result.stdout.fnmatch_lines(
        [
            "profile hgx-h200-4gpu expects 4 × NVIDIA H200 (*hgx-h200-4gpu.yaml); this node has no GPU visible (*)",
            "SKIPPED [[]24] *test_bandwidth.py*: node does not match the profile: profile hgx-h200-4gpu expects *",
            "FAILED *test_node.py::test_gpu_inventory*",
        ]
    )


# --- certification ---------------------------------------------------------------------------


def test_a_node_that_passes_everything_its_profile_asks_is_certified(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    scripted(pytester, script=HEALTHY_H200)
    report = tmp_path / "r.json"
    result = suites(pytester, "--gpufabric-instance=hgx-h200-4gpu", f"--gpufabric-json={report}")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        ["CERTIFIED: every check and floor that profile hgx-h200-4gpu asks for was judged and "
         "passed (* tests)"]
    )  # fmt: skip
    certification = json.loads(report.read_text())["certification"]
    assert certification["verdict"] == "CERTIFIED"
    assert certification["failed"] == certification["not_judged"] == []


def test_checks_the_run_did_not_judge_keep_it_from_being_certified(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """Deselected floors were not judged: every test that ran passed, the exit code still
    says no, and the verdict lists what is missing. --gpufabric-allow-uncertified opts out."""
    scripted(pytester, script=HEALTHY_H200)
    report = tmp_path / "r.json"
    args = (
        "--gpufabric-instance=hgx-h200-4gpu",
        "-k",
        "not broadcast",
        f"--gpufabric-json={report}",
    )
    result = suites(pytester, *args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "failed" not in result.parseoutcomes()
    result.stdout.fnmatch_lines(
        [
            "NOT CERTIFIED: 11 check(s) that profile hgx-h200-4gpu asks for were not judged",
            "  not judged: exact result of broadcast-1021xbfloat16: not run in this session",
            "  not judged: busbw of broadcast 1MiB in the default run >= * GB/s (*hgx-h200-4gpu.yaml:*): not run in this session",
        ]
    )
    data = json.loads(report.read_text())
    assert data["exitstatus"] == 1
    assert len(data["certification"]["not_judged"]) == 11
    allowed = suites(pytester, *args, "--gpufabric-allow-uncertified")
    assert allowed.ret == pytest.ExitCode.OK
    allowed.stdout.fnmatch_lines(["NOT CERTIFIED: 11 check(s) *"])


def test_a_pool_that_cannot_start_fails_once_and_is_not_judged_after(
    pytester: pytest.Pytester,
) -> None:
    scripted(pytester, script=HEALTHY_H200.replace("Script(", "Script(fail_start='network_only', "))
    result = suites(pytester, "--gpufabric-instance=hgx-h200-4gpu", "--gpufabric-allow-uncertified")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a failure is a failure, opt-out or not
    result.stdout.fnmatch_lines(
        [
            "NOT CERTIFIED: 1 test(s) failed; * check(s) that profile hgx-h200-4gpu asks for were not judged",
            "  failed: suites/test_isolation.py::test_isolation_path[[]network_only]",
            "  not judged: suites/test_isolation.py::test_isolation_busbw[[]network_only-*]: rank pool "
            "'network_only' is down since suites/test_isolation.py::test_isolation_path[[]network_only] *",
        ]
    )


def test_a_replay_without_every_measurement_is_not_certified(
    pytester: pytest.Pytester, h200_capture: Path
) -> None:
    """The healthy capture passes every test it has evidence for, yet it holds no
    correctness results and no broadcast: a green run that certifies nothing must not pass."""
    result = pytester.runpytest(
        str(SUITES), "-p", "no:cacheprovider", f"--gpufabric-replay={h200_capture / 'default'}",
        "--gpufabric-instance=hgx-h200-4gpu",
    )  # fmt: skip
    assert "failed" not in result.parseoutcomes()
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "NOT CERTIFIED: 63 check(s) that profile hgx-h200-4gpu asks for were not judged",
            "  not judged: suites/test_node.py::test_gpu_inventory: no GPU facts in the recording in *",
        ]
    )


# --- launchers -------------------------------------------------------------------------------


def test_launchers_are_chosen_by_name_and_unknown_names_are_usage_errors(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_x(gpufabric): pass")
    result = pytester.runpytest("--gpufabric-launcher=slurm")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --gpufabric-launcher: unknown launcher 'slurm' (from --gpufabric-launcher); "
         "known: local, replay, kubernetes, or one that a plugin adds through the "
         "pytest_gpufabric_make_launcher hook"]
    )  # fmt: skip
    scripted(pytester, script=HEALTHY_H200)
    chosen = pytester.runpytest("-p", "no:cacheprovider", *PLUGIN_ARGS, "--gpufabric-launcher=scripted",
                                "--gpufabric-allow-uncertified")  # fmt: skip
    chosen.assert_outcomes(passed=1)
    chosen.stdout.fnmatch_lines(["gpufabric: launcher scripted, backend nccl, 4 ranks, *"])


@pytest.mark.parametrize("args", [["--gpufabric-instance=auto"], [str(SUITES)]])
def test_xdist_is_refused_in_one_line_before_any_worker_starts(
    pytester: pytest.Pytester, args: list[str]
) -> None:
    """With a gpufabric option, or the shipped suites named without any."""
    pytest.importorskip("xdist")
    pytester.makepyfile("def test_x(gpufabric): pass")
    result = pytester.runpytest("-n", "2", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-gpufabric cannot run under pytest-xdist (-n)*"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert len(result.stdout.lines + result.stderr.lines) < 5


# --- bad input -------------------------------------------------------------------------------


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _truncated_replay(tmp: Path, h200: Path) -> Path:
    run = tmp / "replay"
    run.mkdir()
    for log in (h200 / "default").glob("nccl.*.log"):
        (run / log.name).write_text(log.read_text())
    (run / "result.json").write_text('{"world": 4, "results": [{"op": "all_reduce", "bytes"')
    return run


# (arguments, environment, expected one-line error); {tmp} and {h200} are filled in.
BAD_INPUT = [
    (["--gpufabric-json=out.json", "--gpufabric-thresholds={tmp}/nope"], {},
     "ERROR: --gpufabric-thresholds: {tmp}/nope (from --gpufabric-thresholds): no such file or directory"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_THRESHOLDS": "{tmp}/empty:"},
     "ERROR: --gpufabric-thresholds: an empty path from environment variable GPUFABRIC_THRESHOLDS"),
    (["--gpufabric-thresholds={tmp}/empty"], {},
     "ERROR: --gpufabric-thresholds: {tmp}/empty (from --gpufabric-thresholds): no profile (*.yaml file) in this directory"),
    (["--gpufabric-thresholds={tmp}/binary.yaml"], {},
     "ERROR: {tmp}/binary.yaml: not a UTF-8 text file"),
    (["--gpufabric-thresholds={tmp}/fifo-profiles"], {},
     "ERROR: {tmp}/fifo-profiles/x.yaml: not a regular file"),
    (["--gpufabric-json={tmp}/fifo"], {},
     "ERROR: --gpufabric-json: {tmp}/fifo (from --gpufabric-json): exists and is not a regular file"),
    (["--gpufabric-timeout=1e10"], {},
     "ERROR: --gpufabric-timeout: invalid value '1e10' from --gpufabric-timeout: must be at most 604800 s (7 days)"),
    (["--gpufabric-replay={h200}/default", "--gpufabric-nprocs=2"], {},
     "ERROR: --gpufabric-nprocs: 2 (from --gpufabric-nprocs) has no effect on a replay: *"),
    (["--gpufabric-replay={tmp}/shapeless", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/shapeless/result.json: JSON of a known kind with something unexpected in it (AttributeError: *)"),
    (["--gpufabric-replay={tmp}/nan-count", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/nan-count/report.json: run.gpu_count is 'abc', not a count"),
    (["--gpufabric-timeout=60", f"--gpufabric-thresholds={BROKEN / 'bad-floor.yaml'}"], {},
     f"ERROR: {BROKEN}/bad-floor.yaml:8: bandwidth.intra_node.floors.all_reduce.1GiB: busbw floor must be a number > 0 (GB/s), got -5"),
    (["--gpufabric-nprocs=2"], {"GPUFABRIC_NODE_INSTANCE_TYPE": "p9.96xlarge"},
     "ERROR: --gpufabric-instance auto: the node is a 'p9.96xlarge' (environment variable GPUFABRIC_NODE_INSTANCE_TYPE) but no profile has that name *"),
    (["--gpufabric-json=/proc/gpufabric/report.json"], {},
     "ERROR: --gpufabric-json: /proc/gpufabric/report.json (from --gpufabric-json): cannot write there: *"),
    (["--gpufabric-json={tmp}"], {},
     "ERROR: --gpufabric-json: {tmp} (from --gpufabric-json): is a directory; give a file name"),
    (["--gpufabric-artifacts={tmp}/file"], {},
     "ERROR: --gpufabric-artifacts: {tmp}/file (from --gpufabric-artifacts): exists and is not a directory"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_PODINFO_LABELS": "{tmp}/binary"},
     "ERROR: GPUFABRIC_PODINFO_LABELS: {tmp}/binary (from GPUFABRIC_PODINFO_LABELS): not a text labels file (key=\"value\" lines)"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_PODINFO_LABELS": "{tmp}/absent"},
     "ERROR: GPUFABRIC_PODINFO_LABELS: {tmp}/absent (from GPUFABRIC_PODINFO_LABELS): no such file"),
    (["--gpufabric-instance="], {},
     "ERROR: --gpufabric-instance: invalid value '' from --gpufabric-instance: must be a profile name or 'auto'"),
    (["--gpufabric-instance=p9.96xlarge"], {},
     "ERROR: --gpufabric-instance: unknown instance type 'p9.96xlarge' (from --gpufabric-instance); known: Standard_ND96asr_v4, *"),
    (["--gpufabric-timeout=0"], {},
     "ERROR: --gpufabric-timeout: invalid value '0' from --gpufabric-timeout: must be a number of seconds > 0"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_STARTUP_TIMEOUT": "soon"},
     "ERROR: --gpufabric-startup-timeout: invalid value 'soon' from environment variable GPUFABRIC_STARTUP_TIMEOUT: not a number of seconds"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_NPROCS": "lots"},
     "ERROR: --gpufabric-nprocs: invalid value 'lots' from environment variable GPUFABRIC_NPROCS: not an integer"),
    (["--gpufabric-instance=auto"], {"GPUFABRIC_ALLOW_UNCERTIFIED": "maybe"},
     "ERROR: --gpufabric-allow-uncertified: invalid value 'maybe' from environment variable GPUFABRIC_ALLOW_UNCERTIFIED: must be true or false (1/0, yes/no)"),
    (["--gpufabric-launcher=replay"], {},
     "ERROR: --gpufabric-launcher: replay (from --gpufabric-launcher) needs --gpufabric-replay DIR"),
    (["--gpufabric-launcher=local", "--gpufabric-replay={h200}/default"], {},
     "ERROR: --gpufabric-launcher: 'local' (from --gpufabric-launcher) cannot judge a recording; --gpufabric-replay (from --gpufabric-replay) uses the replay launcher"),
    (["--gpufabric-launcher=../x"], {},
     "ERROR: --gpufabric-launcher: invalid value '../x' from --gpufabric-launcher: must be a name (letters, digits, - _ .)"),
    (["--gpufabric-replay={tmp}/nope", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/nope (from --gpufabric-replay): no such directory"),
    (["--gpufabric-replay={tmp}/file", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/file (from --gpufabric-replay): not a directory"),
    (["--gpufabric-replay={tmp}/replay", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/replay/result.json: looks like a results or nccl-tests JSON file but is not valid JSON: *"),
    (["--gpufabric-replay={tmp}/empty", "--gpufabric-instance=hgx-h200-4gpu"], {},
     "ERROR: --gpufabric-replay: {tmp}/empty (from --gpufabric-replay): no NCCL debug lines, nccl-tests output, host capture or gpufabric report"),
    (["--gpufabric-replay={h200}/default", "--gpufabric-instance=auto"], {},
     "ERROR: --gpufabric-instance auto: the recording in {h200}/default says nothing about the GPUs; pass --gpufabric-instance NAME (known: *"),
    (["--gpufabric-emulate-nodes=3"], {},
     "ERROR: --gpufabric-emulate-nodes: 3 nodes (from --gpufabric-emulate-nodes) but only 2 ranks"),
    (["--gpufabric-instance=auto"], {}, None),  # the control: the same setup, no error
]  # fmt: skip


@pytest.mark.parametrize(("args", "env", "message"), BAD_INPUT)
def test_bad_input_is_one_line_naming_its_source_and_nothing_runs(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    h200_capture: Path,
    args: list[str],
    env: dict[str, str],
    message: str | None,
) -> None:
    tmp = pytester.path
    (tmp / "file").write_text("a file\n")
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("nothing here\n")
    _binary(tmp / "binary")
    _binary(tmp / "binary.yaml")
    _truncated_replay(tmp, h200_capture)
    os.mkfifo(tmp / "fifo")
    (tmp / "fifo-profiles").mkdir()
    os.mkfifo(tmp / "fifo-profiles" / "x.yaml")
    (tmp / "shapeless").mkdir()
    (tmp / "shapeless" / "result.json").write_text('{"world": 2, "results": [1, 2]}')
    (tmp / "nan-count").mkdir()
    report = {"schema": "pytest-gpufabric/2", "run": {"gpu_count": "abc"}, "tests": []}
    (tmp / "nan-count" / "report.json").write_text(json.dumps(report))
    fill = {"tmp": str(tmp), "h200": str(h200_capture)}
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(**fill))
    pytester.makepyfile("def test_x(gpufabric): pass")
    result = pytester.runpytest("-p", "no:cacheprovider", "--collect-only", "-q",
                                *(a.format(**fill) for a in args))  # fmt: skip
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output
    if message is None:
        assert result.ret == pytest.ExitCode.OK, output
        return
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    result.stderr.fnmatch_lines([message.format(**fill)])
    assert [line for line in result.stderr.lines if line.strip()] == [
        line for line in result.stderr.lines if line.startswith("ERROR: ")
    ]


def test_a_bad_node_label_without_any_option_is_still_one_line(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No gpufabric option at all: the session is built for the first test that asks for
    it, and a problem then is the same usage error, not a traceback per test."""
    monkeypatch.setenv("GPUFABRIC_NODE_INSTANCE_TYPE", "p9.96xlarge")
    pytester.makepyfile("def test_x(gpufabric): pass\ndef test_y(gpufabric_host_check): pass")
    result = pytester.runpytest("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: --gpufabric-instance auto: the node is a 'p9.96xlarge' *"])
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_json_report_that_cannot_be_written_at_the_end_is_an_error(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The directory was fine when the run started and is gone when it ends: one line, and
    the exit code says the report is missing."""
    scripted(pytester, script=HEALTHY_H200)
    target = tmp_path / "reports"
    pytester.makepyfile(
        f"""
        import shutil
        from pathlib import Path

        def test_remove_the_directory(gpufabric):
            shutil.rmtree({str(target)!r})
            Path({str(target)!r}).write_text("now a file")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", *PLUGIN_ARGS, "--gpufabric-launcher=scripted",
                                f"--gpufabric-json={target / 'r.json'}",
                                "--gpufabric-allow-uncertified")  # fmt: skip
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"ERROR: gpufabric: cannot write the JSON report {target / 'r.json'}: *"]
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
