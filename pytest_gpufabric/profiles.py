"""Instance profiles: what a node of a given type must have and how fast its collectives
must be. One YAML file per profile in ``thresholds/``; docs/profiles.md documents every key.

Every floor keeps the file and line it came from and its ``source``, so a failing test can
say where the expectation came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .collectives import DTYPE_SIZES, Collective
from .units import format_size, parse_size
from .yamlfile import LineMap, YamlError, load_yaml


class ProfileError(Exception):
    """One or more problems in profile files, each ``file:line: key: problem``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(problems[0] if len(problems) == 1 else f"{len(problems)} problems")
        self.problems = problems


@dataclass(frozen=True)
class Floor:
    """Minimum bus bandwidth for one collective at one message size."""

    collective: Collective
    nbytes: int
    busbw_gbps: float
    source: str
    margin: str
    file: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def case_id(self) -> str:
        return f"{self.collective.value}-{format_size(self.nbytes)}"


@dataclass(frozen=True)
class Expectation:
    """One expected NCCL behaviour, with where it is written and why."""

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
    ranks: int  # the rank count the floors hold for (default: one per GPU)
    floors: tuple[Floor, ...] = field(default_factory=tuple)
    nccl: NcclExpectations = field(default_factory=NcclExpectations)
    host: HostExpectations = field(default_factory=HostExpectations)

    @property
    def backend(self) -> str:
        """gpu.count 0 describes a CPU-only node: its floors are for gloo."""
        return "nccl" if self.gpu_count else "gloo"

    def floor_for(self, collective: Collective, nbytes: int) -> Floor | None:
        for floor in self.floors:
            if floor.collective is collective and floor.nbytes == nbytes:
                return floor
        return None


class _Checker:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.problems: list[str] = []

    def problem(self, line: int, key: str, text: str) -> None:
        self.problems.append(f"{self.path}:{line}: {key}: {text}")

    def mapping(self, parent: LineMap, key: str, *, required: bool = True) -> LineMap | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, key, "missing")
            return None
        if not isinstance(value, LineMap):
            self.problem(parent.line_of(key), key, f"must be a mapping, got {_kind(value)}")
            return None
        return value

    def text(self, parent: LineMap, key: str, *, required: bool = True) -> str | None:
        value = parent.get(key)
        if value is None:
            if required:
                self.problem(parent.line, key, "missing")
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(
                parent.line_of(key), key, f"must be a non-empty string, got {_kind(value)}"
            )
            return None
        return value.strip()

    def integer(self, parent: LineMap, key: str, default: int, minimum: int) -> int:
        value = parent.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.problem(
                parent.line_of(key), key, f"must be an integer >= {minimum}, got {value!r}"
            )
            return default
        return value

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


_TOP_KEYS = ("name", "description", "gpu", "bandwidth", "nccl", "host")
_NCCL_KEYS = ("source", "intra_node", "network")
_INTRA_KEYS = ("transport", "path", "p2p_read", "nvls")
_NETWORK_KEYS = ("names", "gdr", "plugin", "provider", "nics", "protocol")
_HOST_KEYS = (
    "source", "shm_min_gib", "fabric_manager", "nvlink", "nvlink_errors", "p2p", "pcie",
    "nic_affinity", "rdma",
)  # fmt: skip
P2P_CAPABILITIES = ("read", "write", "nvlink", "atomics")
TOPOLOGY_DISTANCES = ("PIX", "PXB", "PHB", "NODE", "SYS")  # nvidia-smi topo -m, nearest first
_GPU_KEYS = ("model", "count")
_BANDWIDTH_KEYS = ("dtype", "warmup", "iters", "ranks", "intra_node")
_SECTION_KEYS = ("source", "margin", "floors")
_FLOOR_KEYS = ("busbw_gbps", "source")


def parse_profile(data: Any, path: Path) -> Profile:
    """Validate one parsed profile file; raise :class:`ProfileError` listing every problem."""
    check = _Checker(path)
    if not isinstance(data, LineMap):
        raise ProfileError([f"{path}:1: a profile must be a YAML mapping, got {_kind(data)}"])
    check.unknown_keys(data, _TOP_KEYS, "")
    name = check.text(data, "name")
    if name is not None and name != path.stem:
        check.problem(
            data.line_of("name"), "name", f"{name!r} must match the file name {path.stem!r}"
        )
    description = check.text(data, "description", required=False) or ""
    gpu = check.mapping(data, "gpu")
    model, count = "", 0
    if gpu is not None:
        check.unknown_keys(gpu, _GPU_KEYS, "gpu.")
        count = check.integer(gpu, "count", 0, 0)
        model = (check.text(gpu, "model") or "") if count else str(gpu.get("model", "none"))
    dtype, warmup, iters, ranks = "bfloat16", 5, 20, count or 2  # CPU nodes: 2 gloo ranks
    floors: list[Floor] = []
    bandwidth = check.mapping(data, "bandwidth", required=False)
    if bandwidth is not None:
        check.unknown_keys(bandwidth, _BANDWIDTH_KEYS, "bandwidth.")
        dtype = bandwidth.get("dtype", dtype)
        if dtype not in DTYPE_SIZES:
            check.problem(
                bandwidth.line_of("dtype"),
                "bandwidth.dtype",
                f"{dtype!r} is not one of {', '.join(DTYPE_SIZES)}",
            )
            dtype = "bfloat16"
        warmup = check.integer(bandwidth, "warmup", warmup, 0)
        iters = check.integer(bandwidth, "iters", iters, 1)
        ranks = check.integer(bandwidth, "ranks", ranks, 1)
        section = check.mapping(bandwidth, "intra_node", required=False)
        if section is not None:
            floors = _parse_floors(check, section, "bandwidth.intra_node")
    nccl, host = NcclExpectations(), HostExpectations()
    if (nccl_section := check.mapping(data, "nccl", required=False)) is not None:
        nccl = _parse_nccl(check, nccl_section)
    if (host_section := check.mapping(data, "host", required=False)) is not None:
        host = _parse_host(check, host_section)
    if floors and ranks < 2:
        check.problem(
            bandwidth.line_of("ranks") if bandwidth else data.line,
            "bandwidth.ranks",
            f"floors need at least 2 ranks, got {ranks} (set bandwidth.ranks for a CPU node)",
        )
    if check.problems or name is None:
        raise ProfileError(check.problems)
    return Profile(
        name,
        path,
        description,
        model,
        count,
        dtype,
        warmup,
        iters,
        ranks,
        tuple(floors),
        nccl,
        host,
    )


def _parse_floors(check: _Checker, section: LineMap, where: str) -> list[Floor]:
    check.unknown_keys(section, _SECTION_KEYS, f"{where}.")
    default_source = check.text(section, "source", required=False)
    margin = check.text(section, "margin", required=False) or ""
    table = check.mapping(section, "floors")
    floors: list[Floor] = []
    if table is None:
        return floors
    for op_name, sizes in table.items():
        key = f"{where}.floors.{op_name}"
        try:
            collective = Collective(op_name)
        except ValueError:
            known = ", ".join(c.value for c in Collective)
            check.problem(table.line_of(op_name), key, f"unknown collective (known: {known})")
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
            value, source = entry, default_source
            if isinstance(entry, LineMap):
                check.unknown_keys(entry, _FLOOR_KEYS, f"{size_key}.")
                value = entry.get("busbw_gbps")
                source = check.text(entry, "source", required=False) or default_source
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                check.problem(
                    line, size_key, f"busbw floor must be a number > 0 (GB/s), got {value!r}"
                )
                continue
            if source is None:
                check.problem(line, size_key, f"no source: give one here or as {where}.source")
                continue
            floors.append(Floor(collective, nbytes, float(value), source, margin, check.path, line))
    return floors


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
    and needs a source, its sub-section's or the section's."""

    def __init__(self, check: _Checker, section: LineMap, name: str) -> None:
        self.check = check
        self.name = name
        self.default_source = check.text(section, "source", required=False)
        self.found: dict[str, Expectation] = {}

    def take(
        self, part: LineMap, prefix: str, key: str, rule: Rule, *, as_name: str | None = None
    ) -> None:
        if key not in part:
            return
        value, full = part[key], f"{prefix}.{key}"
        valid, describe = rule
        if not valid(value):
            self.check.problem(part.line_of(key), full, f"must be {describe}, got {value!r}")
            return
        source = self.check.text(part, "source", required=False) or self.default_source
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
        part = self.check.mapping(section, key, required=False)
        if part is not None:
            self.check.unknown_keys(part, ("source", *allowed), f"{self.name}.{key}.")
        return part


def _parse_nccl(check: _Checker, section: LineMap) -> NcclExpectations:
    check.unknown_keys(section, _NCCL_KEYS, "nccl.")
    exp = _Expectations(check, section, "nccl")
    if intra := exp.part(section, "intra_node", _INTRA_KEYS):
        exp.take(intra, "nccl.intra_node", "transport", _one_of(*TRANSPORTS))
        exp.take(intra, "nccl.intra_node", "path", (WORD[0], "a path type such as NVL, PIX, PXB"))
        exp.take(intra, "nccl.intra_node", "p2p_read", BOOLEAN)
        exp.take(intra, "nccl.intra_node", "nvls", BOOLEAN)
    if network := exp.part(section, "network", _NETWORK_KEYS):
        exp.take(network, "nccl.network", "names", NAMES, as_name="networks")
        exp.take(network, "nccl.network", "gdr", BOOLEAN)
        exp.take(network, "nccl.network", "plugin", _one_of(*KNOWN_PLUGINS))
        exp.take(network, "nccl.network", "provider", WORD)
        exp.take(network, "nccl.network", "nics", COUNT)
        exp.take(network, "nccl.network", "protocol", _one_of("SENDRECV", "RDMA"))
    return NcclExpectations(**exp.found)


def _parse_host(check: _Checker, section: LineMap) -> HostExpectations:
    check.unknown_keys(section, _HOST_KEYS, "host.")
    exp = _Expectations(check, section, "host")
    exp.take(section, "host", "shm_min_gib", NUMBER)
    exp.take(section, "host", "fabric_manager", BOOLEAN)
    exp.take(section, "host", "p2p", CAPABILITIES)
    exp.take(section, "host", "nic_affinity", _one_of(*TOPOLOGY_DISTANCES))
    if nvlink := exp.part(section, "nvlink", ("links", "version")):
        exp.take(nvlink, "host.nvlink", "links", COUNT, as_name="nvlink_links")
        exp.take(nvlink, "host.nvlink", "version", WORD, as_name="nvlink_version")
    if errors := exp.part(
        section, "nvlink_errors", ("max_crc_per_s", "max_replay", "max_recovery")
    ):
        exp.take(errors, "host.nvlink_errors", "max_crc_per_s", NUMBER)
        exp.take(errors, "host.nvlink_errors", "max_replay", COUNT)
        exp.take(errors, "host.nvlink_errors", "max_recovery", COUNT)
    if pcie := exp.part(section, "pcie", ("gen", "width")):
        exp.take(pcie, "host.pcie", "gen", COUNT, as_name="pcie_gen")
        exp.take(pcie, "host.pcie", "width", COUNT, as_name="pcie_width")
    if rdma := exp.part(section, "rdma", ("kind", "devices", "memlock_unlimited", "gdr")):
        exp.take(rdma, "host.rdma", "kind", _one_of("efa", "ib"), as_name="rdma_kind")
        exp.take(rdma, "host.rdma", "devices", COUNT, as_name="rdma_devices")
        exp.take(rdma, "host.rdma", "memlock_unlimited", BOOLEAN)
        exp.take(rdma, "host.rdma", "gdr", BOOLEAN, as_name="rdma_gdr")
    return HostExpectations(**exp.found)


def load_profile(path: Path) -> Profile:
    try:
        return parse_profile(load_yaml(path), path)
    except YamlError as exc:
        raise ProfileError([str(exc)]) from exc


def shipped_profile_dir() -> Path:
    """thresholds/ inside the installed package (wheel), else the checkout's top level."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "thresholds", here.parent / "thresholds"):
        if candidate.is_dir():
            return candidate
    raise ProfileError([f"{here}: shipped profiles not found (no thresholds/ directory)"])


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if path.is_file():
        return [path]
    raise ProfileError([f"{path}: no such file or directory"])


@dataclass(frozen=True)
class Catalogue:
    """All profiles the run knows: shipped ones, overridden by the user's files."""

    profiles: Mapping[str, Profile]

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)


def load_catalogue(extra: Iterable[Path] = (), shipped: Path | None = None) -> Catalogue:
    """Load and validate every profile; a user file replaces the shipped profile of the same
    name. All problems of all files are reported together."""
    problems: list[str] = []
    profiles: dict[str, Profile] = {}
    for layer in ([shipped or shipped_profile_dir()], list(extra)):
        seen: dict[str, Path] = {}
        for root in layer:
            try:
                files = _yaml_files(root)
            except ProfileError as exc:
                problems.extend(exc.problems)
                continue
            for path in files:
                try:
                    profile = load_profile(path)
                except ProfileError as exc:
                    problems.extend(exc.problems)
                    continue
                if profile.name in seen:
                    other = seen[profile.name]
                    problems.append(f"{path}:1: name: profile {profile.name!r} is also in {other}")
                    continue
                seen[profile.name] = path
                profiles[profile.name] = profile
    if problems:
        raise ProfileError(problems)
    return Catalogue(profiles)
