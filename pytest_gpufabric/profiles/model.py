"""Instance profiles: what a node of a given type must have and how fast its collectives
must be. One YAML file per profile in ``thresholds/``; docs/profiles.md documents every key
and thresholds/profile.schema.json describes them for editors.

Every floor and expectation keeps the file and line it came from and its ``source``, so a
failing test can say where the expectation came from. A profile may ``extends:`` another:
it inherits every value with the parent's file, line and source, and whatever it states
itself replaces the inherited value (``null`` removes it). catalogue.py resolves the chain.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..collectives import ALL_COLLECTIVES, DTYPE_SIZES, Collective
from ..units import parse_size
from .yamlfile import LineMap, YamlError, load_yaml


class ProfileError(Exception):
    """One or more problems in profile files, each ``file:line: key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems")
        self.problems = problems


@dataclass(frozen=True)
class Floor:
    """Minimum bus bandwidth for one collective at one message size in one kind of run."""

    collective: Collective
    nbytes: int
    busbw_gbps: float
    source: str
    margin: str
    file: Path
    line: int
    run: str = "intra_node"  # the bandwidth section it belongs to
    warn_band_pct: float = 0.0  # pass, with a warning, below floor × (1 + warn_band_pct/100)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def warn_below_gbps(self) -> float:
        return self.busbw_gbps * (1 + self.warn_band_pct / 100)


@dataclass(frozen=True)
class Expectation:
    """One expected behaviour, with where it is written and why."""

    key: str  # "nccl.intra_node.transport"
    value: object
    file: Path
    line: int
    source: str

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def cite(self) -> str:
        return f"{self.key} in {self.where}; source: {self.source}"

    @property
    def integer(self) -> int:
        return int(self.value) if isinstance(self.value, (int, float, str)) else 0

    @property
    def number(self) -> float:
        return float(self.value) if isinstance(self.value, (int, float, str)) else 0.0

    @property
    def names(self) -> tuple[str, ...]:
        """The value as a tuple of strings (lists such as nccl.network.names)."""
        if isinstance(self.value, (tuple, list)):
            return tuple(str(v) for v in self.value)
        return (str(self.value),)


TRANSPORTS = ("P2P", "SHM", "NET")
KNOWN_PLUGINS = ("aws-ofi-nccl",)


@dataclass(frozen=True)
class NcclExpectations:
    """What NCCL must do on this instance type (profile section ``nccl``); None = not judged."""

    transport: Expectation | None = None  # intra-node: P2P | SHM | NET
    path: Expectation | None = None  # intra-node graph path type, e.g. NVL
    p2p_read: Expectation | None = None
    nvls: Expectation | None = None
    networks: Expectation | None = None  # tuple of accepted net names ("Using network X")
    gdr: Expectation | None = None
    plugin: Expectation | None = None
    provider: Expectation | None = None
    nics: Expectation | None = None
    protocol: Expectation | None = None


@dataclass(frozen=True)
class HostExpectations:
    """What the host must have (profile section ``host``); None = not judged."""

    shm_min_gib: Expectation | None = None
    fabric_manager: Expectation | None = None
    nvlink_links: Expectation | None = None  # active links per GPU
    nvlink_version: Expectation | None = None  # "4.0"
    max_crc_per_s: Expectation | None = None  # NVLink CRC errors per second and link
    max_replay: Expectation | None = None
    max_recovery: Expectation | None = None
    p2p: Expectation | None = None  # capabilities every GPU pair must have
    pcie_gen: Expectation | None = None
    pcie_width: Expectation | None = None
    nic_affinity: Expectation | None = None  # farthest allowed GPU-NIC distance
    rdma_kind: Expectation | None = None  # efa | ib
    rdma_devices: Expectation | None = None
    memlock_unlimited: Expectation | None = None
    rdma_gdr: Expectation | None = None


# The bandwidth sections: one kind of run each.
INTRA_NODE = "intra_node"  # one node, NCCL's own choice of transports
INTER_NODE = "inter_node"  # ranks on `nodes` nodes
NETWORK_ONLY = "network_only"  # isolation: P2P and SHM off, every byte through the NIC
NVLINK_ONLY = "nvlink_only"  # isolation: P2P over NVLink only, no SHM, no network plugin
RUN_KINDS = (INTRA_NODE, INTER_NODE, NETWORK_ONLY, NVLINK_ONLY)


@dataclass(frozen=True)
class BandwidthRun:
    """One kind of run a profile gates (a ``bandwidth.<kind>`` section) and its floors."""

    kind: str
    floors: tuple[Floor, ...] = ()
    nodes: int = 1  # inter_node: nodes the floors hold for; network_only: NCCL_HOSTID groups
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # extra env
    warn_band_pct: float | None = None  # None: the profile's bandwidth.warn_band

    def floor_for(self, collective: Collective, nbytes: int) -> Floor | None:
        for floor in self.floors:
            if floor.collective is collective and floor.nbytes == nbytes:
                return floor
        return None


DEFAULT_WARN_BAND_PCT = 5.0


@dataclass(frozen=True)
class Profile:
    name: str
    file: Path
    description: str
    gpu_model: str
    gpu_count: int
    dtype: str
    warmup: int
    iters: int
    ranks_set: int | None = None  # bandwidth.ranks as written; None: one rank per GPU
    runs: Mapping[str, BandwidthRun] = field(default_factory=lambda: MappingProxyType({}))
    nccl: NcclExpectations = field(default_factory=NcclExpectations)
    host: HostExpectations = field(default_factory=HostExpectations)
    gpu_memory_gib: float | None = None
    warn_band_pct: float = DEFAULT_WARN_BAND_PCT
    extends: tuple[str, ...] = ()  # the parent chain, nearest first
    files: tuple[Path, ...] = ()  # this file and its ancestors' files

    @property
    def backend(self) -> str:
        """gpu.count 0 describes a CPU-only node: its floors are for gloo."""
        return "nccl" if self.gpu_count else "gloo"

    @property
    def ranks(self) -> int:
        """The rank count the floors hold for (default: one per GPU; 2 gloo ranks on CPU)."""
        return self.ranks_set or self.gpu_count or 2

    @property
    def floors(self) -> tuple[Floor, ...]:
        """The single-node floors (bandwidth.intra_node)."""
        run = self.runs.get(INTRA_NODE)
        return run.floors if run else ()

    def floor_for(self, collective: Collective, nbytes: int) -> Floor | None:
        run = self.runs.get(INTRA_NODE)
        return run.floor_for(collective, nbytes) if run else None


class _Checker:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int, key: str, text: str) -> None:
        self.problems.append(f"{self.path}:{line}: {key}: {text}")

    def mapping(
        self, parent: LineMap, key: str, full: str, *, required: bool = True
    ) -> LineMap | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, full, "missing")
            return None
        if not isinstance(value, LineMap):
            self.problem(parent.line_of(key), full, f"must be a mapping, got {_kind(value)}")
            return None
        return value

    def text(self, parent: LineMap, key: str, full: str, *, required: bool = True) -> str | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, full, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(
                parent.line_of(key), full, f"must be a non-empty string, got {_kind(value)}"
            )
            return None
        return value.strip()

    def integer(self, parent: LineMap, key: str, full: str, default: int, minimum: int) -> int:
        value = parent.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(
                parent.line_of(key), full, f"must be an integer >= {minimum}, got {value!r}"
            )
            return default
        return value

    def number(self, parent: LineMap, key: str, full: str, default: float) -> float:
        value = parent.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            self.problem(parent.line_of(key), full, f"must be a number >= 0, got {value!r}")
            return default
        return float(value)

    def unknown_keys(self, parent: LineMap, allowed: Iterable[str], where: str) -> None:
        allowed = set(allowed)
        for key in parent:
            if key not in allowed:
                hint = ", ".join(sorted(allowed))
                self.problem(parent.line_of(key), f"{where}{key}", f"unknown key (allowed: {hint})")


def _kind(value: object) -> str:
    if isinstance(value, LineMap):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


# The keys each section allows; tests check thresholds/profile.schema.json against these.
TOP_KEYS = ("name", "description", "extends", "gpu", "bandwidth", "nccl", "host")
GPU_KEYS = ("model", "count", "memory_gib")
BANDWIDTH_KEYS = ("dtype", "warmup", "iters", "ranks", "warn_band", *RUN_KINDS)
RUN_KEYS: dict[str, tuple[str, ...]] = {
    INTRA_NODE: ("source", "margin", "warn_band", "floors"),
    INTER_NODE: ("source", "margin", "warn_band", "nodes", "floors"),
    NETWORK_ONLY: ("source", "margin", "warn_band", "nodes", "env", "floors"),
    NVLINK_ONLY: ("source", "margin", "warn_band", "floors"),
}
FLOOR_KEYS = ("busbw_gbps", "source")
NCCL_KEYS = ("source", "intra_node", "network")
NCCL_INTRA_KEYS = ("transport", "path", "p2p_read", "nvls")
NCCL_NETWORK_KEYS = ("names", "gdr", "plugin", "provider", "nics", "protocol")
HOST_KEYS = (
    "source", "shm_min_gib", "fabric_manager", "nvlink", "nvlink_errors", "p2p", "pcie",
    "nic_affinity", "rdma",
)  # fmt: skip
HOST_PARTS: dict[str, tuple[str, ...]] = {
    "nvlink": ("links", "version"),
    "nvlink_errors": ("max_crc_per_s", "max_replay", "max_recovery"),
    "pcie": ("gen", "width"),
    "rdma": ("kind", "devices", "memlock_unlimited", "gdr"),
}
P2P_CAPABILITIES = ("read", "write", "nvlink", "atomics")
TOPOLOGY_DISTANCES = ("PIX", "PXB", "PHB", "NODE", "SYS")  # nvidia-smi topo -m, nearest first
# Set by an operator to keep a shared host safe (launch/environment.py enforces it at run
# time too): a profile may never change them.
PROTECTED_ENV = ("NCCL_NVLS_ENABLE", "TORCH_SYMM_MEM_DISABLE_MULTICAST", "NVSHMEM_DISABLE_NVLS")


def parse_profile(data: Any, path: Path, base: Profile | None = None) -> Profile:
    """Validate one parsed profile file; raise :class:`ProfileError` listing every problem.
    ``base``: the resolved profile it extends (its values are the defaults here)."""
    check = _Checker(path)
    if not isinstance(data, LineMap):
        raise ProfileError([f"{path}:1: a profile must be a YAML mapping, got {_kind(data)}"])
    check.unknown_keys(data, TOP_KEYS, "")
    name = check.text(data, "name", "name")
    if name is not None and name != path.stem:
        check.problem(
            data.line_of("name"), "name", f"{name!r} must match the file name {path.stem!r}"
        )
    description = check.text(data, "description", "description", required=False) or ""
    model, count, memory = _parse_gpu(check, data, base)
    bandwidth = check.mapping(data, "bandwidth", "bandwidth", required=False)
    settings = _parse_bandwidth_settings(check, bandwidth, base)
    dtype, warmup, iters, ranks_set, warn_band = settings
    runs = dict(base.runs) if base else {}
    if bandwidth is not None:
        for kind in RUN_KINDS:
            if kind in bandwidth:
                _parse_run(check, bandwidth, kind, runs, warn_band)
    nccl = base.nccl if base else NcclExpectations()
    if (nccl_section := check.mapping(data, "nccl", "nccl", required=False)) is not None:
        nccl = dataclasses.replace(nccl, **_parse_nccl(check, nccl_section))
    host = base.host if base else HostExpectations()
    if (host_section := check.mapping(data, "host", "host", required=False)) is not None:
        host = dataclasses.replace(host, **_parse_host(check, host_section))
    for kind, run in runs.items():  # the warn band as it stands after this file
        band = warn_band if run.warn_band_pct is None else run.warn_band_pct
        stamped = tuple(dataclasses.replace(f, warn_band_pct=band) for f in run.floors)
        runs[kind] = dataclasses.replace(run, floors=stamped)
    ranks = ranks_set or count or 2
    if any(run.floors for run in runs.values()) and ranks < 2:
        check.problem(
            bandwidth.line_of("ranks") if bandwidth else data.line,
            "bandwidth.ranks",
            f"floors need at least 2 ranks, got {ranks} (set bandwidth.ranks for a CPU node)",
        )
    if check.problems or name is None:
        raise ProfileError(check.problems)
    return Profile(
        name, path, description, model, count, dtype, warmup, iters, ranks_set,
        MappingProxyType(runs), nccl, host, memory, warn_band,
        extends=((base.name, *base.extends) if base else ()),
        files=(path, *(base.files if base else ())),
    )  # fmt: skip


def _parse_gpu(
    check: _Checker, data: LineMap, base: Profile | None
) -> tuple[str, int, float | None]:
    model, count = (base.gpu_model, base.gpu_count) if base else ("", 0)
    memory = base.gpu_memory_gib if base else None
    gpu = check.mapping(data, "gpu", "gpu", required=base is None)
    if gpu is None:
        return model, count, memory
    check.unknown_keys(gpu, GPU_KEYS, "gpu.")
    if "count" in gpu or base is None:
        count = check.integer(gpu, "count", "gpu.count", 0, 0)
    if "model" in gpu or (base is None and count):
        model = check.text(gpu, "model", "gpu.model") or ""
    elif base is None:
        model = "none"
    if "memory_gib" in gpu:
        memory = check.number(gpu, "memory_gib", "gpu.memory_gib", 0.0) or None
    return model, count, memory


def _parse_bandwidth_settings(
    check: _Checker, bandwidth: LineMap | None, base: Profile | None
) -> tuple[str, int, int, int | None, float]:
    if base:
        dtype, warmup, iters = base.dtype, base.warmup, base.iters
        ranks_set, warn_band = base.ranks_set, base.warn_band_pct
    else:
        dtype, warmup, iters, ranks_set, warn_band = "bfloat16", 5, 20, None, DEFAULT_WARN_BAND_PCT
    if bandwidth is None:
        return dtype, warmup, iters, ranks_set, warn_band
    check.unknown_keys(bandwidth, BANDWIDTH_KEYS, "bandwidth.")
    if "dtype" in bandwidth:
        if bandwidth["dtype"] in DTYPE_SIZES:
            dtype = bandwidth["dtype"]
        else:
            check.problem(
                bandwidth.line_of("dtype"),
                "bandwidth.dtype",
                f"{bandwidth['dtype']!r} is not one of {', '.join(DTYPE_SIZES)}",
            )
    warmup = check.integer(bandwidth, "warmup", "bandwidth.warmup", warmup, 0)
    iters = check.integer(bandwidth, "iters", "bandwidth.iters", iters, 1)
    if "ranks" in bandwidth:
        ranks_set = check.integer(bandwidth, "ranks", "bandwidth.ranks", 2, 1)
    warn_band = check.number(bandwidth, "warn_band", "bandwidth.warn_band", warn_band)
    return dtype, warmup, iters, ranks_set, warn_band


def _parse_run(
    check: _Checker,
    bandwidth: LineMap,
    kind: str,
    runs: dict[str, BandwidthRun],
    warn_band: float,
) -> None:
    """One bandwidth section, over what the parent profile had for it (``runs[kind]``)."""
    where = f"bandwidth.{kind}"
    if bandwidth[kind] is None:  # `intra_node: null` drops the inherited run
        runs.pop(kind, None)
        return
    section = check.mapping(bandwidth, kind, where)
    if section is None:
        return
    check.unknown_keys(section, RUN_KEYS[kind], f"{where}.")
    inherited = runs.get(kind, BandwidthRun(kind))
    nodes, env, band = inherited.nodes, dict(inherited.env), inherited.warn_band_pct
    if "nodes" in section:
        nodes = check.integer(
            section, "nodes", f"{where}.nodes", nodes, 2 if kind == INTER_NODE else 1
        )
    elif kind == INTER_NODE and kind not in runs:
        check.problem(section.line, f"{where}.nodes", "missing (how many nodes the floors are for)")
    if "env" in section:
        env = _parse_env(check, section, f"{where}.env")
    if "warn_band" in section:
        band = check.number(section, "warn_band", f"{where}.warn_band", warn_band)
    floors: dict[tuple[Collective, int], Floor | None] = {
        (f.collective, f.nbytes): f for f in inherited.floors
    }
    if "floors" in section or kind != NVLINK_ONLY:  # nvlink_only may use intra_node's floors
        floors.update(_parse_floors(check, section, where, kind, floors))
    kept = tuple(
        sorted(
            (f for f in floors.values() if f is not None),
            key=lambda f: (ALL_COLLECTIVES.index(f.collective), f.nbytes),
        )
    )
    runs[kind] = BandwidthRun(kind, kept, nodes, MappingProxyType(env), band)


def _parse_env(check: _Checker, section: LineMap, where: str) -> dict[str, str]:
    value = section.get("env")
    if not isinstance(value, LineMap):
        check.problem(section.line_of("env"), where, f"must be a mapping, got {_kind(value)}")
        return {}
    env = {}
    for name, setting in value.items():
        if name in PROTECTED_ENV:
            check.problem(
                value.line_of(name), f"{where}.{name}", "protected: operators set it to keep a "
                "shared host safe (NVLink multicast); a profile may not change it",
            )  # fmt: skip
        elif isinstance(setting, bool) or not isinstance(setting, (str, int, float)):
            check.problem(
                value.line_of(name), f"{where}.{name}", f"must be a string, got {_kind(setting)}"
            )
        else:
            env[name] = str(setting)
    return env


def _parse_floors(
    check: _Checker,
    section: LineMap,
    where: str,
    kind: str,
    current: Mapping[tuple[Collective, int], Floor | None],
) -> dict[tuple[Collective, int], Floor | None]:
    """The floors this file states (None: removed with ``null``)."""
    default_source = check.text(section, "source", f"{where}.source", required=False)
    margin = check.text(section, "margin", f"{where}.margin", required=False) or ""
    table = check.mapping(section, "floors", f"{where}.floors", required=not current)
    found: dict[tuple[Collective, int], Floor | None] = {}
    if table is None:
        return found
    for op_name, sizes in table.items():
        key = f"{where}.floors.{op_name}"
        try:
            collective = Collective(op_name)
        except ValueError:
            known = ", ".join(c.value for c in Collective)
            check.problem(table.line_of(op_name), key, f"unknown collective (known: {known})")
            continue
        if sizes is None:  # drop every inherited floor of this collective
            found.update({k: None for k in current if k[0] is collective})
            continue
        if not isinstance(sizes, LineMap):
            check.problem(table.line_of(op_name), key, "must map message sizes to busbw floors")
            continue
        for size_text, entry in sizes.items():
            line = sizes.line_of(size_text)
            size_key = f"{key}.{size_text}"
            try:
                nbytes = parse_size(size_text)
            except ValueError as exc:
                check.problem(line, size_key, str(exc))
                continue
            if entry is None:
                found[(collective, nbytes)] = None
                continue
            value, source = entry, default_source
            if isinstance(entry, LineMap):
                check.unknown_keys(entry, FLOOR_KEYS, f"{size_key}.")
                value = entry.get("busbw_gbps")
                source = (
                    check.text(entry, "source", f"{size_key}.source", required=False)
                    or default_source
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                check.problem(
                    line, size_key, f"busbw floor must be a number > 0 (GB/s), got {value!r}"
                )
                continue
            if source is None:
                # Sources never come from another file: an inherited source does not cover a
                # value this file changes.
                check.problem(line, size_key, f"no source: give one here or as {where}.source")
                continue
            found[(collective, nbytes)] = Floor(
                collective, nbytes, float(value), source, margin, check.path, line, kind
            )
    return found


Rule = tuple[Callable[[object], bool], str]  # a value check and how to describe a good value


def _one_of(*allowed: str) -> Rule:
    return (lambda v: v in allowed), f"one of {', '.join(allowed)}"


BOOLEAN: Rule = (lambda v: isinstance(v, bool)), "true or false"
COUNT: Rule = (
    (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "an integer >= 0",
)
NUMBER: Rule = (
    (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0),
    "a number >= 0",
)
WORD: Rule = (lambda v: isinstance(v, str) and bool(v.strip())), "a non-empty string"
NAMES: Rule = (
    (lambda v: isinstance(v, list) and bool(v) and all(isinstance(i, str) and i for i in v)),
    "a non-empty list of names",
)


def _capabilities(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(v in P2P_CAPABILITIES for v in value)


CAPABILITIES: Rule = _capabilities, f"a list of {', '.join(P2P_CAPABILITIES)}"


class _Expectations:
    """Reads the expectation keys of one profile section (nccl, host): every value is checked
    and needs a source from this file, its sub-section's or the section's. ``null`` removes
    an inherited expectation."""

    def __init__(self, check: _Checker, section: LineMap, name: str) -> None:
        self.check = check
        self.name = name
        self.default_source = check.text(section, "source", f"{name}.source", required=False)
        self.found: dict[str, Expectation | None] = {}

    def take(
        self, part: LineMap, prefix: str, key: str, rule: Rule, *, as_name: str | None = None
    ) -> None:
        if key not in part:
            return
        value, full = part[key], f"{prefix}.{key}"
        if value is None:
            self.found[as_name or key] = None
            return
        valid, describe = rule
        if not valid(value):
            self.check.problem(part.line_of(key), full, f"must be {describe}, got {value!r}")
            return
        source = (
            self.check.text(part, "source", f"{prefix}.source", required=False)
            or self.default_source
        )
        if source is None:
            self.check.problem(
                part.line_of(key),
                full,
                f"no source: give {self.name}.source or a source in this section",
            )
            return
        if isinstance(value, list):
            value = tuple(value)
        self.found[as_name or key] = Expectation(
            full, value, self.check.path, part.line_of(key), source
        )

    def part(self, section: LineMap, key: str, allowed: tuple[str, ...]) -> LineMap | None:
        part = self.check.mapping(section, key, f"{self.name}.{key}", required=False)
        if part is not None:
            self.check.unknown_keys(part, ("source", *allowed), f"{self.name}.{key}.")
        return part


def _parse_nccl(check: _Checker, section: LineMap) -> dict[str, Expectation | None]:
    check.unknown_keys(section, NCCL_KEYS, "nccl.")
    exp = _Expectations(check, section, "nccl")
    if intra := exp.part(section, "intra_node", NCCL_INTRA_KEYS):
        exp.take(intra, "nccl.intra_node", "transport", _one_of(*TRANSPORTS))
        exp.take(intra, "nccl.intra_node", "path", (WORD[0], "a path type such as NVL, PIX, PXB"))
        exp.take(intra, "nccl.intra_node", "p2p_read", BOOLEAN)
        exp.take(intra, "nccl.intra_node", "nvls", BOOLEAN)
    if network := exp.part(section, "network", NCCL_NETWORK_KEYS):
        exp.take(network, "nccl.network", "names", NAMES, as_name="networks")
        exp.take(network, "nccl.network", "gdr", BOOLEAN)
        exp.take(network, "nccl.network", "plugin", _one_of(*KNOWN_PLUGINS))
        exp.take(network, "nccl.network", "provider", WORD)
        exp.take(network, "nccl.network", "nics", COUNT)
        exp.take(network, "nccl.network", "protocol", _one_of("SENDRECV", "RDMA"))
    return exp.found


def _parse_host(check: _Checker, section: LineMap) -> dict[str, Expectation | None]:
    check.unknown_keys(section, HOST_KEYS, "host.")
    exp = _Expectations(check, section, "host")
    exp.take(section, "host", "shm_min_gib", NUMBER)
    exp.take(section, "host", "fabric_manager", BOOLEAN)
    exp.take(section, "host", "p2p", CAPABILITIES)
    exp.take(section, "host", "nic_affinity", _one_of(*TOPOLOGY_DISTANCES))
    if nvlink := exp.part(section, "nvlink", HOST_PARTS["nvlink"]):
        exp.take(nvlink, "host.nvlink", "links", COUNT, as_name="nvlink_links")
        exp.take(nvlink, "host.nvlink", "version", WORD, as_name="nvlink_version")
    if errors := exp.part(section, "nvlink_errors", HOST_PARTS["nvlink_errors"]):
        exp.take(errors, "host.nvlink_errors", "max_crc_per_s", NUMBER)
        exp.take(errors, "host.nvlink_errors", "max_replay", COUNT)
        exp.take(errors, "host.nvlink_errors", "max_recovery", COUNT)
    if pcie := exp.part(section, "pcie", HOST_PARTS["pcie"]):
        exp.take(pcie, "host.pcie", "gen", COUNT, as_name="pcie_gen")
        exp.take(pcie, "host.pcie", "width", COUNT, as_name="pcie_width")
    if rdma := exp.part(section, "rdma", HOST_PARTS["rdma"]):
        exp.take(rdma, "host.rdma", "kind", _one_of("efa", "ib"), as_name="rdma_kind")
        exp.take(rdma, "host.rdma", "devices", COUNT, as_name="rdma_devices")
        exp.take(rdma, "host.rdma", "memlock_unlimited", BOOLEAN)
        exp.take(rdma, "host.rdma", "gdr", BOOLEAN, as_name="rdma_gdr")
    return exp.found


def load_profile(path: Path) -> Profile:
    """One profile file on its own; catalogue.load_catalogue resolves ``extends:`` across
    files."""
    try:
        data = load_yaml(path)
    except YamlError as exc:
        raise ProfileError([str(exc)]) from exc
    if isinstance(data, LineMap) and data.get("extends") is not None:
        raise ProfileError(
            [f"{path}:{data.line_of('extends')}: extends: load it with its catalogue "
             "(load_catalogue) so that the parent can be found"]
        )  # fmt: skip
    return parse_profile(data, path)
