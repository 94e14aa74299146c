"""What every rule gets: the pod, the profile it is judged against, and where to put findings."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..profiles.model import Profile
from .findings import Finding, Severity
from .pod import Container, Pod

# Used when the profile states no host.shm_min_gib: NCCL's troubleshooting guide asks Docker
# users for --shm-size=1g, and every shipped profile says 1 GiB.
DEFAULT_SHM_MIN_GIB = 1.0


@dataclass
class Check:
    pod: Pod
    profile: Profile | None
    findings: list[Finding] = field(default_factory=list)

    def add(
        self,
        severity: Severity,
        rule: str,
        message: str,
        line: int,
        remedy: str,
        container: Container | None = None,
    ) -> None:
        where = self.pod.target.where + (f" / {container.label}" if container else "")
        self.findings.append(Finding(severity, rule, message, line, remedy, where))

    @property
    def gpus(self) -> int:
        return self.pod.device_count("gpu", self.profile.gpu_count if self.profile else 0)

    @property
    def gpu_pod(self) -> bool:
        """Judged as a GPU pod: a GPU profile, or GPU/NIC resources of its own."""
        gpu_profile = self.profile is not None and self.profile.gpu_count > 0
        return gpu_profile or any(c.uses_devices for c in self.pod.containers)

    @property
    def rdma_kind(self) -> str | None:
        kind = self.profile.host.rdma_kind if self.profile else None
        return str(kind.value) if kind is not None else None

    @property
    def split(self) -> bool:
        """The pod holds some but not all of the node's GPUs: several pods share a node."""
        return bool(self.profile and 0 < self.gpus < self.profile.gpu_count)

    @property
    def instance(self) -> str:
        return self.profile.name if self.profile else "this node"
