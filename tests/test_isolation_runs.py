"""Isolation runs (network_only, nvlink_only) and runs over emulated nodes: their plans and
environments, real rank pools with per-rank environments, the judges over the real logs of
the 4×H200 validation run F, and replays of its bundles (one pool per run)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.evidence import recorded
from pytest_gpufabric.evidence.nccl_log import parse_files
from pytest_gpufabric.judge.isolation import judge_network_only, judge_nvlink_only
from pytest_gpufabric.launch.local import LocalLauncher
from pytest_gpufabric.launch.protocol import PoolSpec
from pytest_gpufabric.profiles.catalogue import Catalogue, load_catalogue
from pytest_gpufabric.profiles.floors import collect, derive, reports_for
from pytest_gpufabric.runs import DEFAULT, INTER_NODE, NETWORK_ONLY, NVLINK_ONLY
from pytest_gpufabric.session.plans import default_plan, isolation_plan

RUNS = Path(__file__).parent / "data" / "runs"
ONE = RUNS / "2026-11-22-h200x4-F-final-one"  # every suite, one node
TWO = RUNS / "2026-11-22-h200x4-F-final-two"  # every suite, --gpufabric-emulate-nodes 2
MEASURE = sorted((RUNS / "2026-11-22-h200x4-F-measure").glob("iso-measure*.json")) + sorted(
    (RUNS / "2026-11-22-h200x4-G-repeat").glob("*.json")
)  # run F's three measuring runs and run G's six healthy runs
SUITES = str(Path(__file__).parent.parent / "suites")


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return load_catalogue()


def test_plans_force_the_path_and_never_touch_protected_settings(catalogue: Catalogue) -> None:
    lab, p4d = catalogue.profiles["hgx-h200-4gpu"], catalogue.profiles["p4d.24xlarge"]
    network = isolation_plan(lab, NETWORK_ONLY)
    assert network is not None
    assert dict(network.env) == {"NCCL_P2P_DISABLE": "1", "NCCL_SHM_DISABLE": "1"}
    assert network.rank_env(4) == tuple({"NCCL_HOSTID": f"gpufabric-node{n}"} for n in (0, 0, 1, 1))
    gdr = isolation_plan(p4d, NETWORK_ONLY)
    assert gdr is not None
    assert gdr.env["NCCL_NET_GDR_LEVEL"] == "SYS"
    assert gdr.rank_env(8) == ()  # one node: no split
    nvlink = isolation_plan(lab, NVLINK_ONLY)
    assert nvlink is not None
    assert dict(nvlink.env) == {
        "NCCL_P2P_LEVEL": "NVL",
        "NCCL_SHM_DISABLE": "1",
        "NCCL_NET_PLUGIN": "none",
        "NCCL_IB_DISABLE": "1",
    }
    for plan in (network, gdr, nvlink):
        assert not {"NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST"} & set(plan.env)
    assert isolation_plan(catalogue.profiles["a3-highgpu-8g"], NETWORK_ONLY) is None
    assert default_plan(2).kind == INTER_NODE
    assert default_plan(2).rank_env(3) == (
        {"NCCL_HOSTID": "gpufabric-node0"},
        {"NCCL_HOSTID": "gpufabric-node0"},
        {"NCCL_HOSTID": "gpufabric-node1"},
    )


def test_real_pool_gives_each_rank_its_own_environment(tmp_path: Path) -> None:
    plan = default_plan(2)
    spec = PoolSpec(DEFAULT, 2, "gloo", tmp_path / "pool", 300.0, 60.0, {"GPUFABRIC_X": "1"},
                    plan.rank_env(2))  # fmt: skip
    pool = LocalLauncher().start(spec)
    try:
        assert [h.node for h in pool.hello] == ["gpufabric-node0", "gpufabric-node1"]
    finally:
        pool.close()
    record = json.loads((tmp_path / "pool" / "pool.json").read_text())
    assert record["rank_env"] == [
        {"NCCL_HOSTID": "gpufabric-node0"},
        {"NCCL_HOSTID": "gpufabric-node1"},
    ]
    assert record["env"] == {"GPUFABRIC_X": "1"}


def test_network_only_logs_pass_the_lab_and_fail_p4d(catalogue: Catalogue) -> None:
    log = parse_files(sorted((ONE / "network_only").glob("rank*.nccl.log")))
    lab = judge_network_only(log, catalogue.profiles["hgx-h200-4gpu"].nccl)
    assert lab.status == "passed", lab.message
    props = dict(lab.properties)
    assert str(props["transports"]) == "NET/Socket/0/Shared×24, NET/Socket/0×16"
    p4d = judge_network_only(log, catalogue.profiles["p4d.24xlarge"].nccl)
    assert p4d.status == "failed"
    summaries = [f.summary for f in p4d.findings]
    assert any("use NET/Socket, not Libfabric or AWS Libfabric" in s for s in summaries)
    assert any("run without GPUDirect RDMA" in s for s in summaries)
    assert "nccl.network.names in " in p4d.message
    assert "p4d.24xlarge.yaml" in p4d.message


def test_nvlink_only_logs_pass_and_other_paths_fail(
    catalogue: Catalogue, h200_capture: Path
) -> None:
    exp = catalogue.profiles["hgx-h200-4gpu"].nccl
    nvlink = judge_nvlink_only(
        parse_files(sorted((ONE / "nvlink_only").glob("rank*.nccl.log"))), exp
    )
    assert nvlink.status == "passed", nvlink.message
    through_nic = judge_nvlink_only(
        parse_files(sorted((ONE / "network_only").glob("rank*.nccl.log"))), exp
    )
    assert through_nic.status == "failed"
    assert "use NET/Socket/0, not P2P over NVLink" in through_nic.findings[0].summary
    shm = judge_nvlink_only(parse_files(sorted((h200_capture / "p2p_disabled").glob("*.log"))), exp)
    assert shm.status == "failed"
    assert "use SHM" in shm.findings[0].summary
    assert "NCCL_P2P_DISABLE set by environment to 1" in shm.message


def test_bundle_keeps_each_runs_logs_apart() -> None:
    run = recorded.load(ONE)
    assert run.runs == [DEFAULT, NETWORK_ONLY, NVLINK_ONLY]
    default = {c.transport for c in run.nccl_log(DEFAULT).connections}
    assert default == {"P2P"}  # the network-only run's NET lines stay out of it
    assert {c.transport for c in run.nccl_log(NETWORK_ONLY).connections} == {"NET"}
    found = run.find(Collective.ALL_REDUCE, 1 << 30, timed=True, run=NVLINK_ONLY)
    assert found is not None
    assert "test_isolation_busbw[nvlink_only-all_reduce-1GiB]" in found.where


def test_replay_of_the_one_node_bundle(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest(
        SUITES, "-p", "no:cacheprovider", "-rs", f"--gpufabric-replay={ONE}",
        "--gpufabric-instance=hgx-h200-4gpu",
    )  # fmt: skip
    result.assert_outcomes(passed=91, skipped=20)
    result.stdout.fnmatch_lines(
        ["*SKIPPED [[]1] *test_transports.py*: single-node run: no connection between nodes"]
    )


def test_replay_of_the_two_node_bundle_uses_the_inter_node_floors(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    report = tmp_path / "replay.json"
    result = pytester.runpytest(
        SUITES, "-p", "no:cacheprovider", f"--gpufabric-replay={TWO}",
        "--gpufabric-instance=hgx-h200-4gpu", f"--gpufabric-json={report}",
    )  # fmt: skip
    result.assert_outcomes(passed=77, skipped=19)
    result.stdout.fnmatch_lines(["gpufabric: replay of *: 4 ranks on 2 node(s), *"])
    tests = json.loads(report.read_text())["tests"]
    busbw = [t["properties"] for t in tests if "test_busbw[" in t["nodeid"]]
    assert busbw
    assert {p["floors_from"] for p in busbw} == {"bandwidth.inter_node"}


def test_a_pass_inside_the_warn_band_is_a_warning_property(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    """The bundle measured all_reduce 1 GiB at 353.79 GB/s; a floor of 345 passes by 2.5%."""
    (tmp_path / "hgx-h200-4gpu.yaml").write_text(
        "name: hgx-h200-4gpu\nextends: hgx-h200-4gpu\nbandwidth:\n  intra_node:\n"
        "    source: test floor close to the measurement\n    floors: {all_reduce: {1GiB: 345}}\n"
    )
    junit = tmp_path / "junit.xml"
    result = pytester.runpytest(
        f"{SUITES}/test_bandwidth.py", "-p", "no:cacheprovider", f"--gpufabric-replay={ONE}",
        "--gpufabric-instance=hgx-h200-4gpu", f"--gpufabric-thresholds={tmp_path}",
        "-k", "all_reduce-1GiB", f"--junitxml={junit}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(
        [
            "*GpufabricWarning: all_reduce 1GiB: busbw 353.8 GB/s passes the floor of 345 GB/s (*hgx-h200-4gpu.yaml:6) by only 2.5%, inside its 5% warn band"
        ]
    )
    assert 'name="warning" value="all_reduce 1GiB: busbw 353.8 GB/s passes' in junit.read_text()


def test_floors_of_the_lab_runs_are_what_runs_f_and_g_measured(catalogue: Catalogue) -> None:
    reports = [json.loads(p.read_text()) for p in MEASURE]
    lab = catalogue.profiles["hgx-h200-4gpu"]
    two_node = [r for r in reports if r["run"]["nnodes"] == 2]
    assert len(two_node) == 4
    for kind, pool, margins in (
        (INTER_NODE, DEFAULT, ((0, 0.5),)),
        (NETWORK_ONLY, NETWORK_ONLY, ((0, 0.5),)),
        (NVLINK_ONLY, NVLINK_ONLY, ((256 << 20, 0.9), (0, 0.5))),
    ):
        shipped = {(f.collective, f.nbytes): f.busbw_gbps for f in lab.runs[kind].floors}
        assert shipped == derive(collect(reports_for(reports, kind), pool), margins), kind
