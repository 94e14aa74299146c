"""Judge host facts (host.py) against the profile's ``host`` section. Like transports.py:
each check returns a Judgement whose findings name the GPU, link or mount, the evidence and
its origin, the expectation with its source, and one remedy; and whose properties record the
facts even when the check passes, so a passing run still documents the node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..evidence.host import HostFacts, rdma_counts
from ..profiles.keys import TOPOLOGY_DISTANCES
from ..profiles.model import Expectation, HostExpectations
from .judgement import Finding, Judgement, Property, judged, not_asked, skipped

GIB = 1 << 30


@dataclass
class HostEvidence:
    facts: HostFacts
    before: HostFacts | None = None  # taken before the first collective (NVLink counter deltas)
    # (rank, st_dev of its /dev/shm, its host name) of the ranks on this node
    rank_shm: list[tuple[int, int | None, str]] | None = None


def cite(exp: Expectation, text: str) -> str:
    return f"{text} ({exp.cite()})"


def origin_of(facts: HostFacts, family: str) -> str:
    return facts.origins.get(family, facts.origin)


def unknown(facts: HostFacts, family: str, what: str) -> Judgement:
    why = facts.unavailable.get(family) or facts.unavailable.get("nvml") or f"not in {facts.origin}"
    return skipped(f"{what} unknown: {why}")


# --- /dev/shm --------------------------------------------------------------------------------

SHM_REMEDY = (
    "give the ranks a larger /dev/shm: Docker --shm-size=1g or more (NCCL troubleshooting "
    "guide), Kubernetes an emptyDir {medium: Memory, sizeLimit: 64Gi} volume mounted at "
    "/dev/shm; NCCL >= 2.28 still needs tens of MB of /dev/shm per process even with cuMem "
    "host buffers"
)


def judge_shm(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """/dev/shm is mounted, tmpfs, and at least the profile's size, with that much free."""
    shm = ev.facts.shm
    if shm is None:
        return unknown(ev.facts, "shm", "/dev/shm")
    props: list[Property] = [("shm_fstype", shm.fstype or "unknown")]
    if shm.size is not None:
        props.append(("shm_size_gib", round(shm.size / GIB, 3)))
    if shm.free is not None:
        props.append(("shm_free_gib", round(shm.free / GIB, 3)))
    findings = []
    if shm.size is None:
        findings.append(
            Finding(
                f"{shm.path} is not usable ({shm.origin})",
                (),
                f"{shm.path} mounted",
                "NCCL stats /dev/shm at every init and fails without it; mount one",
            )
        )
        return judged(findings, "", props)
    if shm.fstype is not None and shm.fstype != "tmpfs":
        findings.append(
            Finding(
                f"{shm.path} is {shm.fstype}, not tmpfs",
                (shm.origin,),
                "tmpfs (memory) at /dev/shm",
                SHM_REMEDY,
            )
        )
    if exp.shm_min_gib is not None:
        minimum = exp.shm_min_gib.number
        for label, value in (("size", shm.size), ("free space", shm.free)):
            if value is not None and value < minimum * GIB:
                findings.append(
                    Finding(
                        f"{shm.path} {label} is {_size(value)}, below the minimum of "
                        f"{minimum:g} GiB",
                        (shm.origin,),
                        cite(exp.shm_min_gib, f"{label} >= {minimum:g} GiB"),
                        SHM_REMEDY,
                    )
                )
    return judged(findings, f"{shm.path}: {_size(shm.size)} {shm.fstype}", props)


def _size(nbytes: int | None) -> str:
    if nbytes is None:
        return "unknown"
    for unit, factor in (("GiB", GIB), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.4g} {unit}"
    return f"{nbytes} B"


def judge_shm_shared(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every rank of the node sees the same /dev/shm mount (NCCL >= 2.24 refuses P2P and SHM
    between ranks whose /dev/shm st_dev differ, e.g. containers with private /dev/shm)."""
    if not ev.rank_shm:
        return skipped("the ranks' /dev/shm is only known for ranks this run launched")
    devices = Counter(dev for _, dev, _ in ev.rank_shm)
    props: list[Property] = [("shm_mounts", len(devices))]
    findings = []
    if len(devices) > 1:
        by_rank = ", ".join(f"rank {r} on {host}: st_dev {d}" for r, d, host in ev.rank_shm)
        findings.append(
            Finding(
                f"the ranks see {len(devices)} different /dev/shm mounts ({by_rank})",
                (),
                "one /dev/shm mount for all ranks of a node",
                "put all ranks of a node in one pod (or share the pod's /dev/shm volume); with "
                "private /dev/shm NCCL >= 2.24 falls back from P2P and SHM to the network",
            )
        )
    return judged(findings, "all ranks share one /dev/shm", props)


# --- fabric manager, PCIe, NICs, RDMA (NVLink and P2P: links.py) -----------------------------

FM_REMEDY = (
    "the NVSwitch fabric is not up: check nvidia-fabricmanager on the host (systemctl status "
    "nvidia-fabricmanager, /var/log/fabricmanager.log), that its version matches the driver, and "
    "that the node was not booted with NVSwitches missing; NCCL will fail or fall back without it"
)


def judge_fabric_manager(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every GPU is registered with the NVSwitch fabric (Hopper and newer: fabric state
    Completed, status Success). A100 exposes no per-GPU state; there the check requires every
    NVLink active and NVLink P2P OK between all GPUs, which is what the fabric manager enables."""
    if exp.fabric_manager is None or not exp.fabric_manager.value:
        return not_asked("the profile does not require a fabric manager (host.fabric_manager)")
    gpus = ev.facts.gpus
    states = Counter(f"{g.fabric_state}/{g.fabric_status}" for g in gpus if g.fabric_state)
    props: list[Property] = [("fabric_states", ", ".join(f"{s}×{n}" for s, n in states.items()))]
    if not gpus or not any(g.fabric_state for g in gpus):
        return unknown(ev.facts, "fabric", "fabric state")
    origin = origin_of(ev.facts, "fabric")
    if all(g.fabric_state == "Not Supported" for g in gpus):
        inactive = [(g.index, n) for g in gpus for n, link in g.links.items() if not link.active]
        bad_p2p = [
            pair for pair, caps in ev.facts.p2p.items() if caps.get("nvlink") not in (None, "OK")
        ]
        findings = []
        if inactive or bad_p2p or not any(g.links for g in gpus):
            findings.append(
                Finding(
                    "no per-GPU fabric state on this GPU (pre-Hopper); the NVSwitch fabric is not "
                    f"fully up: inactive links {inactive[:8]}, NVLink P2P not OK for {bad_p2p[:8]}",
                    (origin,),
                    cite(exp.fabric_manager, "every NVLink active and NVLink P2P OK"),
                    FM_REMEDY,
                )
            )
        return judged(
            findings, "pre-Hopper: links and NVLink P2P as the fabric manager sets them up", props
        )
    bad = [
        g
        for g in gpus
        if g.fabric_state != "Completed" or (g.fabric_status or "Success") != "Success"
    ]
    findings = []
    if bad:
        listing = ", ".join(f"GPU {g.index}: {g.fabric_state}/{g.fabric_status}" for g in bad)
        findings.append(
            Finding(
                f"{len(bad)} of {len(gpus)} GPUs are not registered with the fabric ({listing})",
                (origin,),
                cite(exp.fabric_manager, "fabric state Completed, status Success on every GPU"),
                FM_REMEDY,
            )
        )
    return judged(findings, f"{len(gpus)} GPUs: fabric Completed/Success", props)


def judge_pcie(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Each GPU's PCIe link runs at its full width and its link's maximum generation reaches
    the profile's. The current generation is recorded, not judged: idle GPUs lower it."""
    gpus = [g for g in ev.facts.gpus if g.pcie_width is not None or g.pcie_gen_max is not None]
    if not gpus:
        return unknown(ev.facts, "gpus", "PCIe link state")
    props: list[Property] = [
        ("pcie_gen", ",".join(f"{g.pcie_gen}/{g.pcie_gen_max}" for g in gpus)),
        ("pcie_width", ",".join(f"x{g.pcie_width}/x{g.pcie_width_max}" for g in gpus)),
    ]
    origin = origin_of(ev.facts, "gpus")
    findings = []
    narrow = [
        g for g in gpus if g.pcie_width and g.pcie_width_max and g.pcie_width < g.pcie_width_max
    ]
    if narrow:
        findings.append(
            Finding(
                "PCIe link narrower than the GPU supports: "
                + ", ".join(
                    f"GPU {g.index} x{g.pcie_width} of x{g.pcie_width_max}" for g in narrow
                ),
                (origin,),
                "every GPU at its maximum link width",
                "a degraded link (reseat the GPU or riser, check the slot); host-device copies and "
                "GPUDirect RDMA through it are slowed in proportion",
            )
        )
    limits = (
        (exp.pcie_width, "pcie_width_max", "width", "x{}",
         "a different slot or riser than the instance type has"),
        (exp.pcie_gen, "pcie_gen_max", "generation", "gen {}",
         "the link trained at a lower generation than the platform supports: check the slot, "
         "riser and BIOS PCIe settings"),
    )  # fmt: skip
    for limit, field, what, spell, remedy in limits:
        if limit is None:
            continue
        low = [
            g for g in gpus if getattr(g, field) is not None and getattr(g, field) < limit.integer
        ]
        if low:
            listing = ", ".join(f"GPU {g.index} {spell.format(getattr(g, field))}" for g in low)
            findings.append(
                Finding(
                    f"PCIe link {what} below the profile: {listing}",
                    (origin,),
                    cite(limit, spell.format(limit.integer)),
                    remedy,
                )
            )
    return judged(findings, f"{len(gpus)} GPUs at full PCIe width", props)


def judge_nic_affinity(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every GPU has an RDMA NIC close to it (nvidia-smi topo -m distance PIX or PXB, as on
    p4d/p5), so GPUDirect RDMA does not cross the CPU."""
    if exp.nic_affinity is None:
        return not_asked("the profile sets no host.nic_affinity (no RDMA NICs expected)")
    if not ev.facts.topology:
        return unknown(ev.facts, "topology", "GPU-NIC distances")
    allowed = TOPOLOGY_DISTANCES.index(str(exp.nic_affinity.value))
    nearest: dict[str, str] = {}
    for gpu, row in sorted(ev.facts.topology.items()):
        if not gpu.startswith("GPU"):
            continue
        cells = [
            cell
            for column, cell in row.items()
            if column.startswith("NIC") and cell in TOPOLOGY_DISTANCES
        ]
        nearest[gpu] = min(cells, key=TOPOLOGY_DISTANCES.index) if cells else "none"
    props: list[Property] = [("nearest_nic", ",".join(f"{g}:{d}" for g, d in nearest.items()))]
    far = {g: d for g, d in nearest.items() if d == "none" or TOPOLOGY_DISTANCES.index(d) > allowed}
    findings = []
    if far:
        findings.append(
            Finding(
                "GPUs without a close NIC: "
                + ", ".join(f"{g} nearest {d}" for g, d in far.items()),
                (origin_of(ev.facts, "topology"),),
                cite(
                    exp.nic_affinity, f"a NIC at {exp.nic_affinity.value} or closer for every GPU"
                ),
                "RDMA NICs missing from the container (request them from the device plugin), or "
                "ranks bound to GPUs far from their NICs",
            )
        )
    return judged(findings, "every GPU has a close NIC", props)


def judge_rdma(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """The node has the profile's RDMA devices (EFA or InfiniBand), memlock is unlimited and
    GPUDirect RDMA support is loaded (nvidia_peermem, or dma-buf on kernel >= 5.12 with the
    open kernel modules)."""
    wanted = [exp.rdma_kind, exp.rdma_devices, exp.memlock_unlimited, exp.rdma_gdr]
    if all(e is None for e in wanted):
        return not_asked("the profile sets no host.rdma (no RDMA network expected)")
    facts = ev.facts
    props: list[Property] = [
        ("rdma_devices", ",".join(f"{n}({d})" for n, d in facts.rdma_devices) or "none"),
        (
            "efa_pci_functions",
            facts.efa_pci_devices if facts.efa_pci_devices is not None else "unknown",
        ),
        ("memlock", facts.memlock or "unknown"),
        ("nvidia_peermem", facts.peermem if facts.peermem is not None else "unknown"),
        ("dmabuf", facts.dmabuf if facts.dmabuf is not None else "unknown"),
    ]
    if facts.memlock is None and not facts.rdma_devices:
        return unknown(facts, "rdma", "RDMA devices and limits")
    origin = origin_of(facts, "rdma")
    findings = []
    if exp.rdma_devices is not None:
        kind = str(exp.rdma_kind.value) if exp.rdma_kind is not None else None
        count = rdma_counts(facts)[kind] if kind else len(facts.rdma_devices)
        want = exp.rdma_devices.integer
        if count != want:
            findings.append(
                Finding(
                    f"{count} {kind or 'RDMA'} device(s) in the container, expected {want}",
                    (origin, f"/sys/class/infiniband: {props[0][1]}"),
                    cite(exp.rdma_devices, f"{want} {kind or 'RDMA'} devices"),
                    "request every NIC from the device plugin (vpc.amazonaws.com/efa on EKS, "
                    "rdma/ib for InfiniBand) and check the efa / ib_uverbs kernel modules",
                )
            )
    if (
        exp.memlock_unlimited is not None
        and exp.memlock_unlimited.value
        and facts.memlock != "unlimited"
    ):
        findings.append(
            Finding(
                f"memlock limit is {facts.memlock} bytes, not unlimited",
                ("RLIMIT_MEMLOCK of this process (inherited by the ranks)",),
                cite(exp.memlock_unlimited, "ulimit -l unlimited"),
                "RDMA registers GPU and host memory: run with ulimit -l unlimited (Docker "
                "--ulimit memlock=-1; Kubernetes: the IPC_LOCK capability and the node's "
                "containerd "
                "LimitMEMLOCK=infinity)",
            )
        )
    if exp.rdma_gdr is not None and exp.rdma_gdr.value and not (facts.peermem or facts.dmabuf):
        findings.append(
            Finding(
                "no GPUDirect RDMA support: nvidia_peermem is not loaded and dma-buf is not "
                "available",
                (f"kernel {facts.kernel}, {origin}",),
                cite(
                    exp.rdma_gdr,
                    "nvidia_peermem loaded or dma-buf (kernel >= 5.12, open kernel modules)",
                ),
                "load nvidia_peermem (modprobe nvidia_peermem) or use a kernel >= 5.12 with "
                "NVIDIA's "
                "open kernel modules for dma-buf; without it NCCL runs without /GDRDMA",
            )
        )
    return judged(findings, "RDMA devices, memlock and GPUDirect RDMA as expected", props)


def per_node(
    judge: Callable[[HostEvidence, HostExpectations], Judgement],
    evidence: list[tuple[str, HostEvidence]],
    expectations: HostExpectations,
) -> Judgement:
    """One node: its judgement as it is. Several: failed if any node failed (each finding
    names its node), skipped if any node could not be judged, else passed."""
    if len(evidence) == 1:
        return judge(evidence[0][1], expectations)
    verdicts = [(node, judge(ev, expectations)) for node, ev in evidence]
    findings: list[Finding] = []
    props: list[Property] = []
    for node, verdict in verdicts:
        props += [(f"{node}.{name}", value) for name, value in verdict.properties]
        failures = verdict.findings or (
            (Finding(verdict.summary, (), "", ""),) if verdict.status == "failed" else ()
        )
        findings += [
            Finding(f"node {node}: {f.summary}", f.evidence, f.expected, f.remedy)
            for f in failures
        ]
    skipped = [(node, v) for node, v in verdicts if v.status == "skipped"]
    if not findings and skipped:
        node, first = skipped[0]
        return Judgement("skipped", f"node {node}: {first.summary}", (), tuple(props),
                         skip=first.skip)  # fmt: skip
    return judged(findings, f"{len(verdicts)} nodes", props)
