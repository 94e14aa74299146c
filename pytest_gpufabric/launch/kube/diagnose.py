"""What went wrong with a rank pod, from its status and events, in one line with a remedy:
unschedulable (``Insufficient vpc.amazonaws.com/efa``), image pull errors, OOMKilled,
eviction, a lost node, deletion by someone else. Pure functions over the API's dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Waiting reasons that will not go away by waiting.
FINAL_WAITING = {
    "InvalidImageName": "the image name is invalid",
    "ErrImageNeverPull": "the image is not on the node and imagePullPolicy is Never",
    "CreateContainerConfigError": "the container's configuration is invalid",
    "CreateContainerError": "the container could not be created",
    "RunContainerError": "the container could not be started",
}
DELETED = "was deleted (by someone, a preemption or the loss of its node)"
PULL_WAITING = ("ErrImagePull", "ImagePullBackOff")
PULL_REMEDY = (
    "check the image name and tag, the registry's reachability from the node and "
    "imagePullSecrets (the image must hold torch and pytest-gpufabric: see the Dockerfile)"
)


def _remedy_unschedulable(message: str) -> str:
    if "vpc.amazonaws.com/efa" in message:
        return (
            "the node advertises fewer EFA devices than the pod asks for: is the EFA "
            "device plugin (aws-efa-k8s-device-plugin) running there, and is this an EFA "
            "instance type?"
        )
    if "nvidia.com/gpu" in message:
        return (
            "the node advertises fewer GPUs than the pod asks for: is the NVIDIA device "
            "plugin (or GPU operator) running there, are other pods holding its GPUs, or "
            "lower --gpufabric-k8s-gpus-per-pod"
        )
    if "taint" in message:
        return "tolerate the node's taint (--gpufabric-k8s-tolerations or the pod template)"
    if "Insufficient" in message:
        return "free the node's resources or ask for less in the pod template"
    return "check the node's allocatable resources, taints and the pod's affinity"


def _where(pod: Mapping[str, Any]) -> str:
    name = pod.get("metadata", {}).get("name", "?")
    node = pod.get("spec", {}).get("nodeName")
    return f"pod {name} on node {node}" if node else f"pod {name}"


def _statuses(pod: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )


def unschedulable(pod: Mapping[str, Any]) -> str | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            return str(condition.get("message") or "unschedulable").strip()
    return None


def pull_error(pod: Mapping[str, Any]) -> str | None:
    for cs in _statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_WAITING:
            return f"{waiting['reason']}: {(waiting.get('message') or '').strip()}".strip(": ")
    return None


def final_problem(
    pod: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]] = ()
) -> str | None:
    """A problem that waiting will not fix, in one line with its remedy, or None."""
    if pod is None:
        return f"the pod {DELETED}"
    where = _where(pod)
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return (
            f"{where} was evicted: {(status.get('message') or '').strip()}; the node ran "
            "short of memory or disk: see `kubectl describe node`"
        )
    if status.get("reason") in ("NodeLost", "NodeAffinity", "UnexpectedAdmissionError") or (
        status.get("reason") or ""
    ).startswith("OutOf"):
        return f"{where} failed: {status.get('reason')}: {(status.get('message') or '').strip()}"
    for cs in _statuses(pod):
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        if waiting.get("reason") in FINAL_WAITING:
            return (
                f"{where}: {waiting['reason']} ({FINAL_WAITING[waiting['reason']]}): "
                f"{(waiting.get('message') or '').strip()}"
            )
        terminated = state.get("terminated") or cs.get("lastState", {}).get("terminated")
        if terminated:
            return _terminated(where, cs.get("name", "?"), terminated)
    if status.get("phase") in ("Failed", "Succeeded"):
        return f"{where} ended: phase {status['phase']} {status.get('reason') or ''}".strip()
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return f"{where} is being deleted{_preempted(events)}"
    return None


def _terminated(where: str, container: str, terminated: Mapping[str, Any]) -> str:
    reason = terminated.get("reason") or "terminated"
    code = terminated.get("exitCode")
    text = f"{where}: container {container} {reason} (exit code {code})"
    if reason == "OOMKilled":
        return (
            text + ": it ran out of memory; raise its memory limit (a memory emptyDir "
            "at /dev/shm counts against it)"
        )
    if terminated.get("message"):
        text += f": {str(terminated['message']).strip().splitlines()[-1]}"
    return text


def _preempted(events: Sequence[Mapping[str, Any]]) -> str:
    for event in events:
        if event.get("reason") in (
            "Preempted",
            "Preempting",
            "NodeNotReady",
            "TaintManagerEviction",
        ):
            return f" ({event['reason']}: {(event.get('message') or '').strip()})"
    return ""


def waiting_problem(pod: Mapping[str, Any]) -> str | None:
    """A problem that might still go away (unschedulable, image pulls), with its remedy."""
    where = _where(pod)
    message = unschedulable(pod)
    if message is not None:
        return f"{where} cannot be scheduled: {message}; {_remedy_unschedulable(message)}"
    pulling = pull_error(pod)
    if pulling is not None:
        return f"{where} cannot pull its image: {pulling}; {PULL_REMEDY}"
    return None


def state(pod: Mapping[str, Any] | None) -> str:
    """A live pod's state in a few words, for failure messages."""
    if pod is None:
        return "pod gone"
    phase = (pod.get("status") or {}).get("phase", "?")
    return f"{_where(pod)}: {phase}"
