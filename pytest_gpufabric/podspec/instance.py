"""Which instance profile judges a pod: ``--instance``/``--profile``, else the instance type
the pod is pinned to with ``nodeSelector`` or a required node affinity."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..profiles.catalogue import Catalogue, load_catalogue
from ..profiles.model import Profile, ProfileError
from .findings import shown
from .source import PodspecError, Y, load_documents
from .workloads import PodTarget, read_manifest

LABELS = ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type")


@dataclass(frozen=True)
class Pinned:
    """The instance types a pod may land on, and the line that says so."""

    types: tuple[str, ...]
    line: int
    how: str  # "nodeSelector node.kubernetes.io/instance-type"


def _affinity_types(spec: Y) -> Pinned | None:
    """``In`` values of a required node affinity on the instance-type label; with several
    terms (ORed) every term's values count."""
    terms = spec.at(
        "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
        "nodeSelectorTerms",
    )  # fmt: skip
    types: list[str] = []
    line = 0
    for term in terms.items() if terms is not None else []:
        expressions = term.get("matchExpressions")
        for expr in expressions.items() if expressions is not None else []:
            values = expr.get("values")
            if expr.text_of("key") in LABELS and expr.text_of("operator") == "In" and values:
                types += [v.text for v in values.items() if v.text]
                line = line or expr.start_line
    if not types:
        return None
    return Pinned(tuple(dict.fromkeys(types)), line, "required node affinity")


def pinned(target: PodTarget) -> Pinned | None:
    selector = target.spec.get("nodeSelector")
    for label in LABELS:
        value = selector.get(label) if selector is not None else None
        if value is not None and value.text:
            return Pinned((value.text,), value.line, f"nodeSelector {label}")
    return _affinity_types(target.spec)


def profile_from_spec(path: Path) -> str | None:
    """The instance type the first pinned pod template of ``path`` names (None if none, or
    if it allows several); :class:`PodspecError` when the file cannot be read."""
    for target in read_manifest(load_documents(path)).targets:
        found = pinned(target)
        if found is not None:
            return found.types[0] if len(found.types) == 1 else None
    return None


def load_profiles(profile_file: Path | None = None) -> Catalogue:
    """The shipped catalogue, with ``profile_file`` as an overlay; one-line errors."""
    try:
        return load_catalogue([profile_file] if profile_file else [])
    except ProfileError as exc:  # the given file's own problem first: it is the cause
        own = [p for p in exc.problems if profile_file and p.startswith(str(profile_file))]
        raise PodspecError((own or exc.problems)[0]) from None


def profile_by_name(name: str, catalogue: Catalogue | None = None) -> Profile:
    catalogue = catalogue or load_profiles()
    profile = catalogue.get(name)
    if profile is None:
        known = ", ".join(catalogue.names())
        raise PodspecError(f"--instance {name}: no such instance profile (known: {known})")
    return profile


def profile_from_file(path: Path) -> Profile:
    if not path.is_file():
        raise PodspecError(f"{path}: no such profile file")
    catalogue = load_profiles(path)
    for profile in catalogue.profiles.values():
        if profile.file.resolve() == path.resolve():
            return profile
    raise PodspecError(f"{path}: no profile in it")


def lookup(found: Pinned, catalogue: Catalogue) -> tuple[Profile | None, str]:
    """The profile a pinned pod gets, and a sentence saying how (or why none)."""
    names = {n.lower(): n for n in catalogue.names()}
    profiles = [catalogue.get(names[t.lower()]) for t in found.types if t.lower() in names]
    if len(found.types) == 1 and profiles and profiles[0] is not None:
        profile = profiles[0]
        return (
            profile,
            f"{profile.name} ({shown(profile.file)}) from the {found.how} (line {found.line})",
        )
    types = ", ".join(found.types)
    if len(found.types) > 1:
        return None, f"the {found.how} (line {found.line}) allows several types ({types})"
    return None, f"{types} (the {found.how}, line {found.line}) has no instance profile"
