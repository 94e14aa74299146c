"""What every test of the run did: its outcome, properties and message (for the JSON report
and the terminal summary), and which of the profile's demands it answered (for the
certification verdict, judge/certify.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..judge.certify import Outcome
from ..judge.judgement import Skip


@dataclass(frozen=True)
class TestRecord:
    nodeid: str
    outcome: str  # passed | failed | skipped
    duration_s: float
    properties: dict[str, Any]
    message: str


@dataclass
class Records:
    tests: list[TestRecord] = field(default_factory=list)
    _claims: dict[str, str] = field(default_factory=dict)  # nodeid -> demand key
    _skips: dict[str, Skip] = field(default_factory=dict)  # nodeid -> the kind of skip

    def claim(self, nodeid: str, key: str) -> None:
        """The test ``nodeid`` answers the demand ``key``."""
        self._claims[nodeid] = key

    def skip_kind(self, nodeid: str, kind: Skip) -> None:
        """The test is about to skip, for this kind of reason."""
        self._skips[nodeid] = kind

    @property
    def checked(self) -> bool:
        """Some test of this session ran a gpufabric check."""
        return bool(self._claims)

    def add(self, record: TestRecord) -> None:
        # One record per test: a later failure (in teardown) replaces its pass or skip.
        if self.tests and self.tests[-1].nodeid == record.nodeid:
            if self.tests[-1].outcome == "failed" or record.outcome != "failed":
                return
            self.tests[-1] = record
            return
        self.tests.append(record)

    def outcomes(self) -> list[Outcome]:
        return [
            Outcome(
                self._claims[r.nodeid],
                r.nodeid,
                r.outcome,
                self._skips.get(r.nodeid),
                r.message.splitlines()[0] if r.message else "",
            )
            for r in self.tests
            if r.nodeid in self._claims
        ]

    def failed_elsewhere(self) -> list[str]:
        """Failed tests that answer no demand (a user's own test, an error in a fixture)."""
        claimed = self._claims
        return [r.nodeid for r in self.tests if r.outcome == "failed" and r.nodeid not in claimed]
