"""One finding of the linter, and the helpers the rules share to cite a profile."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..profiles.model import Expectation, Profile
from ..profiles.yamlfile import LineMap, YamlError, load_yaml

Severity = Literal["error", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    rule: str  # stable id, e.g. "shm-size" (docs/podspec.md lists them)
    message: str  # what was found, the expectation and where the expectation comes from
    line: int  # 1-based line in the linted file
    remedy: str
    where: str  # "JobSet llama-3-8b / container pytorch"

    def to_json(self) -> dict[str, object]:
        return {
            "severity": self.severity,
            "rule": self.rule,
            "line": self.line,
            "where": self.where,
            "message": self.message,
            "remedy": self.remedy,
        }


def shown(path: Path) -> str:
    """A path relative to the working directory when it is below it (shorter messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def cite(expectation: Expectation) -> str:
    """``host.shm_min_gib in thresholds/p4d.24xlarge.yaml:105``."""
    return f"{expectation.key} in {shown(expectation.file)}:{expectation.line}"


def cite_gpu_count(profile: Profile) -> str:
    """Where ``gpu.count`` is written (Profile keeps no line for it): this file or a parent."""
    for path in profile.files or (profile.file,):
        try:
            data = load_yaml(path)
        except YamlError:
            continue
        gpu = data.get("gpu") if isinstance(data, LineMap) else None
        if isinstance(gpu, LineMap) and "count" in gpu:
            return f"gpu.count in {shown(path)}:{gpu.line_of('count')}"
    return f"gpu.count of profile {profile.name} ({shown(profile.file)})"
