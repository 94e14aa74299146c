"""Fleet mode on the real cluster: three extra nodes join it for this module (their own
containerd and kubelet on this machine, validation/k8s-multinode/add-node.sh), so the fleet
is every node the cluster has: four. One node is made bad on its own (it fails its gate),
one only towards other nodes (the pair isolation names it); the other two pass."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s import k8s_cluster as k
from pytest_gpufabric.launch.kube.manifests import BAD_TAINT
from pytest_gpufabric.launch.kube.marks import CHECKED_AT, VERDICT_LABEL, WHY

SCRIPTS = k.REPO / "validation" / "k8s-multinode"
EXTRA = ("node2", "node3", "node4")
CLIQUE = "nvidia.com/gpu.clique"  # NVLink domains, as NVIDIA's GPU operator labels them
TAINT = "gpufabric-k8s/extra-node:NoSchedule"  # keeps the other tests' pods off them
SUITE = k.REPO / "suites" / "test_fleet.py"
HOSTFS = "localhost/gpufabric-k8s/hostfs:v1"  # the cluster's image: the host's /usr mounted


def _script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = k.script_env(SHARED_K8S=str(k.RECIPE))
    return subprocess.run([str(SCRIPTS / name), *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def fleet_nodes(k8s: k.Cluster) -> Iterator[tuple[str, ...]]:
    added: list[str] = []
    try:
        for index, name in enumerate(EXTRA, start=2):
            done = _script("add-node.sh", name, str(index))
            if done.returncode != 0:
                pytest.fail(
                    f"add-node.sh {name} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
                )
            added.append(name)
        for name, clique in (("localhost", "a"), ("node2", "a"), ("node3", "b"), ("node4", "b")):
            k8s.api.core.patch_node(name, {"metadata": {"labels": {CLIQUE: clique}}})
        yield ("localhost", *EXTRA)
    finally:
        problems = []
        # the main node stays: take off what the fleet runs left on it
        k8s.api.core.patch_node("localhost", {
            "metadata": {"labels": {VERDICT_LABEL: None, CLIQUE: None},
                         "annotations": {CHECKED_AT: None, WHY: None}}})  # fmt: skip
        for name in added:
            removed = _script("remove-node.sh", name)
            if removed.returncode != 0:
                problems.append(f"{name}: {removed.stdout[-2000:]}{removed.stderr[-2000:]}")
        assert not problems, problems


def _fleet_run(pytester: pytest.Pytester, namespace: str, template: Path, tmp_path: Path,
               *extra: str) -> tuple[pytest.RunResult, dict[str, Any]]:  # fmt: skip
    """The fleet suite over the cluster's nodes: its result and its JSON report, with the
    tests by name under "by_name"."""
    report = tmp_path / "report.json"
    result = pytester.runpytest_subprocess(
        str(SUITE), *k.gate_args(namespace, template, "--gpufabric-fleet",
                                 f"--gpufabric-k8s-tolerations={TAINT}"),
        f"--gpufabric-json={report}", *extra,
    )  # fmt: skip
    data = json.loads(report.read_text())
    data["by_name"] = {t["nodeid"].split("::")[1]: t for t in data["tests"]}
    return result, data


def _node_outcomes(report: dict[str, Any], nodes: tuple[str, ...]) -> dict[str, str]:
    return {name: report["by_name"][f"test_fleet_node[{name}]"]["outcome"] for name in nodes}


def test_a_fleet_run_over_every_node_names_the_bad_ones(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, k8s: k.Cluster,
    fleet_nodes: tuple[str, ...], namespace: str, template: Path, tmp_path: Path,
) -> None:  # fmt: skip
    monkeypatch.setenv(
        "GPUFABRIC_TEST_FLEET_FAULT",
        "node3:GLOO_SOCKET_IFNAME=bogus0;pairs@node4:GLOO_SOCKET_IFNAME=bogus0",
    )
    result, report = _fleet_run(pytester, namespace, template, tmp_path, "-rs",
                                "--gpufabric-k8s-label-nodes", "--gpufabric-k8s-taint-failed")  # fmt: skip
    out, tests = result.stdout.str(), report["by_name"]
    assert _node_outcomes(report, fleet_nodes) == {
        "localhost": "passed",
        "node2": "passed",
        "node3": "failed",
        "node4": "failed",
    }, out
    result.stdout.fnmatch_lines([
        "node3 failed its own gate (alone, before any pairing):",
        "  start-up: *no network interface matches GLOO_SOCKET_IFNAME=bogus0*",
    ])  # fmt: skip
    result.stdout.fnmatch_lines([
        "3 nodes in 3 rounds of 3 probes: 1 bad node(s), 0 bad link(s); not paired, failed "
        "their own gate: node3",
        "node node4 is bad:",
    ])  # fmt: skip
    props = tests["test_fleet_isolation"]["properties"]
    assert props["fleet_bad_nodes"] == "node4"
    fleet = report["fleet"]
    assert fleet["domains"]["node2"] == f"{CLIQUE}=a"
    assert {p["scope"] for p in fleet["probes"]} <= {f"domain {CLIQUE}=a", "across domains"}
    gate = tests["test_fleet_node[localhost]"]["properties"]
    assert gate["fleet_gate"] == "passed"
    # the profile's all_reduce floor at 64 KiB (gloo on CPU) judged the gate
    assert gate["fleet_gate_measured"].startswith("all_reduce 64KiB on 2 rank(s)")
    # pools of several nodes at once: no exec stream took another thread's API call
    assert "kubernetes clean-up" not in result.stderr.str()
    result.stdout.fnmatch_lines(["fleet: 4 nodes, 3 rounds of 3 probes; bad links: none",
                                 "  node3 * BAD * failed its own gate*"])  # fmt: skip
    assert "gpufabric: node " not in out  # every node marked
    marks = _marks(k8s)
    assert {n: m[0] for n, m in marks.items()} == {
        "localhost": "passed", "node2": "passed", "node3": "bad", "node4": "bad"}  # fmt: skip
    assert [n for n, m in marks.items() if m[1]] == ["node3", "node4"]  # tainted NoSchedule
    assert "failed its own gate" in marks["node3"][2]
    assert k8s.wait_empty(namespace, 60) == []
    assert k.workers_left() == []


def _marks(k8s: k.Cluster) -> dict[str, tuple[str | None, bool, str]]:
    """Each node's (verdict label, our NoSchedule taint, why annotation)."""
    found = {}
    for node in k8s.api.core.list_node().items:
        labels, notes = node.metadata.labels or {}, node.metadata.annotations or {}
        tainted = any(t.key == BAD_TAINT and t.effect == "NoSchedule"
                      for t in node.spec.taints or [])  # fmt: skip
        found[node.metadata.name] = (labels.get(VERDICT_LABEL), tainted, notes.get(WHY, ""))
    return found


def test_a_frozen_rank_is_named_with_its_pod_and_node_and_nothing_is_left(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, k8s: k.Cluster,
    fleet_nodes: tuple[str, ...], namespace: str, template: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """A rank in node4's pod stops itself (SIGSTOP) when its all_reduce arrives, in pools with
    other nodes: each such probe names it and its node once the 10 s job deadline passes;
    node4 is named bad; the stopped processes go with the run's pods."""
    monkeypatch.setenv("GPUFABRIC_TEST_FLEET_FAULT", "pairs@node4:GPUFABRIC_TEST_RANK_FREEZE=1")
    result, report = _fleet_run(pytester, namespace, template, tmp_path,
                                "--gpufabric-timeout=10", "--gpufabric-k8s-label-nodes",
                                "--gpufabric-k8s-taint-failed")  # fmt: skip
    out = result.stdout.str()
    assert _node_outcomes(report, fleet_nodes) == {
        "localhost": "passed",
        "node2": "passed",
        "node3": "passed",
        "node4": "failed",
    }, out
    named = [line for line in out.splitlines() if "never arrived" in line and "probe" in line]
    assert named, out
    for line in named:
        assert line.count("on node node4") == 2, line  # both ranks of node4's pod
        seconds = float(line.rsplit("(after ", 1)[1].split(" s)")[0])
        assert 10 <= seconds < 16, line
    # node3, tainted by the first run, was tested again (our pods tolerate our taint), passed,
    # and lost the taint; node4 is bad again
    marks = _marks(k8s)
    assert {n: m[:2] for n, m in marks.items()} == {
        "localhost": ("passed", False), "node2": ("passed", False), "node3": ("passed", False),
        "node4": ("bad", True)}  # fmt: skip
    assert k8s.wait_empty(namespace, 60) == []
    assert k.workers_left() == []


def test_idle_nodes_only_leaves_out_a_node_whose_gpus_are_in_use(
    pytester: pytest.Pytester, k8s: k.Cluster, fleet_nodes: tuple[str, ...], namespace: str,
    template: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """node2 advertises one GPU (extended resource, as a device plugin would) and a pod of
    someone else holds it: --gpufabric-k8s-idle-nodes-only tests the other three."""
    gpu = {"nvidia.com/gpu": "1"}
    k8s.api.core.patch_node_status("node2", {"status": {"capacity": gpu, "allocatable": gpu}})
    k8s.api.core.create_namespaced_pod(namespace, {
        "metadata": {"name": "training"},
        "spec": {"nodeName": "node2", "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "c", "image": HOSTFS, "imagePullPolicy": "Never",
                                 "command": ["/usr/bin/sleep", "600"],
                                 "volumeMounts": [{"name": "usr", "mountPath": "/usr"}],
                                 "resources": {"limits": gpu}}],
                 "volumes": [{"name": "usr", "hostPath": {"path": "/usr"}}]},
    })  # fmt: skip
    deadline = time.monotonic() + 60
    while k8s.api.core.read_namespaced_pod("training", namespace).status.phase != "Running":
        assert time.monotonic() < deadline, "the GPU pod did not start"
        time.sleep(0.5)
    result, report = _fleet_run(pytester, namespace, template, tmp_path,
                                "--gpufabric-k8s-idle-nodes-only")  # fmt: skip
    k8s.api.core.delete_namespaced_pod("training", namespace, grace_period_seconds=0)
    result.stdout.fnmatch_lines([
        "fleet: 3 nodes, * rounds of * probes; bad links: none",
        f"  left out: node2: busy: pod {namespace}/training uses its GPUs",
    ])  # fmt: skip
    result.assert_outcomes(passed=4)  # the isolation and localhost, node3, node4
    fleet = report["fleet"]
    assert sorted(fleet["nodes"]) == ["localhost", "node3", "node4"]
    assert fleet["left_out"] == {"node2": f"busy: pod {namespace}/training uses its GPUs"}


def test_the_nightly_fleet_job_runs_with_its_least_rbac(
    k8s: k.Cluster, fleet_nodes: tuple[str, ...], namespace: str, template: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    """deploy/fleet-cronjob.yaml's job, as its CronJob would start it, with the rights of
    deploy/rbac.yaml and deploy/rbac-fleet.yaml only: its pod runs the fleet over every node
    (the image, pod template and profile swapped for the local cluster's), labels the nodes,
    and its rank pods run at the manifest's PriorityClass."""
    from kubernetes import client, utils

    docs = list(yaml.safe_load_all((k.REPO / "deploy" / "fleet-cronjob.yaml").read_text()))
    priority, cronjob = docs
    rbac = client.RbacAuthorizationV1Api(k8s.api.client)
    scheduling = client.SchedulingV1Api(k8s.api.client)
    created: list[tuple[str, str]] = []
    try:
        for name in ("rbac.yaml", "rbac-fleet.yaml"):
            text = (k.REPO / "deploy" / name).read_text()
            text = text.replace("namespace: gpufabric", f"namespace: {namespace}")
            for doc in yaml.safe_load_all(text):
                if doc["kind"].startswith("Cluster"):
                    doc["metadata"]["name"] += f"-{namespace}"
                    if "roleRef" in doc:
                        doc["roleRef"]["name"] += f"-{namespace}"
                    created.append((doc["kind"], doc["metadata"]["name"]))
                utils.create_from_dict(k8s.api.client, doc)  # type: ignore[no-untyped-call]
        scheduling.create_priority_class(priority)
        spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        ours = (
            "--gpufabric-k8s-image",
            "--gpufabric-k8s-pod-template",
            "--gpufabric-instance",
            "--junitxml",
            "--gpufabric-json",
            "--gpufabric-artifacts",
            "--gpufabric-metrics",
        )
        args = [a for a in container["args"] if not a.startswith(ours)]
        out = tmp_path / "out"
        out.mkdir()
        python = str(k.VENV / "bin" / "python")
        container.update({
            "image": HOSTFS, "imagePullPolicy": "Never", "workingDir": str(tmp_path),
            "command": [python, "-m", "pytest", str(SUITE), f"--basetemp={out / 'basetemp'}"],
            "args": [*args, *k.gate_args(namespace, template)[2:],
                     f"--gpufabric-k8s-tolerations={TAINT}", f"--gpufabric-json={out / 'r.json'}"],
            "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                    {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
                    {"name": "PYTHONPATH", "value": str(k.REPO)}],
            "volumeMounts": [{"name": n, "mountPath": str(p)} for n, p in
                             (("usr", "/usr"), ("venv", k.VENV), ("repo", k.REPO), ("work", tmp_path))],
        })  # fmt: skip
        spec["volumes"] = [{"name": n, "hostPath": {"path": str(p)}} for n, p in
                           (("usr", "/usr"), ("venv", k.VENV), ("repo", k.REPO), ("work", tmp_path))]  # fmt: skip
        spec["hostNetwork"] = True  # the local API server listens on 127.0.0.1 only
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": "fleet-nightly", "namespace": namespace},
               "spec": cronjob["spec"]["jobTemplate"]["spec"]}  # fmt: skip
        utils.create_from_dict(k8s.api.client, job)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 300
        pod, phase = None, "Pending"
        while time.monotonic() < deadline and phase not in ("Succeeded", "Failed"):
            time.sleep(1)
            pods = k8s.api.core.list_namespaced_pod(
                namespace, label_selector="job-name=fleet-nightly"
            )
            pod = pods.items[0] if pods.items else None
            phase = pod.status.phase if pod else "Pending"
        assert pod is not None
        log = k8s.api.core.read_namespaced_pod_log(pod.metadata.name, namespace)
        assert phase == "Succeeded", log[-5000:]
        assert "fleet: 4 nodes" in log
        report = json.loads((out / "r.json").read_text())
        assert report["fleet"]["bad_nodes"] == []
        assert "node " not in "".join(line for line in log.splitlines() if "cannot mark" in line)
        assert {n: m[0] for n, m in _marks(k8s).items()} == dict.fromkeys(fleet_nodes, "passed")
        assert not any(m[1] for m in _marks(k8s).values())  # node4 passed: its taint lifted
        client.BatchV1Api(k8s.api.client).delete_namespaced_job(
            "fleet-nightly", namespace, propagation_policy="Foreground"
        )
    finally:
        for kind, name in reversed(created):
            if kind == "ClusterRoleBinding":
                rbac.delete_cluster_role_binding(name)
            else:
                rbac.delete_cluster_role(name)
        scheduling.delete_priority_class(priority["metadata"]["name"])
