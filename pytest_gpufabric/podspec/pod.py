"""A pod spec as the rules see it: its containers, the GPUs and NICs each one gets (device
plugin resources and DRA claims), and the lines to point at when something is missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from .dra import ClaimDevices, claim_requests, pod_claim_refs
from .findings import Finding
from .quantity import parse_count
from .source import Y
from .workloads import PodTarget

GPU = "nvidia.com/gpu"
EFA = "vpc.amazonaws.com/efa"
SHM = "/dev/shm"
# Device-plugin resources that give IB/RoCE HCAs: k8s-rdma-shared-dev-plugin (rdma/...),
# NVIDIA network operator (nvidia.com/hostdev, nvidia.com/rdma..., nvidia.com/sriov...),
# SR-IOV network operator (openshift.io/..., intel.com/sriov...), Mellanox (mellanox.com/...).
_RDMA_PREFIXES = ("rdma/", "mellanox.com/", "openshift.io/")
_RDMA_NVIDIA_PARTS = ("hostdev", "rdma", "sriov", "mlnx", "ib")


def is_rdma_resource(name: str) -> bool:
    if name.startswith(_RDMA_PREFIXES):
        return True
    if name.startswith("intel.com/"):
        return "sriov" in name
    if name.startswith("nvidia.com/") and name != GPU and not name.startswith("nvidia.com/mig"):
        return any(part in name[len("nvidia.com/") :] for part in _RDMA_NVIDIA_PARTS)
    return False


@dataclass
class Container:
    node: Y
    label: str  # "container pytorch", or "container #1" when it has no name
    gpus: int = 0
    efa: int = 0
    rdma: int = 0  # IB/RoCE device-plugin units (a shared plugin gives all HCAs for 1)
    gpu_line: int | None = None
    efa_line: int | None = None
    rdma_line: int | None = None
    claims: list[ClaimDevices] = field(default_factory=list)

    @property
    def line(self) -> int:
        return self.node.start_line

    def limit(self, resource: str) -> Y | None:
        return self.node.at("resources", "limits", resource)

    @property
    def privileged(self) -> Y | None:
        value = self.node.at("securityContext", "privileged")
        return value if value is not None and value.flag else None

    @property
    def uses_devices(self) -> bool:
        return bool(self.gpus or self.efa or self.rdma or self.claims)

    def missing_line(self, *path: str) -> int:
        """The line of the deepest key of ``path`` that exists, else the container's."""
        node: Y | None = self.node
        line = self.line
        for key in path:
            node = node.get(key) if node is not None else None
            if node is None:
                break
            line = node.line
        return line


@dataclass
class Pod:
    target: PodTarget
    containers: list[Container]
    findings: list[Finding]  # shape problems the API server would refuse
    claims_line: int | None = None

    @property
    def spec(self) -> Y:
        return self.target.spec

    @property
    def line(self) -> int:
        """The ``spec:`` key of the pod template."""
        return self.spec.line

    def flag(self, key: str) -> Y | None:
        value = self.spec.get(key)
        return value if value is not None and value.flag else None

    def device_count(self, kind: str, node_count: int) -> int:
        """GPUs (``gpu``), EFA devices (``efa``) or IB units (``rdma``) of the whole pod;
        a claim with ``allocationMode: All`` counts as the node's ``node_count``."""
        total = 0
        for c in self.containers:
            total += {"gpu": c.gpus, "efa": c.efa, "rdma": c.rdma}[kind]
        seen: set[tuple[str, str]] = set()  # one claim shared by two containers counts once
        for c in self.containers:
            for d in c.claims:
                if d.kind == kind and (d.claim, d.request) not in seen:
                    seen.add((d.claim, d.request))
                    total += node_count if d.count is None else d.count
        return total

    @property
    def device_containers(self) -> list[Container]:
        """The containers that run NCCL (they hold devices); all of them if none does."""
        return [c for c in self.containers if c.uses_devices] or self.containers

    def volume(self, name: str) -> Y | None:
        volumes = self.spec.get("volumes")
        for volume in volumes.items() if volumes is not None else []:
            if volume.text_of("name") == name:
                return volume
        return None


def _shape(target: PodTarget, rule_line: int, message: str, remedy: str) -> Finding:
    return Finding("error", "pod-shape", message, rule_line, remedy, target.where)


def _containers(target: PodTarget, findings: list[Finding]) -> list[Container]:
    node = target.spec.get("containers")
    if node is None:
        msg = "the pod spec has no containers: the API server rejects it"
        findings.append(_shape(target, target.spec.line, msg, "add spec.containers"))
        return []
    if node.is_map:  # a pasted spec that lost its "- name:" line
        findings.append(
            _shape(
                target,
                node.line,
                "spec.containers is a mapping, not a list, and so the container has no name: "
                "the API server rejects the pod (containers is a list of objects with a name); "
                "the container's '- name: ...' line looks cut off. Linted as one container",
                "write the container as a list item: 'containers:' then '- name: pytorch' with "
                "env, image, resources, ... indented under it",
            )
        )
        return [Container(Y(node.node), "container #1")]
    out = []
    for index, item in enumerate(node.items(), 1):
        if not item.is_map:
            continue
        name = item.text_of("name")
        if name is None:
            msg = f"container #{index} has no name: the API server rejects the pod"
            findings.append(_shape(target, item.start_line, msg, "give the container a name"))
        out.append(Container(item, f"container {name}" if name else f"container #{index}"))
    if not out:
        msg = "spec.containers holds no container: the API server rejects the pod"
        findings.append(_shape(target, node.line, msg, "add a container"))
    return out


def _count_devices(container: Container) -> None:
    limits = container.node.at("resources", "limits")
    for name, value in limits.pairs() if limits is not None else []:
        count = parse_count(value.text) or 0
        if name == GPU:
            container.gpus, container.gpu_line = count, value.line
        elif name == EFA:
            container.efa, container.efa_line = count, value.line
        elif is_rdma_resource(name):
            container.rdma += count
            container.rdma_line = container.rdma_line or value.line


def read_pod(target: PodTarget, claim_docs: dict[tuple[str, str], Y]) -> tuple[Pod, list[str]]:
    """The pod, and the names of the claims it references that are not in the file."""
    findings: list[Finding] = []
    containers = _containers(target, findings)
    refs = pod_claim_refs(target.spec)
    unresolved: list[str] = []
    for container in containers:
        _count_devices(container)
        wanted = container.node.at("resources", "claims")
        for use in wanted.items() if wanted is not None else []:
            name = use.text_of("name")
            ref = refs.get(name or "")
            doc = claim_docs.get(ref[:2]) if ref else None
            if doc is None:
                unresolved.append(name or "(unnamed)")
                continue
            request = use.text_of("request")
            container.claims += [
                d for d in claim_requests(name or "", doc) if request in (None, d.request)
            ]
    claims = target.spec.get("resourceClaims")
    pod = Pod(target, containers, findings, claims.line if claims is not None else None)
    return pod, unresolved
