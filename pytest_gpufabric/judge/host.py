"""Judge host facts (host.py) against the profile's ``host`` section. Like transports.py:
each check returns a Judgement whose findings name the GPU, link or mount, the evidence and
its origin, the expectation with its source, and one remedy; and whose properties record the
facts even when the check passes, so a passing run still documents the node."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..evidence.host import HostFacts, rdma_counts
from ..profiles.model import TOPOLOGY_DISTANCES, Expectation, HostExpectations
from .judgement import Finding, Judgement, Property, judged, skipped

GIB = 1 << 30


@dataclass
class HostEvidence:
    facts: HostFacts
    before: HostFacts | None = None  # taken before the first collective (NVLink counter deltas)
    rank_shm: list[tuple[int, int | None]] | None = None  # (rank, st_dev of /dev/shm)


def _cite(exp: Expectation, text: str) -> str:
    return f"{text} ({exp.cite()})"


def _origin(facts: HostFacts, family: str) -> str:
    return facts.origins.get(family, facts.origin)


def _unknown(facts: HostFacts, family: str, what: str) -> Judgement:
    why = facts.unavailable.get(family) or facts.unavailable.get("nvml") or f"not in {facts.origin}"
    return skipped(f"{what} unknown: {why}")


# --- /dev/shm --------------------------------------------------------------------------------

SHM_REMEDY = (
    "give the ranks a larger /dev/shm: Docker --shm-size=1g or more (NCCL troubleshooting "
    "guide), Kubernetes an emptyDir {medium: Memory, sizeLimit: 64Gi} volume mounted at "
    "/dev/shm (as the p4d pods of seed 000 do); NCCL >= 2.28 still needs tens of MB of /dev/shm "
    "per process even with cuMem host buffers"
)


def judge_shm(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """/dev/shm is mounted, tmpfs, and at least the profile's size, with that much free."""
    shm = ev.facts.shm
    if shm is None:
        return _unknown(ev.facts, "shm", "/dev/shm")
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
                        _cite(exp.shm_min_gib, f"{label} >= {minimum:g} GiB"),
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
    devices = Counter(dev for _, dev in ev.rank_shm)
    props: list[Property] = [("shm_mounts", len(devices))]
    findings = []
    if len(devices) > 1:
        by_rank = ", ".join(f"rank {r}: st_dev {d}" for r, d in ev.rank_shm)
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


# --- fabric manager, NVLink, P2P -------------------------------------------------------------

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
        return skipped("the profile does not require a fabric manager (host.fabric_manager)")
    gpus = ev.facts.gpus
    states = Counter(f"{g.fabric_state}/{g.fabric_status}" for g in gpus if g.fabric_state)
    props: list[Property] = [("fabric_states", ", ".join(f"{s}×{n}" for s, n in states.items()))]
    if not gpus or not any(g.fabric_state for g in gpus):
        return _unknown(ev.facts, "fabric", "fabric state")
    origin = _origin(ev.facts, "fabric")
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
                    _cite(exp.fabric_manager, "every NVLink active and NVLink P2P OK"),
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
                _cite(exp.fabric_manager, "fabric state Completed, status Success on every GPU"),
                FM_REMEDY,
            )
        )
    return judged(findings, f"{len(gpus)} GPUs: fabric Completed/Success", props)


def judge_nvlink(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every NVLink is active, each GPU has the profile's link count and version, and
    nvidia-smi topo -m shows NV<links> between every GPU pair."""
    gpus = [g for g in ev.facts.gpus if g.links]
    if not gpus:
        return _unknown(ev.facts, "nvlink", "NVLink state")
    active = {g.index: sum(link.active for link in g.links.values()) for g in gpus}
    versions = sorted({link.version for g in gpus for link in g.links.values() if link.version})
    props: list[Property] = [
        ("nvlinks_per_gpu", ",".join(str(active[g.index]) for g in gpus)),
        ("nvlink_version", ",".join(versions) or "unknown"),
    ]
    origin = _origin(ev.facts, "nvlink")
    findings = []
    inactive = [(g.index, n) for g in gpus for n, link in g.links.items() if not link.active]
    if inactive:
        findings.append(
            Finding(
                f"{len(inactive)} NVLink(s) inactive: "
                + ", ".join(f"GPU {g} link {n}" for g, n in inactive[:12]),
                (origin,),
                "every NVLink active",
                "an inactive link halves (or worse) the bandwidth through it: check nvidia-smi "
                "nvlink -s, the fabric manager, and Xid 74 in the kernel log; the GPU or baseboard "
                "may need service",
            )
        )
    if exp.nvlink_links is not None:
        want = exp.nvlink_links.integer
        short = {i: n for i, n in active.items() if n != want}
        if short:
            findings.append(
                Finding(
                    "active NVLinks per GPU differ from the profile: "
                    + ", ".join(f"GPU {i}: {n}" for i, n in short.items()),
                    (origin,),
                    _cite(exp.nvlink_links, f"{want} active links per GPU"),
                    "a different GPU/board than the profile describes, or links down (see "
                    "nvidia-smi nvlink -s)",
                )
            )
        findings += _topology_links(ev.facts, exp.nvlink_links, want)
    if exp.nvlink_version is not None and versions and versions != [str(exp.nvlink_version.value)]:
        findings.append(
            Finding(
                f"NVLink version {', '.join(versions)}, expected {exp.nvlink_version.value}",
                (origin,),
                _cite(exp.nvlink_version, f"NVLink {exp.nvlink_version.value}"),
                "a different GPU generation than the profile describes",
            )
        )
    return judged(findings, f"{len(gpus)} GPUs, links per GPU {props[0][1]}", props)


def _topology_links(facts: HostFacts, exp: Expectation, want: int) -> list[Finding]:
    gpus = sorted(k for k in facts.topology if k.startswith("GPU"))
    wrong = [
        (a, b, facts.topology[a].get(b, "?"))
        for a in gpus
        for b in gpus
        if a < b and facts.topology[a].get(b) != f"NV{want}"
    ]
    if not wrong:
        return []
    listing = ", ".join(f"{a}-{b}: {cell}" for a, b, cell in wrong[:8])
    return [
        Finding(
            f"nvidia-smi topo -m shows {listing}, not NV{want}",
            (_origin(facts, "topology"),),
            _cite(exp, f"NV{want} between every GPU pair"),
            "GPUs that do not reach each other over all their NVLinks: check the fabric manager "
            "and nvidia-smi nvlink -s",
        )
    ]


def judge_nvlink_errors(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """NVLink error counters while the suite's collectives ran: replay and recovery errors may
    not grow beyond the profile's count per link, CRC errors not beyond its rate per second
    and link (DCGM's form: healthy H200 links under load log a few CRC data errors a second,
    corrected without replay). Absolute counts are not judged: healthy links carry old counts."""
    limits = {"replay": exp.max_replay, "recovery": exp.max_recovery}
    if exp.max_crc_per_s is None and all(v is None for v in limits.values()):
        return skipped("the profile sets no host.nvlink_errors")
    if ev.before is None:
        return skipped(
            "NVLink counters are judged as increases over a live run; no 'before' reading"
        )
    before, after = ev.before.link_counters(), ev.facts.link_counters()
    if not after:
        return _unknown(ev.facts, "nvlink", "NVLink error counters")
    growth: Counter[tuple[int, int, str]] = Counter()
    for (gpu, link, name), value in after.items():
        kind = "crc" if name.startswith("crc") else name
        growth[(gpu, link, kind)] += max(value - before.get((gpu, link, name), value), 0)
    totals = Counter({"crc": 0, "replay": 0, "recovery": 0})
    for (_, _, kind), value in growth.items():
        totals[kind] += value
    props: list[Property] = [(f"nvlink_{kind}_increase", n) for kind, n in totals.items()]
    seconds = None
    if ev.before.taken_at is not None and ev.facts.taken_at is not None:
        seconds = max(ev.facts.taken_at - ev.before.taken_at, 1e-3)
        peak = max((n for (_, _, k), n in growth.items() if k == "crc"), default=0)
        props += [
            ("nvlink_interval_s", round(seconds, 1)),
            ("nvlink_crc_per_s_max", round(peak / seconds, 2)),
        ]
    where = (f"before: {ev.before.origin}", f"after: {ev.facts.origin}")
    remedy = (
        "a link that logs errors under load is marginal: watch nvidia-smi nvlink -e and the "
        "kernel log (Xid 74); replay and recovery errors cost bandwidth and can hang jobs"
    )
    findings = []
    for kind, exp_limit in limits.items():
        if exp_limit is None:
            continue
        over = [
            (g, link, n)
            for (g, link, k), n in growth.items()
            if k == kind and n > exp_limit.integer
        ]
        if over:
            listing = ", ".join(f"GPU {g} link {link}: +{n}" for g, link, n in over[:8])
            findings.append(
                Finding(
                    f"NVLink {kind} errors grew during the run: {listing}",
                    where,
                    _cite(exp_limit, f"at most +{exp_limit.integer} per link"),
                    remedy,
                )
            )
    if exp.max_crc_per_s is not None and seconds is not None:
        rate = exp.max_crc_per_s.number
        over = [
            (g, link, n) for (g, link, k), n in growth.items() if k == "crc" and n / seconds > rate
        ]
        if over:
            listing = ", ".join(
                f"GPU {g} link {link}: +{n} ({n / seconds:.0f}/s)" for g, link, n in over[:8]
            )
            findings.append(
                Finding(
                    f"NVLink CRC errors above {rate:g}/s over {seconds:.1f} s: {listing}",
                    where,
                    _cite(exp.max_crc_per_s, f"at most {rate:g} CRC errors per second and link"),
                    remedy,
                )
            )
    return judged(findings, "NVLink error counters steady", props)


P2P_LEGEND = {"OK": "OK", "CNS": "chipset not supported", "GNS": "GPU not supported",
              "TNS": "topology not supported", "DR": "disabled by regkey", "NS": "not supported",
              "U": "unknown"}  # fmt: skip


def judge_p2p(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """NVML reports the profile's P2P capabilities (read, write, NVLink, atomics) OK between
    every pair of GPUs: what NCCL's P2P transport checks before it uses P2P."""
    if exp.p2p is None:
        return skipped("the profile sets no host.p2p")
    if not ev.facts.p2p:
        return _unknown(ev.facts, "p2p", "P2P capability")
    caps = exp.p2p.names
    bad = [
        (a, b, cap, status.get(cap, "unread"))
        for (a, b), status in sorted(ev.facts.p2p.items())
        for cap in caps
        if status.get(cap) != "OK"
    ]
    summary = Counter(
        f"{cap}={status.get(cap, '-')}" for status in ev.facts.p2p.values() for cap in caps
    )
    props: list[Property] = [
        ("p2p_pairs", len(ev.facts.p2p)),
        ("p2p_status", ", ".join(f"{k}×{n}" for k, n in sorted(summary.items()))),
    ]
    findings = []
    if bad:
        listing = ", ".join(
            f"GPU{a}->GPU{b} {cap}: {P2P_LEGEND.get(s, s)}" for a, b, cap, s in bad[:8]
        )
        findings.append(
            Finding(
                f"{len(bad)} P2P capabilities not OK: {listing}",
                (_origin(ev.facts, "p2p"),),
                _cite(exp.p2p, f"{', '.join(caps)} OK between every GPU pair"),
                "NCCL will not use P2P where NVML says it cannot: check the fabric manager, "
                "nvidia-smi topo -p2p r/w/n/a, and (in VMs) that peer-to-peer is passed through",
            )
        )
    return judged(findings, f"{len(ev.facts.p2p)} GPU pairs: {', '.join(caps)} OK", props)


def judge_pcie(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Each GPU's PCIe link runs at its full width and its link's maximum generation reaches
    the profile's. The current generation is recorded, not judged: idle GPUs lower it."""
    gpus = [g for g in ev.facts.gpus if g.pcie_width is not None or g.pcie_gen_max is not None]
    if not gpus:
        return _unknown(ev.facts, "gpus", "PCIe link state")
    props: list[Property] = [
        ("pcie_gen", ",".join(f"{g.pcie_gen}/{g.pcie_gen_max}" for g in gpus)),
        ("pcie_width", ",".join(f"x{g.pcie_width}/x{g.pcie_width_max}" for g in gpus)),
    ]
    origin = _origin(ev.facts, "gpus")
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
                    _cite(limit, spell.format(limit.integer)),
                    remedy,
                )
            )
    return judged(findings, f"{len(gpus)} GPUs at full PCIe width", props)


def judge_nic_affinity(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every GPU has an RDMA NIC close to it (nvidia-smi topo -m distance PIX or PXB, as on
    p4d/p5), so GPUDirect RDMA does not cross the CPU."""
    if exp.nic_affinity is None:
        return skipped("the profile sets no host.nic_affinity (no RDMA NICs expected)")
    if not ev.facts.topology:
        return _unknown(ev.facts, "topology", "GPU-NIC distances")
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
                (_origin(ev.facts, "topology"),),
                _cite(
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
        return skipped("the profile sets no host.rdma (no RDMA network expected)")
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
        return _unknown(facts, "rdma", "RDMA devices and limits")
    origin = _origin(facts, "rdma")
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
                    _cite(exp.rdma_devices, f"{want} {kind or 'RDMA'} devices"),
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
                _cite(exp.memlock_unlimited, "ulimit -l unlimited"),
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
                _cite(
                    exp.rdma_gdr,
                    "nvidia_peermem loaded or dma-buf (kernel >= 5.12, open kernel modules)",
                ),
                "load nvidia_peermem (modprobe nvidia_peermem) or use a kernel >= 5.12 with "
                "NVIDIA's "
                "open kernel modules for dma-buf; without it NCCL runs without /GDRDMA",
            )
        )
    return judged(findings, "RDMA devices, memlock and GPUDirect RDMA as expected", props)


HOST_CHECKS: dict[str, Callable[[HostEvidence, HostExpectations], Judgement]] = {
    "shm": judge_shm,
    "shm_shared": judge_shm_shared,
    "fabric_manager": judge_fabric_manager,
    "nvlink": judge_nvlink,
    "nvlink_errors": judge_nvlink_errors,
    "p2p": judge_p2p,
    "pcie": judge_pcie,
    "nic_affinity": judge_nic_affinity,
    "rdma": judge_rdma,
}
