"""Recorded runs are recognised by content: real nccl-tests output and NCCL logs from the
4×H200 host, this plugin's own reports, and nccl-tests' -J JSON."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.evidence import recorded
from pytest_gpufabric.launch.protocol import EvidenceMissing, PoolSpec, Shape
from pytest_gpufabric.launch.replay import ReplayLauncher, recorded_inventory
from pytest_gpufabric.launch.wire import Job

RUNS = Path(__file__).parent / "data" / "runs"


def test_nccl_tests_output(h200_capture: Path) -> None:
    run = recorded.load(h200_capture / "nccl-tests")
    assert len(run.measurements) == 15
    assert {m.origin for m in run.measurements} == {"nccl-tests"}
    first = run.find(Collective.ALL_REDUCE, 1 << 20, timed=True)
    assert first is not None
    assert first.time_ms == pytest.approx(0.03727)
    assert (first.nranks, first.mismatches, first.dtype) == (4, 0, "bfloat16")
    assert first.where.endswith("all_reduce_perf.txt:14")
    assert [d.name for d in run.devices] == ["NVIDIA H200"] * 4
    inventory = recorded_inventory(run)
    assert (inventory.known, len(inventory.gpus), inventory.gpu_model) == (True, 4, "NVIDIA H200")
    assert inventory.origin.startswith("nccl-tests device lines in")


def test_files_are_recognised_by_content_not_name(h200_capture: Path, tmp_path: Path) -> None:
    shutil.copy(h200_capture / "nccl-tests" / "alltoall_perf.txt", tmp_path / "job-1234.out")
    shutil.copy(h200_capture / "default" / "nccl.vm.1036.log", tmp_path / "rank2")
    shutil.copy(h200_capture / "default" / "graph.xml", tmp_path / "graph.log")
    run = recorded.load(tmp_path)
    assert run.nccl_files == [tmp_path / "rank2"]
    assert {m.collective for m in run.measurements} == {Collective.ALLTOALL}
    assert run.ignored == [
        (tmp_path / "graph.log", "no NCCL lines, nccl-tests output or known JSON")
    ]


def test_fixture_results_json_and_logs(h200_capture: Path) -> None:
    run = recorded.load(h200_capture / "default")
    assert len(run.nccl_files) == 4
    assert len(run.measurements) == 20
    m = run.find(Collective.SENDRECV, 1 << 30, timed=True)
    assert m is not None
    assert m.origin == "results JSON"
    assert m.nranks == 4
    assert ReplayLauncher(run).shape() == Shape(4, 1, "nccl")
    assert not recorded_inventory(run).known  # nothing in there names the GPUs


def test_two_hostid_nodes(h200_capture: Path) -> None:
    two = ReplayLauncher(recorded.load(h200_capture / "two_node_hostid"))
    assert two.shape() == Shape(4, 2, "nccl")


def test_own_reports_are_preferred(h200_capture: Path, tmp_path: Path) -> None:
    shutil.copy(RUNS / "2026-11-22-h200x4-A" / "run1.json", tmp_path / "report.json")
    shutil.copy(h200_capture / "default" / "result.json", tmp_path / "result.json")
    run = recorded.load(tmp_path)
    m = run.find(Collective.ALL_REDUCE, 1 << 30, timed=True)
    assert m is not None
    assert m.origin == "pytest-gpufabric report"
    assert m.time_ms == pytest.approx(4.551, abs=0.001)  # the report's own number
    assert (m.mismatches, m.checked, m.dtype) == (0, (1 << 29), "bfloat16")
    inventory = recorded_inventory(run)
    assert (inventory.known, len(inventory.gpus), inventory.driver) == (True, 4, "580.159.04")


def test_nccl_tests_json(tmp_path: Path) -> None:
    """The -J file as NVIDIA/nccl-tests src/util.cu writes it (no real sample is published):
    the collective is only in args[0], one device entry per process, booleans as strings."""
    doc = {
        "version": 1, "start_time": "2026-11-22 12:00:00",
        "args": ["/opt/nccl-tests/build/reduce_scatter_perf", "-b", "1M", "-e", "1G", "-g", "4", "-J", "out.json"],
        "env": [], "nccl_version": 22809,
        "config": {"nthreads": 1, "ngpus": 4, "minimum_bytes": 1048576, "maximum_bytes": 1073741824,
                   "step_factor": 16, "warmup_iters": 5, "iterations": 20, "aggregated_iterations": 1,
                   "validation": 1, "graph": 0, "blocking_collectives": "false", "parallel_init": "false",
                   "devices": [{"rank": 0, "group": 0, "pid": 2478, "hostname": "vm", "device": 0,
                                "device_hex": "0000:00:06", "device_info": "NVIDIA H200"}]},
        "results": [
            {"size": 1048576, "count": 131072, "type": "bfloat16", "redop": "sum", "root": "    -1",
             "out_of_place": {"time": 29.5, "alg_bw": 35.54, "bus_bw": 26.66, "nwrong": 0.0},
             "in_place": {"time": 30.1, "alg_bw": 34.8, "bus_bw": 26.1, "nwrong": 0.0},
             "actual_iterations": 20, "experiment_name": ""},
            {"size": 16777216, "count": 2097152, "type": "bfloat16", "redop": "sum", "root": "    -1",
             "out_of_place": {"time": 66.0, "alg_bw": 254.2, "bus_bw": 190.6, "nwrong": None},
             "in_place": {"time": 64.0, "alg_bw": 262.1, "bus_bw": 196.6, "nwrong": None},
             "actual_iterations": 20, "experiment_name": ""},
        ],
        "out_of_bounds": {"count": 0, "okay": "true"},
        "average_bus_bandwidth": {"bandwidth": 108.6, "okay": "unchecked"}, "errors": [""],
        "end_time": "2026-11-22 12:00:05",
    }  # fmt: skip
    (tmp_path / "out.json").write_text(json.dumps(doc, separators=(",", ":")))
    run = recorded.load(tmp_path)
    assert [
        (m.collective, m.nbytes, m.time_ms, m.nranks, m.mismatches) for m in run.measurements
    ] == [
        (Collective.REDUCE_SCATTER, 1 << 20, 0.0295, 4, 0),
        (Collective.REDUCE_SCATTER, 16 << 20, 0.066, 4, None),
    ]
    assert len(run.devices) == 4  # one process driving 4 GPUs


def test_replay_pool_answers_from_the_recording(h200_capture: Path) -> None:
    run = recorded.load(h200_capture / "nccl-tests")
    pool = ReplayLauncher(run).start(PoolSpec("default", 4, "nccl", h200_capture, 1.0, 1.0))
    job = Job(1, "all_gather", 16 << 20, "bfloat16", warmup=5, iters=20, verify=True)
    results = pool.run(job, "all_gather 16MiB")
    assert len(results) == 4
    assert [r.median_ms for r in results] == [pytest.approx(0.06679)] * 4
    assert {r.mismatches for r in results} == {0}
    assert pool.run(dataclasses.replace(job, purpose="traffic"), "traffic") == []
    with pytest.raises(EvidenceMissing, match="no recorded measurement of broadcast 16MiB in"):
        pool.run(dataclasses.replace(job, collective="broadcast"), "broadcast 16MiB")
    with pytest.raises(EvidenceMissing, match=r"has no network_only run \(it has: default\)"):
        ReplayLauncher(run).start(
            PoolSpec("network_only", 4, "nccl", h200_capture, 1.0, 1.0, {"NCCL_P2P_DISABLE": "1"})
        )


@pytest.mark.parametrize(
    ("name", "text", "looks"),
    [
        ("report.json", '{"schema": "pytest-gpufabric/2", "run": {', "a pytest-gpufabric report"),
        ("result.json", '{"world": 4, "results": [{"op": "all_reduce"', "a results or nccl-tests"),
        ("host-after.json", '{"schema": "pytest-gpufabric-host/1", "gpus": [', "a pytest-gpufabric snapshot"),
    ],
)  # fmt: skip
def test_a_truncated_evidence_file_is_an_error_naming_it(
    h200_capture: Path, tmp_path: Path, name: str, text: str, looks: str
) -> None:
    """A broken file next to valid logs must not be ignored: judging without it could pass a
    run on less evidence than the user gave."""
    shutil.copytree(h200_capture / "default", tmp_path / "run")
    (tmp_path / "run" / name).write_text(text)
    with pytest.raises(recorded.RecordingError) as info:
        recorded.load(tmp_path / "run")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'run' / name}: looks like {looks}")
    assert "not valid JSON" in message


def test_a_report_of_schema_2_reads_like_schema_1(tmp_path: Path) -> None:
    v1 = json.loads((RUNS / "2026-11-22-h200x4-A" / "run1.json").read_text())
    run = dict(v1["run"])
    node = {
        k: run.pop(k) for k in ("hostname", "gpu_model", "gpu_count", "driver", "torch_version")
    }
    v2 = {**v1, "schema": "pytest-gpufabric/2", "run": {**run, "nodes": [{"name": "n0", **node}]}}
    (tmp_path / "v2.json").write_text(json.dumps(v2))
    two = recorded.load(tmp_path)
    one = recorded.load(RUNS / "2026-11-22-h200x4-A")
    assert {k: two.report_facts[k] for k in node} == {k: one.report_facts[k] for k in node}
    assert len(two.measurements) == len(recorded.load(tmp_path).measurements) > 0
