"""The preflight as a check of the gate (suites/test_podspec.py): errors fail the test, each
with its line and remedy; warnings pass with a GpufabricWarning; the counts are recorded."""

from __future__ import annotations

from pathlib import Path

from ..judge.judgement import Finding as Found
from ..judge.judgement import Judgement, Property
from ..profiles.model import Profile
from . import PodspecError, lint_file
from .findings import Finding, shown


def _cite(path: Path, finding: Finding) -> str:
    return f"{shown(path)}:{finding.line}: {finding.severity} [{finding.rule}] {finding.where}"


def judge_podspec(path: Path, profile: Profile | None) -> Judgement:
    """``path`` linted against the run's profile (None: the one its selector names)."""
    try:
        report = lint_file(path, profile)
    except PodspecError as exc:
        return Judgement("failed", f"the pod spec cannot be read: {exc}")
    counts = report.counts()
    props: list[Property] = [("podspec_file", str(path))]
    props += [(f"podspec_{severity}s", n) for severity, n in counts.items()]
    used = report.profile_used
    props.append(("podspec_profile", used.name if used is not None else "none"))
    if report.errors:
        findings = tuple(
            Found(f"{_cite(path, f)}: {f.message}", (), "", f.remedy) for f in report.errors
        )
        return Judgement("failed", report.summary(), findings, tuple(props))
    warnings = [f for f in report.findings if f.severity == "warning"]
    warning = "; ".join(f"{_cite(path, f)}: {f.message}" for f in warnings) or None
    return Judgement("passed", report.summary(), (), tuple(props), warning)
