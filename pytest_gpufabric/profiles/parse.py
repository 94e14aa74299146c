"""Read and validate one profile file into a :class:`~.model.Profile`; every problem is
reported as ``file:line: key: problem``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..collectives import ALL_COLLECTIVES, DTYPE_SIZES, Collective
from ..runs import INTER_NODE, NVLINK_ONLY, RUN_KINDS, SPLIT
from ..units import parse_size
from .checker import Checker
from .checker import kind as kind_of
from .expectations import parse_host, parse_nccl
from .keys import (
    BANDWIDTH_KEYS,
    FLOOR_KEYS,
    GPU_KEYS,
    PROTECTED_ENV,
    RUN_KEYS,
    SPLIT_KEYS,
    TOP_KEYS,
)
from .latency import parse_latency
from .model import (
    DEFAULT_ITERS,
    DEFAULT_REPEATS,
    DEFAULT_TIMING,
    DEFAULT_WARMUP,
    DEFAULT_WARN_BAND_PCT,
    TIMINGS,
    BandwidthRun,
    Floor,
    HostExpectations,
    NcclExpectations,
    Profile,
    ProfileError,
    SplitLimit,
)
from .tables import cells
from .workload import parse_workload
from .yamlfile import LineMap, YamlError, load_yaml


def parse_profile(data: Any, path: Path, base: Profile | None = None) -> Profile:
    """Validate one parsed profile file; raise :class:`ProfileError` listing every problem.
    ``base``: the resolved profile it extends (its values are the defaults here)."""
    check = Checker(path)
    if not isinstance(data, LineMap):
        raise ProfileError([f"{path}:1: a profile must be a YAML mapping, got {kind_of(data)}"])
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
    repeats, timing = _parse_timing(check, bandwidth, base)
    latency = parse_latency(check, data, base.latency if base else ())
    workload = parse_workload(check, data, base.workload if base else None)
    runs = dict(base.runs) if base else {}
    split = base.split if base else None
    if bandwidth is not None:
        for kind in RUN_KINDS:
            if kind in bandwidth:
                _parse_run(check, bandwidth, kind, runs, warn_band)
        if SPLIT in bandwidth:
            split = _parse_split(check, bandwidth)
    nccl = base.nccl if base else NcclExpectations()
    if (nccl_section := check.mapping(data, "nccl", "nccl", required=False)) is not None:
        nccl = dataclasses.replace(nccl, **parse_nccl(check, nccl_section))
    host = base.host if base else HostExpectations()
    if (host_section := check.mapping(data, "host", "host", required=False)) is not None:
        host = dataclasses.replace(host, **parse_host(check, host_section))
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
        files=(path, *(base.files if base else ())), split=split,
        repeats=repeats, timing=timing, latency=latency, workload=workload,
    )  # fmt: skip


def _parse_gpu(
    check: Checker, data: LineMap, base: Profile | None
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
    check: Checker, bandwidth: LineMap | None, base: Profile | None
) -> tuple[str, int, int, int | None, float]:
    if base:
        dtype, warmup, iters = base.dtype, base.warmup, base.iters
        ranks_set, warn_band = base.ranks_set, base.warn_band_pct
    else:
        dtype, warmup, iters = "bfloat16", DEFAULT_WARMUP, DEFAULT_ITERS
        ranks_set, warn_band = None, DEFAULT_WARN_BAND_PCT
    if bandwidth is None:
        return dtype, warmup, iters, ranks_set, warn_band
    check.unknown_keys(bandwidth, BANDWIDTH_KEYS, "bandwidth.")
    dtype = check.choice(bandwidth, "dtype", "bandwidth.dtype", DTYPE_SIZES, dtype)
    warmup = check.integer(bandwidth, "warmup", "bandwidth.warmup", warmup, 0)
    iters = check.integer(bandwidth, "iters", "bandwidth.iters", iters, 1)
    if "ranks" in bandwidth:
        ranks_set = check.integer(bandwidth, "ranks", "bandwidth.ranks", 2, 1)
    warn_band = check.number(bandwidth, "warn_band", "bandwidth.warn_band", warn_band)
    return dtype, warmup, iters, ranks_set, warn_band


def _parse_timing(
    check: Checker, bandwidth: LineMap | None, base: Profile | None
) -> tuple[int, str]:
    repeats, timing = (base.repeats, base.timing) if base else (DEFAULT_REPEATS, DEFAULT_TIMING)
    if bandwidth is None:
        return repeats, timing
    repeats = check.integer(bandwidth, "repeats", "bandwidth.repeats", repeats, 1)
    timing = check.choice(bandwidth, "timing", "bandwidth.timing", TIMINGS, timing)
    return repeats, timing


def _parse_run(
    check: Checker,
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


def _parse_split(check: Checker, bandwidth: LineMap) -> SplitLimit | None:
    """``bandwidth.split``, stated whole in this file (with its own source); ``null`` drops
    an inherited one."""
    where = f"bandwidth.{SPLIT}"
    if bandwidth[SPLIT] is None:
        return None
    section = check.mapping(bandwidth, SPLIT, where)
    if section is None:
        return None
    check.unknown_keys(section, SPLIT_KEYS, f"{where}.")
    source = check.text(section, "source", f"{where}.source")
    margin = check.text(section, "margin", f"{where}.margin", required=False) or ""
    value = section.get("max_slowdown")
    line = section.line_of("max_slowdown") if "max_slowdown" in section else section.line
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
        got = "missing" if value is None else f"got {value!r}"
        check.problem(line, f"{where}.max_slowdown", f"must be a number >= 1 (busbw on one "
                      f"host ÷ busbw split), {got}")  # fmt: skip
        return None
    nbytes = None
    if "size" in section:
        size = section["size"]
        try:
            nbytes = parse_size(size if isinstance(size, (str, int)) else repr(size))
        except ValueError as exc:
            check.problem(section.line_of("size"), f"{where}.size", str(exc))
    if source is None:
        return None
    return SplitLimit(float(value), nbytes, source, margin, check.path, line)


def _parse_env(check: Checker, section: LineMap, where: str) -> dict[str, str]:
    value = section.get("env")
    if not isinstance(value, LineMap):
        check.problem(section.line_of("env"), where, f"must be a mapping, got {kind_of(value)}")
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
                value.line_of(name), f"{where}.{name}", f"must be a string, got {kind_of(setting)}"
            )
        else:
            env[name] = str(setting)
    return env


def _parse_floors(
    check: Checker,
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
    for cell in cells(check, table, f"{where}.floors", "busbw floors"):
        collective, nbytes, line, size_key = cell.collective, cell.nbytes, cell.line, cell.key
        if nbytes is None:  # drop every inherited floor of this collective
            found.update({k: None for k in current if k[0] is collective})
            continue
        entry = cell.value
        if entry is None:
            found[(collective, nbytes)] = None
            continue
        value, source = entry, default_source
        if isinstance(entry, LineMap):
            check.unknown_keys(entry, FLOOR_KEYS, f"{size_key}.")
            value = entry.get("busbw_gbps")
            source = (
                check.text(entry, "source", f"{size_key}.source", required=False) or default_source
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            check.problem(line, size_key, f"busbw floor must be a number > 0 (GB/s), got {value!r}")
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
