"""A node as it describes itself: the GPUs CUDA shows the ranks there, the driver and the
torch / NCCL builds, and what ``--gpufabric-instance auto`` may look at (the Kubernetes node
label, the DMI product name, the RDMA devices). A launcher reads it where its ranks run
(probe.py) or from a recording; detection and the reports read it from here.

Serialisable (``pytest-gpufabric-node/1``), so that a probe in a pod or on another machine can
hand it to the controller, and a run's bundle keeps it for replay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .inventory import Gpu, Inventory

NODE_SCHEMA = "pytest-gpufabric-node/1"


@dataclass(frozen=True)
class Node:
    name: str  # what the run calls the node (its host name; a Kubernetes node's name)
    inventory: Inventory
    label: tuple[str, str] | None = None  # (instance type, where it was read)
    dmi_product: tuple[str, str] | None = None  # (product name, file)
    rdma: Mapping[str, int] | None = None  # {"efa": n, "ib": n}; None: not read
    rdma_origin: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)  # what could not be read, and why

    @property
    def gpus(self) -> tuple[tuple[str, int], ...]:
        """(NVML name, total memory MiB) per visible GPU: detection's fingerprint."""
        return tuple((g.name, g.memory_mib) for g in self.inventory.gpus)

    def facts(self) -> dict[str, Any]:
        """The node in the reports (JSON ``run.nodes``)."""
        inv = self.inventory
        facts: dict[str, Any] = {
            "name": self.name,
            "hostname": inv.hostname,
            "gpu_model": inv.gpu_model or "none",
            "gpu_count": len(inv.gpus),
            "driver": inv.driver or "none",
            "torch_version": inv.torch_version or "unknown",
            "nccl_wheel": inv.nccl_wheel or "",
            "origin": inv.origin,
        }
        if self.label:
            facts["instance_label"] = self.label[0]
        if self.dmi_product:
            facts["dmi_product"] = self.dmi_product[0]
        if self.rdma is not None:
            facts["rdma"] = dict(self.rdma)
        return facts


def to_json(node: Node) -> dict[str, Any]:
    inv = node.inventory
    return {
        "schema": NODE_SCHEMA,
        "name": node.name,
        "inventory": {
            "gpus": [_gpu(g) for g in inv.gpus],
            "all_gpus": [_gpu(g) for g in inv.all_gpus],
            "driver": inv.driver,
            "hostname": inv.hostname,
            "torch_version": inv.torch_version,
            "nccl_wheel": inv.nccl_wheel,
            "no_gpu_reason": inv.no_gpu_reason,
            "nccl_env": [list(kv) for kv in inv.nccl_env],
            "known": inv.known,
            "origin": inv.origin,
        },
        "label": list(node.label) if node.label else None,
        "dmi_product": list(node.dmi_product) if node.dmi_product else None,
        "rdma": dict(node.rdma) if node.rdma is not None else None,
        "rdma_origin": node.rdma_origin,
        "notes": list(node.notes),
    }


def _gpu(gpu: Gpu) -> dict[str, Any]:
    return {
        "index": gpu.index,
        "name": gpu.name,
        "uuid": gpu.uuid,
        "pci_bus_id": gpu.pci_bus_id,
        "memory_mib": gpu.memory_mib,
    }


def _pair(value: Any) -> tuple[str, str] | None:
    return (str(value[0]), str(value[1])) if isinstance(value, list) and len(value) == 2 else None


def from_json(data: Mapping[str, Any], where: str) -> Node:
    """A node written by :func:`to_json`; ``where`` (a file) becomes the facts' origin.
    ValueError when ``data`` is not such a node."""
    if data.get("schema") != NODE_SCHEMA or not isinstance(data.get("inventory"), dict):
        raise ValueError(f"{where}: not a {NODE_SCHEMA} document")
    inv = data["inventory"]
    try:
        inventory = Inventory(
            gpus=tuple(Gpu(**g) for g in inv.get("gpus", [])),
            driver=inv.get("driver"),
            hostname=str(inv.get("hostname", "")),
            torch_version=inv.get("torch_version"),
            nccl_wheel=inv.get("nccl_wheel"),
            no_gpu_reason=inv.get("no_gpu_reason"),
            all_gpus=tuple(Gpu(**g) for g in inv.get("all_gpus", [])),
            nccl_env=tuple((str(k), str(v)) for k, v in inv.get("nccl_env", [])),
            known=bool(inv.get("known", True)),
            origin=f"{inv.get('origin', 'a node probe')}, recorded in {where}",
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: malformed node inventory: {exc}") from None
    rdma = data.get("rdma")
    return Node(
        name=str(data.get("name") or inventory.hostname),
        inventory=inventory,
        label=_pair(data.get("label")),
        dmi_product=_pair(data.get("dmi_product")),
        rdma={str(k): int(v) for k, v in rdma.items()} if isinstance(rdma, dict) else None,
        rdma_origin=str(data.get("rdma_origin", "")),
        notes=tuple(str(n) for n in data.get("notes", [])),
    )
