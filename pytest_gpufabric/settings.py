"""The plugin's options and their precedence: command line > ``GPUFABRIC_*`` environment
variable > ini file > default. Resolved once into a frozen :class:`Settings`; every value
remembers where it came from so that errors and reports can name it.

Pure module: the pytest wiring in plugin.py feeds it raw strings.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A bad option value; the message names the option, the value and its source."""


@dataclass(frozen=True)
class OptionSpec:
    name: str
    metavar: str
    help: str
    default: str | None = None
    multiple: bool = False  # --gpufabric-thresholds may repeat; env uses os.pathsep

    @property
    def flag(self) -> str:
        return f"--gpufabric-{self.name}"

    @property
    def dest(self) -> str:
        return f"gpufabric_{self.name.replace('-', '_')}"

    @property
    def env(self) -> str:
        return f"GPUFABRIC_{self.name.upper().replace('-', '_')}"

    @property
    def ini(self) -> str:
        return self.dest


OPTIONS: tuple[OptionSpec, ...] = (
    OptionSpec(
        "instance",
        "NAME|auto",
        "Instance profile to judge this node against (a file in thresholds/), or 'auto' to "
        "pick it from the GPUs found. Default: auto",
        default="auto",
    ),
    OptionSpec(
        "nprocs",
        "N",
        "Ranks to launch on this node. Default: one per visible GPU, 2 on a machine without GPUs",
    ),
    OptionSpec(
        "emulate-nodes",
        "N",
        "Split this host's ranks into N NCCL nodes with NCCL_HOSTID, to exercise multi-node "
        "paths on one host (traffic between them goes over the network NCCL picks; the "
        "profile's bandwidth.inter_node floors apply). Default: 1",
        default="1",
    ),
    OptionSpec(
        "timeout",
        "SECONDS",
        "Deadline for each collective job (and for starting the ranks); a rank that misses it "
        "fails the test. Default: 120",
        default="120",
    ),
    OptionSpec(
        "artifacts",
        "DIR",
        "Keep per-rank NCCL debug logs, rank output and results here. Default: a directory "
        "under pytest's basetemp",
    ),
    OptionSpec("json", "PATH", "Write the run's facts and every test's measurements as JSON"),
    OptionSpec(
        "replay",
        "DIR",
        "Judge a recorded run instead of launching ranks: NCCL debug logs, nccl-tests output "
        "(and its -J JSON), or a --gpufabric-artifacts bundle; files are recognised by content",
    ),
    OptionSpec(
        "thresholds",
        "PATH",
        "Extra profile file or directory; a profile here replaces the shipped one of the same "
        "name. May be given several times",
        multiple=True,
    ),
)
SPECS = {spec.name: spec for spec in OPTIONS}


@dataclass(frozen=True)
class Setting(Generic[T]):
    value: T
    source: (
        str  # e.g. "--gpufabric-timeout", "GPUFABRIC_TIMEOUT", "ini gpufabric_timeout", "default"
    )


@dataclass(frozen=True)
class Settings:
    instance: Setting[str]
    nprocs: Setting[int | None]
    emulate_nodes: Setting[int]
    timeout: Setting[float]
    artifacts: Setting[Path | None]
    json: Setting[Path | None]
    thresholds: Setting[tuple[Path, ...]]
    replay: Setting[Path | None]

    @property
    def explicit(self) -> bool:
        """True when the user asked for gpufabric (an instance, a replay or emulated nodes
        set anywhere): problems are then usage errors before any test runs."""
        return (
            self.instance.source != "default"
            or self.replay.value is not None
            or self.emulate_nodes.source != "default"
        )


@dataclass(frozen=True)
class RawValue:
    text: str
    source: str
    base: Path  # relative paths resolve against this directory


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError("not an integer") from None
    if value < 1:
        raise ValueError("must be >= 1")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a number of seconds > 0")
    return value


def _instance(text: str) -> str:
    text = text.strip()
    if not text or any(c in text for c in "/\\ "):
        raise ValueError("must be a profile name or 'auto'")
    return text


def _pick(
    spec: OptionSpec,
    cli: Mapping[str, str | Sequence[str] | None],
    env: Mapping[str, str],
    ini: Mapping[str, str | Sequence[str] | None],
    ini_file: Path | None,
    cwd: Path,
) -> list[RawValue]:
    """The raw value(s) of the highest-precedence source that sets ``spec``."""
    raw_cli = cli.get(spec.dest)
    if raw_cli not in (None, [], ""):
        items = [raw_cli] if isinstance(raw_cli, str) else list(raw_cli or [])
        return [RawValue(str(i), spec.flag, cwd) for i in items]
    raw_env = env.get(spec.env)
    if raw_env:
        items = raw_env.split(os.pathsep) if spec.multiple else [raw_env]
        return [RawValue(i, f"environment variable {spec.env}", cwd) for i in items if i]
    raw_ini = ini.get(spec.ini)
    if raw_ini not in (None, [], ""):
        base = ini_file.parent if ini_file else cwd
        where = f"ini option {spec.ini}" + (f" in {ini_file}" if ini_file else "")
        items = [raw_ini] if isinstance(raw_ini, str) else list(raw_ini or [])
        if spec.multiple and isinstance(raw_ini, str):
            items = raw_ini.split()
        return [RawValue(str(i), where, base) for i in items]
    if spec.default is not None:
        return [RawValue(spec.default, "default", cwd)]
    return []


def _convert(spec: OptionSpec, raw: RawValue, parse: Callable[[str], T]) -> T:
    try:
        return parse(raw.text)
    except ValueError as exc:
        raise SettingError(
            f"{spec.flag}: invalid value {raw.text!r} from {raw.source}: {exc}"
        ) from None


def resolve(
    cli: Mapping[str, str | Sequence[str] | None],
    env: Mapping[str, str],
    ini: Mapping[str, str | Sequence[str] | None],
    *,
    ini_file: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Resolve every option; raise :class:`SettingError` on the first bad value."""
    here = cwd or Path.cwd()

    def one(name: str, parse: Callable[[str], T]) -> Setting[T | None]:
        spec = SPECS[name]
        raws = _pick(spec, cli, env, ini, ini_file, here)
        if not raws:
            return Setting(None, "default")
        return Setting(_convert(spec, raws[0], parse), raws[0].source)

    def defaulted(name: str, parse: Callable[[str], T]) -> Setting[T]:
        spec = SPECS[name]
        raw = _pick(spec, cli, env, ini, ini_file, here)[0]  # the spec's default is the last resort
        return Setting(_convert(spec, raw, parse), raw.source)

    def path(name: str) -> Setting[Path | None]:
        spec = SPECS[name]
        raws = _pick(spec, cli, env, ini, ini_file, here)
        if not raws:
            return Setting(None, "default")
        return Setting((raws[0].base / raws[0].text).resolve(), raws[0].source)

    spec = SPECS["thresholds"]
    extra = _pick(spec, cli, env, ini, ini_file, here)
    thresholds = Setting(
        tuple((r.base / r.text).resolve() for r in extra),
        extra[0].source if extra else "default",
    )
    return Settings(
        instance=defaulted("instance", _instance),
        nprocs=one("nprocs", _positive_int),
        emulate_nodes=defaulted("emulate-nodes", _positive_int),
        timeout=defaulted("timeout", _positive_seconds),
        artifacts=path("artifacts"),
        json=path("json"),
        thresholds=thresholds,
        replay=path("replay"),
    )
