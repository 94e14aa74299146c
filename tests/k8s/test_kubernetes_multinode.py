"""The gate across nodes: a second node joins the local cluster for this module (its own
containerd and kubelet on the same machine, validation/k8s-multinode/add-node.sh) and leaves
it again; the ranks run in a pod on each node and meet over the pod network."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from k8s import k8s_cluster as k

SCRIPTS = k.REPO / "validation" / "k8s-multinode"
NODE = "node2"
TAINT = "gpufabric-k8s/extra-node:NoSchedule"  # keeps the other tests' pods off it
PROFILES = k.REPO / "tests" / "data" / "profiles"


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = k.script_env(SHARED_K8S=str(k.RECIPE))
    return subprocess.run([str(SCRIPTS / name), *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def second_node(k8s: k.Cluster) -> Iterator[str]:
    added = _script("add-node.sh", NODE, "2")
    try:
        if added.returncode != 0:
            pytest.fail(f"add-node.sh failed:\n{added.stdout[-3000:]}{added.stderr[-3000:]}")
        yield NODE
    finally:
        removed = _script("remove-node.sh", NODE)
        assert removed.returncode == 0, removed.stdout[-3000:] + removed.stderr[-3000:]


def test_gate_runs_across_two_nodes(
    pytester: pytest.Pytester, k8s: k.Cluster, second_node: str, namespace: str,
    template: Path, tmp_path: Path,
) -> None:  # fmt: skip
    junit = tmp_path / "j.xml"
    args = k.gate_args(namespace, template, "--gpufabric-k8s-nodes=2",
                       f"--gpufabric-k8s-tolerations={TAINT}")  # fmt: skip
    args = [a for a in args if not a.startswith(("--gpufabric-thresholds", "--gpufabric-instance"))]
    result = pytester.runpytest_subprocess(
        str(k.SUITES), *args, f"--gpufabric-thresholds={PROFILES / 'cpu'}",
        f"--gpufabric-thresholds={PROFILES / 'cpu-nodes'}", "--gpufabric-instance=cpu-gloo-nodes",
        f"--junitxml={junit}", "--gpufabric-allow-uncertified",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes
    assert outcomes["passed"] >= 19  # the inter-node busbw floors included
    # A run over nodes judges the network between them; each node's own floors need a run
    # on that node (the per-node gate of fleet mode), so the verdict says what is missing.
    result.stdout.fnmatch_lines([
        "NOT CERTIFIED: 2 check(s) that profile cpu-gloo-nodes asks for were not judged",
        "  not judged: busbw of all_reduce 64KiB in the default run *: the main run spans 2 "
        "NCCL nodes and is judged against bandwidth.inter_node; a run on one node judges these",
    ])  # fmt: skip
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    facts = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert facts["node_names"] == f"localhost,{second_node}"
    assert facts["rank_nodes"] == f"localhost,localhost,{second_node},{second_node}"
    pods = (facts["rank_hosts"] or "").split(",")
    assert pods[0] == pods[1] != pods[2] == pods[3]
    assert k8s.objects(namespace) == []
