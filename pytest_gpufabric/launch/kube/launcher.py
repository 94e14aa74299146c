"""Ranks in Kubernetes pods (``--gpufabric-launcher kubernetes``).

The launcher picks the nodes (named, or those matching a label selector: by default the
profile's instance type), creates the run's objects (manifests.py) and waits until every
pod runs; then it reads each node where its ranks run (the probe, through an exec stream in
one of its pods) and starts each rank pool by opening one exec stream per rank
(streams.py). Everything it creates is deleted at the end, on Ctrl-C and on SIGTERM; if the
controller is killed outright, Kubernetes deletes it all once the parent's deadline, which
the controller keeps renewing, has passed (lifetime.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from ...evidence.host import HostFacts
from ...evidence.host import from_json as host_from_json
from ...evidence.node import Node
from ...evidence.node import from_json as node_from_json
from ...fleet.summary import NodeRow
from ...profiles.model import Profile
from ...settings import SettingError, Settings
from ..protocol import PoolSpec, Shape
from . import diagnose, manifests, marks
from .api import Api, connect, reason
from .errors import WHERE, KubeError
from .lifetime import Lifetime
from .options import KubeOptions, Toleration, parse
from .pool import KubePool
from .streams import run_in_pod
from .template import load as load_template

INSTANCE_LABEL = "node.kubernetes.io/instance-type"
POLL_S = 0.5
UNSCHEDULABLE_GRACE_S = 20.0  # pods are pinned to a node: waiting rarely helps
PULL_GRACE_S = 120.0  # ErrImagePull can be a slow registry; BackOff that long is not
PROBE_TIMEOUT_S = 120.0
CONTROLLER_GRACE_S = 30.0  # a JobSet or Job controller makes pods within seconds
JOBSET_CRD = "jobsets.jobset.x-k8s.io"


class KubernetesLauncher:
    name = "kubernetes"

    def __init__(self, settings: Settings, profile: Profile | None) -> None:
        for option, setting in (
            ("nprocs", settings.nprocs),
            ("emulate-nodes", settings.emulate_nodes),
        ):
            if setting.source != "default":
                raise SettingError(
                    f"--gpufabric-{option}: {setting.value} (from {setting.source}) has no "
                    f"effect with {WHERE}: pods × GPUs per pod decide the ranks "
                    "(--gpufabric-k8s-nodes, -pods-per-node, -gpus-per-pod)"
                )
        self.options: KubeOptions = parse(settings)
        self.profile = profile
        self.template = (
            load_template(self.options.pod_template, self.options.where("k8s-pod-template"))
            if self.options.pod_template is not None
            else None
        )
        self.api: Api = connect()
        self.namespace = self.options.namespace or self.api.namespace
        self.run = manifests.new_run_name()
        self.lifetime = Lifetime(self.api, self.namespace, self.run, self.options.expiry_s)
        self.plans: list[manifests.PodPlan] = []
        self.pods: dict[str, dict[str, Any]] = {}  # pod name -> last seen (API dict)
        self._nodes: dict[str, Node] = {}
        self._base_env: dict[str, str] = {}
        self._started = False
        self._closed = False
        self.startup_s = settings.startup_timeout.value
        self.container = manifests.CONTAINER  # or the name the pod template gives it
        self.workload, self.workload_reason = "pods", "not chosen yet"
        self.node_labels: dict[str, dict[str, str]] = {}
        self.fleet = settings.fleet.value  # every usable node, not one
        self.skipped_nodes: dict[str, str] = {}  # node -> why a fleet run left it out

    # --- the Launcher protocol ---------------------------------------------------------------

    def nodes(self, *, detect: bool) -> Sequence[Node]:
        self._ensure_pods()
        wanted = list(dict.fromkeys(p.node for p in self.plans))
        for node_name in wanted:
            if node_name not in self._nodes or (detect and self._nodes[node_name].rdma is None):
                self._nodes[node_name] = self._probe(node_name, detect)
        return [self._nodes[n] for n in wanted]

    def shape(self) -> Shape | None:
        self._ensure_pods()
        nranks = sum(len(p.ranks) for p in self.plans)
        backend = "nccl" if any(p.gpus for p in self.plans) else "gloo"
        # Each pod has its own host name, so NCCL sees as many nodes as pods (the cost of
        # splitting a node into pods: NCCL talks between them over the network).
        npods = len(self.plans)
        return Shape(nranks, npods, backend)

    def rank_nodes(self) -> Sequence[str] | None:
        return [plan.node for plan in self.plans for _ in plan.ranks]

    def read_host(self, node: Node, when: str) -> HostFacts | None:
        plan = next(p for p in self.plans if p.node == node.name)
        data = self._exec_json(plan, ["-m", "pytest_gpufabric.evidence.probe", "--host", when])
        return host_from_json(data, f"pod {plan.pod} on node {plan.node}")

    def start(self, spec: PoolSpec) -> KubePool:
        self._ensure_pods()
        pool = KubePool(spec, self)
        try:
            pool.start()
        except BaseException:
            pool.close()
            raise
        return pool

    def prestart(self, spec: PoolSpec) -> bool:
        """Not yet: pods of the next pool would compete for the nodes' GPUs (requests)."""
        return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.lifetime.end(keep=self.options.keep)
        for problem in self.lifetime.problems:  # after pytest's reports: stderr, one line each
            print(f"gpufabric: kubernetes clean-up of run {self.run}: {problem}", file=sys.stderr)

    def mark_nodes(self, rows: Sequence[NodeRow]) -> list[str]:
        """Fleet verdicts on the nodes, as --gpufabric-k8s-label-nodes / -taint-failed ask."""
        opts = self.options
        if not (opts.label_nodes or opts.taint_failed):
            return []
        return marks.mark_nodes(self.api, rows, label=opts.label_nodes, taint=opts.taint_failed)

    def placement(self) -> dict[str, str]:
        """Which pod on which node holds which ranks (each pool's pool.json)."""
        return {
            plan.pod: f"node {plan.node}, ranks " + ",".join(str(r) for r in plan.ranks)
            for plan in self.plans
        }

    # --- making the pods -------------------------------------------------------------------

    def _ensure_pods(self) -> None:
        if self._started:
            return
        self._started = True
        try:
            self._create()
            self._wait_running()
        except BaseException:
            self.close()
            raise

    def _select_nodes(self) -> list[dict[str, Any]]:
        opts = self.options
        try:
            if opts.node_names:
                found = [self._read_node(name) for name in opts.node_names]
                how = f"--gpufabric-k8s-node-names {','.join(opts.node_names)}"
            else:
                selector = opts.node_selector
                how = opts.where("k8s-node-selector")
                if selector is None and self.profile is not None and self.profile.gpu_count:
                    selector = {INSTANCE_LABEL: self.profile.name}
                    how = f"the profile's instance type ({INSTANCE_LABEL}={self.profile.name})"
                text = ",".join(f"{k}={v}" for k, v in (selector or {}).items())
                listed = self.api.core.list_node(label_selector=text or None)
                found = [self.api.client.sanitize_for_serialization(n) for n in listed.items]
                how = f"nodes matching {text} ({how})" if text else "all nodes"
        except SettingError:
            raise
        except Exception as exc:
            raise KubeError(
                f"{WHERE}: cannot list nodes ({self.api.where}): {reason(exc)}"
            ) from None
        usable = [n for n in found if _ready(n)]
        if self.fleet and not opts.node_names:
            # A fleet is every usable node: Ready, schedulable, and no taint our pods do not
            # tolerate (a node the operator keeps for itself, or one a gate tainted before).
            barred = {n["metadata"]["name"]: t for n in usable if (t := _barring(n, opts))}
            self.skipped_nodes = {k: f"taint {v} not tolerated" for k, v in barred.items()}
            if opts.idle_only:
                self.skipped_nodes |= self._busy({n["metadata"]["name"] for n in usable})
            usable = [n for n in usable if n["metadata"]["name"] not in self.skipped_nodes]
        want = opts.nodes or len(opts.node_names) or (len(usable) if self.fleet else 1)
        want = max(want, 1)
        if len(usable) < want:
            seen = (
                ", ".join(
                    f"{n['metadata']['name']} ({_why_not(n)})" for n in found if not _ready(n)
                )
                or "none"
            )
            raise KubeError(
                f"{WHERE}: {want} node(s) wanted, {len(usable)} ready and schedulable among "
                f"{how}; not usable: {seen}"
            )
        return usable[:want]

    def _busy(self, nodes: set[str]) -> dict[str, str]:
        """Nodes among ``nodes`` where someone else's running pod uses GPUs, and whose."""
        try:
            pods = self.api.core.list_pod_for_all_namespaces(field_selector="status.phase=Running")
        except Exception as exc:
            raise KubeError(
                f"{WHERE}: --gpufabric-k8s-idle-nodes-only: cannot list the pods of all "
                f"namespaces ({self.api.where}): {reason(exc)}"
            ) from None
        busy: dict[str, list[str]] = {}
        for pod in pods.items:
            node = pod.spec.node_name
            if node in nodes and _uses_gpus(self.api.client.sanitize_for_serialization(pod)):
                busy.setdefault(node, []).append(f"{pod.metadata.namespace}/{pod.metadata.name}")
        return {node: f"busy: pod {', '.join(names[:3])} uses its GPUs"
                for node, names in busy.items()}  # fmt: skip

    def _read_node(self, name: str) -> dict[str, Any]:
        try:
            node = self.api.core.read_node(name)
        except Exception as exc:
            raise KubeError(
                f"{WHERE}: --gpufabric-k8s-node-names: node {name}: {reason(exc)}"
            ) from None
        return dict(self.api.client.sanitize_for_serialization(node))

    def _gpus_per_pod(self) -> int:
        opts = self.options
        if opts.gpus_per_pod is not None:
            return opts.gpus_per_pod
        if self.template is not None:
            for container in self.template["spec"].get("containers", [])[:1]:
                limit = ((container.get("resources") or {}).get("limits") or {}).get(manifests.GPU)
                if limit is not None:
                    return int(limit)
        if self.profile is not None and self.profile.gpu_count:
            return max(self.profile.gpu_count // opts.pods_per_node, 1)
        return 0

    def _create(self) -> None:
        opts = self.options
        nodes = self._select_nodes()
        self.node_labels = {
            n["metadata"]["name"]: n["metadata"].get("labels") or {} for n in nodes
        }
        gpus = self._gpus_per_pod()
        # CPU pods: the profile's gloo ranks (2 by default) spread over the node's pods.
        cpu_ranks = self.profile.ranks if self.profile is not None else 2
        per_pod = gpus or max(cpu_ranks // opts.pods_per_node, 1)
        rank = 0
        for node in nodes:
            for _ in range(opts.pods_per_node):
                index = len(self.plans)
                ranks = tuple(range(rank, rank + per_pod))
                rank += per_pod
                self.plans.append(
                    manifests.PodPlan(
                        index,
                        node["metadata"]["name"],
                        ranks,
                        gpus,
                        manifests.pod_name(self.run, index),
                    )
                )
        self.workload, self.workload_reason = self._choose_workload()
        parent = self.lifetime.begin()
        owners = manifests.owned_by(parent)
        res = manifests.resources_for(self.profile, gpus, opts.pods_per_node)
        pods = [
            manifests.rank_pod(
                self.run, self.namespace, opts, res, plan, len(self.plans), self.template, owners
            )
            for plan in self.plans
        ]
        first = pods[0]["spec"]["containers"][0]
        if "image" not in first:
            raise KubeError(
                f"{WHERE}: no image for the rank pods: give --gpufabric-k8s-image (an image with "
                "torch and pytest-gpufabric, see the Dockerfile) or set one in "
                "--gpufabric-k8s-pod-template"
            )
        self.container = first["name"]
        self._base_env = {e["name"]: e["value"] for e in first["env"] if "value" in e}
        try:
            self._create_workload(pods, owners, [n["metadata"]["name"] for n in nodes])
        except KubeError:
            raise
        except Exception as exc:
            raise KubeError(
                f"{WHERE}: cannot create the run's objects in namespace "
                f"{self.namespace}: {reason(exc)}"
            ) from None

    def _choose_workload(self) -> tuple[str, str]:
        """The object that owns the rank pods, and why: what the option asks, or for "auto"
        the first the cluster offers of JobSet, Indexed Job (>= 1.21) and plain pods."""
        asked = self.options.workload
        if asked == "pods":
            return "pods", "asked for (--gpufabric-k8s-workload)"
        has_jobset = self._has_jobset()
        version = self.api.version()
        if asked == "jobset" and not has_jobset:
            raise KubeError(
                f"{WHERE}: --gpufabric-k8s-workload jobset: the JobSet CRD "
                f"({JOBSET_CRD}) is not installed"
            )
        if asked == "indexed-job" and version < (1, 21):
            raise KubeError(
                f"{WHERE}: --gpufabric-k8s-workload indexed-job: the API server is "
                f"{version[0]}.{version[1]}; Indexed Jobs need 1.21 (1.20 silently drops "
                "completionMode and would run every pod as index-less)"
            )
        if asked != "auto":
            return asked, "asked for (--gpufabric-k8s-workload)"
        if has_jobset:
            return "jobset", f"auto: the JobSet CRD is installed ({JOBSET_CRD})"
        if version >= (1, 21):
            return "indexed-job", f"auto: no JobSet CRD; API server {version[0]}.{version[1]}"
        return "pods", (
            f"auto: no JobSet CRD and API server {version[0]}.{version[1]} has no Indexed Jobs"
        )

    def _has_jobset(self) -> bool:
        try:
            self.api.extensions.read_custom_resource_definition(JOBSET_CRD)
        except Exception as exc:
            if getattr(exc, "status", None) in (404, 403):  # absent, or not ours to know
                return False
            raise
        return True

    def _create_workload(
        self, pods: list[dict[str, Any]], owners: list[dict[str, Any]], nodes: list[str]
    ) -> None:
        if self.workload == "jobset":  # the JobSet controller makes its own headless Service
            body = manifests.jobset(self.run, self.namespace, pods[0], len(pods), nodes, owners)
            self.lifetime.owns_jobset(self.run)
            self.api.custom.create_namespaced_custom_object(
                "jobset.x-k8s.io", "v1alpha2", self.namespace, "jobsets", body
            )
            return
        service = manifests.headless_service(self.run, self.namespace)
        service["metadata"]["ownerReferences"] = owners
        self.api.core.create_namespaced_service(self.namespace, service)
        if self.workload == "indexed-job":
            body = manifests.indexed_job(
                self.run, self.namespace, pods[0], len(pods), nodes, owners
            )
            self.lifetime.owns_job(body["metadata"]["name"])
            self.api.batch.create_namespaced_job(self.namespace, body)
            return
        for plan, pod in zip(self.plans, pods, strict=True):
            created = self.api.core.create_namespaced_pod(self.namespace, pod)
            self.pods[plan.pod] = self.api.client.sanitize_for_serialization(created)

    def _adopt_made_pods(self, now: dict[str, dict[str, Any]]) -> None:
        """Pods a controller made (JobSet, Indexed Job): each plan takes the pod of its index
        and the node the scheduler put it on."""
        for name, pod in now.items():
            meta = pod.get("metadata") or {}
            index = (meta.get("labels") or {}).get(manifests.JOBSET_INDEX) or (
                meta.get("annotations") or {}
            ).get(manifests.JOB_INDEX)
            if index is None or not index.isdigit() or int(index) >= len(self.plans):
                continue
            plan = self.plans[int(index)]
            node = (pod.get("spec") or {}).get("nodeName") or plan.node
            self.plans[int(index)] = dataclasses.replace(plan, pod=name, node=node)
            self.pods[name] = pod

    def refresh(self) -> dict[str, dict[str, Any]]:
        """The run's pods as the API server has them now (a pod gone is absent)."""
        listed = self.api.core.list_namespaced_pod(
            self.namespace, label_selector=manifests.rank_selector(self.run)
        )
        now = {p.metadata.name: self.api.client.sanitize_for_serialization(p) for p in listed.items}
        self.pods = {name: now[name] for name in self.pods if name in now}
        return now

    def events(self, pod: str) -> list[dict[str, Any]]:
        with contextlib.suppress(Exception):
            listed = self.api.core.list_namespaced_event(
                self.namespace, field_selector=f"involvedObject.name={pod}"
            )
            return [self.api.client.sanitize_for_serialization(e) for e in listed.items]
        return []

    def _wait_running(self) -> None:
        """Every pod Running within the start-up deadline; a problem that waiting will not
        fix ends the wait at once, one that might (unschedulable, a slow pull) after a grace."""
        deadline = time.monotonic() + self.startup_s
        began = time.monotonic()
        first_seen: dict[str, float] = {}
        while True:
            now_pods = self.refresh()
            if self.workload != "pods":
                self._adopt_made_pods(now_pods)
                if not now_pods:
                    if time.monotonic() - began > CONTROLLER_GRACE_S:
                        raise KubeError(
                            f"{WHERE}: no pod of {self.workload} {self.run} appeared within "
                            f"{CONTROLLER_GRACE_S:g} s ({self.workload_reason}): is its "
                            "controller running? Or use --gpufabric-k8s-workload pods"
                        )
                    time.sleep(POLL_S)
                    continue
            waiting = []
            for plan in self.plans:
                name = plan.pod
                pod = now_pods.get(name)
                final = diagnose.final_problem(pod, self.events(name) if pod is None else ())
                if final is not None or pod is None:
                    raise KubeError(f"{WHERE}: {final}")
                if (pod.get("status") or {}).get("phase") == "Running" and all(
                    cs.get("ready") for cs in pod["status"].get("containerStatuses") or []
                ):
                    continue
                problem = diagnose.waiting_problem(pod)
                if problem is not None:
                    since = first_seen.setdefault(name, time.monotonic())
                    grace = UNSCHEDULABLE_GRACE_S if "scheduled" in problem else PULL_GRACE_S
                    if time.monotonic() - since > grace:
                        raise KubeError(f"{WHERE}: {problem}")
                waiting.append(diagnose.state(pod))
            if not waiting:
                return
            if time.monotonic() >= deadline:
                raise KubeError(
                    f"{WHERE}: pods not running within the start-up deadline "
                    f"({self.startup_s:g} s, --gpufabric-startup-timeout): " + "; ".join(waiting)
                )
            time.sleep(POLL_S)

    # --- in the pods -----------------------------------------------------------------------

    def exec_argv(self, args: Sequence[str]) -> list[str]:
        return [self.options.python, *args]

    def _exec_json(self, plan: manifests.PodPlan, args: Sequence[str]) -> dict[str, Any]:
        pod = plan.pod
        try:
            code, out, err = run_in_pod(
                self.api,
                self.namespace,
                pod,
                self.container,
                self.exec_argv(args),
                PROBE_TIMEOUT_S,
            )
        except Exception as exc:
            raise KubeError(
                f"{WHERE}: pod {pod} on node {plan.node}: exec failed: {reason(exc)}"
            ) from None
        try:
            data = json.loads(out)
        except ValueError:
            last = (err.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            raise KubeError(
                f"{WHERE}: pod {pod} on node {plan.node}: `{' '.join(args)}` exited with "
                f"code {code}: {last} (does the image hold pytest-gpufabric? "
                "--gpufabric-k8s-python)"
            ) from None
        if not isinstance(data, dict):
            raise KubeError(f"{WHERE}: pod {pod}: `{' '.join(args)}` did not print an object")
        return data

    def _probe(self, node_name: str, detect: bool) -> Node:
        plan = next(p for p in self.plans if p.node == node_name)
        args = ["-m", "pytest_gpufabric.evidence.probe", *(["--detect"] if detect else [])]
        data = self._exec_json(plan, args)
        try:
            node = node_from_json(data, f"pod {plan.pod}")
        except ValueError as exc:
            raise KubeError(f"{WHERE}: pod {plan.pod}: {exc}") from None
        label = node.label
        value = self.node_labels.get(node_name, {}).get(INSTANCE_LABEL)
        if label is None and value:  # the API knows the node's labels; the pod does not
            label = (value, f"label {INSTANCE_LABEL} of node {node_name} (Kubernetes API)")
        # The run calls a node by its Kubernetes name; the pod's host name is the pod's.
        return Node(
            node_name,
            node.inventory,
            label,
            node.dmi_product,
            node.rdma,
            node.rdma_origin,
            node.notes,
        )

    @property
    def base_env(self) -> dict[str, str]:
        """The rank container's literal environment (the pod template's and ours)."""
        return dict(self._base_env)


def _ready(node: dict[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _uses_gpus(pod: dict[str, Any]) -> bool:
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            if str((resources.get(kind) or {}).get(manifests.GPU, "0")) not in ("0", ""):
                return True
    return False


# The rank pods' own tolerations (manifests.DEFAULT_TOLERATIONS: all "Exists").
_DEFAULT_TOLERATIONS = tuple(
    Toleration(t["key"], None, t["effect"]) for t in manifests.DEFAULT_TOLERATIONS
)


def _barring(node: dict[str, Any], opts: KubeOptions) -> str | None:
    """The first NoSchedule/NoExecute taint of ``node`` that none of our tolerations takes."""
    tolerations = (*_DEFAULT_TOLERATIONS, *opts.tolerations)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(t.tolerates(taint) for t in tolerations):
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"{taint.get('key')}{value}:{taint.get('effect')}"
    return None


def _why_not(node: dict[str, Any]) -> str:
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    return "not Ready"
