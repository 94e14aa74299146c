"""Which nodes (and links) of a fleet are bad, in few rounds of collective tests.

Exhaustive pair testing does not scale (232 nodes: 26,796 pairs). The planner works in rounds
of tests on disjoint sets of nodes, each round planned from the results of the earlier ones:

1. **Screen**: one test per topology domain (node labels), else per group of about √N nodes.
   A group that passes clears its nodes. A group test runs a ring over its nodes in the
   given order, so it exercises each node and the links between ring neighbours.
2. **Bisect** a failing group into two contiguous halves of its ring, tested at the same
   time. A half of one node is padded with a cleared node. A failing half is bisected again;
   if both halves pass, the fault is on a link that crossed the cut: the two boundary pairs
   are tested.
3. **Confirm** each suspect of a failing pair against two distinct cleared partners, never one
   booked twice in a round: failing with both names the node; passing with both clears it. A
   split verdict takes a third partner. A failing pair whose two nodes are both cleared by
   their partners is tested once more: failing again names the link, passing calls the
   first result a flake.
4. **Sweep**: once all that is decided, each failed screen group is tested once more without
   the nodes found bad (a bad node in one half hides a bad link across the cut).

A fleet of at most four nodes is tested pair by pair instead (every pair once, two at a time:
three rounds for four nodes): with so few nodes a failing screen leaves no cleared node to
confirm a suspect with. A node failing with two partners that pass elsewhere is bad; a pair
failing while both ends pass elsewhere is tested again: failing again names the link.

Every decision is kept in :attr:`Planner.decisions` (and every probe with its outcome), so a
fleet run can be replayed to the same decisions. Pure: no pytest, no launcher here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial

SCREEN, BISECT, CROSS, CONFIRM, RETEST, SWEEP, PAIR = (
    "screen", "bisect", "cross", "confirm", "retest", "sweep", "pair",
)  # fmt: skip
SMALL_FLEET = 4  # up to this many nodes: every pair (planner above), see the module's text


@dataclass(frozen=True)
class Probe:
    """One test of a round: a collective over ``nodes`` (in ring order)."""

    id: int
    nodes: tuple[str, ...]
    purpose: str  # SCREEN, BISECT, CROSS, CONFIRM, RETEST
    why: str  # what it decides, for people


@dataclass(frozen=True)
class Finding:
    kind: str  # "node", "link" or "flake"
    nodes: tuple[str, ...]  # the node, the link's two ends, or the group that failed once
    evidence: tuple[int, ...]  # ids of the probes that decided it


@dataclass
class _Confirm:
    """A suspect node tested with cleared partners until two agree."""

    suspect: str
    pair: _Pair
    partners: list[str] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # probe ids that failed
    passed: list[int] = field(default_factory=list)
    busy: bool = False

    @property
    def verdict(self) -> str | None:
        """ "bad", "good" or None (not decided yet)."""
        if len(self.failed) >= 2:
            return "bad"
        if len(self.passed) >= 2:
            return "good"
        return None


@dataclass
class _Pair:
    """A failing pair (from bisection or a boundary probe): both ends are confirmed."""

    nodes: tuple[str, str]
    first: int  # the probe that failed
    confirms: list[_Confirm] = field(default_factory=list)
    retest: int | None = None  # probe id of the retest of the pair itself
    done: bool = False


@dataclass
class _Group:
    """A set of nodes (ring order) known to contain a fault, being bisected."""

    nodes: tuple[str, ...]
    failed: int  # the probe that failed
    halves: list[tuple[tuple[str, ...], int | None, bool | None]] = field(default_factory=list)
    cross: list[tuple[tuple[str, str], int | None, bool | None]] = field(default_factory=list)
    done: bool = False


class Planner:
    """Plan round after round; ``record`` each probe's outcome; stop when :meth:`plan` is []."""

    def __init__(
        self,
        nodes: Sequence[str],
        domains: Mapping[str, str] | None = None,
        group_size: int | None = None,
    ) -> None:
        if len(set(nodes)) != len(nodes):
            raise ValueError("node names must be distinct")
        self.nodes = tuple(nodes)
        self.domains = dict(domains or {})  # node -> topology domain (NVLink clique, block)
        self.cleared: set[str] = set()
        self.findings: list[Finding] = []
        self.decisions: list[str] = []
        self.probes: dict[int, Probe] = {}
        self.outcomes: dict[int, bool] = {}
        self.rounds = 0
        self._next_id = 0
        small = 2 <= len(self.nodes) <= SMALL_FLEET
        self._screens = [] if small else [screen_groups(self.nodes, domains, group_size)]
        self._pair_rounds = round_robin(self.nodes) if small else []
        self._pairs_done = not small
        self._failed_screens: list[tuple[str, ...]] = []
        self._groups: list[_Group] = []
        self._pairs: list[_Pair] = []
        self._pending: dict[int, Callable[[int, bool], None]] = {}  # probe id -> its handler
        self._partner_use: dict[str, int] = {}
        self._order = {n: i for i, n in enumerate(self.nodes)}

    # --- the rounds ------------------------------------------------------------------------

    def plan(self) -> list[Probe]:
        """The next round: probes on disjoint nodes; [] when every node is decided."""
        if self._pending:
            raise RuntimeError("record every probe of the last round before planning the next")
        busy: set[str] = set()
        round_: list[Probe] = []
        if not self._pairs_done:
            round_ = self._plan_small()
            if round_:
                self.rounds += 1
            return round_
        if self._screens:
            for nodes in self._screens.pop(0):
                if len(nodes) < 2:  # a fleet of one node: nothing to test it against
                    self.decisions.append(f"{nodes[0]}: alone, nothing to test it with")
                    continue
                why = f"screen {len(nodes)} nodes"
                round_.append(self._probe(nodes, SCREEN, why, self._screened))
                busy |= set(nodes)
        for group in self._groups:
            if not group.done:
                round_ += self._plan_group(group, busy)
        for pair in self._pairs:
            if not pair.done:
                round_ += self._plan_pair(pair, busy)
        if not round_:
            round_ = self._sweep()
        if round_:
            self.rounds += 1
        else:
            self._give_up()
        return round_

    def _give_up(self) -> None:
        """Nothing can be planned, yet groups or pairs are open: no cleared node is left to
        test their nodes against (bad nodes in every half). Said, not guessed."""
        stuck = [g.nodes for g in self._groups if not g.done]
        stuck += [p.nodes for p in self._pairs if not p.done]
        for group in self._groups:
            group.done = True
        for pair in self._pairs:
            pair.done = True
        left = sorted({n for nodes in stuck for n in nodes} - self.cleared - set(self.bad_nodes))
        if left:
            self.decisions.append(
                f"{', '.join(left)}: undecided: no cleared node is left to test them against"
            )

    def _sweep(self) -> list[Probe]:
        """Once everything else is decided: every failed screen group once more without the
        nodes found bad, since a fault in one half hides a link fault across the cut."""
        probes = []
        bad = set(self.bad_nodes)
        for nodes in self._failed_screens:
            rest = tuple(n for n in nodes if n not in bad)
            if len(rest) >= 2 and len(rest) < len(nodes):
                why = f"screen group again without {', '.join(sorted(set(nodes) & bad))}"
                probes.append(self._probe(rest, SWEEP, why, self._screened))
        self._failed_screens.clear()
        return probes

    def record(self, probe_id: int, passed: bool) -> None:
        """The outcome of one probe of the current round."""
        on_result = self._pending.pop(probe_id)
        probe = self.probes[probe_id]
        self.outcomes[probe_id] = passed
        word = "passed" if passed else "failed"
        self.decisions.append(f"probe {probe_id} ({probe.why}) {word}")
        on_result(probe_id, passed)

    # --- a small fleet: every pair -----------------------------------------------------------

    def _plan_small(self) -> list[Probe]:
        if self._pair_rounds:
            why = f"every pair once, round {self.rounds + 1}"
            return [
                self._probe(pair, PAIR, why, self._small_result)
                for pair in self._pair_rounds.pop(0)
            ]
        retests = [p for p in self._pairs if p.retest is None]
        if retests:
            busy: set[str] = set()
            return [probe for pair in retests for probe in self._plan_retest(pair, busy)]
        if not all(p.done for p in self._pairs):
            return []  # a retest outcome still to come (record() before plan())
        self._pairs_done = True
        self._decide_small()
        return []

    def _small_result(self, probe_id: int, passed: bool) -> None:
        if passed:
            self._clear(self.probes[probe_id].nodes)
        if self._pair_rounds:
            return
        # Every pair ran: a failing pair whose ends both passed elsewhere is tested again.
        for pid, probe in self.probes.items():
            ends = (probe.nodes[0], probe.nodes[1])
            fresh = probe.purpose == PAIR and not any(p.nodes == ends for p in self._pairs)
            if fresh and self.outcomes.get(pid) is False and set(ends) <= self.cleared:
                self._pairs.append(_Pair(ends, pid))

    def _decide_small(self) -> None:
        for node in self.nodes:
            if node in self.cleared:
                continue
            failed = [(pid, p.nodes[1] if p.nodes[0] == node else p.nodes[0])
                      for pid, p in self.probes.items()
                      if node in p.nodes and self.outcomes.get(pid) is False]  # fmt: skip
            with_good = [(pid, other) for pid, other in failed if other in self.cleared]
            if len(with_good) >= 2:
                partners = ", ".join(other for _, other in with_good)
                evidence = tuple(pid for pid, _ in with_good)
                self.findings.append(Finding("node", (node,), evidence))
                self.decisions.append(
                    f"{node}: failed with {len(with_good)} cleared partners ({partners}): "
                    "the node is bad"
                )
            else:
                self.decisions.append(
                    f"{node}: undecided: it passed with no partner, and failed with "
                    f"{len(with_good)} partner(s) that passed elsewhere (2 are needed)"
                )

    @property
    def done(self) -> bool:
        return (
            self._pairs_done
            and not self._screens
            and not self._pending
            and all(g.done for g in self._groups)
            and all(p.done for p in self._pairs)
        )

    def scope(self, probe_id: int) -> str:
        """Which links a probe crossed: inside one topology domain, or between domains (kept
        apart in reports: an NVLink domain's fault is not the network's)."""
        if not self.domains:
            return "fleet"
        found = {self.domains.get(n, "") for n in self.probes[probe_id].nodes}
        return f"domain {found.pop()}" if len(found) == 1 else "across domains"

    @property
    def bad_nodes(self) -> list[str]:
        return sorted({n for f in self.findings if f.kind == "node" for n in f.nodes})

    @property
    def bad_links(self) -> list[tuple[str, ...]]:
        return sorted({f.nodes for f in self.findings if f.kind == "link"})

    # --- bisection -------------------------------------------------------------------------

    def _plan_group(self, group: _Group, busy: set[str]) -> list[Probe]:
        if not group.halves:
            if len(group.nodes) == 2:  # nothing to split: a failing pair
                group.done = True
                self._pairs.append(_Pair((group.nodes[0], group.nodes[1]), group.failed))
                return self._plan_pair(self._pairs[-1], busy)
            middle = len(group.nodes) // 2
            group.halves = [(group.nodes[:middle], None, None), (group.nodes[middle:], None, None)]
        probes = []
        for index, (nodes, probe_id, _) in enumerate(group.halves):
            if probe_id is not None or set(nodes) & busy:
                continue
            tested = nodes
            if len(nodes) == 1:  # pad a single node with a cleared one
                partner = self._partner(nodes[0], busy, ())
                if partner is None:
                    continue
                tested = (nodes[0], partner)
            why = f"half {index + 1} of {len(group.nodes)} from probe {group.failed}"
            probe = self._probe(tested, BISECT, why, partial(self._half, group, index))
            group.halves[index] = (nodes, probe.id, None)
            busy |= set(tested)
            probes.append(probe)
        for index, (ends, probe_id, _) in enumerate(group.cross):
            if probe_id is None and not set(ends) & busy:
                why = f"boundary {ends[0]}-{ends[1]} of probe {group.failed}"
                probe = self._probe(ends, CROSS, why, partial(self._crossed, group, index))
                group.cross[index] = (ends, probe.id, None)
                busy |= set(ends)
                probes.append(probe)
        return probes

    def _settle_group(self, group: _Group) -> None:
        outcomes = [passed for _, _, passed in group.halves]
        if None in outcomes:
            return
        if not group.cross:
            for nodes, probe_id, passed in group.halves:
                if passed:
                    self._clear(nodes)
                elif len(nodes) == 1 and probe_id is not None:  # a padded node failed
                    partner = self.probes[probe_id].nodes[1]
                    self._pairs.append(_Pair((nodes[0], partner), probe_id))
                else:
                    self._groups.append(_Group(nodes, probe_id or 0))
            if all(outcomes):  # the fault crossed the cut: its two boundary links
                a, b = group.halves[0][0], group.halves[1][0]
                across: list[tuple[str, str]] = [(a[-1], b[0])]
                if len(group.nodes) > 2:
                    across.append((b[-1], a[0]))
                group.cross = [(e, None, None) for e in dict.fromkeys(across)]
                self.decisions.append(
                    f"both halves of probe {group.failed} passed: testing the links across the cut"
                )
                return
            group.done = True
            return
        if any(passed is None for _, _, passed in group.cross):
            return
        group.done = True
        failing = [(ends, pid) for ends, pid, passed in group.cross if not passed]
        for ends, pid in failing:
            self._pairs.append(_Pair(ends, pid or 0))
        if not failing:
            self.findings.append(Finding("flake", group.nodes, (group.failed,)))
            self.decisions.append(
                f"probe {group.failed} failed, but neither half nor the links across the cut "
                "did: a flake (the group is cleared)"
            )
            self._clear(group.nodes)

    # --- confirmation ----------------------------------------------------------------------

    def _plan_pair(self, pair: _Pair, busy: set[str]) -> list[Probe]:
        if not pair.confirms:
            pair.confirms = [_Confirm(n, pair) for n in pair.nodes if n not in self.cleared]
            if not pair.confirms:  # both ends already cleared elsewhere: retest the pair
                return self._plan_retest(pair, busy)
        probes = []
        for confirm in pair.confirms:
            if confirm.verdict is not None or confirm.busy or confirm.suspect in busy:
                continue
            used = (*confirm.partners, *pair.nodes)
            partner = self._partner(confirm.suspect, busy, used)
            if partner is None:
                continue
            confirm.partners.append(partner)
            confirm.busy = True
            why = f"suspect {confirm.suspect} with cleared {partner}"
            probes.append(
                self._probe(
                    (confirm.suspect, partner), CONFIRM, why, partial(self._confirmed, confirm)
                )
            )
            busy |= {confirm.suspect, partner}
        if pair.retest is None and all(c.verdict == "good" for c in pair.confirms):
            probes += self._plan_retest(pair, busy)
        return probes

    def _plan_retest(self, pair: _Pair, busy: set[str]) -> list[Probe]:
        if pair.retest is not None or set(pair.nodes) & busy:
            return []
        why = f"pair {pair.nodes[0]}-{pair.nodes[1]} again"
        probe = self._probe(pair.nodes, RETEST, why, partial(self._conclude_link, pair))
        pair.retest = probe.id
        busy |= set(pair.nodes)
        return [probe]

    def _settle_pair(self, pair: _Pair) -> None:
        verdicts = [c.verdict for c in pair.confirms]
        if None in verdicts:
            return
        for confirm in pair.confirms:
            if confirm.verdict == "bad" and confirm.suspect in self.bad_nodes:
                continue  # found again by another screen's group
            if confirm.verdict == "bad":
                evidence = (pair.first, *confirm.failed)
                self.findings.append(Finding("node", (confirm.suspect,), evidence))
                self.decisions.append(
                    f"{confirm.suspect}: failed with {len(confirm.failed)} cleared partners "
                    f"({', '.join(confirm.partners)}): the node is bad"
                )
            else:
                self._clear((confirm.suspect,))
        if any(v == "bad" for v in verdicts):
            pair.done = True

    def _conclude_link(self, pair: _Pair, probe_id: int, passed: bool) -> None:
        """The retest of a pair whose ends both passed with other partners."""
        pair.done = True
        if passed:
            self.findings.append(Finding("flake", pair.nodes, (pair.first, probe_id)))
            self.decisions.append(
                f"pair {pair.nodes[0]}-{pair.nodes[1]} passed when tested again, both ends pass "
                "with other partners: the first failure was a flake"
            )
        else:
            self.findings.append(Finding("link", tuple(sorted(pair.nodes)), (pair.first, probe_id)))
            self.decisions.append(
                f"link {pair.nodes[0]}-{pair.nodes[1]}: fails again while both ends pass with "
                "other partners: the link is bad"
            )

    # --- plumbing --------------------------------------------------------------------------

    def _probe(
        self,
        nodes: tuple[str, ...],
        purpose: str,
        why: str,
        on_result: Callable[[int, bool], None],
    ) -> Probe:
        self._next_id += 1
        probe = Probe(self._next_id, nodes, purpose, why)
        self.probes[probe.id] = probe
        self._pending[probe.id] = on_result
        return probe

    # --- what each probe's result does ------------------------------------------------------

    def _screened(self, probe_id: int, passed: bool) -> None:
        probe = self.probes[probe_id]
        if passed:
            self._clear(probe.nodes)
            return
        self._groups.append(_Group(probe.nodes, probe_id))
        if probe.purpose == SCREEN:
            self._failed_screens.append(probe.nodes)

    def _half(self, group: _Group, index: int, probe_id: int, passed: bool) -> None:
        nodes, _, _ = group.halves[index]
        group.halves[index] = (nodes, probe_id, passed)
        self._settle_group(group)

    def _crossed(self, group: _Group, index: int, probe_id: int, passed: bool) -> None:
        ends, _, _ = group.cross[index]
        group.cross[index] = (ends, probe_id, passed)
        self._settle_group(group)

    def _confirmed(self, confirm: _Confirm, probe_id: int, passed: bool) -> None:
        confirm.busy = False
        (confirm.passed if passed else confirm.failed).append(probe_id)
        self._settle_pair(confirm.pair)

    def _partner(self, suspect: str, busy: set[str], used: Iterable[str]) -> str | None:
        """A cleared node free in this round and not ``used`` already, least used first."""
        taken = busy | set(used) | {suspect}
        free = [n for n in self.cleared if n not in taken]
        if not free:
            return None
        # A partner in the suspect's own domain first: its result then says the same thing
        # about the same kind of link (NVLink domain or network) as the failure did.
        home = self.domains.get(suspect)
        choice = min(free, key=lambda n: (self.domains.get(n) != home,
                                          self._partner_use.get(n, 0), self._order[n]))  # fmt: skip
        self._partner_use[choice] = self._partner_use.get(choice, 0) + 1
        return choice

    def _clear(self, nodes: Iterable[str]) -> None:
        bad = set(self.bad_nodes)
        self.cleared |= {n for n in nodes if n not in bad}


def screen_groups(
    nodes: Sequence[str], domains: Mapping[str, str] | None = None, size: int | None = None
) -> list[tuple[str, ...]]:
    """The screen's groups: one per topology domain where labels give them (a domain larger
    than twice the group size is split), else consecutive groups of about √N nodes; a last
    group of one node joins the one before."""
    size = size or max(2, round(math.sqrt(len(nodes))))
    by_domain: dict[str, list[str]] = {}
    for node in nodes:
        by_domain.setdefault((domains or {}).get(node, ""), []).append(node)
    groups: list[tuple[str, ...]] = []
    for members in by_domain.values():
        chunk = size if len(members) > 2 * size else len(members)
        part = [tuple(members[i : i + chunk]) for i in range(0, len(members), chunk)]
        if len(part) > 1 and len(part[-1]) == 1:
            last = part.pop()
            part[-1] = part[-1] + last
        groups += part
    return groups


def round_robin(nodes: Sequence[str]) -> list[list[tuple[str, str]]]:
    """Every pair of ``nodes`` once, in rounds of disjoint pairs (the circle method)."""
    ring = list(nodes) + ([""] if len(nodes) % 2 else [])
    rounds = []
    for _ in range(len(ring) - 1):
        half = len(ring) // 2
        pairs = [(ring[i], ring[-1 - i]) for i in range(half)]
        rounds.append([(min(a, b, key=nodes.index), max(a, b, key=nodes.index))
                       for a, b in pairs if a and b])  # fmt: skip
        ring = [ring[0], ring[-1], *ring[1:-1]]
    return rounds
