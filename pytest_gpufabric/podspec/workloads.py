"""Find the pod templates in a manifest: Pods, the workload kinds that embed one, ``kind:
List`` (what ``kubectl get -o yaml`` writes) and the DRA claims pods may reference.

Only ``spec`` paths are read, so the ``status`` and ``metadata.managedFields`` of live objects
never matter.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from .source import Y

# kind -> path from the document to its pod template (the mapping of metadata + spec)
_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": (),
    "PodTemplate": ("template",),
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "DaemonSet": ("spec", "template"),
    "ReplicaSet": ("spec", "template"),
    "ReplicationController": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}
# Kinds that hold no pod template of their own: skipped without a word.
_QUIET_KINDS = frozenset(
    {
        "Service", "ConfigMap", "Secret", "ServiceAccount", "Namespace", "Role",
        "RoleBinding", "ClusterRole", "ClusterRoleBinding", "PersistentVolumeClaim",
        "PersistentVolume", "StorageClass", "NetworkPolicy", "PodDisruptionBudget",
        "Ingress", "HorizontalPodAutoscaler", "LimitRange", "ResourceQuota", "PriorityClass",
        "DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ResourceSlice",
    }
)  # fmt: skip
_KUBEFLOW_JOBS = ("PyTorchJob", "MPIJob", "TFJob", "XGBoostJob", "PaddleJob", "JAXJob")
_READ = (
    "kinds read: Pod, PodTemplate, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, "
    "CronJob, JobSet, Kubeflow *Job, LeaderWorkerSet, (Cluster)TrainingRuntime, List, and any "
    "kind with spec.template.spec.containers"
)


@dataclass(frozen=True)
class PodTarget:
    """One pod template to lint."""

    where: str  # "JobSet llama-3-8b" or "JobSet llama-3-8b / workers"
    spec: Y  # the pod spec mapping
    metadata: Y | None  # the pod template's metadata (annotations), if any


@dataclass(frozen=True)
class Skipped:
    """A document that holds no pod template this tool reads."""

    kind: str
    line: int
    why: str


@dataclass
class Manifest:
    targets: list[PodTarget] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    claims: dict[tuple[str, str], Y] = field(default_factory=dict)  # (kind, name) -> doc
    kinds: list[str] = field(default_factory=list)  # every kind seen, for errors


def _name(doc: Y) -> str:
    meta = doc.get("metadata")
    name = meta.text_of("name") if meta is not None else None
    if name is None and meta is not None:
        name = meta.text_of("generateName")
    return name or "(unnamed)"


def _pod(where: str, template: Y | None) -> PodTarget | None:
    """A pod template (``metadata`` + ``spec``) -> target; None when it has no spec."""
    spec = template.get("spec") if template is not None else None
    if template is None or spec is None or not spec.is_map:
        return None
    return PodTarget(where, spec, template.get("metadata"))


def _roles(doc: Y, kind: str) -> Iterator[tuple[str, Y | None]]:
    """(role, pod template) of the kinds with several templates."""
    spec = doc.get("spec")
    if spec is None:
        return
    if kind in ("JobSet", "TrainingRuntime", "ClusterTrainingRuntime"):
        jobset = spec if kind == "JobSet" else spec.at("template", "spec")
        jobs = jobset.get("replicatedJobs") if jobset is not None else None
        for job in jobs.items() if jobs is not None else []:
            yield (
                job.text_of("name") or f"#{job.start_line}",
                job.at("template", "spec", "template"),
            )
    elif kind in _KUBEFLOW_JOBS:
        for key, replicas in spec.pairs():
            if key.endswith("ReplicaSpecs"):
                for role, replica in replicas.pairs():
                    yield role, replica.get("template")
    elif kind == "LeaderWorkerSet":
        lws = spec.get("leaderWorkerTemplate")
        for role in ("leaderTemplate", "workerTemplate"):
            if lws is not None and lws.get(role) is not None:
                yield role.removesuffix("Template"), lws.get(role)


def _add(manifest: Manifest, doc: Y) -> None:
    if not doc.is_map:
        manifest.skipped.append(Skipped("(none)", doc.start_line, "a document that is no object"))
        return
    kind = doc.text_of("kind") or ""
    manifest.kinds.append(kind or "(no kind)")
    label = f"{kind or 'object'} {_name(doc)}"
    if kind == "List" or (kind.endswith("List") and doc.get("items") is not None):
        items = doc.get("items")
        for item in items.items() if items is not None else []:
            _add(manifest, item)
        return
    if kind in ("ResourceClaim", "ResourceClaimTemplate"):
        manifest.claims[(kind, _name(doc))] = doc
    if kind in _TEMPLATE_PATHS:
        path = _TEMPLATE_PATHS[kind]
        target = _pod(label, doc.at(*path))
        if target is None:
            why = f"{kind} without {'.'.join((*path, 'spec'))}"
            manifest.skipped.append(Skipped(kind, doc.start_line, why))
        else:
            manifest.targets.append(target)
        return
    roles = list(_roles(doc, kind))
    if roles:
        for role, template in roles:
            target = _pod(f"{label} / {role}" if len(roles) > 1 else label, template)
            if target is not None:
                manifest.targets.append(target)
        return
    generic = _pod(label, doc.at("spec", "template"))
    if generic is not None and generic.spec.get("containers") is not None:
        manifest.targets.append(generic)  # an unknown kind with spec.template.spec (Rollout…)
    elif kind == "TrainJob":
        runtime = doc.at("spec", "runtimeRef")
        ref = runtime.text_of("name") if runtime is not None else None
        why = f"TrainJob: its pods come from the training runtime {ref or '?'}; lint that file"
        manifest.skipped.append(Skipped(kind, doc.start_line, why))
    elif not kind and doc.at("spec", "containers") is not None:
        why = "an object without kind: a Pod? (add apiVersion: v1 and kind: Pod)"
        manifest.skipped.append(Skipped("(no kind)", doc.start_line, why))
    elif kind not in _QUIET_KINDS:
        why = f"{kind or 'an object without kind'} holds no pod template this tool reads ({_READ})"
        line = (doc.get("kind") or doc).line
        manifest.skipped.append(Skipped(kind or "(no kind)", line, why))


def read_manifest(docs: list[Y]) -> Manifest:
    manifest = Manifest()
    for doc in docs:
        _add(manifest, doc)
    return manifest
