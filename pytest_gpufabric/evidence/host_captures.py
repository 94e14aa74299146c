"""Host facts from recorded captures (and from nvidia-smi output read live): ``nvidia-smi -q
-x`` XML, ``nvidia-smi -q`` text (both also give clocks, clocks event reasons and their
counters, and the GPU's processes), ``topo -m``, ``topo -p2p r|w|n|a``, ``nvlink -s``/``-e``,
an NVML probe JSON, and ``/proc/mounts`` lines for /dev/shm. Formats as printed by driver
580 and recorded in tests/data/h200x4-nccl2.28.9/host (nvidia-smi-q.xml, nvidia-smi-q.txt,
nvidia-smi-topo-m.txt, nvidia-smi-topo-p2p-nvlink.txt, nvml-probe.json)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from .host import (
    FABRIC_STATES,
    NVLINK_VERSIONS,
    P2P_CAPS,
    SHM_PATH,
    GpuHost,
    GpuProcess,
    HostFacts,
    Link,
    Shm,
)

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_DEVICE_CELL = re.compile(r"^(GPU|NIC)\d+$")
_P2P_MARK = re.compile(r"topo -p2p ([rwnap])\b")
_P2P_LETTER = {"r": "read", "w": "write", "n": "nvlink", "a": "atomics", "p": "pcie"}
_GPU_HEADER = re.compile(r"^GPU (\d+): (.+?) \(UUID: (\S+)\)")
_LINK = re.compile(r"^\s+Link (\d+): (.*)$")
_MOUNT = re.compile(r"^\S+ (/dev/shm) (\S+) (\S+) \d+ \d+$", re.M)
# nvidia-smi -q labels -> the names of nvidia-smi -q -x (and of host.CLOCK_REASONS)
_REASON_LABELS = {
    "Idle": "gpu_idle", "Applications Clocks Setting": "applications_clocks_setting",
    "SW Power Cap": "sw_power_cap", "HW Slowdown": "hw_slowdown",
    "HW Thermal Slowdown": "hw_thermal_slowdown",
    "HW Power Brake Slowdown": "hw_power_brake_slowdown", "Sync Boost": "sync_boost",
    "SW Thermal Slowdown": "sw_thermal_slowdown", "Display Clock Setting": "display_clocks_setting",
}  # fmt: skip
_COUNTER_LABELS = {
    "SW Power Capping": "sw_power_cap", "Sync Boost": "sync_boost",
    "SW Thermal Slowdown": "sw_therm_slowdown", "HW Thermal Slowdown": "hw_therm_slowdown",
    "HW Power Braking": "hw_power_brake",
}  # fmt: skip
_CLOCK_FIELDS = {  # nvidia-smi -q section / label -> GpuHost field (and the -q -x path)
    "Clocks / SM": ("sm_clock_mhz", "clocks/sm_clock"),
    "Applications Clocks / Graphics": ("app_clock_mhz", "applications_clocks/graphics_clock"),
    "Default Applications Clocks / Graphics": (
        "app_clock_default_mhz", "default_applications_clocks/graphics_clock"),
    "Max Clocks / Graphics": ("max_clock_mhz", "max_clocks/graphics_clock"),
}  # fmt: skip


def parse_topo_matrix(text: str) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """``nvidia-smi topo -m``: {"GPU0": {"GPU1": "NV18", "NIC0": "PIX", ...}} and the NIC
    legend {"NIC0": "mlx5_0"}. Split on tabs (attribute headers contain spaces)."""
    matrix: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    nics: dict[str, str] = {}
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        cells = [c.strip() for c in line.split("\t")]
        if "GPU0" in cells and "CPU Affinity" in cells:
            columns = [c for c in cells if c]
            continue
        if columns and cells and _DEVICE_CELL.match(cells[0]):
            row = dict(zip(columns, cells[1:], strict=False))
            matrix[cells[0]] = {k: v for k, v in row.items() if _DEVICE_CELL.match(k)}
        elif line.startswith("Legend:"):
            columns = []
        elif match := re.match(r"^\s*(NIC\d+):\s*(\S+)", line):
            nics[match[1]] = match[2]
    return matrix, nics


def parse_p2p_tables(text: str) -> dict[tuple[int, int], dict[str, str]]:
    """``nvidia-smi topo -p2p X`` tables. The table does not say which capability it shows,
    so each needs the command (``topo -p2p r``) on a line before it, as a capture or a shell
    transcript has; unlabelled tables are not used."""
    result: dict[tuple[int, int], dict[str, str]] = {}
    cap: str | None = None
    columns: list[str] = []
    for raw in text.splitlines():
        line = _ANSI.sub("", raw)
        if mark := _P2P_MARK.search(line):
            cap, columns = _P2P_LETTER[mark[1]], []
            continue
        cells = [c.strip() for c in line.split("\t")]
        cells = [c for c in cells if c]
        if cap is None or not cells:
            continue
        if all(re.match(r"^GPU\d+$", c) for c in cells):  # the header: only column names
            columns = cells
        elif columns and re.match(r"^GPU\d+$", cells[0]) and len(cells) == len(columns) + 1:
            a = int(cells[0][3:])
            for column, value in zip(columns, cells[1:], strict=True):
                b = int(column[3:])
                if a != b:
                    result.setdefault((a, b), {})[cap] = value
        elif line.startswith("Legend:"):
            cap, columns = None, []
    return result


def parse_nvlink_text(text: str) -> dict[int, dict[int, Link]]:
    """``nvidia-smi nvlink -s`` (link speed or <inactive>) and ``-e`` (error counters)."""
    gpus: dict[int, dict[int, Link]] = {}
    current: dict[int, Link] | None = None
    for line in text.splitlines():
        if header := _GPU_HEADER.match(line):
            current = gpus.setdefault(int(header[1]), {})
            continue
        link = _LINK.match(line)
        if current is None or link is None:
            continue
        number, rest = int(link[1]), link[2].strip()
        entry = current.setdefault(number, Link(active=True))
        if counter := re.match(r"(Replay|Recovery|CRC) Errors: (\d+)", rest):
            name = {"Replay": "replay", "Recovery": "recovery", "CRC": "crc_flit"}[counter[1]]
            entry.errors[name] = int(counter[2])
        elif "inactive" in rest.lower():
            entry.active = False
    return gpus


def parse_smi_xml(text: str) -> list[GpuHost]:
    """``nvidia-smi -q -x``: name, UUID, bus id, fabric state/status, PCIe gen and width."""
    root = ET.fromstring(text)  # noqa: S314 - the node's own nvidia-smi output
    gpus = []
    for index, gpu in enumerate(root.findall("gpu")):
        entry = GpuHost(
            index,
            gpu.findtext("product_name", ""),
            gpu.findtext("uuid", ""),
            gpu.get("id", ""),
        )
        state = gpu.findtext("fabric/state")
        if state and state != "N/A":
            entry.fabric_state = state
            entry.fabric_status = gpu.findtext("fabric/status")
        link = "pci/pci_gpu_link_info"
        entry.pcie_gen = _int(gpu.findtext(f"{link}/pcie_gen/current_link_gen"))
        entry.pcie_gen_max = _int(gpu.findtext(f"{link}/pcie_gen/max_link_gen"))
        entry.pcie_width = _int(gpu.findtext(f"{link}/link_widths/current_link_width"))
        entry.pcie_width_max = _int(gpu.findtext(f"{link}/link_widths/max_link_width"))
        entry.memory_mib = _int(gpu.findtext("fb_memory_usage/total"))
        _xml_clocks(gpu, entry)
        gpus.append(entry)
    return gpus


def _xml_clocks(gpu: ET.Element, entry: GpuHost) -> None:
    """Clocks, clocks event reasons ("throttle" before driver 535) and their counters, and
    the GPU's processes, from one <gpu> of nvidia-smi -q -x."""
    for name, path in _CLOCK_FIELDS.values():
        setattr(entry, name, _int(gpu.findtext(path)))
    for kind in ("event", "throttle"):
        reasons = gpu.find(f"clocks_{kind}_reasons")
        if reasons is not None:
            prefix = f"clocks_{kind}_reason_"
            entry.clock_reasons = [
                r.tag.removeprefix(prefix) for r in reasons if (r.text or "").strip() == "Active"
            ]
        counters = gpu.find(f"clocks_{kind}_reasons_counters")
        for counter in counters if counters is not None else ():
            us = _int(counter.text)
            if us is not None:
                name = counter.tag.removeprefix(f"clocks_{kind}_reasons_counters_")
                entry.clock_held_ns[name] = us * 1000
    processes = gpu.find("processes")
    if processes is not None:
        entry.processes = [
            GpuProcess(int(p.findtext("pid", "0")), _int(p.findtext("used_memory")))
            for p in processes.findall("process_info")
        ]


def _int(text: str | None) -> int | None:
    match = re.match(r"\s*(\d+)", text or "")
    return int(match[1]) if match else None


def parse_smi_text(text: str) -> list[GpuHost]:
    """``nvidia-smi -q``: per ``GPU <bus id>`` block, the Fabric State/Status and the PCIe
    Generation and Link Width (Max/Current)."""
    gpus: list[GpuHost] = []
    section: list[str] = []
    for line in text.splitlines():
        if match := re.match(r"^GPU ([0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.\d)\s*$", line):
            gpus.append(GpuHost(len(gpus), "", pci_bus_id=match[1]))
            section = []
            continue
        if not gpus:
            continue
        gpu = gpus[-1]
        match = re.match(r"^(\s+)(\S.*?)\s*(?::\s*(.*))?$", line)
        if match is None:
            continue
        depth = len(match[1]) // 4
        section = [*section[: depth - 1], match[2]]
        value = match[3]
        if value is None:
            continue
        where = " / ".join(section)
        if where == "Product Name":
            gpu.name = value
        elif where == "GPU UUID":
            gpu.uuid = value
        elif where == "Fabric / State" and value != "N/A":
            gpu.fabric_state = value
        elif where == "Fabric / Status" and value != "N/A":
            gpu.fabric_status = value
        elif where.endswith("PCIe Generation / Current"):
            gpu.pcie_gen = _int(value)
        elif where.endswith("PCIe Generation / Max"):
            gpu.pcie_gen_max = _int(value)
        elif where.endswith("Link Width / Current"):
            gpu.pcie_width = _int(value)
        elif where.endswith("Link Width / Max"):
            gpu.pcie_width_max = _int(value)
        else:
            _text_clocks(gpu, section, value)
    return gpus


def _text_clocks(gpu: GpuHost, section: list[str], value: str) -> None:
    """One ``label : value`` line of nvidia-smi -q's clocks, clocks event reasons (and
    counters), or processes sections."""
    head, label = section[0], section[-1]
    if head in ("Clocks Event Reasons", "Clocks Throttle Reasons") and label in _REASON_LABELS:
        gpu.clock_reasons = gpu.clock_reasons or []
        if value == "Active":
            gpu.clock_reasons.append(_REASON_LABELS[label])
    elif head.startswith("Clocks ") and head.endswith(" Counters") and label in _COUNTER_LABELS:
        us = _int(value)
        if us is not None:
            gpu.clock_held_ns[_COUNTER_LABELS[label]] = us * 1000
    elif " / ".join(section) in _CLOCK_FIELDS:
        setattr(gpu, _CLOCK_FIELDS[" / ".join(section)][0], _int(value))
    elif head == "Processes":
        if label == "Processes":  # "Processes : None"
            gpu.processes = []
        elif label == "Process ID":
            gpu.processes = [*(gpu.processes or []), GpuProcess(int(value))]
        elif label == "Used GPU Memory" and gpu.processes:
            gpu.processes[-1].used_mib = _int(value)


def parse_nvml_probe(
    data: dict[str, Any],
) -> tuple[str | None, list[GpuHost], dict[tuple[int, int], dict[str, str]]]:
    """The NVML probe JSON of tests/data (what pytest-gpufabric's host capture writes): links
    with state, version and error counters, PCIe gen/width, P2P status codes. Its legacy
    ``nvmlDeviceGetGpuFabricInfo`` entry reads state 0 on healthy GPUs (80-byte uuid in the
    old struct, research §9), so it is never taken as the fabric state."""
    gpus, p2p = [], {}
    for entry in data.get("gpus", []):
        gpu = GpuHost(
            int(entry["index"]),
            str(entry.get("name", "")),
            str(entry.get("uuid", "")),
            str(entry.get("pci", "")),
        )
        fabric = entry.get("nvmlDeviceGetGpuFabricInfoV")
        if isinstance(fabric, dict) and "state" in fabric:
            gpu.fabric_state = FABRIC_STATES.get(int(fabric["state"]), str(fabric["state"]))
            gpu.fabric_status = (
                "Success" if int(fabric.get("status", 0)) == 0 else f"NVML error {fabric['status']}"
            )
        for link in entry.get("nvlinks", []):
            errors = {
                name.removeprefix("NVML_NVLINK_ERROR_DL_").lower(): int(value)
                for name, value in (link.get("errors") or {}).items()
                if isinstance(value, int)
            }
            gpu.links[int(link["link"])] = Link(
                bool(link.get("state")), NVLINK_VERSIONS.get(link.get("version") or 0), errors
            )
        gen, width = entry.get("pcie_gen"), entry.get("pcie_width")
        if isinstance(gen, list) and len(gen) == 2:
            gpu.pcie_gen, gpu.pcie_gen_max = gen
        if isinstance(width, list) and len(width) == 2:
            gpu.pcie_width, gpu.pcie_width_max = width
        for peer, caps in (entry.get("p2p") or {}).items():
            p2p[(gpu.index, int(peer))] = {
                cap: {0: "OK", 5: "NS"}.get(caps[cap.upper()], str(caps[cap.upper()]))
                if isinstance(caps.get(cap.upper()), int)
                else "unread"  # e.g. the NVML_P2P_CAPS_INDEX_READ tuple pitfall
                for cap in P2P_CAPS
                if cap.upper() in caps
            }
        gpus.append(gpu)
    return data.get("driver"), gpus, p2p


def parse_shm_mount(text: str, where: str) -> Shm | None:
    """A /proc/mounts line for /dev/shm (the last one wins, as the kernel stacks mounts)."""
    found = _MOUNT.findall(text)
    if not found:
        return None
    _, fstype, options = found[-1]
    size = None
    if match := re.search(r"size=(\d+)([kKmMgG]?)", options):
        size = int(match[1]) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match[2].lower()]
    return Shm(SHM_PATH, fstype, size, None, None, where)


def is_host_capture(text: str) -> list[str]:
    """Which host capture kinds ``text`` holds (several for a combined capture file)."""
    kinds = []
    head = text.lstrip()[:4096]
    if "<nvidia_smi_log" in head:
        kinds.append("nvidia-smi -q -x")
    if "==============NVSMI LOG==============" in text:
        kinds.append("nvidia-smi -q")
    if "CPU Affinity" in text and "Legend:" in text and "GPU0" in text:
        kinds.append("nvidia-smi topo -m")
    if _P2P_MARK.search(text) and "Status Ok" in text:
        kinds.append("nvidia-smi topo -p2p")
    if re.search(r"^\s+Link \d+: (?:Replay Errors|[\d.]+ GB/s|<inactive>)", text, re.M):
        kinds.append("nvidia-smi nvlink")
    if _MOUNT.search(text):
        kinds.append("mounts")
    return kinds


def merge(facts: HostFacts, text: str, path: Path) -> list[str]:
    """Add what ``text`` says to ``facts``; returns the capture kinds it held. Facts already
    known from a richer source are not overwritten by a poorer one."""
    kinds = is_host_capture(text)
    where = str(path)
    if "nvidia-smi -q -x" in kinds:
        root = ET.fromstring(text)  # noqa: S314
        facts.driver = facts.driver or root.findtext("driver_version")
        _merge_gpus(facts, parse_smi_xml(text), where)
    if "nvidia-smi -q" in kinds:
        _merge_gpus(facts, parse_smi_text(text), where)
    if "nvidia-smi topo -m" in kinds and not facts.topology:
        facts.topology, facts.nics = parse_topo_matrix(text)
        facts.origins["topology"] = where
    if "nvidia-smi topo -p2p" in kinds:
        for pair, caps in parse_p2p_tables(text).items():
            facts.p2p.setdefault(pair, {}).update(caps)
        facts.origins.setdefault("p2p", where)
    if "nvidia-smi nvlink" in kinds:
        for index, links in parse_nvlink_text(text).items():
            gpu = _gpu(facts, index)
            for number, link in links.items():
                known = gpu.links.setdefault(number, Link(link.active))
                known.active = known.active and link.active
                for name, value in link.errors.items():
                    known.errors.setdefault(name, value)
        facts.origins.setdefault("nvlink", where)
    if "mounts" in kinds and facts.shm is None:
        facts.shm = parse_shm_mount(text, where)
    return kinds


def merge_nvml_probe(facts: HostFacts, data: dict[str, Any], path: Path) -> None:
    driver, gpus, p2p = parse_nvml_probe(data)
    facts.driver = facts.driver or driver
    _merge_gpus(facts, gpus, str(path))
    for pair, caps in p2p.items():
        for cap, value in caps.items():
            if value != "unread":
                facts.p2p.setdefault(pair, {})[cap] = value
    facts.origins.setdefault("nvlink", str(path))
    facts.origins.setdefault("p2p", str(path))


def _gpu(facts: HostFacts, index: int) -> GpuHost:
    for gpu in facts.gpus:
        if gpu.index == index:
            return gpu
    gpu = GpuHost(index, "")
    facts.gpus.append(gpu)
    facts.gpus.sort(key=lambda g: g.index)
    return gpu


def _merge_gpus(facts: HostFacts, gpus: list[GpuHost], where: str) -> None:
    for new in gpus:
        gpu = _gpu(facts, new.index)
        for name in ("name", "uuid", "pci_bus_id", "fabric_state", "fabric_status", "pcie_gen",
                     "pcie_gen_max", "pcie_width", "pcie_width_max", "memory_mib",
                     "clock_reasons", "sm_clock_mhz", "app_clock_mhz", "app_clock_default_mhz",
                     "max_clock_mhz", "processes"):  # fmt: skip
            if getattr(gpu, name) in (None, "") and getattr(new, name) not in (None, ""):
                setattr(gpu, name, getattr(new, name))
        for counter, value in new.clock_held_ns.items():
            gpu.clock_held_ns.setdefault(counter, value)
        for number, link in new.links.items():
            known = gpu.links.setdefault(number, link)
            if known is not link:  # fill what the earlier capture lacked (version, counters)
                known.version = known.version or link.version
                for name, value in link.errors.items():
                    known.errors.setdefault(name, value)
    facts.origins.setdefault("gpus", where)
    if any(g.clock_reasons is not None or g.clock_held_ns for g in gpus):
        facts.origins.setdefault("clocks", where)
    if any(g.processes is not None for g in gpus):
        facts.origins.setdefault("processes", where)
    if any(g.fabric_state for g in gpus):
        facts.origins.setdefault("fabric", where)


def is_nvml_probe(data: dict[str, Any]) -> bool:
    """The NVML probe JSON: a list of GPUs with their NVLinks."""
    gpus = data.get("gpus")
    return isinstance(gpus, list) and any(isinstance(g, dict) and "nvlinks" in g for g in gpus)
