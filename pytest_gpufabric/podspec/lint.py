"""lint_file: read a manifest, pick each pod template's profile, run every rule."""

from __future__ import annotations

from pathlib import Path

from ..profiles.catalogue import Catalogue
from ..profiles.model import Profile
from .context import Check
from .devices import check_claims, check_efa, check_gpus, check_ib, check_requests
from .env import check_env
from .findings import SEVERITIES, Finding, shown
from .host import check_host_ipc, check_ipc_lock, check_privileged, check_shm
from .instance import load_profiles, lookup, pinned
from .pod import read_pod
from .report import Choice, PodspecReport
from .source import PodspecError, load_documents
from .workloads import Manifest, PodTarget, read_manifest

_NEEDS_PROFILE = (
    "gpu-count, rdma-devices, ipc-lock, host-ipc and the network variables (NCCL_NET, "
    "NCCL_NET_PLUGIN, NCCL_IB_DISABLE, FI_PROVIDER, FI_EFA_USE_DEVICE_RDMA)"
)


def _mismatch(target: PodTarget, given: Profile, how: str) -> list[Finding]:
    found = pinned(target)
    if found is None or given.name.lower() in {t.lower() for t in found.types}:
        return []
    return [
        Finding(
            "warning",
            "instance-mismatch",
            f"the pod is pinned to {', '.join(found.types)} ({found.how}) but was linted "
            f"against {given.name} {how}",
            found.line,
            f"lint against the instance the pod runs on, or pin it to {given.name}",
            target.where,
        )
    ]


def _choose(
    target: PodTarget, given: Profile | None, how: str, catalogue: Catalogue | None
) -> tuple[Choice, Catalogue | None]:
    """The target's profile and how it was chosen (the catalogue is loaded once, lazily)."""
    if given is not None:
        return Choice(target.where, given, f"{given.name} ({shown(given.file)}) {how}"), catalogue
    found = pinned(target)
    if found is None:
        why = "no node.kubernetes.io/instance-type in nodeSelector or required node affinity"
        return Choice(target.where, None, f"none ({why})"), catalogue
    catalogue = catalogue or load_profiles()
    profile, why = lookup(found, catalogue)
    return Choice(target.where, profile, why if profile else f"none ({why})"), catalogue


def _no_profile(check: Check, choice: Choice) -> None:
    found = pinned(check.pod.target)
    line = found.line if found else check.pod.line
    why = choice.how.removeprefix("none ")
    if not check.gpu_pod:
        message = f"no GPU or NIC resources and no instance profile {why}: not a GPU pod"
        check.add("info", "profile", message, line, "nothing to do unless it should run NCCL")
        return
    check.add(
        "info",
        "profile",
        f"no instance profile judged this pod {why}; not checked: {_NEEDS_PROFILE}",
        line,
        "pass --instance NAME or --profile FILE, or pin the pod with nodeSelector "
        "node.kubernetes.io/instance-type",
    )


def _lint_target(target: PodTarget, choice: Choice, how: str, manifest: Manifest) -> list[Finding]:
    pod, unresolved = read_pod(target, manifest.claims)
    check = Check(pod, choice.profile, list(pod.findings))
    if choice.profile is None:
        _no_profile(check, choice)
    elif pinned(target) is not None:
        check.findings += _mismatch(target, choice.profile, how)
    for rule in (check_gpus, check_efa, check_ib, check_requests, check_ipc_lock):
        rule(check)
    for rule in (check_privileged, check_shm, check_host_ipc, check_env):
        rule(check)
    check_claims(check, unresolved)
    return check.findings


def _no_template(path: Path, manifest: Manifest) -> PodspecError:
    if len(manifest.skipped) == 1:
        skip = manifest.skipped[0]
        return PodspecError(f"{path}:{skip.line}: no pod template found: {skip.why}")
    kinds = ", ".join(dict.fromkeys(manifest.kinds)) or "no documents"
    return PodspecError(f"{path}: no pod template found (kinds: {kinds})")


def lint_file(
    path: Path, profile: Profile | None, *, how: str = "given by the caller"
) -> PodspecReport:
    """Lint every pod template of ``path`` against ``profile`` (None: each template's
    instance type from its node selector, from the shipped catalogue). :class:`PodspecError`
    when the file cannot be read or holds no pod template."""
    manifest = read_manifest(load_documents(path))
    if not manifest.targets:
        raise _no_template(path, manifest)
    findings: list[Finding] = []
    choices: list[Choice] = []
    catalogue: Catalogue | None = None
    for target in manifest.targets:
        choice, catalogue = _choose(target, profile, how, catalogue)
        choices.append(choice)
        findings += _lint_target(target, choice, how, manifest)
    for skip in manifest.skipped:
        findings.append(
            Finding(
                "info",
                "not-linted",
                f"not linted: {skip.why}",
                skip.line,
                "nothing to do unless it should run GPUs",
                skip.kind,
            )
        )
    order = {s: i for i, s in enumerate(SEVERITIES)}
    unique = dict.fromkeys(findings)  # a template listed twice (a List and the object) once
    ranked = sorted(unique, key=lambda f: (f.line, order[f.severity], f.rule, f.where))
    return PodspecReport(path, tuple(ranked), tuple(choices))
