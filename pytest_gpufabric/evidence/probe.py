"""Read the node this process runs on (a :class:`~.node.Node`): NVML's GPUs as CUDA will show
them, and for ``--gpufabric-instance auto`` the Kubernetes node label, the DMI product name
and the RDMA devices. Launchers run it where their ranks run: in process for the local
launcher, as ``python -m pytest_gpufabric.evidence.probe`` (JSON on stdout) in a pod or on
another machine.

A label source that the operator named but that cannot be read is a :class:`ProbeError`
(one line naming the variable and the file), never silently ignored.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from .host import HostFacts, collect, rdma_counts, read_rdma_devices
from .host import to_json as host_json
from .inventory import take_inventory
from .node import Node, to_json

LABEL = "node.kubernetes.io/instance-type"
LEGACY_LABEL = "beta.kubernetes.io/instance-type"
LABEL_ENV = "GPUFABRIC_NODE_INSTANCE_TYPE"
PODINFO_ENV = "GPUFABRIC_PODINFO_LABELS"
DEFAULT_PODINFO = Path("/etc/podinfo/labels")
DMI_PRODUCT = Path("/sys/class/dmi/id/product_name")
MAX_LABELS_BYTES = 1 << 20  # a downward-API labels file is a few KiB


class ProbeError(ValueError):
    """A node fact the operator pointed at cannot be read; the message names it."""


def parse_podinfo_labels(text: str) -> dict[str, str]:
    """A downward-API labels file: one ``key="value"`` per line, value JSON-style quoted."""
    labels = {}
    for line in text.splitlines():
        match = re.match(r'^([^=\s]+)="(.*)"\s*$', line)
        if match:
            labels[match.group(1)] = match.group(2).replace('\\"', '"').replace("\\\\", "\\")
    return labels


def read_label(environ: Mapping[str, str]) -> tuple[str, str] | None:
    """The node's instance-type label: GPUFABRIC_NODE_INSTANCE_TYPE, else the downward-API
    labels file (GPUFABRIC_PODINFO_LABELS, default /etc/podinfo/labels, which may be absent)."""
    value = environ.get(LABEL_ENV, "").strip()
    if value:
        return value, f"environment variable {LABEL_ENV}"
    named = environ.get(PODINFO_ENV, "").strip()
    path = Path(named) if named else DEFAULT_PODINFO
    where = f"{path} (from {PODINFO_ENV})" if named else str(path)
    try:
        if path.stat().st_size > MAX_LABELS_BYTES:
            raise ProbeError(f"{PODINFO_ENV}: {where}: larger than 1 MiB, not a labels file")
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        if named:
            raise ProbeError(f"{PODINFO_ENV}: {where}: no such file") from None
        return None  # no downward-API volume: not a pod, or no label handed down
    except OSError as exc:
        raise ProbeError(f"{PODINFO_ENV}: {where}: cannot read: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ProbeError(
            f"{PODINFO_ENV}: {where}: not a text labels file (key=\"value\" lines)"
        ) from None
    labels = parse_podinfo_labels(text)
    for key in (LABEL, LEGACY_LABEL):
        if labels.get(key, "").strip():
            return labels[key].strip(), f"label {key} in {path}"
    return None


def read_dmi_product(path: Path = DMI_PRODUCT) -> tuple[str, str] | None:
    try:
        product = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None
    return (product, str(path)) if product else None


def probe(environ: Mapping[str, str], *, detect: bool) -> Node:
    """This node. ``detect``: also read what auto-detection looks at (label, DMI, RDMA)."""
    inventory = take_inventory(environ)
    name = inventory.hostname
    if not detect:
        return Node(name, inventory)
    rdma = HostFacts("this node")
    read_rdma_devices(rdma)  # only the device listing: memlock, PCI and modules are not needed
    return Node(
        name,
        inventory,
        label=read_label(environ),
        dmi_product=read_dmi_product(),
        rdma=rdma_counts(rdma),
        rdma_origin=rdma.origins["rdma"],
    )


def main() -> int:
    """``python -m pytest_gpufabric.evidence.probe [--detect]``: this node as JSON;
    ``--host WHEN``: its host facts (NVLink, PCIe, /dev/shm, RDMA ...) as JSON."""
    args = sys.argv[1:]
    if args[:1] == ["--host"] and len(args) == 2:
        inventory = take_inventory(os.environ)
        facts = collect([g.index for g in inventory.gpus])
        json.dump(host_json(facts, args[1]), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return 0
    try:
        node = probe(os.environ, detect="--detect" in args)
    except ProbeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(to_json(node), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
