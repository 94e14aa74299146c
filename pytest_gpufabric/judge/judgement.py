"""Findings and judgements: what a check found, the evidence, the expectation with its source,
and one remedy. Shared by the NCCL checks (transports.py) and the host checks
(host_checks.py). Pure: no pytest here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Property = tuple[str, object]
EXAMPLES = 3


class GpufabricWarning(UserWarning):
    """A check passed close to its limit (inside a floor's warn band): worth a look, not a
    failure. Filter it like any warning (``-W error::pytest_gpufabric.GpufabricWarning``)."""


@dataclass(frozen=True)
class Finding:
    summary: str
    evidence: tuple[str, ...]  # '"<line text>" (file:line)'
    expected: str
    remedy: str

    def render(self) -> str:
        lines = [self.summary]
        lines += [f"  evidence: {e}" for e in self.evidence]
        if self.expected:
            lines.append(f"  expected: {self.expected}")
        if self.remedy:
            lines.append(f"  remedy: {self.remedy}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Judgement:
    status: str  # passed | failed | skipped
    reason: str = ""  # why skipped, or a one-line summary
    findings: tuple[Finding, ...] = ()
    properties: tuple[Property, ...] = ()

    @property
    def message(self) -> str:
        return "\n".join(f.render() for f in self.findings) or self.reason


def passed(reason: str, props: Iterable[Property] = ()) -> Judgement:
    return Judgement("passed", reason, (), tuple(props))


def skipped(reason: str, props: Iterable[Property] = ()) -> Judgement:
    return Judgement("skipped", reason, (), tuple(props))


def judged(findings: Sequence[Finding], summary: str, props: Iterable[Property]) -> Judgement:
    status = "failed" if findings else "passed"
    return Judgement(status, summary, tuple(findings), tuple(props))


def quote(text: str, where: object) -> str:
    return f'"{text}" ({where})'
