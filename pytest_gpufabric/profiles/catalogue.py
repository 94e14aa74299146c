"""All the profiles a run knows: the shipped ``thresholds/`` and the user's overlays
(``--gpufabric-thresholds``), with ``extends:`` resolved.

Layers: shipped first, then each overlay path in order. A profile in a later layer replaces
the one of the same name below it. ``extends: X`` means the profile X as the run sees it (the
topmost layer that has it), except that a file extending its own name extends the profile
of that name in the layers below: that is how a site overlays a shipped profile
(``name: p5.48xlarge`` + ``extends: p5.48xlarge`` + the site's own floors).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .model import Profile, ProfileError
from .parse import parse_profile
from .yamlfile import LineMap, YamlError, load_yaml


def shipped_profile_dir() -> Path:
    """thresholds/ inside the installed package (wheel), else the checkout's top level."""
    here = Path(__file__).resolve().parent.parent  # the package directory
    for candidate in (here / "thresholds", here.parent / "thresholds"):
        if candidate.is_dir():
            return candidate
    raise ProfileError([f"{here}: shipped profiles not found (no thresholds/ directory)"])


def schema_path() -> Path:
    """The JSON Schema of profile files, shipped next to the profiles (for YAML editors)."""
    return shipped_profile_dir() / "profile.schema.json"


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
    if path.is_file():
        return [path]
    raise ProfileError([f"{path}: no such file or directory"])


@dataclass(frozen=True)
class Catalogue:
    """The profiles by name, as the run sees them (overlays applied, parents resolved)."""

    profiles: Mapping[str, Profile]

    def names(self) -> list[str]:
        return sorted(self.profiles)

    def get(self, name: str) -> Profile | None:
        return self.profiles.get(name)


@dataclass(frozen=True)
class _Raw:
    path: Path
    data: LineMap
    layer: int


class _Resolver:
    def __init__(self, layers: list[dict[str, _Raw]]) -> None:
        self.layers = layers
        self.done: dict[tuple[int, str], Profile | None] = {}  # None: invalid
        self.problems: list[str] = []

    def find(self, name: str, below: int | None = None) -> _Raw | None:
        top = len(self.layers) if below is None else below
        for layer in reversed(self.layers[:top]):
            if name in layer:
                return layer[name]
        return None

    def resolve(self, raw: _Raw, chain: tuple[tuple[int, str], ...] = ()) -> Profile | None:
        """The profile of ``raw`` with its parents applied; None (problems noted) if invalid.
        ``chain``: the (layer, name) of the profiles extending it, to catch cycles."""
        key = (raw.layer, str(raw.data["name"]))
        if key not in self.done:
            try:
                base = self._base(raw, (*chain, key))
                self.done[key] = parse_profile(raw.data, raw.path, base)
            except ProfileError as exc:
                self.problems.extend(exc.problems)
                self.done[key] = None
        return self.done[key]

    def _base(self, raw: _Raw, chain: tuple[tuple[int, str], ...]) -> Profile | None:
        """The resolved parent (None without ``extends``); ProfileError if there is none."""
        parent_name = raw.data.get("extends")
        if parent_name is None:
            return None
        name = chain[-1][1]
        where = f"{raw.path}:{raw.data.line_of('extends')}: extends"
        if not isinstance(parent_name, str) or not parent_name.strip():
            raise ProfileError([f"{where}: must be a profile name, got {parent_name!r}"])
        parent = self.find(parent_name, raw.layer if parent_name == name else None)
        if parent is None:
            known = sorted({n for layer in self.layers for n in layer} - {name})
            raise ProfileError(
                [f"{where}: unknown profile {parent_name!r} (known: {', '.join(known)})"]
            )
        if (parent.layer, parent_name) in chain:
            loop = chain[chain.index((parent.layer, parent_name)) :]
            raise ProfileError(
                [f"{where}: cycle {' -> '.join(n for _, n in loop)} -> {parent_name}"]
            )
        base = self.resolve(parent, chain)
        if base is None:
            raise ProfileError(
                [f"{where}: {parent_name!r} ({parent.path}) is invalid, see its problems"]
            )
        return base


def _read_layer(roots: Iterable[Path], index: int, problems: list[str]) -> dict[str, _Raw]:
    layer: dict[str, _Raw] = {}
    for root in roots:
        try:
            files = _yaml_files(root)
        except ProfileError as exc:
            problems.extend(exc.problems)
            continue
        for path in files:
            try:
                data = load_yaml(path)
            except YamlError as exc:
                problems.append(str(exc))
                continue
            if not isinstance(data, LineMap) or not isinstance(data.get("name"), str):
                try:  # let the profile parser say what is wrong
                    parse_profile(data, path)
                except ProfileError as exc:
                    problems.extend(exc.problems)
                continue
            name = data["name"]
            if name in layer:
                other = layer[name].path
                problems.append(
                    f"{path}:{data.line_of('name')}: name: profile {name!r} is also in {other}"
                )
                continue
            layer[name] = _Raw(path, data, index)
    return layer


def load_catalogue(extra: Iterable[Path] = (), shipped: Path | None = None) -> Catalogue:
    """Load and validate every profile of every layer; all problems of all files are
    reported together."""
    problems: list[str] = []
    overlays = list(extra)  # one layer: the same name twice in it is an error
    roots = [[shipped or shipped_profile_dir()], *([overlays] if overlays else [])]
    layers = [_read_layer(r, i, problems) for i, r in enumerate(roots)]
    resolver = _Resolver(layers)
    profiles: dict[str, Profile] = {}
    for layer in layers:
        for raw in layer.values():
            profile = resolver.resolve(raw)
            if profile is not None:
                profiles[profile.name] = profile  # later layers replace earlier ones
    problems += [p for p in resolver.problems if p not in problems]
    if problems:  # grouped by file, in the order found within each file
        raise ProfileError(sorted(problems, key=lambda p: p.split(":", 1)[0]))
    return Catalogue(profiles)


def _run_counts(profile: Profile) -> str:
    counts = [
        f"{kind}:{len(run.floors) if run.floors else 'intra'}"
        for kind, run in sorted(profile.runs.items())
    ]
    if profile.split is not None:
        counts.append(f"split:<={profile.split.max_slowdown:g}x")
    return " ".join(counts)


def describe(catalogue: Catalogue) -> list[str]:
    """One line per profile: name, GPUs, network, floors per run kind, file."""
    rows = [("profile", "GPUs", "network", "floors", "file")]
    for profile in (catalogue.profiles[n] for n in catalogue.names()):
        gpus = f"{profile.gpu_count} × {profile.gpu_model}" if profile.gpu_count else "none (gloo)"
        nccl, host = profile.nccl, profile.host
        network = "/".join(nccl.networks.names) if nccl.networks else "-"
        if host.rdma_devices is not None:
            kind = host.rdma_kind.value if host.rdma_kind else "RDMA"
            network += f", {host.rdma_devices.value} {kind}"
        name = profile.name + (f" < {profile.extends[0]}" if profile.extends else "")
        rows.append((name, gpus, network, _run_counts(profile) or "-", str(profile.file)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["  ".join(r[i].ljust(widths[i]) for i in range(4)) + "  " + r[4] for r in rows]


def main(argv: list[str] | None = None) -> int:
    """``python -m pytest_gpufabric.catalogue``: list or check profiles without pytest."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m pytest_gpufabric.catalogue",
        description="List, check and locate pytest-gpufabric instance profiles.",
    )
    parser.add_argument(
        "command",
        choices=("list", "check", "schema"),
        help="list: every profile; check: validate the shipped profiles and the --thresholds "
        "overlays (exit 1 on any problem); schema: print the path of the JSON Schema",
    )
    parser.add_argument(
        "--thresholds", action="append", type=Path, default=[], metavar="PATH",
        help="overlay profile file or directory, as --gpufabric-thresholds (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.command == "schema":
        print(schema_path())
        return 0
    try:
        catalogue = load_catalogue(args.thresholds)
    except ProfileError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if args.command == "list":
        print("\n".join(describe(catalogue)))
    else:
        print(f"{len(catalogue.profiles)} profiles valid")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
