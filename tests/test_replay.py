"""--gpufabric-replay with the shipped suites: the real 4×H200 captures, the seed's p4d log,
and a bundle this plugin wrote itself."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUITES = str(REPO / "suites")
DATA = Path(__file__).parent / "data"
SEEDS = DATA / "seeds"
CPU_PROFILES = DATA / "profiles" / "cpu"


def replay(
    pytester: pytest.Pytester, directory: Path, instance: str, *extra: str
) -> pytest.RunResult:
    return pytester.runpytest(
        SUITES, "-p", "no:cacheprovider", "-rfs", f"--gpufabric-replay={directory}",
        f"--gpufabric-instance={instance}", *extra,
    )  # fmt: skip


def test_healthy_capture_passes_every_transport_check(
    pytester: pytest.Pytester, h200_capture: Path, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    result = replay(pytester, h200_capture / "default", "hgx-h200-4gpu", f"--junitxml={report}")
    result.assert_outcomes(passed=28, skipped=83, warnings=1)
    result.stdout.fnmatch_lines(
        [
            f"gpufabric: replay of {h200_capture / 'default'}: 4 ranks on 1 node(s), GPUs not recorded",
            "*SKIPPED [[]1] *test_correctness.py*: no recorded correctness result of all_reduce 2042B in *",
            "*SKIPPED [[]1] *test_bandwidth.py*: no recorded measurement of broadcast 1MiB in *",
        ]
    )
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    case = next(
        c for c in suite.iter("testcase") if c.get("name") == "test_nccl[intra_node_transport]"
    )
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["intra_node_transports"] == "P2P/CUMEM×480"
    assert props["nccl_log_files"] == "4"


def test_p2p_disabled_capture_fails_naming_shm(
    pytester: pytest.Pytester, h200_capture: Path
) -> None:
    result = replay(pytester, h200_capture / "p2p_disabled", "hgx-h200-4gpu")
    result.stdout.fnmatch_lines(
        [
            "24 of 24 connections between ranks of one node use SHM/direct/direct, not P2P (pairs 0->1, 1->2, 2->3, 3->0)",
            '  evidence: rank 0 (vm:1156) channel 0: "Channel 00 : 0[[]0] -> 1[[]1] via SHM/direct/direct" (*p2p_disabled/nccl.vm.1156.log:120)',
            "FAILED *test_transports.py::test_nccl[[]intra_node_transport]*",
        ]
    )
    assert not [
        line for line in result.outlines if line.startswith("FAILED") and "test_nccl[nodes]" in line
    ]


def test_socket_only_capture_fails_naming_socket(
    pytester: pytest.Pytester, h200_capture: Path
) -> None:
    result = replay(pytester, h200_capture / "socket_only", "hgx-h200-4gpu")
    result.stdout.fnmatch_lines(
        [
            "rank 0 (vm:1280) reports nNodes 4 localRanks 1, but 1 node(s) ran (vm: 4 ranks): NCCL split the node into one-GPU nodes",
            "16 of 16 connections between ranks of one node use NET/Socket/0, not P2P *",
        ]
    )
    failed = {
        line.split("::")[-1].split(" ")[0] for line in result.outlines if line.startswith("FAILED")
    }
    assert {"test_nccl[nodes]", "test_nccl[intra_node_transport]"} <= failed


@pytest.mark.parametrize(
    ("instance", "verdict"),
    [("hgx-h200-4gpu", "passed"), ("p4d.24xlarge", "failed")],
)
def test_two_node_capture_is_two_nodes_of_two(
    pytester: pytest.Pytester, h200_capture: Path, instance: str, verdict: str
) -> None:
    result = replay(pytester, h200_capture / "two_node_hostid", instance, "-v")
    result.stdout.fnmatch_lines(
        [
            "gpufabric: replay of *two_node_hostid: 4 ranks on 2 node(s)*",
            "*test_nccl[[]nodes] PASSED*",
            f"*test_nccl[[]inter_node_transport] {verdict.upper()}*",
        ]
    )
    if instance == "p4d.24xlarge":
        result.stdout.fnmatch_lines(
            ["12 of 12 connections between nodes use NET/Socket, not Libfabric or AWS Libfabric"]
        )


def test_seed_p4d_log(pytester: pytest.Pytester) -> None:
    result = replay(pytester, SEEDS, "p4d.24xlarge", "-v")
    result.stdout.fnmatch_lines(
        [
            "*test_nccl[[]intra_node_transport] PASSED*",
            "*test_nccl[[]p2p_mode] PASSED*",
            "*test_nccl[[]network] FAILED*",
            "*test_nccl[[]net_plugin] FAILED*",
            "*test_nccl[[]warnings] FAILED*",
            "4 of 4 ranks use network Socket, not Libfabric or AWS Libfabric",
            "  remedy: aws-ofi-nccl did not initialise (Failed to initialize sendrecv protocol, *), so NCCL fell back to TCP sockets. Check that the pod requests the vpc.amazonaws.com/efa resource and has the IPC_LOCK capability, that memlock is unlimited (ulimit -l)*",
            "aws-ofi-nccl failed to initialise on 4 of 4 ranks: Failed to initialize sendrecv protocol",
        ]
    )


def test_own_artifacts_bundle_replays(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """A live gloo run's --gpufabric-artifacts bundle, judged again without running ranks."""
    bundle = tmp_path / "bundle"
    live = pytester.runpytest(
        SUITES,
        "-p",
        "no:cacheprovider",
        "--gpufabric-instance=auto",
        f"--gpufabric-artifacts={bundle}",
    )
    live.assert_outcomes(passed=15, skipped=44)
    assert json.loads((bundle / "report.json").read_text())["run"]["backend"] == "gloo"
    cpu = (f"--gpufabric-thresholds={CPU_PROFILES}", "--gpufabric-instance=cpu-gloo-2rank")
    again = pytester.runpytest(
        str(REPO / "suites" / "test_correctness.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={bundle}", *cpu,
    )  # fmt: skip
    again.assert_outcomes(passed=12)
    host = pytester.runpytest(
        str(REPO / "suites" / "test_host.py"), "-p", "no:cacheprovider", "-k", "shm",
        f"--gpufabric-replay={bundle}", *cpu,
    )  # fmt: skip
    host.assert_outcomes(passed=2)  # /dev/shm from the snapshot, the ranks' mounts from the report
    # The recorded node (node.json) is what a replay judges, never the machine replaying it.
    wrong = pytester.runpytest(
        str(REPO / "suites" / "test_node.py"), "-p", "no:cacheprovider",
        f"--gpufabric-replay={bundle}", "--gpufabric-instance=hgx-h200-4gpu",
    )  # fmt: skip
    wrong.assert_outcomes(passed=1, failed=1)
    wrong.stdout.fnmatch_lines(["*expects 4 × NVIDIA H200 (*); this node has no GPU visible (*"])


def test_replay_errors_are_usage_errors(pytester: pytest.Pytester, tmp_path: Path) -> None:
    result = replay(pytester, tmp_path / "nope", "hgx-h200-4gpu")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: --gpufabric-replay: {tmp_path / 'nope'} (from --gpufabric-replay): no such directory"
        ]
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here\n")
    result = replay(pytester, tmp_path / "empty", "hgx-h200-4gpu")
    result.stderr.fnmatch_lines(
        [
            "ERROR: --gpufabric-replay: * no NCCL debug lines, nccl-tests output, host capture or gpufabric report"
        ]
    )


def test_auto_needs_gpu_facts_in_the_recording(
    pytester: pytest.Pytester, h200_capture: Path, tmp_path: Path
) -> None:
    result = replay(pytester, h200_capture / "default", "auto")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: --gpufabric-instance auto: the recording in * says nothing about the GPUs; pass --gpufabric-instance NAME (known: *)"
        ]
    )
    shutil.copytree(h200_capture / "nccl-tests", tmp_path / "nt")
    result = replay(pytester, tmp_path / "nt", "auto")
    result.stdout.fnmatch_lines(
        ["gpufabric: instance hgx-h200-4gpu * [[]auto: hardware fingerprint 4 × NVIDIA H200]"]
    )
