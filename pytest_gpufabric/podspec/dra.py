"""Devices a pod gets through Dynamic Resource Allocation (resource.k8s.io): the pod's
``resourceClaims`` name a ResourceClaim or ResourceClaimTemplate, a container takes it with
``resources.claims``. The claim's requests say which DeviceClass and how many devices.

Which classes count as what is a naming convention, not an API: a class whose name has a
``gpu`` part (``gpu.nvidia.com``) gives GPUs; one with an ``efa``, ``rdma``, ``ib``, ``hca``,
``nic``, ``roce`` or ``sriov`` part gives RDMA NICs (``efa`` ones count as EFA devices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .quantity import parse_count
from .source import Y

_NIC_PARTS = frozenset({"efa", "rdma", "ib", "infiniband", "hca", "nic", "roce", "sriov"})


@dataclass(frozen=True)
class ClaimDevices:
    """One request of a claim: ``count`` None means ``allocationMode: All``."""

    claim: str  # the pod's name for the claim
    request: str
    device_class: str
    count: int | None
    line: int  # the deviceClassName line in the claim's document

    @property
    def kind(self) -> str:
        parts = set(re.split(r"[^a-z0-9]+", self.device_class.lower()))
        if "gpu" in parts:
            return "gpu"
        if parts & _NIC_PARTS:
            return "efa" if "efa" in parts else "rdma"
        return "other"


def _request_devices(claim: str, request: Y) -> ClaimDevices | None:
    """v1beta1 puts deviceClassName on the request; v1beta2 and v1 under ``exactly``; a
    ``firstAvailable`` list is read by its first choice (what the scheduler tries first)."""
    name = request.text_of("name") or "(unnamed)"
    body = request.get("exactly") or request
    first = request.get("firstAvailable")
    if first is not None and first.items():
        body = first.items()[0]
    device_class = body.get("deviceClassName")
    if device_class is None or device_class.text is None:
        return None
    mode = body.text_of("allocationMode") or "ExactCount"
    count = None if mode == "All" else parse_count(body.text_of("count") or "1")
    return ClaimDevices(claim, name, device_class.text, count, device_class.line)


def claim_requests(claim: str, doc: Y) -> list[ClaimDevices]:
    """The device requests of a ResourceClaim (``spec.devices``) or a ResourceClaimTemplate
    (``spec.spec.devices``)."""
    spec = doc.get("spec")
    if spec is not None and doc.text_of("kind") == "ResourceClaimTemplate":
        spec = spec.get("spec")
    requests = spec.at("devices", "requests") if spec is not None else None
    found = (_request_devices(claim, r) for r in (requests.items() if requests else []))
    return [d for d in found if d is not None]


def pod_claim_refs(pod_spec: Y) -> dict[str, tuple[str, str, int]]:
    """The pod's claims: name -> (kind, object name, line); ``source:`` is the pre-1.31 form."""
    refs: dict[str, tuple[str, str, int]] = {}
    claims = pod_spec.get("resourceClaims")
    for entry in claims.items() if claims is not None else []:
        name = entry.text_of("name")
        where = entry.get("source") or entry
        for key, kind in (
            ("resourceClaimName", "ResourceClaim"),
            ("resourceClaimTemplateName", "ResourceClaimTemplate"),
        ):
            obj = where.text_of(key)
            if name is not None and obj is not None:
                refs[name] = (kind, obj, entry.start_line)
    return refs
