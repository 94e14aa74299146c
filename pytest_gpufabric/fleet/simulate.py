"""A model fleet to run the planner against (benchmarks/fleet_sim.py, tests): bad nodes fail
every test they are in, a bad link fails every test whose ring uses it, and any result may
be wrong with a given probability. A model of the planner's input, not of a cluster: the
planner itself never sees it."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from .planner import Planner, Probe, screen_groups

MAX_ROUNDS = 64  # a planner that has not finished by then is reported as such


def ring_links(nodes: tuple[str, ...]) -> Iterator[frozenset[str]]:
    """The links a ring over ``nodes`` uses (a pair: its one link)."""
    if len(nodes) == 2:
        yield frozenset(nodes)
        return
    for i, node in enumerate(nodes):
        yield frozenset((node, nodes[(i + 1) % len(nodes)]))


@dataclass
class ModelFleet:
    nodes: tuple[str, ...]
    bad_nodes: frozenset[str]
    bad_links: frozenset[frozenset[str]]
    false_rate: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def run(self, probe: Probe) -> bool:
        good = not (set(probe.nodes) & self.bad_nodes) and not any(
            link in self.bad_links for link in ring_links(probe.nodes)
        )
        return good != (self.rng.random() < self.false_rate)


@dataclass(frozen=True)
class Outcome:
    rounds: int
    found_by: int | None  # the round by which every bad node was named (None: never)
    tests: int
    finished: bool
    blamed: tuple[str, ...]  # healthy nodes named bad
    missed: tuple[str, ...]  # bad nodes not named
    links_found: int
    links_missed: int
    links_wrong: int  # links named bad that are not


def model(n: int, bad: int, links: int, false_rate: float, seed: int) -> ModelFleet:
    """``n`` nodes, ``bad`` of them bad, ``links`` bad links among the links the screen's
    rings use (a link no test ever uses cannot be found by any group test, only by all pairs),
    chosen at random with ``seed``."""
    rng = random.Random(seed)  # noqa: S311 (a model, not a secret)
    nodes = tuple(f"node{i:04d}" for i in range(n))
    bad_nodes = frozenset(rng.sample(nodes, bad))
    healthy = [n for n in nodes if n not in bad_nodes]
    usable = [
        link
        for group in screen_groups(nodes)
        for link in ring_links(group)
        if not link & bad_nodes and set(link) <= set(healthy)
    ]
    bad_links = frozenset(rng.sample(usable, min(links, len(usable))))
    return ModelFleet(nodes, bad_nodes, bad_links, false_rate, rng)


def simulate(fleet: ModelFleet) -> Outcome:
    planner = Planner(fleet.nodes)
    tests = 0
    found_by = 0 if not fleet.bad_nodes else None
    while planner.rounds < MAX_ROUNDS:
        probes = planner.plan()
        if not probes:
            break
        tests += len(probes)
        seen: set[str] = set()
        for probe in probes:
            if seen & set(probe.nodes):
                raise AssertionError(f"round {planner.rounds}: {probe.nodes} overlap another probe")
            seen |= set(probe.nodes)
            planner.record(probe.id, fleet.run(probe))
        if found_by is None and fleet.bad_nodes <= set(planner.bad_nodes):
            found_by = planner.rounds
    named = set(planner.bad_nodes)
    found = {frozenset(link) for link in planner.bad_links}
    return Outcome(
        rounds=planner.rounds,
        found_by=found_by,
        tests=tests,
        finished=planner.done,
        blamed=tuple(sorted(named - fleet.bad_nodes)),
        missed=tuple(sorted(fleet.bad_nodes - named)),
        links_found=len(found & fleet.bad_links),
        links_missed=len(fleet.bad_links - found),
        links_wrong=len(found - fleet.bad_links),
    )
