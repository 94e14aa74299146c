"""The kubernetes launcher's pure parts: options, the pod it makes from a profile and the
user's template, and what it says about a pod in trouble (real objects captured from the
local cluster, tests/data/k8s). The launcher itself runs against the real cluster in
tests/k8s."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_gpufabric.launch.kube import diagnose, manifests
from pytest_gpufabric.launch.kube.options import KubeOptions, parse, parse_tolerations
from pytest_gpufabric.launch.kube.streams import exit_code, failure
from pytest_gpufabric.launch.kube.template import load
from pytest_gpufabric.profiles.catalogue import load_catalogue
from pytest_gpufabric.settings import SettingError, resolve

DATA = Path(__file__).parent / "data"
K8S = DATA / "k8s"
PODSPECS = DATA / "podspecs"


def captured(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((K8S / f"pod-{name}.json").read_text())
    return data


def options(**cli: str) -> KubeOptions:
    flags = {f"gpufabric_k8s_{k}": v for k, v in cli.items()}
    return parse(resolve(flags, {}, {}))


# --- what a pod in trouble says ----------------------------------------------------------------


def test_unschedulable_pod_names_the_scheduler_reason_and_the_device_plugin() -> None:
    pod = captured("unschedulable")
    assert diagnose.final_problem(pod) is None  # might still be placed
    problem = diagnose.waiting_problem(pod)
    assert problem == (
        "pod unschedulable cannot be scheduled: 0/1 nodes are available: 1 Insufficient "
        "nvidia.com/gpu, 1 Insufficient vpc.amazonaws.com/efa.; the node advertises fewer EFA "
        "devices than the pod asks for: is the EFA device plugin (aws-efa-k8s-device-plugin) "
        "running there, and is this an EFA instance type?"
    )


def test_image_never_pulled_is_final() -> None:
    problem = diagnose.final_problem(captured("never-pull"))
    assert problem == (
        "pod never-pull on node localhost: ErrImageNeverPull (the image is not on the node and "
        'imagePullPolicy is Never): Container image "registry.invalid/trainer:1.0" is not '
        "present with pull policy of Never"
    )


def test_oom_killed_says_what_counts_against_memory() -> None:
    problem = diagnose.final_problem(captured("oom"))
    assert problem is not None
    assert problem.startswith("pod oom on node localhost: container main OOMKilled (exit code 137)")
    assert "a memory emptyDir at /dev/shm counts against it" in problem


def test_a_container_that_exited_is_final() -> None:
    problem = diagnose.final_problem(captured("exit-3"))
    assert problem == "pod exit-3 on node localhost: container main Error (exit code 3)"


def test_a_gone_pod_and_a_running_one() -> None:
    assert diagnose.final_problem(None) == f"the pod {diagnose.DELETED}"
    running = captured("exit-3")
    running["status"] = {"phase": "Running", "containerStatuses": []}
    assert diagnose.final_problem(running) is None
    assert diagnose.state(running) == "pod exit-3 on node localhost: Running"


def test_exec_status_channel() -> None:
    status = json.loads((K8S / "exec-status.json").read_text())
    assert exit_code(status["exit-0"]) == 0
    assert exit_code(status["exit-3"]) == 3
    assert exit_code(status["no-such-binary"]) is None
    assert 'exec: "/nonexistent": stat /nonexistent: no such file' in failure(
        status["no-such-binary"]
    )
    assert exit_code(None) is None


# --- options ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cli", "message"),
    [
        ({"pods_per_node": "0"}, "--gpufabric-k8s-pods-per-node: invalid value '0' from "
         "--gpufabric-k8s-pods-per-node: must be >= 1"),
        ({"node_selector": "a"}, "--gpufabric-k8s-node-selector: invalid value 'a' from "
         "--gpufabric-k8s-node-selector: 'a' is not key=value"),
        ({"tolerations": "gpu"}, "--gpufabric-k8s-tolerations: invalid value 'gpu' from "
         "--gpufabric-k8s-tolerations: 'gpu': want KEY[=VALUE]:EFFECT, EFFECT one of "
         "NoSchedule, PreferNoSchedule, NoExecute"),
        ({"namespace": "Team_A"}, "--gpufabric-k8s-namespace: invalid value 'Team_A' from "
         "--gpufabric-k8s-namespace: must be a DNS label (lower-case letters, digits, '-')"),
        ({"expiry": "5"}, "--gpufabric-k8s-expiry: invalid value '5' from "
         "--gpufabric-k8s-expiry: must be 10 to 604800 seconds"),
        ({"nodes": "2", "node_names": "a"}, "--gpufabric-k8s-nodes: 2 (from "
         "--gpufabric-k8s-nodes) but --gpufabric-k8s-node-names names 1 nodes"),
        ({"pod_template": "/nonexistent.yaml"}, "--gpufabric-k8s-pod-template: "
         "/nonexistent.yaml (from --gpufabric-k8s-pod-template): no such file"),
    ],
)  # fmt: skip
def test_bad_options_name_option_value_and_source(cli: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError) as info:
        options(**cli)
    assert str(info.value) == message


def test_options_from_the_environment_keep_their_source() -> None:
    settings = resolve({}, {"GPUFABRIC_K8S_PODS_PER_NODE": "4"}, {})
    parsed = parse(settings)
    assert parsed.pods_per_node == 4
    assert parsed.where("k8s-pods-per-node") == (
        "--gpufabric-k8s-pods-per-node (from environment variable GPUFABRIC_K8S_PODS_PER_NODE)"
    )
    assert settings.explicit


def test_tolerations() -> None:
    assert [
        t.manifest() for t in parse_tolerations("nvidia.com/gpu:NoSchedule,team=ml:NoExecute")
    ] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
        {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoExecute"},
    ]


# --- the pod ---------------------------------------------------------------------------------


def test_a_p4d_pod_asks_for_its_gpus_efa_and_the_profiles_shm() -> None:
    profile = load_catalogue().get("p4d.24xlarge")
    assert profile is not None
    res = manifests.resources_for(profile, 8, 1)
    assert res.gpus == 8
    assert res.efa == 4  # host.rdma.devices of thresholds/p4d.24xlarge.yaml
    split = manifests.resources_for(profile, 4, 2)
    assert split.efa == 2  # each of two pods its share


def test_the_users_template_is_kept_and_ours_wins_where_the_run_needs_it() -> None:
    template = load(PODSPECS / "p4d-8gpu-healthy.yaml", "--gpufabric-k8s-pod-template")
    user = template["spec"]["containers"][0]
    opts = options(image="ghcr.io/example/gate:1", python="/opt/venv/bin/python")
    plan = manifests.PodPlan(0, "ip-10-0-5-188", (0, 1, 2, 3, 4, 5, 6, 7), 8, "run-node-0-0")
    owners = [{"apiVersion": "batch/v1", "kind": "Job", "name": "run", "uid": "u"}]
    res = manifests.resources_for(load_catalogue().get("p4d.24xlarge"), 8, 1)
    pod = manifests.rank_pod("run", "ml", opts, res, plan, 1, template, owners)
    spec = pod["spec"]
    main = spec["containers"][0]
    assert main["name"] == user["name"]
    assert main["command"][:2] == ["/opt/venv/bin/python", "-c"]
    assert main["image"] == "ghcr.io/example/gate:1"
    names = [e["name"] for e in main["env"]]
    for env in user.get("env") or []:  # the user's NCCL settings reach NCCL
        assert env in main["env"]
    assert "GPUFABRIC_RANK_ADDR" in names
    assert "IPC_LOCK" in main["securityContext"]["capabilities"]["add"]
    shm_mounts = [m for m in main["volumeMounts"] if m["mountPath"] == "/dev/shm"]
    assert len(shm_mounts) == 1  # theirs, kept
    assert "gpufabric-shm" not in [v["name"] for v in spec["volumes"]]
    assert spec["restartPolicy"] == "Never"
    assert spec["hostname"] == "run-node-0-0"
    assert spec["subdomain"] == "run"
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    for term in terms["nodeSelectorTerms"]:
        assert {"key": "metadata.name", "operator": "In", "values": ["ip-10-0-5-188"]} in term[
            "matchFields"
        ]
    assert pod["metadata"]["labels"][manifests.RUN] == "run"
    assert pod["metadata"]["ownerReferences"] == owners


def test_a_template_without_a_pod_or_with_broken_yaml_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(SettingError) as info:
        load(PODSPECS / "broken.yaml", "--gpufabric-k8s-pod-template")
    assert str(info.value).startswith(f"--gpufabric-k8s-pod-template: {PODSPECS / 'broken.yaml'}:")
    assert "\n" not in str(info.value)
    service = tmp_path / "svc.yaml"
    service.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {}\n")
    with pytest.raises(SettingError, match=r"no pod template in it \(found Service;"):
        load(service, "--gpufabric-k8s-pod-template")


def test_parent_job_never_places_its_pod_and_expires() -> None:
    job = manifests.parent_job("gpufabric-abc123", "ml", 300)
    spec = job["spec"]
    assert spec["activeDeadlineSeconds"] == 300
    assert spec["ttlSecondsAfterFinished"] == 0
    assert spec["template"]["spec"]["schedulerName"] == manifests.PARENT_SCHEDULER
    assert manifests.headless_service("gpufabric-abc123", "ml")["spec"] == {
        "clusterIP": "None",
        "publishNotReadyAddresses": True,
        "selector": {manifests.RUN: "gpufabric-abc123", manifests.ROLE: "rank"},
    }


def test_of_a_jobset_with_a_driver_the_gpu_workers_are_the_template() -> None:
    template = load(PODSPECS / "jobset-p5.yaml", "--gpufabric-k8s-pod-template")
    assert [c["name"] for c in template["spec"]["containers"]] == ["pytorch"]
    assert template["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "p5.48xlarge"}
