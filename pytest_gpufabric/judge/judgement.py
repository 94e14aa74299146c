"""The one result type of every check: a :class:`Judgement` (passed, failed, or skipped with
the kind of skip), its findings (what was found, the evidence, the expectation with its
source, one remedy) and the properties it records. Pure: no pytest here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from ..evidence.cite import quote

__all__ = ["quote"]  # re-exported: judges quote evidence lines with it

Property = tuple[str, object]
Status = Literal["passed", "failed", "skipped"]
EXAMPLES = 3


class GpufabricWarning(UserWarning):
    """A check passed close to its limit (inside a floor's warn band): worth a look, not a
    failure. Filter it like any warning (``-W error::pytest_gpufabric.GpufabricWarning``)."""


class Skip(str, Enum):
    """Why a check was not judged; only NO_EVIDENCE keeps a run from being certified."""

    NO_EVIDENCE = "no evidence"  # the profile asks for it, but there is nothing to judge
    NOT_ASKED = "not asked"  # the profile does not ask for it
    NOT_APPLICABLE = "not applicable"  # this run cannot show it (one node: no inter-node link)


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
    status: Status
    summary: str = ""  # a one-line summary, the reason of a skip, or a failure's whole text
    findings: tuple[Finding, ...] = ()
    properties: tuple[Property, ...] = ()
    warning: str | None = None  # passed, but close to the limit (a floor's warn band)
    skip: Skip | None = None  # set when skipped

    @property
    def message(self) -> str:
        return "\n".join(f.render() for f in self.findings) or self.summary

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def passed(summary: str, props: Iterable[Property] = (), warning: str | None = None) -> Judgement:
    return Judgement("passed", summary, (), tuple(props), warning)


def failed(message: str, props: Iterable[Property] = ()) -> Judgement:
    return Judgement("failed", message, (), tuple(props))


def judged(findings: Sequence[Finding], summary: str, props: Iterable[Property]) -> Judgement:
    status: Status = "failed" if findings else "passed"
    return Judgement(status, summary, tuple(findings), tuple(props))


def skipped(reason: str, props: Iterable[Property] = ()) -> Judgement:
    """The profile asks for this check but the evidence is missing: the run is not certified."""
    return Judgement("skipped", reason, (), tuple(props), skip=Skip.NO_EVIDENCE)


def not_asked(reason: str, props: Iterable[Property] = ()) -> Judgement:
    return Judgement("skipped", reason, (), tuple(props), skip=Skip.NOT_ASKED)


def not_applicable(reason: str, props: Iterable[Property] = ()) -> Judgement:
    return Judgement("skipped", reason, (), tuple(props), skip=Skip.NOT_APPLICABLE)

