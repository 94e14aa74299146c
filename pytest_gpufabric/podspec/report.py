"""The linter's result: findings in file order, the profile(s) that judged them, text and
JSON renderings."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..profiles.model import Profile
from .findings import SEVERITIES, Finding, shown


@dataclass(frozen=True)
class Choice:
    """Which profile judged one pod template, and how it was chosen."""

    where: str
    profile: Profile | None
    how: str


@dataclass(frozen=True)
class PodspecReport:
    path: Path
    findings: tuple[Finding, ...]
    choices: tuple[Choice, ...]

    @property
    def profile_used(self) -> Profile | None:
        """The profile every pod template was judged against; None if none was, or if
        the templates were pinned to different instance types (see ``choices``)."""
        profiles = {c.profile.name if c.profile else None for c in self.choices}
        if len(profiles) != 1 or None in profiles:
            return None
        return self.choices[0].profile

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    def counts(self) -> dict[str, int]:
        found = Counter(f.severity for f in self.findings)
        return {severity: found[severity] for severity in SEVERITIES}

    def summary(self) -> str:
        counts = self.counts()
        parts = [f"{n} {s}{'s' if n != 1 and s != 'info' else ''}" for s, n in counts.items()]
        verdict = "FAIL" if counts["error"] else "PASS"
        return f"{verdict}: {', '.join(parts)}"

    def render(self) -> str:
        """Compiler-style lines (``file:line: severity [rule] where: message``), each with
        its remedy, after which profile judged what."""
        name = shown(self.path)
        lines = []
        hows = {c.how for c in self.choices}
        if len(hows) == 1:
            lines.append(f"{name}: {len(self.choices)} pod template(s), profile {hows.pop()}")
        else:
            lines += [f"{name}: {c.where}: profile {c.how}" for c in self.choices]
        for f in self.findings:
            lines.append(f"{name}:{f.line}: {f.severity} [{f.rule}] {f.where}: {f.message}")
            lines.append(f"    remedy: {f.remedy}")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        used = self.profile_used
        return {
            "file": str(self.path),
            "profile": {"name": used.name, "file": str(used.file)} if used else None,
            "pods": [
                {
                    "where": c.where,
                    "profile": c.profile.name if c.profile else None,
                    "how": c.how,
                }
                for c in self.choices
            ],
            "counts": self.counts(),
            "ok": not self.errors,
            "findings": [f.to_json() for f in self.findings],
        }
