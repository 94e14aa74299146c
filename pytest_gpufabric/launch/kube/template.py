"""The user's pod template (``--gpufabric-k8s-pod-template``): the training pod of a manifest
file, whatever holds it (Pod, Job, CronJob, JobSet, Kubeflow jobs, Deployment, a ``kind: List``
as ``kubectl get -o yaml`` writes ...), found as the pod-spec preflight finds it (podspec/).
Of several pods (a JobSet's driver and workers) the first that asks for GPUs is taken."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...podspec.source import PodspecError, load_documents
from ...podspec.workloads import PodTarget, read_manifest
from ...settings import SettingError

GPU = "nvidia.com/gpu"


def _asks_for_gpus(target: PodTarget) -> bool:
    containers = target.spec.get("containers")
    for container in containers.items() if containers is not None else []:
        limits = container.at("resources", "limits")
        if limits is not None and limits.get(GPU) is not None:
            return True
    return False


def load(path: Path, where: str) -> dict[str, Any]:
    """{"metadata": ..., "spec": ...} of the training pod in ``path``; SettingError naming
    ``where`` (the option) otherwise."""
    try:
        manifest = read_manifest(load_documents(path))
    except PodspecError as exc:
        raise SettingError(f"{where}: {exc}") from None
    if not manifest.targets:
        kinds = ", ".join(manifest.kinds) or "nothing"
        raise SettingError(
            f"{where}: {path}: no pod template in it (found {kinds}; want a Pod, Job, JobSet, "
            "Deployment, a Kubeflow job or a List of them)"
        )
    target = next((t for t in manifest.targets if _asks_for_gpus(t)), manifest.targets[0])
    metadata = target.metadata.value() if target.metadata is not None else None
    return {"metadata": metadata or {}, "spec": target.spec.value()}
