"""``--gpufabric-instance auto``: which profile describes this node.

In order, the first that answers wins:

1. the Kubernetes node label ``node.kubernetes.io/instance-type``, handed to the pod as the
   environment variable GPUFABRIC_NODE_INSTANCE_TYPE, or in a downward-API labels file
   (default /etc/podinfo/labels, or the path in GPUFABRIC_PODINFO_LABELS) when the pod
   carries the node's label. A label naming no known profile is an error, not a guess;
2. the DMI product name (/sys/class/dmi/id/product_name), which on AWS Nitro instances is
   the instance type (aws-ofi-nccl reads the same file);
3. the hardware fingerprint: GPU model, GPU count and memory, and the number of RDMA devices
   of each kind (EFA, InfiniBand); a profile that states no ``host.rdma`` expects none.

Ambiguous or unknown nodes get one clear error that lists the candidates and how to choose.
Pure: launchers read the node (evidence/probe.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..evidence.host import HostFacts, rdma_counts
from ..evidence.node import Node
from ..evidence.probe import LABEL, LABEL_ENV
from .catalogue import Catalogue
from .model import Profile

MEMORY_TOLERANCE = 0.10  # NVML's total is a little under the nominal size (H200: 140.4 of 141)

HOW_TO_CHOOSE = (
    "pass --gpufabric-instance NAME (or GPUFABRIC_INSTANCE), or set "
    f"{LABEL_ENV} from the node label {LABEL}"
)


class DetectionError(Exception):
    """No profile, or more than one, fits this node; ``str()`` lists the candidates.
    ``none_fits``: the hardware fits no profile (rather than several, or a named type)."""

    def __init__(self, message: str, *, none_fits: bool = False, closest: str = "") -> None:
        super().__init__(message)
        self.none_fits = none_fits
        self.closest = closest  # the nearest profiles and how the node differs


@dataclass(frozen=True)
class NodeFacts:
    """What detection looks at, each with where it came from."""

    gpus: tuple[tuple[str, int], ...]  # (NVML name, total memory MiB) per visible GPU
    gpu_origin: str
    label: tuple[str, str] | None = None  # (instance type, where it was read)
    dmi_product: tuple[str, str] | None = None  # (product name, file)
    rdma: Mapping[str, int] | None = None  # {"efa": n, "ib": n}; None: not known
    rdma_origin: str = ""


@dataclass(frozen=True)
class Detection:
    profile: Profile
    how: str  # one line: which fact chose it


def rdma_of(host: HostFacts | None) -> tuple[dict[str, int] | None, str]:
    """RDMA device counts of ``host`` and where they were read; (None, "") when its facts do
    not include the RDMA listing (a replay passes the recorded node's, never this machine's)."""
    if host is None or "rdma" not in host.origins:
        return None, ""
    return rdma_counts(host), host.origins["rdma"]


def facts_of(node: Node) -> NodeFacts:
    """What detection sees of a node as its launcher read it."""
    return NodeFacts(
        node.gpus, node.inventory.origin, node.label, node.dmi_product, node.rdma,
        node.rdma_origin,
    )  # fmt: skip


def mismatches(profile: Profile, node: NodeFacts) -> list[str]:
    """Why ``node`` does not look like ``profile``'s node (empty: it matches)."""
    names = {name for name, _ in node.gpus}
    if profile.gpu_count == 0:
        return ["a CPU-only profile"] if node.gpus else []
    problems = []
    if len(node.gpus) != profile.gpu_count:
        problems.append(f"{profile.gpu_count} GPUs, this node shows {len(node.gpus)}")
    if {n.lower() for n in names} != {profile.gpu_model.lower()}:
        problems.append(f"GPU {profile.gpu_model!r}, this node has {', '.join(sorted(names))}")
    if profile.gpu_memory_gib and node.gpus and all(mib for _, mib in node.gpus):
        have_gib = min(mib for _, mib in node.gpus) / 1024
        if abs(have_gib - profile.gpu_memory_gib) > MEMORY_TOLERANCE * profile.gpu_memory_gib:
            problems.append(f"{profile.gpu_memory_gib:g} GiB per GPU, this node {have_gib:.1f}")
    if node.rdma is not None:
        kind = str(profile.host.rdma_kind.value) if profile.host.rdma_kind else None
        want = profile.host.rdma_devices.integer if profile.host.rdma_devices else 0
        have = node.rdma.get(kind, 0) if kind else sum(node.rdma.values())
        if have != want:
            problems.append(f"{want} {kind or 'RDMA'} devices, this node has {have}")
    return problems


def _fingerprint(node: NodeFacts) -> str:
    if not node.gpus:
        return "no GPU"
    names = sorted({name for name, _ in node.gpus})
    text = f"{len(node.gpus)} × {', '.join(names)}"
    if all(mib for _, mib in node.gpus):  # replays of nccl-tests output do not know it
        text += f" ({min(mib for _, mib in node.gpus) / 1024:.1f} GiB)"
    if node.rdma is not None:
        rdma = ", ".join(f"{n} {k}" for k, n in sorted(node.rdma.items()) if n) or "no RDMA device"
        text += f", {rdma}"
    return text


def detect(catalogue: Catalogue, node: NodeFacts) -> Detection:
    """The profile for ``node``, or DetectionError listing the candidates."""
    if node.label is not None:
        value, where = node.label
        profile = catalogue.get(value)
        if profile is None:
            raise DetectionError(
                f"--gpufabric-instance auto: the node is a {value!r} ({where}) but no profile "
                f"has that name (known: {', '.join(catalogue.names())}); add one "
                f"(docs/profiles.md, --gpufabric-thresholds DIR) or {HOW_TO_CHOOSE}"
            )
        return Detection(profile, f"auto: {LABEL}={value} ({where})")
    if node.dmi_product is not None:
        product, where = node.dmi_product
        profile = catalogue.get(product)
        if profile is not None:
            return Detection(profile, f"auto: DMI product name {product} ({where})")
    gpu_profiles = [p for p in catalogue.profiles.values() if p.gpu_count]
    fits = [p for p in gpu_profiles if not mismatches(p, node)]
    seen = f"{_fingerprint(node)} from {node.gpu_origin}" + (
        f" and {node.rdma_origin}" if node.rdma is not None and node.rdma_origin else ""
    )
    if len(fits) == 1:
        return Detection(fits[0], f"auto: hardware fingerprint {_fingerprint(node)}")
    if fits:
        raise DetectionError(
            f"--gpufabric-instance auto: this node ({seen}) fits several profiles: "
            f"{', '.join(sorted(p.name for p in fits))}; the hardware cannot tell them apart, "
            f"so {HOW_TO_CHOOSE}"
        )
    models = {name.lower() for name, _ in node.gpus}
    near = [p for p in gpu_profiles if p.gpu_model.lower() in models]
    hint = "; ".join(
        f"{p.name} expects {', '.join(mismatches(p, node))}"
        for p in sorted(near, key=lambda p: p.name)
    )
    raise DetectionError(
        f"--gpufabric-instance auto: no profile fits this node ({seen})"
        + (f"; closest: {hint}" if hint else f"; known: {', '.join(catalogue.names())}")
        + f". Add a profile (docs/profiles.md) or {HOW_TO_CHOOSE}",
        none_fits=True,
        closest=hint,
    )
