"""The user's pod template (``--gpufabric-k8s-pod-template``): the pod part of the first
workload in a manifest file, whatever holds it (Pod, PodTemplate, Job, CronJob, JobSet,
Deployment, StatefulSet, DaemonSet, or a ``kind: List`` as ``kubectl get -o yaml`` writes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ...settings import SettingError


def pod_template_of(doc: dict[str, Any]) -> dict[str, Any] | None:
    """{"metadata": ..., "spec": ...} of the pod a workload object makes, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return {"metadata": doc.get("metadata") or {}, "spec": spec}
    if kind == "PodTemplate":
        return doc.get("template")
    if kind in ("Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return spec.get("template")
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    if kind == "JobSet":
        jobs = spec.get("replicatedJobs") or []
        if jobs:
            return ((jobs[0].get("template") or {}).get("spec") or {}).get("template")
    if kind == "List":
        for item in doc.get("items") or []:
            found = pod_template_of(item) if isinstance(item, dict) else None
            if found is not None:
                return found
    return None


def load(path: Path, where: str) -> dict[str, Any]:
    """The pod template in ``path``; SettingError naming ``where`` (the option) otherwise."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise SettingError(f"{where}: {path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not YAML"
        raise SettingError(f"{where}: {path}{line}: {problem}") from None
    for doc in docs:
        template = pod_template_of(doc) if isinstance(doc, dict) else None
        if template is not None and isinstance(template.get("spec"), dict):
            return template
    kinds = ", ".join(str(d.get("kind")) for d in docs if isinstance(d, dict)) or "nothing"
    raise SettingError(
        f"{where}: {path}: no pod template in it (found {kinds}; want a Pod, PodTemplate, Job, "
        "JobSet, Deployment or a List of them)"
    )
