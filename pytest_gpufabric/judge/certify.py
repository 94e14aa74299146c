"""The run's verdict: CERTIFIED only when a profile judged the node(s), no test failed, and
every check and floor the profile asks for was judged. Whatever it asks for that was skipped
for missing evidence (a replay without that collective, a pool that could not start) or not
run at all keeps the run from being certified, and is listed. Pure: no pytest here."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .judgement import Skip

CERTIFIED = "CERTIFIED"
NOT_CERTIFIED = "NOT CERTIFIED"
SHOWN = 12  # not-judged items listed in the terminal; the JSON report has them all


@dataclass(frozen=True)
class Demand:
    """One check or floor the profile asks for on this run."""

    key: str  # "bandwidth/intra_node/all_reduce-1GiB", "nccl/init", "node/ranks_joined"
    what: str  # for people: "busbw of all_reduce 1GiB >= 318 GB/s (thresholds/x.yaml:19)"
    unrun: str = "not run in this session"  # what it means when no test answered it


@dataclass(frozen=True)
class Outcome:
    """What became of one test that claimed a demand's key."""

    key: str
    nodeid: str
    outcome: str  # passed | failed | skipped (pytest's)
    skip: Skip | None  # the kind of skip the check declared; None: not declared
    reason: str  # the skip reason or the failure's first line


@dataclass(frozen=True)
class Certification:
    certified: bool
    reason: str  # one line
    judged: int  # demands judged (passed or failed)
    failed: tuple[str, ...]  # tests that failed
    not_judged: tuple[tuple[str, str], ...]  # (test or demand, why)

    @property
    def verdict(self) -> str:
        return CERTIFIED if self.certified else NOT_CERTIFIED

    def lines(self, shown: int = SHOWN) -> list[str]:
        lines = [f"{self.verdict}: {self.reason}"]
        lines += [f"  failed: {nodeid}" for nodeid in self.failed[:shown]]
        if len(self.failed) > shown:
            lines.append(f"  ... and {len(self.failed) - shown} more failed")
        lines += [f"  not judged: {what}: {why}" for what, why in self.not_judged[:shown]]
        if len(self.not_judged) > shown:
            lines.append(
                f"  ... and {len(self.not_judged) - shown} more not judged (all of them are in "
                "the JSON report, under certification)"
            )
        return lines

    def facts(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reason": self.reason,
            "judged": self.judged,
            "failed": list(self.failed),
            "not_judged": [{"what": what, "why": why} for what, why in self.not_judged],
        }


def certify(
    profile: str | None,
    no_profile_reason: str,
    demands: Sequence[Demand],
    outcomes: Iterable[Outcome],
    failed_elsewhere: Sequence[str] = (),
) -> Certification:
    """``outcomes``: every test that claimed a check (a demand's or not); ``failed_elsewhere``:
    other failed tests of the session. A failure anywhere keeps the run from being
    certified, the failure of a check the profile does not ask for too."""
    by_key: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_key.setdefault(outcome.key, []).append(outcome)
    asked = {demand.key for demand in demands}
    failed = list(failed_elsewhere)
    failed += [o.nodeid for key, seen in by_key.items() if key not in asked
               for o in seen if o.outcome == "failed"]  # fmt: skip
    not_judged: list[tuple[str, str]] = []
    judged = 0
    for demand in demands:
        seen = by_key.get(demand.key)
        if not seen:
            not_judged.append((demand.what, demand.unrun))
            continue
        for outcome in seen:
            if outcome.outcome == "failed":
                failed.append(outcome.nodeid)
                judged += 1
            elif outcome.outcome == "passed":
                judged += 1
            elif outcome.skip in (Skip.NOT_ASKED, Skip.NOT_APPLICABLE):
                pass  # the check itself says this run cannot or need not show it
            else:
                not_judged.append((outcome.nodeid, outcome.reason or "skipped"))
    failed = list(dict.fromkeys(failed))
    if profile is None:
        reason = f"no instance profile judged this run ({no_profile_reason})"
    elif failed or not_judged:
        parts = []
        if failed:
            parts.append(f"{len(failed)} test(s) failed")
        if not_judged:
            parts.append(
                f"{len(not_judged)} check(s) that profile {profile} asks for were not judged"
            )
        reason = "; ".join(parts)
    else:
        return Certification(
            True,
            f"every check and floor that profile {profile} asks for was judged and passed "
            f"({judged} tests)",
            judged,
            (),
            (),
        )
    return Certification(False, reason, judged, tuple(failed), tuple(not_judged))
