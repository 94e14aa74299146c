"""The kubernetes launcher against the real local cluster (../shared/k8s): ranks in pods on
its node, controller outside (this process: the pods cannot reach it) and inside (a pod);
faults end with a clear message and leave no object and no process behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from k8s import k8s_cluster as k

ONE_LINE_STDERR = 1


def junit_facts(path: Path) -> dict[str, str]:
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    return {p.get("name", ""): p.get("value", "") for p in suite.iter("property")
            if p.get("name") and not p.get("name", "").startswith("gpufabric.")}  # fmt: skip


def test_gate_runs_in_a_pod_outside_controller_certifies_and_leaves_nothing(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path, tmp_path: Path
) -> None:
    """Controller here (outside: pods on the bridge cannot reach this host), 1 pod × 2 gloo
    ranks; the JUnit names the pod and the node."""
    junit, report = tmp_path / "j.xml", tmp_path / "r.json"
    result = pytester.runpytest_subprocess(
        str(k.SUITES), *k.gate_args(namespace, template), f"--junitxml={junit}",
        f"--gpufabric-json={report}", f"--gpufabric-artifacts={tmp_path / 'art'}",
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["CERTIFIED: every check and floor *"])
    facts = junit_facts(junit)
    assert facts["launcher"] == "kubernetes"
    assert facts["node_names"] == "localhost"
    assert facts["rank_nodes"] == "localhost,localhost"
    pods = facts["rank_hosts"].split(",")
    assert len(pods) == 2, pods
    assert pods[0] == pods[1], pods
    assert pods[0].endswith("-node-0-0"), pods
    run = json.loads(report.read_text())["run"]
    assert [n["name"] for n in run["nodes"]] == ["localhost"]
    pool = json.loads((tmp_path / "art" / "default" / "pool.json").read_text())
    assert pool["namespace"] == namespace
    assert list(pool["pods"]) == [pods[0]]
    nccl_or_out = sorted(p.name for p in (tmp_path / "art" / "default").iterdir())
    assert {"rank0.out.log", "rank1.out.log"} <= set(nccl_or_out)
    assert k8s.objects(namespace) == []  # the launcher waited until everything was gone
    assert k.workers_left() == []


def test_two_pods_on_one_node_are_two_nccl_nodes_with_private_shm(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path
) -> None:
    """Splitting a node into pods, as seed 000's 4 pods × 1 GPU: each pod is its own NCCL
    node and has its own /dev/shm; the finding names both pods."""
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_host.py"), str(k.SUITES / "test_node.py"),
        *k.gate_args(namespace, template, "--gpufabric-k8s-pods-per-node=2"), "-rf",
    )  # fmt: skip
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1, outcomes
    result.stdout.fnmatch_lines(["FAILED *test_host.py::test_host[[]shm_shared[]]*"])
    result.stdout.fnmatch_lines(
        [
            "*the ranks see 2 different /dev/shm mounts (rank 0 on gpufabric-*-node-0-0: st_dev *"
            ", rank 1 on gpufabric-*-node-1-0: st_dev *"
        ]
    )
    assert k8s.objects(namespace) == []


KILL_A_POD = """
import time
from kubernetes import client, config
from pytest_gpufabric import CorrectnessCase
from pytest_gpufabric.collectives import Collective

CASE = CorrectnessCase(Collective.ALL_REDUCE, 1021, "float32")

def test_pod_killed(gpufabric):
    pool = gpufabric.pool()
    gpufabric.check_correctness(CASE)
    config.load_kube_config()
    core = client.CoreV1Api()
    core.delete_namespaced_pod(pool.pods[1], "{namespace}", grace_period_seconds=1)
    for _ in range(600):  # until the kubelet has killed it and the object is gone
        if pool.pods[1] not in [p.metadata.name for p in core.list_namespaced_pod("{namespace}").items]:
            break
        time.sleep(0.1)
    gpufabric.check_correctness(CorrectnessCase(Collective.ALL_REDUCE, 1023, "float32"))

def test_after(gpufabric):
    gpufabric.check_correctness(CASE)
"""


def test_a_killed_pod_fails_the_test_naming_pod_and_node(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path
) -> None:
    pytester.makepyfile(KILL_A_POD.format(namespace=namespace))
    result = pytester.runpytest_subprocess(
        *k.gate_args(namespace, template, "--gpufabric-k8s-pods-per-node=2",
                     "--gpufabric-timeout=20"), "-rs",
    )  # fmt: skip
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines([
        "rank pool 'default': all_reduce 4092B float32: rank 1 died*",
        "*rank 1: no reply: exited with code 137 (pod gpufabric-*-node-1-0 on node localhost "
        "was deleted (by someone, a preemption or the loss of its node))",
    ])  # fmt: skip
    assert k8s.objects(namespace) == []
    assert k.workers_left() == []


def test_an_unschedulable_pod_is_a_one_line_error_and_leaves_nothing(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path
) -> None:
    """More nvidia.com/gpu than the node has: the scheduler's reason and a remedy, in one
    line, after the short grace for unschedulable pods (not the start-up deadline)."""
    t0 = time.monotonic()
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_node.py"),
        *k.gate_args(namespace, template, "--gpufabric-k8s-gpus-per-pod=64"),
    )  # fmt: skip
    elapsed = time.monotonic() - t0
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == ONE_LINE_STDERR, result.stderr.str()
    assert errors[0].startswith("ERROR: --gpufabric-launcher kubernetes: pod gpufabric-")
    assert (
        "cannot be scheduled: 0/1 nodes are available: 1 Insufficient nvidia.com/gpu." in errors[0]
    )
    assert "is the NVIDIA device plugin" in errors[0]
    assert elapsed < 90
    assert k8s.objects(namespace) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpufabric-k8s-node-names=nosuch"],
         "ERROR: --gpufabric-launcher kubernetes: --gpufabric-k8s-node-names: node nosuch: "
         '404 NotFound: nodes "nosuch" not found'),
        (["--gpufabric-k8s-node-selector=pool=none"],
         "ERROR: --gpufabric-launcher kubernetes: 1 node(s) wanted, 0 ready and schedulable "
         "among nodes matching pool=none (--gpufabric-k8s-node-selector (from "
         "--gpufabric-k8s-node-selector)); not usable: none"),
        (["--gpufabric-k8s-nodes=2"],
         "ERROR: --gpufabric-launcher kubernetes: 2 node(s) wanted, 1 ready and schedulable "
         "among all nodes; not usable: none"),
        (["--gpufabric-k8s-workload=sometimes"],
         "ERROR: --gpufabric-k8s-workload: invalid value 'sometimes' from "
         "--gpufabric-k8s-workload: one of auto, jobset, indexed-job, pods"),
    ],
)  # fmt: skip
def test_bad_cluster_options_are_one_line_errors(
    pytester: pytest.Pytester,
    k8s: k.Cluster,
    namespace: str,
    template: Path,
    args: list[str],
    message: str,
) -> None:
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_node.py"), *k.gate_args(namespace, template, *args)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [message]
    assert k8s.objects(namespace) == []


HOLD_THE_POOL = """
import time
from pathlib import Path

def test_holds(gpufabric):
    pool = gpufabric.pool()
    Path("started").write_text(" ".join(pool.pods))
    time.sleep(600)
"""


def _start_and_hold(pytester: pytest.Pytester, namespace: str, template: Path,
                    *extra: str) -> subprocess.Popen[str]:  # fmt: skip
    pytester.makepyfile(HOLD_THE_POOL)
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", *k.gate_args(namespace, template, *extra)],
        cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A background job of a non-interactive shell inherits SIGINT ignored; a terminal's not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    marker = pytester.path / "started"
    deadline = time.monotonic() + 180
    while not marker.exists() and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    if not marker.exists():
        run.kill()
        out, _ = run.communicate()
        pytest.fail(f"the pool did not start:\n{out}")
    assert k.worker_processes(), "the ranks should run now"
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_and_sigterm_delete_everything(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path, sig: signal.Signals
) -> None:
    run = _start_and_hold(pytester, namespace, template)
    try:
        run.send_signal(sig)
        out, _ = run.communicate(timeout=240)
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    assert run.returncode == pytest.ExitCode.INTERRUPTED, out
    assert k8s.objects(namespace) == [], out  # deleted before pytest exited
    assert k.workers_left() == []


def test_a_sigkilled_controller_leaves_nothing_after_the_expiry(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path
) -> None:
    """Nothing of the controller survives SIGKILL: the ranks see their stream close and exit;
    Kubernetes deletes the objects once the parent Job's deadline is no longer renewed."""
    run = _start_and_hold(pytester, namespace, template, "--gpufabric-k8s-expiry=10")
    killed = time.monotonic()
    run.kill()
    run.communicate()
    assert k.workers_left() == []
    left = k8s.wait_empty(namespace, 240)
    gone_after = time.monotonic() - killed
    jobs = [(j.metadata.name, j.spec.active_deadline_seconds, j.status.start_time,
             [(c.type, c.reason) for c in j.status.conditions or []])
            for j in k8s.api.batch.list_namespaced_job(namespace).items]  # fmt: skip
    assert left == [], f"still there {gone_after:.0f} s after SIGKILL: {left}; jobs: {jobs}"
    print(f"objects gone {gone_after:.1f} s after the controller's SIGKILL (expiry 10 s)")


def _apply_rbac(k8s: k.Cluster, namespace: str) -> Callable[[], None]:
    """deploy/rbac.yaml as users apply it, in the test's namespace; returns what removes its
    cluster-wide objects again (the namespaced ones go with the namespace)."""
    from kubernetes import client, utils

    text = (k.REPO / "deploy" / "rbac.yaml").read_text()
    text = text.replace("gpufabric-nodes-gpufabric", f"gpufabric-nodes-{namespace}")
    text = text.replace("namespace: gpufabric", f"namespace: {namespace}")
    for doc in yaml.safe_load_all(text):
        utils.create_from_dict(k8s.api.client, doc)  # type: ignore[no-untyped-call]
    rbac = client.RbacAuthorizationV1Api(k8s.api.client)

    def remove() -> None:
        rbac.delete_cluster_role_binding(f"gpufabric-nodes-{namespace}")
        rbac.delete_cluster_role("gpufabric-nodes")

    return remove


def _mount(name: str, path: Path | str, ro: bool = True) -> dict[str, object]:
    return {"name": name, "mountPath": str(path), "readOnly": ro}


def _host(name: str, path: Path | str) -> dict[str, object]:
    return {"name": name, "hostPath": {"path": str(path), "type": "Directory"}}


def test_gate_runs_from_a_controller_pod_inside_the_cluster(
    k8s: k.Cluster, namespace: str, template: Path, tmp_path: Path
) -> None:
    """The controller as a CronJob or CI job pod runs it: in a pod, with the ServiceAccount
    of deploy/rbac.yaml and nothing else; its ranks run in pods of their own."""
    remove_rbac = _apply_rbac(k8s, namespace)
    try:
        _run_controller_pod(k8s, namespace, template, tmp_path)
    finally:
        remove_rbac()


def _run_controller_pod(k8s: k.Cluster, namespace: str, template: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    python = str(k.VENV / "bin" / "python")
    command = [
        python, "-m", "pytest", str(k.SUITES), f"--basetemp={out / 'basetemp'}",
        *k.gate_args(namespace, template), f"--junitxml={out / 'j.xml'}",
    ]  # fmt: skip
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "controller", "namespace": namespace},
        "spec": {
            "serviceAccountName": "gpufabric",
            # The local cluster's API server listens on 127.0.0.1 only (no Services there).
            "hostNetwork": True,
            "restartPolicy": "Never",
            "containers": [{
                "name": "pytest", "image": "localhost/gpufabric-k8s/hostfs:v1",
                "imagePullPolicy": "Never", "command": command, "workingDir": str(tmp_path),
                "env": [{"name": "KUBERNETES_SERVICE_HOST", "value": "127.0.0.1"},
                        {"name": "KUBERNETES_SERVICE_PORT", "value": "6443"},
                        {"name": "PYTHONPATH", "value": str(k.REPO)}],
                "volumeMounts": [_mount("usr", "/usr"), _mount("venv", k.VENV),
                                 _mount("repo", k.REPO), _mount("work", tmp_path, ro=False)],
            }],
            "volumes": [_host("usr", "/usr"), _host("venv", k.VENV), _host("repo", k.REPO),
                        _host("work", tmp_path)],
        },
    }  # fmt: skip
    k8s.api.core.create_namespaced_pod(namespace, pod)
    deadline = time.monotonic() + 240
    phase = "Pending"
    while time.monotonic() < deadline:
        phase = k8s.api.core.read_namespaced_pod("controller", namespace).status.phase
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    log = k8s.api.core.read_namespaced_pod_log("controller", namespace)
    assert phase == "Succeeded", log
    assert "CERTIFIED: every check and floor" in log
    facts = junit_facts(out / "j.xml")
    assert facts["launcher"] == "kubernetes"
    assert facts["rank_nodes"] == "localhost,localhost"
    k8s.api.core.delete_namespaced_pod("controller", namespace, grace_period_seconds=0)
    assert k8s.wait_empty(namespace, 60) == []


def test_workload_groups_in_pods_name_their_pods_and_node(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path, tmp_path: Path
) -> None:
    """suites/test_workload.py with 4 gloo ranks in 2 pods of one node (2 NCCL nodes): TP 2 ×
    DP 2 keeps each TP group in its pod and runs the DP groups across the pods while the TP
    groups all_reduce; the profile's floors for 2 nodes (workload.nodes) judge them, and the
    TP group below its floor is named with its pod and node. TP 4 spans both pods: said to
    cross pods of one node, as seed 000's 4 pods × 1 GPU did."""
    report = tmp_path / "r.json"
    args = [a for a in k.gate_args(namespace, template, "--gpufabric-k8s-pods-per-node=2")
            if not a.startswith(("--gpufabric-thresholds", "--gpufabric-instance"))]  # fmt: skip
    profiles = k.REPO / "tests" / "data" / "profiles"
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_workload.py"), *args, f"--gpufabric-thresholds={profiles / 'cpu'}",
        f"--gpufabric-thresholds={profiles / 'cpu-workload'}",
        "--gpufabric-instance=cpu-gloo-4rank-pods", f"--gpufabric-json={report}",
        "--gpufabric-allow-uncertified", "-W", "always::pytest_gpufabric.GpufabricWarning",
    )  # fmt: skip
    result.assert_outcomes(passed=5, failed=1, warnings=2)
    result.stdout.fnmatch_lines([
        "all_gather 64KiB, 2 tensor-parallel groups at once: 2 of 2 groups below 1000 GB/s busbw",
        "  tensor-parallel group of ranks 0, 1 (on gpufabric-*-node-0-0 (node localhost)) over "
        "gloo over TCP: * GB/s *",
        "  expected: 1000 GB/s per tp group of layout 2x1x2 from *cpu-gloo-4rank-pods.yaml:11 *",
    ])  # fmt: skip
    result.stdout.fnmatch_lines([
        "*layout: tp group of ranks 0, 1, 2, 3 on gpufabric-*-node-0-0, gpufabric-*-node-1-0: "
        "tensor-parallel traffic crosses pods of node localhost (each pod is its own NCCL "
        "node, so it leaves NVLink)*",
    ])  # fmt: skip
    tests = {t["nodeid"].split("[")[1][:-1]: t["properties"]
             for t in json.loads(report.read_text())["tests"]}  # fmt: skip
    dp = tests["tp2pp1dp2-dp-reduce_scatter-64KiB"]
    assert (dp["group0_ranks"], dp["beside0_ranks"], dp["beside1_ranks"]) == ("0,2", "0,1", "2,3")
    assert dp["threshold_from"].startswith("1e-06 GB/s per dp group of layout 2x1x2 from ")
    assert k8s.objects(namespace) == []
    assert k.workers_left() == []
