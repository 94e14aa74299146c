"""The JobSet and Indexed Job forms of a run, against the real 1.20 API server: it has the
JobSet CRD (patched for 1.20, from ../shared/k8s) but no JobSet controller and no Indexed
Jobs, so these forms are created with server-side dry-run and judged by what the server
returns; the launcher's own choice among the forms runs for real."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from k8s import k8s_cluster as k
from pytest_gpufabric.launch.kube import manifests
from pytest_gpufabric.launch.kube.options import parse
from pytest_gpufabric.launch.kube.template import load
from pytest_gpufabric.settings import resolve

CRD = "jobsets.jobset.x-k8s.io"


@pytest.fixture
def jobset_crd(k8s: k.Cluster) -> Iterator[None]:
    """The JobSet CRD installed for one test (the launcher's "auto" would pick it for every
    later test otherwise), and removed again."""
    spec = importlib.util.spec_from_file_location("jobset_crd", k.RECIPE / "jobset_crd.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ext = k8s.api.extensions
    ext.create_custom_resource_definition(module.load_patched_crd())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        conditions = ext.read_custom_resource_definition(CRD).status.conditions or []
        if any(c.type == "Established" and c.status == "True" for c in conditions):
            break
        time.sleep(0.2)
    yield
    ext.delete_custom_resource_definition(CRD)
    while any(c.metadata.name == CRD for c in ext.list_custom_resource_definition().items):
        time.sleep(0.2)


def rank_pod(namespace: str, template: Path) -> dict[str, Any]:
    opts = parse(resolve({"gpufabric_k8s_python": str(k.VENV / "bin" / "python")}, {}, {}))
    plan = manifests.PodPlan(0, "localhost", (0,), 0, manifests.pod_name("gpufabric-dry", 0))
    res = manifests.resources_for(None, 0, 1)
    user = load(template, "template")
    return manifests.rank_pod("gpufabric-dry", namespace, opts, res, plan, 2, user, [])


def contains(returned: Any, sent: Any, path: str = "") -> list[str]:
    """Where the server's answer lost or changed what we sent (it may add defaults)."""
    if isinstance(sent, dict):
        if not isinstance(returned, dict):
            return [path]
        return [p for key, value in sent.items()
                for p in contains(returned.get(key), value, f"{path}.{key}")]  # fmt: skip
    if isinstance(sent, list):
        if not isinstance(returned, list) or len(returned) != len(sent):
            return [path]
        return [p for i, value in enumerate(sent)
                for p in contains(returned[i], value, f"{path}[{i}]")]  # fmt: skip
    return [] if returned == sent else [path]


def test_the_jobset_form_is_kept_whole_by_the_api_server(
    k8s: k.Cluster, jobset_crd: None, namespace: str, template: Path
) -> None:
    pod = rank_pod(namespace, template)
    body = manifests.jobset("gpufabric-dry", namespace, pod, 2, ["localhost", "node-b"], [])
    body["metadata"].pop("ownerReferences")
    assert body["metadata"]["annotations"] == {  # one pod per node, as JobSet places them
        "alpha.jobset.sigs.k8s.io/exclusive-topology": "kubernetes.io/hostname"
    }
    returned = k8s.api.custom.create_namespaced_custom_object(
        "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets", body, dry_run="All"
    )
    assert contains(returned, body) == []
    job = returned["spec"]["replicatedJobs"][0]
    assert job["name"] == "node"
    assert job["replicas"] == 2
    assert returned["spec"]["network"] == {
        "enableDNSHostnames": True, "subdomain": "gpufabric-dry", "publishNotReadyAddresses": True,
    }  # fmt: skip
    env = job["template"]["spec"]["template"]["spec"]["containers"][0]["env"]
    rank = next(e for e in env if e["name"] == "PET_NODE_RANK")
    assert rank["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['jobset.sigs.k8s.io/job-index']"
    )
    # What the JobSet controller will submit: its Job template must be a valid Job (the CRD's
    # schema does not check pods).
    child = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "gpufabric-dry-node-0"},
             "spec": job["template"]["spec"]}  # fmt: skip
    k8s.api.batch.create_namespaced_job(namespace, child, dry_run="All")
    assert k8s.objects(namespace) == []  # a dry run stores nothing


def test_the_indexed_job_form_loses_its_completion_mode_on_1_20(
    k8s: k.Cluster, namespace: str, template: Path
) -> None:
    """Why "auto" never picks an Indexed Job below 1.21: the server prunes completionMode
    without a word, and every pod would run without its index."""
    pod = rank_pod(namespace, template)
    body = manifests.indexed_job("gpufabric-dry", namespace, pod, 2, ["localhost", "node-b"], [])
    body["metadata"].pop("ownerReferences")
    returned = k8s.api.client.sanitize_for_serialization(
        k8s.api.batch.create_namespaced_job(namespace, body, dry_run="All")
    )
    assert contains(returned, body) == [".spec.completionMode"]
    assert "completionMode" not in returned["spec"]
    assert returned["spec"]["template"]["spec"]["subdomain"] == "gpufabric-dry"
    anti = returned["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"]
    assert anti["requiredDuringSchedulingIgnoredDuringExecution"][0]["topologyKey"] == (
        "kubernetes.io/hostname"
    )


def test_asking_for_an_indexed_job_on_1_20_is_a_one_line_error(
    pytester: pytest.Pytester, k8s: k.Cluster, namespace: str, template: Path
) -> None:
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_node.py"),
        *k.gate_args(namespace, template, "--gpufabric-k8s-workload=indexed-job"),
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert [line for line in result.stderr.lines if line.strip()] == [
        "ERROR: --gpufabric-launcher kubernetes: --gpufabric-k8s-workload indexed-job: the API "
        "server is 1.20; Indexed Jobs need 1.21 (1.20 silently drops completionMode and would "
        "run every pod as index-less)"
    ]
    assert k8s.objects(namespace) == []


def test_auto_picks_the_jobset_and_says_when_no_controller_acts_on_it(
    pytester: pytest.Pytester, k8s: k.Cluster, jobset_crd: None, namespace: str, template: Path
) -> None:
    """Where the CRD is installed "auto" runs the JobSet users know; this cluster has no
    JobSet controller, so no pod appears: a one-line error, and the JobSet is deleted too."""
    result = pytester.runpytest_subprocess(
        str(k.SUITES / "test_node.py"), *k.gate_args(namespace, template)
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, result.stderr.str()
    assert errors[0].startswith(
        "ERROR: --gpufabric-launcher kubernetes: no pod of jobset gpufabric-"
    )
    assert errors[0].endswith(
        "appeared within 30 s (auto: the JobSet CRD is installed (jobsets.jobset.x-k8s.io)): "
        "is its controller running? Or use --gpufabric-k8s-workload pods"
    )
    assert k8s.objects(namespace) == []
    deadline = time.monotonic() + 60  # the garbage collector deletes the JobSet it owned
    jobsets: list[Any] = []
    while time.monotonic() < deadline:
        jobsets = k8s.api.custom.list_namespaced_custom_object(
            "jobset.x-k8s.io", "v1alpha2", namespace, "jobsets"
        )["items"]
        if not jobsets:
            break
        time.sleep(0.5)
    assert jobsets == []
