"""The objects of one run, as plain dicts (what ``kubectl get -o json`` shows):

- a parent that owns everything else and expires by itself: a Job whose one pod names a
  scheduler that does not exist, so it stays Pending forever without using a node (a Job
  with no pod at all never gets a start time, so its deadline would never pass); the
  controller keeps pushing its ``activeDeadlineSeconds`` forward, and once it stops, the Job
  fails, ``ttlSecondsAfterFinished: 0`` makes Kubernetes delete it, and the garbage collector
  every object that names it as owner;
- a headless Service (``publishNotReadyAddresses``: ranks find each other before they are
  Ready), named like the run, as JobSet and Kubeflow Trainer make one;
- the rank pods, named ``<run>-node-<j>-0`` with hostname and subdomain as JobSet's pods are
  (``<jobset>-<replicatedJob>-<jobIndex>-<podIndex>``), so ``<run>-node-0-0.<run>`` is the
  coordinator's DNS name where cluster DNS exists. Each pod's first process only waits; the
  controller starts the ranks in it through the API server (launch/kube/streams.py).

The same pod template also renders as a JobSet or an Indexed Job (the forms users run), for
clusters that have them; see launcher.py for which is used.
"""

from __future__ import annotations

import copy
import math
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...profiles.model import Profile
from .options import KubeOptions

APP = "app.kubernetes.io/name"
MANAGED_BY = "app.kubernetes.io/managed-by"
RUN = "gpufabric.dev/run"
POD_INDEX = "gpufabric.dev/pod-index"
ROLE = "gpufabric.dev/role"  # "rank" pods; the parent Job's never-placed pod is "parent"
NAME = "pytest-gpufabric"
CONTAINER = "gpufabric"
WORK_DIR = "/var/run/gpufabric"  # an emptyDir: the ranks' NCCL logs, read back by the launcher
JOBSET_INDEX = "jobset.sigs.k8s.io/job-index"  # label JobSet puts on its pods
JOB_INDEX = "batch.kubernetes.io/job-completion-index"  # annotation of Indexed Job pods
PARENT_SCHEDULER = "gpufabric-parent-never-scheduled"
RENDEZVOUS_PORT = 29400  # PET_MASTER_PORT as Kubeflow Trainer sets it; ours is picked by rank 0
GPU = "nvidia.com/gpu"
EFA = "vpc.amazonaws.com/efa"
BAD_TAINT = "gpufabric.dev/bad"  # what --gpufabric-k8s-taint-failed puts on a bad node
# The usual taints of GPU and EFA node groups (EKS, GKE, the GPU operator), and our own: a
# node a fleet run tainted is tested again by the next one (and its taint lifted if it passes).
DEFAULT_TOLERATIONS = (
    {"key": GPU, "operator": "Exists", "effect": "NoSchedule"},
    {"key": EFA, "operator": "Exists", "effect": "NoSchedule"},
    {"key": BAD_TAINT, "operator": "Exists", "effect": "NoSchedule"},
)
# PID 1 of a rank pod: wait, and leave at once on SIGTERM (a PID 1 without a handler is only
# killed by the SIGKILL at the end of the grace period).
HOLD = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
    "while True:\n"
    "    time.sleep(3600)\n"
)


def new_run_name() -> str:
    return f"gpufabric-{secrets.token_hex(3)}"


def run_labels(run: str) -> dict[str, str]:
    return {APP: NAME, MANAGED_BY: NAME, RUN: run}


def selector(run: str) -> str:
    """Every object of the run."""
    return f"{RUN}={run}"


def rank_selector(run: str) -> str:
    return f"{RUN}={run},{ROLE}=rank"


def parent_job(
    run: str, namespace: str, expiry_s: float, name: str | None = None
) -> dict[str, Any]:
    """The run's parent: a Job whose pod is never scheduled and that fails (then is deleted,
    with all it owns) when its deadline passes; the controller renews the deadline."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name or run, "namespace": namespace, "labels": run_labels(run)},
        "spec": {
            "parallelism": 1,
            "completions": 1,
            "backoffLimit": 0,
            "activeDeadlineSeconds": math.ceil(expiry_s),
            "ttlSecondsAfterFinished": 0,
            "template": {
                "metadata": {"labels": {**run_labels(run), ROLE: "parent"}},
                "spec": {
                    "restartPolicy": "Never",
                    "schedulerName": PARENT_SCHEDULER,  # no such scheduler: never placed
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "containers": [{"name": "never-started", "image": "none.invalid/none:0"}],
                },
            },
        },
    }


def owned_by(parent: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An owner reference to the parent: not a controller reference (the Job controller
    would otherwise adopt or release our pods), so only the garbage collector acts on it."""
    meta = parent["metadata"]
    return [
        {
            "apiVersion": parent["apiVersion"],
            "kind": parent["kind"],
            "name": meta["name"],
            "uid": meta["uid"],
            "controller": False,
            "blockOwnerDeletion": False,
        }
    ]


def headless_service(run: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": run, "namespace": namespace, "labels": run_labels(run)},
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {RUN: run, ROLE: "rank"},
        },
    }


@dataclass(frozen=True)
class PodPlan:
    """One rank pod: where it goes and which ranks it holds."""

    index: int  # j in <run>-node-<j>-0 (the JobSet job index, the Job completion index)
    node: str  # the Kubernetes node it runs on (chosen, or where the scheduler put it)
    ranks: tuple[int, ...]  # global ranks, local rank = position
    gpus: int
    pod: str  # its name: ours, or the one JobSet or the Job controller gave it


def pod_name(run: str, index: int) -> str:
    """JobSet's pod host name: <jobset>-<replicatedJob>-<jobIndex>-<podIndex>."""
    return f"{run}-node-{index}-0"


@dataclass(frozen=True)
class Resources:
    gpus: int
    efa: int
    shm: str  # sizeLimit of the memory emptyDir at /dev/shm


def resources_for(profile: Profile | None, gpus_per_pod: int, pods_per_node: int) -> Resources:
    """What one pod asks for: its GPUs, its share of the node's EFA devices (the profile's
    count), and /dev/shm of the profile's minimum size (NCCL's SHM transport and proxy
    buffers live there; a pod without it gets the runtime's 64 MiB)."""
    efa = 0
    shm_gib = 1.0 if profile is None or profile.gpu_count == 0 else 8.0
    if profile is not None:
        host = profile.host
        if host.rdma_kind is not None and host.rdma_kind.value == "efa" and host.rdma_devices:
            efa = max(host.rdma_devices.integer // pods_per_node, 1)
        if host.shm_min_gib is not None:
            shm_gib = max(host.shm_min_gib.number, 0.0625)
    shm = f"{math.ceil(shm_gib * 1024)}Mi" if shm_gib < 1 else f"{math.ceil(shm_gib)}Gi"
    return Resources(gpus_per_pod, efa, shm)


def _env(name: str, value: str) -> dict[str, str]:
    return {"name": name, "value": value}


def _field(name: str, path: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}}


def rank_container(
    run: str, options: KubeOptions, res: Resources, plan: PodPlan, npods: int
) -> dict[str, Any]:
    limits: dict[str, str] = {}
    if res.gpus:
        limits[GPU] = str(res.gpus)
    if res.efa:
        limits[EFA] = str(res.efa)
    env = [
        _field("GPUFABRIC_RANK_ADDR", "status.podIP"),  # where rank 0 serves the store
        _field("GPUFABRIC_POD_NAME", "metadata.name"),
        _field("GPUFABRIC_NODE_NAME", "spec.nodeName"),
        # The rendezvous variables Kubeflow Trainer's torch pods carry (ours runs through
        # the controller; these are for people who exec into the pod to reproduce).
        _env("PET_NNODES", str(npods)),
        _env("PET_NPROC_PER_NODE", str(len(plan.ranks))),
        _env("PET_NODE_RANK", str(plan.index)),
        _env("PET_MASTER_ADDR", f"{run}-node-0-0.{run}"),
        _env("PET_MASTER_PORT", str(RENDEZVOUS_PORT)),
    ]
    container: dict[str, Any] = {
        "name": CONTAINER,
        "command": [options.python, "-c", HOLD],
        "env": env,
        "securityContext": {"capabilities": {"add": ["IPC_LOCK"]}},  # RDMA memory registration
        "volumeMounts": [
            {"name": "gpufabric-shm", "mountPath": "/dev/shm"},
            {"name": "gpufabric-work", "mountPath": WORK_DIR},
        ],
    }
    if options.image:
        container["image"] = options.image
    if limits:
        container["resources"] = {"limits": limits, "requests": dict(limits)}
    return container


def rank_pod(
    run: str,
    namespace: str,
    options: KubeOptions,
    res: Resources,
    plan: PodPlan,
    npods: int,
    template: Mapping[str, Any] | None,
    owners: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """One rank pod: ours, merged over the user's template (theirs keeps everything we do
    not need to set; see :func:`merge_pod`)."""
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "hostname": plan.pod,
        "subdomain": run,
        "automountServiceAccountToken": False,  # ranks never talk to the API server
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 5,
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchFields": [
                                {"key": "metadata.name", "operator": "In", "values": [plan.node]}
                            ]
                        }
                    ]
                }
            }
        },
        "tolerations": [dict(t) for t in DEFAULT_TOLERATIONS]
        + [t.manifest() for t in options.tolerations],
        "containers": [rank_container(run, options, res, plan, npods)],
        "volumes": [
            {"name": "gpufabric-shm", "emptyDir": {"medium": "Memory", "sizeLimit": res.shm}},
            {"name": "gpufabric-work", "emptyDir": {}},
        ],
    }
    if options.service_account:
        spec["serviceAccountName"] = options.service_account
    if options.priority_class:
        spec["priorityClassName"] = options.priority_class
    labels = {**run_labels(run), ROLE: "rank", POD_INDEX: str(plan.index)}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": plan.pod,
            "namespace": namespace,
            "labels": labels,
            "ownerReferences": [dict(o) for o in owners],
        },
        "spec": spec,
    }
    return merge_pod(template, pod) if template is not None else pod


def merge_pod(template: Mapping[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    """The user's pod template under ours. Theirs stays: image, env (NCCL_* settings reach
    NCCL), volumes and mounts, tolerations, node selector, security context, sidecars and init
    containers. Ours wins where the run needs it: names, labels, restart policy, command,
    placement on the chosen node; their own /dev/shm volume and resource limits are kept (the
    podspec preflight judges them)."""
    merged = copy.deepcopy(ours)
    theirs = copy.deepcopy(dict(template.get("spec") or {}))
    meta = template.get("metadata") or {}
    merged["metadata"]["labels"] = {**(meta.get("labels") or {}), **merged["metadata"]["labels"]}
    if meta.get("annotations"):
        merged["metadata"]["annotations"] = dict(meta["annotations"])
    spec = merged["spec"]
    for key, value in theirs.items():
        if key in ("containers", "volumes", "tolerations", "affinity"):
            continue
        if key not in ("restartPolicy", "hostname", "subdomain", "nodeName"):
            spec[key] = value
    spec["tolerations"] = (theirs.get("tolerations") or []) + [
        t for t in spec["tolerations"] if t not in (theirs.get("tolerations") or [])
    ]
    spec["affinity"] = _merge_affinity(theirs.get("affinity") or {}, spec["affinity"])
    containers = theirs.get("containers") or []
    ours_c = spec["containers"][0]
    if containers:
        main, *others = containers
        spec["containers"] = [_merge_container(main, ours_c), *others]
    their_mounts = {m.get("mountPath") for c in containers[:1] for m in c.get("volumeMounts") or []}
    volumes = list(theirs.get("volumes") or [])
    names = {v.get("name") for v in volumes}
    for volume in spec["volumes"]:
        if volume["name"] == "gpufabric-shm" and "/dev/shm" in their_mounts:
            continue  # theirs is kept, as they run it
        if volume["name"] not in names:
            volumes.append(volume)
    spec["volumes"] = volumes
    return merged


def _merge_container(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(dict(theirs))
    merged["command"] = ours["command"]
    merged.pop("args", None)
    if "image" in ours:
        merged["image"] = ours["image"]
    if not merged.get("image"):
        merged.pop("image", None)
    env = list(merged.get("env") or [])
    have = {e.get("name") for e in env}
    env += [e for e in ours["env"] if e["name"] not in have]
    merged["env"] = env
    mounts = list(merged.get("volumeMounts") or [])
    paths = {m.get("mountPath") for m in mounts}
    mounts += [m for m in ours["volumeMounts"] if m["mountPath"] not in paths]
    merged["volumeMounts"] = mounts
    if "resources" in ours:
        resources = merged.setdefault("resources", {})
        for kind in ("limits", "requests"):
            resources[kind] = {**ours["resources"][kind], **(resources.get(kind) or {})}
    caps = merged.setdefault("securityContext", {}).setdefault("capabilities", {})
    caps["add"] = sorted({*(caps.get("add") or []), "IPC_LOCK"})
    return merged


def _merge_affinity(theirs: Mapping[str, Any], ours: Mapping[str, Any]) -> dict[str, Any]:
    """Their node affinity AND our node: our matchFields term is added to each of theirs."""
    merged = copy.deepcopy(dict(theirs))
    ours_terms = ours["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    node_affinity = merged.setdefault("nodeAffinity", {})
    required = node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution")
    if not required or not required.get("nodeSelectorTerms"):
        node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = copy.deepcopy(
            ours["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        )
        return merged
    for term in required["nodeSelectorTerms"]:
        term["matchFields"] = (term.get("matchFields") or []) + ours_terms[0]["matchFields"]
    return merged


def jobset(
    run: str,
    namespace: str,
    pod: Mapping[str, Any],
    npods: int,
    nodes: Sequence[str],
    owners: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The run as a JobSet (jobset.x-k8s.io/v1alpha2): one replicated Job "node" with a Job
    per pod, the headless Service made by the JobSet controller (``network.subdomain``),
    pods spread one per node by JobSet's exclusive placement when there is one pod per node."""
    template = _pod_template(pod, nodes, f"metadata.labels['{JOBSET_INDEX}']")
    pods_per_node = max(npods // max(len(nodes), 1), 1)
    annotations = (
        {"alpha.jobset.sigs.k8s.io/exclusive-topology": "kubernetes.io/hostname"}
        if pods_per_node == 1
        else {}
    )
    return {
        "apiVersion": "jobset.x-k8s.io/v1alpha2",
        "kind": "JobSet",
        "metadata": {
            "name": run,
            "namespace": namespace,
            "labels": run_labels(run),
            **({"annotations": annotations} if annotations else {}),
            "ownerReferences": [dict(o) for o in owners],
        },
        "spec": {
            "network": {
                "enableDNSHostnames": True,
                "subdomain": run,
                "publishNotReadyAddresses": True,
            },
            "failurePolicy": {"maxRestarts": 0},
            "ttlSecondsAfterFinished": 0,
            "replicatedJobs": [
                {
                    "name": "node",
                    "replicas": npods,
                    "template": {
                        "metadata": {"labels": run_labels(run)},
                        "spec": {
                            "parallelism": 1,
                            "completions": 1,
                            "backoffLimit": 0,
                            "template": template,
                        },
                    },
                }
            ],
        },
    }


def indexed_job(
    run: str,
    namespace: str,
    pod: Mapping[str, Any],
    npods: int,
    nodes: Sequence[str],
    owners: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The run as an Indexed Job (Kubernetes >= 1.21): pod j has completion index j and
    hostname ``<run>-<j>``; the headless Service is made separately."""
    template = _pod_template(pod, nodes, f"metadata.annotations['{JOB_INDEX}']")
    template["spec"]["subdomain"] = run
    if npods <= len(nodes):  # one pod per node, as JobSet's exclusive placement does
        template["spec"]["affinity"]["podAntiAffinity"] = {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {RUN: run, ROLE: "rank"}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": f"{run}-node",
            "namespace": namespace,
            "labels": run_labels(run),
            "ownerReferences": [dict(o) for o in owners],
        },
        "spec": {
            "completionMode": "Indexed",
            "completions": npods,
            "parallelism": npods,
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 0,
            "template": template,
        },
    }


def _pod_template(pod: Mapping[str, Any], nodes: Sequence[str], index_field: str) -> dict[str, Any]:
    """A rank pod as a template: no per-pod name, hostname or owner; the chosen nodes; its
    index (PET_NODE_RANK) read from what the controller writes on each pod."""
    template = {
        "metadata": {"labels": copy.deepcopy(pod["metadata"]["labels"])},
        "spec": copy.deepcopy(pod["spec"]),
    }
    template["metadata"]["labels"].pop(POD_INDEX, None)
    for key in ("hostname", "subdomain"):
        template["spec"].pop(key, None)
    # A node-name selector takes one value per term (the API server says so), and terms are
    # ORed: one term per chosen node, each with the rest of its term (the user's) kept.
    required = template["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    terms = []
    for term in required["nodeSelectorTerms"]:
        others = [f for f in term.get("matchFields") or [] if f["key"] != "metadata.name"]
        for node in nodes:
            name = {"key": "metadata.name", "operator": "In", "values": [node]}
            terms.append({**term, "matchFields": [*others, name]})
    required["nodeSelectorTerms"] = terms
    for container in template["spec"]["containers"][:1]:
        for i, env in enumerate(container.get("env") or []):
            if env.get("name") == "PET_NODE_RANK":
                container["env"][i] = _field("PET_NODE_RANK", index_field)
    return template
