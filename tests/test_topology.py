"""The split-cost check (suites/test_topology.py): every rank its own NCCL host against one
host. The judge on real NCCL logs of a 4×H200 node (P2P/CUMEM on one host; NET/Socket with
every GPU its own node), the profile key, the verdicts and certification on the test
launcher, and real gloo ranks through the local launcher, live and replayed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.evidence.nccl_log import NcclLog, parse_files
from pytest_gpufabric.judge.judgement import Skip
from pytest_gpufabric.judge.measure import Measurement
from pytest_gpufabric.judge.topology import Side, judge_split, nccl_nodes, transports
from pytest_gpufabric.profiles.catalogue import load_catalogue
from pytest_gpufabric.profiles.model import ProfileError, SplitLimit
from pytest_gpufabric.session.plans import split_plan

REPO = Path(__file__).resolve().parent.parent
TOPOLOGY = REPO / "suites" / "test_topology.py"
H200 = Path(__file__).parent / "data" / "h200x4-nccl2.28.9"
MIB16 = 16 << 20
# all_reduce 16 MiB on the 4×H200 capture (result.json): one host, and every GPU its own node
ONE_HOST_MS, SOCKET_MS = 0.09822560101747513, 10.855289459228516


def logs(name: str) -> NcclLog:
    return parse_files(sorted((H200 / name).glob("nccl.*.log")))


def measured(ms: float, mismatches: int = 0) -> Measurement:
    return Measurement(Collective.ALL_REDUCE, MIB16, "bfloat16", 4, 5, 20, (ms,) * 4,
                       1 << 23, mismatches, None)  # fmt: skip


def limit(max_slowdown: float) -> SplitLimit:
    return SplitLimit(max_slowdown, None, "test source", "test margin", Path("p.yaml"), 7)


ONE = Side("default", "default run", measured(ONE_HOST_MS), logs("default"))
SPLIT = Side("split", "split run", measured(SOCKET_MS), logs("socket_only"))


def test_transports_and_nccl_nodes_come_from_the_real_logs() -> None:
    assert transports(ONE.log).split("×")[0] == "P2P/CUMEM"
    assert transports(SPLIT.log).split("×")[0] == "NET/Socket"
    assert (nccl_nodes(ONE.log), nccl_nodes(SPLIT.log)) == (1, 4)
    two = logs("two_node_hostid")  # NCCL_HOSTID per pair: both transports, two nodes
    assert {t.split("×")[0] for t in transports(two).split(", ")} == {"P2P/CUMEM", "NET/Socket"}
    assert nccl_nodes(two) == 2
    assert transports(None).startswith("gloo")


def test_a_split_costlier_than_the_profile_allows_fails_with_evidence_and_remedy() -> None:
    judgement = judge_split(ONE, SPLIT, limit(50), "hgx")
    assert judgement.status == "failed"
    lines = judgement.message.splitlines()
    assert lines[0].startswith(
        "all_reduce 16MiB (bfloat16, 4 ranks): split into 4 NCCL hosts (one per rank, as one pod "
        "per GPU), busbw 2.3 GB/s over NET/Socket×"
    )
    assert lines[0].endswith(
        "on one host: 110.5× slower (ratio 0.009), more than the 50× the profile allows"
    )
    assert "against 256.2 GB/s over P2P/CUMEM×" in lines[0]
    evidence = "\n".join(lines)
    assert f'via P2P/CUMEM" ({H200 / "default"}' in evidence
    assert f'via NET/Socket/0" ({H200 / "socket_only"}' in evidence
    assert "split: rank 0: NCCL reports nNodes 4, localRanks 1 (" in evidence
    expected = next(line for line in lines if line.startswith("  expected: "))
    assert expected == (
        "  expected: busbw split >= busbw on one host / 50 = 5.1 GB/s (bandwidth.split."
        "max_slowdown in p.yaml:7; source: test source; margin: test margin)"
    )
    remedy = next(line for line in lines if line.startswith("  remedy: "))
    for words in ("1 pod × N GPUs", "hostIPC", "NVIDIA/nccl#324", "NET/Socket", "GPUDirect RDMA"):
        assert words in remedy
    props = dict(judgement.properties)
    assert props["baseline_run"] == "default"
    assert props["split_ratio"] == 0.009
    assert props["slowdown"] == 110.51
    assert props["nccl_nodes"] == 4
    assert props["baseline_nccl_nodes"] == 1
    assert props["threshold_gbps"] == pytest.approx(256.2 / 50, abs=0.01)


def test_within_the_limit_passes_and_without_one_it_is_reported_not_asked() -> None:
    assert judge_split(ONE, SPLIT, limit(200), "hgx").status == "passed"
    reported = judge_split(ONE, SPLIT, None, "hgx")
    assert reported.skip is Skip.NOT_ASKED
    assert reported.summary.endswith(
        "110.5× slower (ratio 0.009); reported, not judged: profile hgx sets no bandwidth.split"
    )
    assert dict(reported.properties)["baseline_busbw_gbps"] == 256.2
    wrong = Side("split", "split run", measured(SOCKET_MS, mismatches=2), None)
    verdict = judge_split(ONE, wrong, limit(1000), "hgx")
    assert verdict.status == "failed"
    assert "2 wrong result elements" in verdict.message


def test_the_split_plan_gives_every_rank_its_own_nccl_host() -> None:
    plan = split_plan(4)
    assert plan.rank_env(4) == tuple({"NCCL_HOSTID": f"gpufabric-node{r}"} for r in range(4))
    assert plan.describe() == "split run (ranks split into 4 NCCL nodes (NCCL_HOSTID))"


SPLIT_PROFILE = """\
name: {name}
extends: {parent}
bandwidth:
  split:
    source: {source}
    margin: lab margin
    max_slowdown: {max_slowdown}
{extra}"""


def overlay(tmp_path: Path, name: str = "hgx-h200-4gpu", parent: str = "hgx-h200-4gpu",
            max_slowdown: object = 50, source: str = "lab runs", extra: str = "") -> Path:  # fmt: skip
    directory = tmp_path / "profiles"
    directory.mkdir(parents=True, exist_ok=True)
    text = SPLIT_PROFILE.format(name=name, parent=parent, max_slowdown=max_slowdown,
                                source=source, extra=extra)  # fmt: skip
    (directory / f"{name}.yaml").write_text(text)
    return directory


def test_the_profile_key_is_parsed_with_its_source_and_checked(tmp_path: Path) -> None:
    profile = load_catalogue([overlay(tmp_path, extra="    size: 256MiB\n")]).profiles[
        "hgx-h200-4gpu"
    ]
    assert profile.split is not None
    assert (profile.split.max_slowdown, profile.split.nbytes) == (50.0, 256 << 20)
    assert profile.split.where.endswith("hgx-h200-4gpu.yaml:7")
    assert load_catalogue([]).profiles["hgx-h200-4gpu"].split is None
    bad = overlay(tmp_path / "bad", max_slowdown=0.5, extra="    floors: {}\n")
    with pytest.raises(ProfileError) as error:
        load_catalogue([bad])
    problems = "\n".join(error.value.problems)
    assert "hgx-h200-4gpu.yaml:7: bandwidth.split.max_slowdown: must be a number >= 1" in problems
    assert "bandwidth.split.floors: unknown key" in problems


def test_a_child_drops_an_inherited_split_with_null(tmp_path: Path) -> None:
    directory = overlay(tmp_path, name="parent", parent="hgx-h200-4gpu")
    (directory / "child.yaml").write_text(
        "name: child\nextends: parent\nbandwidth:\n  split: null\n"
    )
    catalogue = load_catalogue([directory])
    assert catalogue.profiles["parent"].split is not None
    assert catalogue.profiles["child"].split is None


# --- through the plugin, on the test launcher (launchers.py) with real NCCL logs --------------

PLUGIN = """
from pathlib import Path
from launchers import H200, Script, node, scripted_plugin

def logs(name):
    return sorted((Path({h200!r}) / name).glob("nccl.*.log"))

SCRIPT = Script(pool_busbw={{"default": 356.0, "split": 2.9}},
                nccl_logs={{"default": logs("default"), "split": logs("socket_only")}})
pytest_gpufabric_make_launcher = scripted_plugin([node(H200)], SCRIPT)
"""


def scripted_topology(pytester: pytest.Pytester, profiles: Path, *args: str) -> pytest.RunResult:
    pytester.makepyfile(scripted_split=PLUGIN.format(h200=str(H200)))
    pytester.syspathinsert()
    return pytester.runpytest(
        str(TOPOLOGY), "-p", "no:cacheprovider", "-p", "scripted_split", "-rs",
        "--gpufabric-launcher=scripted", "--gpufabric-instance=hgx-h200-4gpu",
        f"--gpufabric-thresholds={profiles}", *args,
    )  # fmt: skip


def test_the_split_cost_fails_the_run_when_it_exceeds_the_profile(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    report = tmp_path / "r.json"
    result = scripted_topology(pytester, overlay(tmp_path), f"--gpufabric-json={report}")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "all_reduce 1GiB (bfloat16, 4 ranks): split into 4 NCCL hosts (one per rank, as one "
            "pod per GPU), busbw 2.9 GB/s over NET/Socket×* against 356.0 GB/s over P2P/CUMEM×* "
            "on one host: 122.8× slower (ratio 0.008), more than the 50× the profile allows",
            '  evidence: one host: rank * channel *: "Channel * via P2P/CUMEM" (*default*)',
            "  expected: busbw split >= busbw on one host / 50 = 7.1 GB/s (bandwidth.split."
            "max_slowdown in *hgx-h200-4gpu.yaml:7; source: lab runs; margin: lab margin)",
            "  remedy: Keep all GPUs of a node in one pod (1 pod × N GPUs*",
            "FAILED  split all_reduce 1GiB * busbw      2.9 GB/s  floor *7.12",
            "NOT CERTIFIED: 3 test(s) failed*",
        ]
    )
    test = json.loads(report.read_text())["tests"][0]
    assert test["nodeid"].endswith("test_split_cost[all_reduce]")
    props = test["properties"]
    assert (props["run"], props["baseline_run"], props["floors_from"]) == (
        "split", "default", "bandwidth.split"
    )  # fmt: skip
    assert (props["busbw_gbps"], props["baseline_busbw_gbps"]) == (2.9, 356.0)
    assert props["transport"].startswith("NET/Socket×")
    assert props["baseline_transport"].startswith("P2P/CUMEM×")


def test_within_the_limit_it_passes_and_an_unrun_case_keeps_the_run_uncertified(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    profiles = overlay(tmp_path, max_slowdown=500)
    report = tmp_path / "r.json"
    result = scripted_topology(pytester, profiles, "-k", "all_reduce", f"--gpufabric-json={report}")
    result.assert_outcomes(passed=1, deselected=2)
    not_judged = [n["what"] for n in json.loads(report.read_text())["certification"]["not_judged"]]
    split = [what for what in not_judged if what.startswith("cost of splitting")]
    assert [what.split(" (bandwidth.split, ")[0] for what in split] == [
        "cost of splitting all_gather 1GiB into one NCCL host per rank <= 500×",
        "cost of splitting reduce_scatter 1GiB into one NCCL host per rank <= 500×",
    ]


def test_a_main_run_over_several_nccl_nodes_is_not_applicable(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    result = scripted_topology(pytester, overlay(tmp_path), "--gpufabric-emulate-nodes=2")
    result.assert_outcomes(skipped=3)
    result.stdout.fnmatch_lines(
        ["SKIPPED [[]3] *: the main run already spans 2 NCCL nodes (pods, hosts or NCCL_HOSTID "
         "groups), so its ranks talk between hosts already; run with one pod per node (all its "
         "GPUs in one pod) to compare"]
    )  # fmt: skip
    assert "cost of splitting" not in result.stdout.str()  # not a demand of this run


# --- real gloo ranks, live and replayed --------------------------------------------------------

CPU_SPLIT = """\
name: cpu-split
description: CPU-only node, 2 gloo ranks; gloo ignores NCCL_HOSTID, so the split costs ~1x
gpu: {count: 0}
bandwidth:
  dtype: float32
  warmup: 1
  iters: 5
  ranks: 2
  split:
    source: test profile; gloo's TCP is the same whatever NCCL_HOSTID says
    max_slowdown: 1000
"""


def test_real_gloo_ranks_compare_two_pools_and_the_bundle_replays_alike(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "cpu-split.yaml").write_text(CPU_SPLIT)
    bundle, live_json, replay_json = tmp_path / "art", tmp_path / "live.json", tmp_path / "re.json"
    common = ("-p", "no:cacheprovider", "--gpufabric-instance=cpu-split",
              f"--gpufabric-thresholds={profiles}", "--gpufabric-allow-uncertified")  # fmt: skip
    live = pytester.runpytest(str(TOPOLOGY), *common, f"--gpufabric-artifacts={bundle}",
                              f"--gpufabric-json={live_json}")  # fmt: skip
    live.assert_outcomes(passed=3)
    pool = json.loads((bundle / "split" / "pool.json").read_text())
    assert pool["rank_env"] == [
        {"NCCL_HOSTID": "gpufabric-node0"},
        {"NCCL_HOSTID": "gpufabric-node1"},
    ]
    assert (bundle / "default" / "rank0.out.log").exists()
    again = pytester.runpytest(str(TOPOLOGY), *common, f"--gpufabric-replay={bundle}",
                               f"--gpufabric-json={replay_json}")  # fmt: skip
    again.assert_outcomes(passed=3)

    def compared(path: Path) -> dict[str, dict[str, object]]:
        return {t["nodeid"]: t["properties"] for t in json.loads(path.read_text())["tests"]}

    live_props, replayed = compared(live_json), compared(replay_json)
    assert replayed.keys() == live_props.keys()
    for nodeid, props in live_props.items():
        keys = ("busbw_gbps", "baseline_busbw_gbps", "transport", "run", "baseline_run")
        assert [replayed[nodeid][k] for k in keys] == [props[k] for k in keys]
        # replay recomputes from the recorded times (4 decimals of a ms)
        assert replayed[nodeid]["split_ratio"] == pytest.approx(props["split_ratio"], rel=1e-3)
        assert props["transport"] == "gloo (TCP; NCCL_HOSTID does not apply)"


# --- the real 2×H200 bundle (tests/data/runs/2026-11-29-h200x2-split), replayed ----------------

BUNDLE = Path(__file__).parent / "data" / "runs" / "2026-11-29-h200x2-split"
SMOKE = REPO / "validation" / "profiles-smoke"
STRICT = """\
name: h200-2gpu-split-strict
extends: h200-2gpu-smoke
bandwidth:
  split:
    source: test limit, below what NET/Socket can reach on this host
    max_slowdown: 50
"""


def replay_bundle(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest(
        str(TOPOLOGY), "-p", "no:cacheprovider", f"--gpufabric-replay={BUNDLE}",
        f"--gpufabric-thresholds={SMOKE}", "--gpufabric-allow-uncertified", *args,
    )  # fmt: skip


def test_the_2xh200_bundle_replays_as_it_was_judged_live(pytester: pytest.Pytester) -> None:
    result = replay_bundle(pytester, "--gpufabric-instance=h200-2gpu-smoke", "-rA")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        ["PASSED  split all_reduce 1GiB * busbw      3.6 GB/s  floor *0.328"]
    )


def test_a_stricter_profile_fails_the_2xh200_bundle_on_its_real_logs(
    pytester: pytest.Pytester, tmp_path: Path
) -> None:
    (tmp_path / "h200-2gpu-split-strict.yaml").write_text(STRICT)
    result = replay_bundle(
        pytester,
        f"--gpufabric-thresholds={tmp_path}",
        "--gpufabric-instance=h200-2gpu-split-strict",
    )
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines(
        [
            "all_reduce 1GiB (bfloat16, 2 ranks): split into 2 NCCL hosts (one per rank, as one "
            "pod per GPU), busbw 3.6 GB/s over NET/Socket×4 against 328.1 GB/s over P2P/CUMEM×48 "
            "on one host: 90.6× slower (ratio 0.011), more than the 50× the profile allows",
            '  evidence: one host: rank * channel 0: "Channel 00/0 : * via P2P/CUMEM" '
            f"({BUNDLE / 'default'}/rank*.nccl.log:*)",
            "  evidence: one host: rank *: NCCL reports nNodes 1, localRanks 2 (*)",
            '  evidence: split: rank * channel 0: "Channel 00/0 : * via NET/Socket/0" '
            f"({BUNDLE / 'split'}/rank*.nccl.log:*)",
            "  evidence: split: rank *: NCCL reports nNodes 2, localRanks 1 (*)",
            '  evidence: split: "NCCL_HOSTID set by environment to gpufabric-node*" (*)',
            f"  evidence: measured: recorded in pytest-gpufabric report: {BUNDLE}/report.json *",
            "  expected: busbw split >= busbw on one host / 50 = 6.6 GB/s (*; source: test limit, "
            "below what NET/Socket can reach on this host)",
        ]
    )
