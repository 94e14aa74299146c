"""Facts about the host a node's GPUs sit in: fabric manager state, NVLink links and error
counters, P2P capability, PCIe links, clocks and what holds them down, the compute processes
on each GPU, GPU-NIC distance, /dev/shm, RDMA devices, memlock and GPUDirect RDMA support.
One model, filled live (NVML, sysfs, /proc, nvidia-smi) or from recorded captures
(host_captures.py), judged by host_checks.py.

Every fact says where it came from (``origin``), so a finding can cite it, and collection
never raises: a tool or permission that is missing becomes a note in ``unavailable``.
"""

from __future__ import annotations

import ctypes
import os
import re
import resource
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

# nvmlNvLinkVersion_t -> NVLink generation (nvml.h; 6 is Hopper's NVLink 4)
NVLINK_VERSIONS = {1: "1.0", 2: "2.0", 3: "2.2", 4: "3.0", 5: "3.1", 6: "4.0", 7: "5.0", 8: "6.0"}
P2P_CAPS = ("read", "write", "nvlink", "atomics")  # NVML_P2P_CAPS_INDEX_* 0..3
NVLINK_COUNTERS = ("replay", "recovery", "crc_flit", "crc_data")  # NVML_NVLINK_ERROR_DL_* 0..3
FABRIC_STATES = {0: "Not Supported", 1: "Not Started", 2: "In Progress", 3: "Completed"}
# nvmlClocksEventReason* bits (nvml.h; "throttle reasons" before driver 535). The names are
# those of nvidia-smi -q -x (<clocks_event_reason_NAME>), so live and recorded facts agree.
CLOCK_REASONS = {
    0x1: "gpu_idle", 0x2: "applications_clocks_setting", 0x4: "sw_power_cap",
    0x8: "hw_slowdown", 0x10: "sync_boost", 0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown", 0x80: "hw_power_brake_slowdown", 0x100: "display_clocks_setting",
    0x200: "board_limit", 0x400: "reliability",
}  # fmt: skip
# nvmlPerfPolicyType_t -> name: nvmlDeviceGetViolationStatus counts, per policy, the time
# (ns) clocks were held below what was asked, cumulative since the driver loaded.
VIOLATION_POLICIES = {
    0: "power", 1: "thermal", 2: "sync_boost", 3: "board_limit", 4: "low_utilization",
    5: "reliability", 10: "app_clocks", 11: "base_clocks",
}  # fmt: skip
EFA_VENDOR = 0x1D0F
SHM_PATH = "/dev/shm"


@dataclass
class Link:
    active: bool
    version: str | None = None
    errors: dict[str, int] = field(default_factory=dict)  # counter name -> absolute count


@dataclass
class GpuProcess:
    """A compute process NVML (or nvidia-smi) lists on a GPU. The pid is as the driver sees
    it: in a container, the host's pid namespace (or 0), not the container's."""

    pid: int
    used_mib: int | None = None


@dataclass
class GpuHost:
    index: int
    name: str
    uuid: str = ""
    pci_bus_id: str = ""
    fabric_state: str | None = None  # "Completed", "In Progress", "Not Started", "Not Supported"
    fabric_status: str | None = None  # "Success" or an error name; meaningful when Completed
    links: dict[int, Link] = field(default_factory=dict)
    pcie_gen: int | None = None  # current
    pcie_gen_max: int | None = None  # of the link (GPU and slot)
    pcie_width: int | None = None
    pcie_width_max: int | None = None
    memory_mib: int | None = None  # total framebuffer (auto-detection's fingerprint)
    clock_reasons: list[str] | None = None  # CLOCK_REASONS active at the reading; None: unread
    # Time clocks were held down, cumulative, by reason: VIOLATION_POLICIES (NVML) or the
    # "Clocks Event Reasons Counters" of nvidia-smi -q (sw_power_cap, hw_therm_slowdown, ...).
    clock_held_ns: dict[str, int] = field(default_factory=dict)
    sm_clock_mhz: int | None = None  # at the reading
    app_clock_mhz: int | None = None  # applications clock (graphics): nvidia-smi -ac caps it
    app_clock_default_mhz: int | None = None
    max_clock_mhz: int | None = None  # graphics
    processes: list[GpuProcess] | None = None  # compute processes at the reading; None: unread


@dataclass
class Shm:
    path: str
    fstype: str | None
    size: int | None  # bytes
    free: int | None
    dev: int | None  # st_dev: ranks must share it (NCCL >= 2.24)
    origin: str


@dataclass
class HostFacts:
    origin: str  # "this node (NVML, sysfs)" or the capture files
    driver: str | None = None
    gpus: list[GpuHost] = field(default_factory=list)
    p2p: dict[tuple[int, int], dict[str, str]] = field(default_factory=dict)  # cap -> OK/NS/...
    topology: dict[str, dict[str, str]] = field(default_factory=dict)  # nvidia-smi topo -m
    nics: dict[str, str] = field(default_factory=dict)  # NIC0 -> mlx5_0 (topo -m legend)
    shm: Shm | None = None
    rdma_devices: list[tuple[str, str]] = field(default_factory=list)  # (name, driver)
    efa_pci_devices: int | None = None
    memlock: str | None = None  # "unlimited" or bytes
    peermem: bool | None = None
    dmabuf: bool | None = None
    kernel: str | None = None
    taken_at: float | None = None  # time.time() of the reading (NVLink error rates)
    origins: dict[str, str] = field(default_factory=dict)  # fact family -> where it came from
    unavailable: dict[str, str] = field(default_factory=dict)  # fact family -> why not known

    def link_counters(self) -> dict[tuple[int, int, str], int]:
        return {
            (gpu.index, number, name): value
            for gpu in self.gpus
            for number, link in gpu.links.items()
            for name, value in link.errors.items()
        }


# --- live collection -------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_nvml(facts: HostFacts, indices: list[int] | None = None) -> None:
    """GPUs, fabric state, NVLink links and counters, P2P status and PCIe links from NVML.
    ``indices``: the NVML indices to read (the GPUs CUDA shows the ranks), default all."""
    try:
        import pynvml
    except ImportError:
        facts.unavailable["nvml"] = "nvidia-ml-py is not installed"
        return
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        facts.unavailable["nvml"] = f"NVML unavailable: {exc}"
        return
    try:
        facts.driver = _text(pynvml.nvmlSystemGetDriverVersion())
        count = pynvml.nvmlDeviceGetCount()
        wanted = indices if indices is not None else list(range(count))
        handles = {i: pynvml.nvmlDeviceGetHandleByIndex(i) for i in wanted}
        for index, handle in handles.items():
            gpu = GpuHost(
                index,
                _text(pynvml.nvmlDeviceGetName(handle)),
                _text(pynvml.nvmlDeviceGetUUID(handle)),
                _text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
            )
            gpu.memory_mib = int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) >> 20
            _nvml_fabric(pynvml, handle, gpu)
            _nvml_links(pynvml, handle, gpu)
            _nvml_pcie(pynvml, handle, gpu)
            _nvml_clocks(pynvml, handle, gpu)
            why = _nvml_processes(pynvml, handle, gpu)
            if why:
                facts.unavailable["processes"] = why
            facts.gpus.append(gpu)
        for a, ha in handles.items():
            for b, hb in handles.items():
                if a != b:
                    facts.p2p[(a, b)] = {
                        # Literal indices: NVML_P2P_CAPS_INDEX_READ is the tuple (0,) in
                        # nvidia-ml-py 10.418-13.610 (a stray trailing comma).
                        cap: _P2P_STATUS.get(_call(pynvml.nvmlDeviceGetP2PStatus, ha, hb, i), "U")
                        for i, cap in enumerate(P2P_CAPS)
                    }
        for family in ("gpus", "p2p", "clocks", "processes"):
            facts.origins[family] = "NVML on this node"
    except pynvml.NVMLError as exc:
        facts.unavailable["nvml"] = f"NVML query failed: {exc}"
    finally:
        pynvml.nvmlShutdown()


_P2P_STATUS = {0: "OK", 1: "CNS", 2: "GNS", 3: "TNS", 4: "DR", 5: "NS", 6: "U"}


def _call(fn: Any, *args: Any) -> Any:
    """An NVML call whose failure (not supported, no permission) is a missing value."""
    try:
        return fn(*args)
    except Exception:
        return None


def _nvml_fabric(pynvml: Any, handle: Any, gpu: GpuHost) -> None:
    info_type = getattr(pynvml, "c_nvmlGpuFabricInfoV_t", None)
    getter = getattr(pynvml, "nvmlDeviceGetGpuFabricInfoV", None)
    if info_type is None or getter is None:
        return  # too old an nvidia-ml-py: the nvidia-smi XML fallback fills it
    info = info_type()
    try:
        # By reference: passing the struct itself crashes the interpreter (research §9), and
        # the old non-V struct misreads state 0 on healthy GPUs.
        getter(handle, ctypes.byref(info))
    except pynvml.NVMLError_NotSupported:
        gpu.fabric_state = "Not Supported"
        return
    except Exception:
        return
    gpu.fabric_state = FABRIC_STATES.get(int(info.state), f"state {info.state}")
    gpu.fabric_status = "Success" if int(info.status) == 0 else f"NVML error {int(info.status)}"


def _nvml_links(pynvml: Any, handle: Any, gpu: GpuHost) -> None:
    for number in range(int(getattr(pynvml, "NVML_NVLINK_MAX_LINKS", 18))):
        state = _call(pynvml.nvmlDeviceGetNvLinkState, handle, number)
        if state is None:
            break
        version = _call(pynvml.nvmlDeviceGetNvLinkVersion, handle, number)
        errors = {}
        for counter, name in enumerate(NVLINK_COUNTERS):
            value = _call(pynvml.nvmlDeviceGetNvLinkErrorCounter, handle, number, counter)
            if value is not None:
                errors[name] = int(value)
        gpu.links[number] = Link(bool(state), NVLINK_VERSIONS.get(version or 0), errors)


def _nvml_pcie(pynvml: Any, handle: Any, gpu: GpuHost) -> None:
    gpu.pcie_gen = _call(pynvml.nvmlDeviceGetCurrPcieLinkGeneration, handle)
    gpu.pcie_gen_max = _call(pynvml.nvmlDeviceGetMaxPcieLinkGeneration, handle)
    gpu.pcie_width = _call(pynvml.nvmlDeviceGetCurrPcieLinkWidth, handle)
    gpu.pcie_width_max = _call(pynvml.nvmlDeviceGetMaxPcieLinkWidth, handle)


def _nvml_clocks(pynvml: Any, handle: Any, gpu: GpuHost) -> None:
    """Clocks now, what holds them down now (the event reasons bitmask) and for how long so
    far (the violation counters: a before/after difference says what held them during a run)."""
    mask = None
    for getter in ("nvmlDeviceGetCurrentClocksEventReasons",  # driver >= 535
                   "nvmlDeviceGetCurrentClocksThrottleReasons"):  # fmt: skip
        if mask is None and hasattr(pynvml, getter):
            mask = _call(getattr(pynvml, getter), handle)
    if mask is not None:
        gpu.clock_reasons = reason_names(int(mask))
    for policy, name in VIOLATION_POLICIES.items():
        violation = _call(pynvml.nvmlDeviceGetViolationStatus, handle, policy)
        if violation is not None:
            gpu.clock_held_ns[name] = int(violation.violationTime)
    graphics, sm = pynvml.NVML_CLOCK_GRAPHICS, pynvml.NVML_CLOCK_SM
    gpu.sm_clock_mhz = _call(pynvml.nvmlDeviceGetClockInfo, handle, sm)
    gpu.app_clock_mhz = _call(pynvml.nvmlDeviceGetApplicationsClock, handle, graphics)
    gpu.app_clock_default_mhz = _call(
        pynvml.nvmlDeviceGetDefaultApplicationsClock, handle, graphics
    )
    gpu.max_clock_mhz = _call(pynvml.nvmlDeviceGetMaxClockInfo, handle, graphics)


def reason_names(mask: int) -> list[str]:
    """The names of the bits set in a clocks event reasons mask (unknown bits in hex)."""
    bits = [1 << n for n in range(mask.bit_length()) if mask >> n & 1]
    return [CLOCK_REASONS.get(bit, hex(bit)) for bit in bits]


def _nvml_processes(pynvml: Any, handle: Any, gpu: GpuHost) -> str | None:
    """The GPU's compute processes; returns why they are unknown, if they are."""
    # Only the v3 call: the v1/v2 structs of older nvidia-ml-py misread newer drivers.
    getter = getattr(pynvml, "nvmlDeviceGetComputeRunningProcesses_v3", None)
    if getter is None:
        return "nvidia-ml-py has no nvmlDeviceGetComputeRunningProcesses_v3 (too old)"
    try:
        found = getter(handle)
    except Exception as exc:
        return f"nvmlDeviceGetComputeRunningProcesses_v3 failed: {exc}"
    gpu.processes = [
        GpuProcess(int(p.pid), None if p.usedGpuMemory is None else int(p.usedGpuMemory) >> 20)
        for p in found
    ]
    return None


def read_shm(path: str = SHM_PATH) -> Shm:
    """Mounted? tmpfs? size, free and st_dev of /dev/shm as this process sees it."""
    origin = f"statvfs({path}) and /proc/self/mountinfo of pid {os.getpid()}"
    try:
        stat, vfs = os.stat(path), os.statvfs(path)
    except OSError as exc:
        return Shm(path, None, None, None, None, f"{origin}: {exc.strerror}")
    fstype = None
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split(" - ")
            if len(fields) == 2 and fields[0].split()[4] == path:
                fstype = fields[1].split()[0]  # the last mount over the path wins
    except OSError:
        pass
    return Shm(
        path, fstype, vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize, stat.st_dev, origin
    )


def read_rdma_devices(facts: HostFacts, sys_root: Path = Path("/sys")) -> Path:
    """RDMA devices and their kernel driver (efa, mlx5_core, ...); returns where it looked."""
    ib = sys_root / "class" / "infiniband"
    if ib.is_dir():
        for entry in sorted(ib.iterdir()):
            driver = entry / "device" / "driver"
            facts.rdma_devices.append(
                (entry.name, driver.resolve().name if driver.exists() else "?")
            )
    facts.origins["rdma"] = str(ib)
    return ib


def read_rdma(facts: HostFacts, sys_root: Path = Path("/sys")) -> None:
    """RDMA devices (and their kernel driver), EFA PCI functions, memlock, GPUDirect RDMA."""
    ib = read_rdma_devices(facts, sys_root)
    pci = sys_root / "bus" / "pci" / "devices"
    if pci.is_dir():
        count = 0
        for function in pci.iterdir():
            try:
                vendor = int((function / "vendor").read_text(), 16)
                product = int((function / "device").read_text(), 16)
            except (OSError, ValueError):
                continue
            count += vendor == EFA_VENDOR and (product & 0xFFF0) == 0xEFA0  # as aws-ofi-nccl does
        facts.efa_pci_devices = count
    soft, _ = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    facts.memlock = "unlimited" if soft == resource.RLIM_INFINITY else str(soft)
    facts.peermem = (sys_root / "module" / "nvidia_peermem").exists()
    facts.kernel = os.uname().release
    try:
        version = Path("/proc/driver/nvidia/version").read_text()
    except OSError:
        version = ""
    major_minor = tuple(int(x) for x in re.findall(r"\d+", facts.kernel)[:2])
    # dma-buf GPUDirect RDMA needs kernel >= 5.12 and NVIDIA's open kernel modules.
    facts.dmabuf = major_minor >= (5, 12) and "Open Kernel Module" in version
    facts.origins["rdma"] = (
        f"{ib}, {pci}, RLIMIT_MEMLOCK, {sys_root}/module, /proc/driver/nvidia/version"
    )


def rdma_counts(facts: HostFacts) -> dict[str, int]:
    """RDMA devices by kind: EFA (driver efa) and InfiniBand (mlx* drivers)."""
    drivers = Counter(driver for _, driver in facts.rdma_devices)
    return {
        "efa": drivers.get("efa", 0),
        "ib": sum(n for d, n in drivers.items() if d.startswith("mlx")),
    }


def read_topology(facts: HostFacts) -> None:
    """nvidia-smi topo -m: GPU-GPU links and GPU-NIC distances (NVML has no NIC view)."""
    from .host_captures import parse_topo_matrix

    tool = shutil.which("nvidia-smi")
    if tool is None:
        facts.unavailable["topology"] = "nvidia-smi is not installed (GPU-NIC distances need it)"
        return
    try:
        out = subprocess.run(
            [tool, "topo", "-m"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        facts.unavailable["topology"] = f"nvidia-smi topo -m failed: {exc}"
        return
    if out.returncode != 0:
        facts.unavailable["topology"] = (
            f"nvidia-smi topo -m exited {out.returncode}: {out.stderr.strip()[:200]}"
        )
        return
    facts.topology, facts.nics = parse_topo_matrix(out.stdout)
    facts.origins["topology"] = "nvidia-smi topo -m on this node"


def collect(indices: list[int] | None = None) -> HostFacts:
    """Everything this node says about itself; nothing here raises."""
    facts = HostFacts("this node (NVML, nvidia-smi, sysfs, /proc)", taken_at=time.time())
    read_nvml(facts, indices)
    read_topology(facts)
    facts.shm = read_shm()
    read_rdma(facts)
    return facts


HOST_SCHEMA = "pytest-gpufabric-host/1"


def _gpu_json(gpu: GpuHost) -> dict[str, Any]:
    data = asdict(gpu)
    data["links"] = {str(n): link for n, link in data["links"].items()}  # JSON keys are strings
    return data


def to_json(facts: HostFacts, when: str) -> dict[str, Any]:
    """A snapshot for the artifacts bundle; ``when`` is "before" or "after" the collectives."""
    return {
        "schema": HOST_SCHEMA,
        "when": when,
        "origin": facts.origin,
        "driver": facts.driver,
        "gpus": [_gpu_json(g) for g in facts.gpus],
        "p2p": {f"{a}-{b}": caps for (a, b), caps in facts.p2p.items()},
        "topology": facts.topology,
        "nics": facts.nics,
        "shm": asdict(facts.shm) if facts.shm else None,
        "rdma_devices": facts.rdma_devices,
        "efa_pci_devices": facts.efa_pci_devices,
        "memlock": facts.memlock,
        "peermem": facts.peermem,
        "dmabuf": facts.dmabuf,
        "kernel": facts.kernel,
        "taken_at": facts.taken_at,
        "origins": facts.origins,
        "unavailable": facts.unavailable,
    }


def _field_names(cls: type[Any]) -> set[str]:
    return {f.name for f in fields(cls)}


def from_json(data: dict[str, Any], where: str) -> HostFacts:
    facts = HostFacts(f"{data.get('origin', 'a host snapshot')}, recorded in {where}")
    facts.driver = data.get("driver")
    # Keys of a newer snapshot that this version does not know are left out, not an error.
    link_keys, gpu_keys = _field_names(Link), _field_names(GpuHost) - {"links", "processes"}
    process_keys = _field_names(GpuProcess)
    for gpu in data.get("gpus", []):
        links = {
            int(n): Link(**{k: v for k, v in link.items() if k in link_keys})
            for n, link in gpu.get("links", {}).items()
        }
        known = {k: v for k, v in gpu.items() if k in gpu_keys}
        processes = gpu.get("processes")
        if processes is not None:
            processes = [
                GpuProcess(**{k: v for k, v in p.items() if k in process_keys}) for p in processes
            ]
        facts.gpus.append(GpuHost(**known, links=links, processes=processes))
    for pair, caps in data.get("p2p", {}).items():
        a, b = (int(x) for x in pair.split("-"))
        facts.p2p[(a, b)] = caps
    facts.topology = data.get("topology") or {}
    facts.nics = data.get("nics") or {}
    shm = data.get("shm")
    facts.shm = Shm(**{k: v for k, v in shm.items() if k in _field_names(Shm)}) if shm else None
    facts.rdma_devices = [(str(d[0]), str(d[1])) for d in data.get("rdma_devices", [])]
    for key in ("efa_pci_devices", "memlock", "peermem", "dmabuf", "kernel", "taken_at"):
        setattr(facts, key, data.get(key))
    facts.origins = {
        k: f"{v} (recorded in {where})" for k, v in (data.get("origins") or {}).items()
    }
    facts.unavailable = data.get("unavailable") or {}
    return facts
