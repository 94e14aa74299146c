"""The fleet isolation planner against model fleets (pytest_gpufabric/fleet): the round and
test counts of issue 12's targets, node versus link attribution, flakes, and decisions that
replay the same from the same results."""

from __future__ import annotations

import pytest

from pytest_gpufabric.fleet.planner import BISECT, CONFIRM, SCREEN, SWEEP, Planner, screen_groups
from pytest_gpufabric.fleet.simulate import ModelFleet, model, simulate

NODES = tuple(f"n{i:02d}" for i in range(16))


def run(fleet: ModelFleet) -> Planner:
    planner = Planner(fleet.nodes)
    while probes := planner.plan():
        for probe in probes:
            planner.record(probe.id, fleet.run(probe))
    return planner


def fleet(bad: tuple[str, ...] = (), links: tuple[tuple[str, str], ...] = ()) -> ModelFleet:
    return ModelFleet(NODES, frozenset(bad), frozenset(frozenset(link) for link in links))


def test_a_healthy_fleet_is_cleared_by_the_screen_alone() -> None:
    planner = run(fleet())
    assert planner.rounds == 1
    assert {p.purpose for p in planner.probes.values()} == {SCREEN}
    assert len(planner.probes) == 4  # √16 groups of 4
    assert planner.findings == []
    assert planner.cleared == set(NODES)


def test_a_bad_node_is_bisected_then_confirmed_with_two_partners() -> None:
    planner = run(fleet(bad=("n05",)))
    assert planner.bad_nodes == ["n05"]
    (finding,) = planner.findings
    confirms = [planner.probes[i] for i in finding.evidence[1:]]
    assert [p.purpose for p in confirms] == [CONFIRM, CONFIRM]
    partners = {p.nodes[1] for p in confirms}
    assert len(partners) == 2  # two distinct cleared partners
    assert partners <= planner.cleared
    assert "n05: failed with 2 cleared partners" in "\n".join(planner.decisions)
    assert planner.cleared == set(NODES) - {"n05"}


def test_a_bad_link_is_named_as_a_link_not_as_its_nodes() -> None:
    # n01-n02 are ring neighbours in the first screen group (n00..n03).
    planner = run(fleet(links=(("n01", "n02"),)))
    assert planner.bad_nodes == []
    assert planner.bad_links == [("n01", "n02")]
    assert any(p.purpose == BISECT for p in planner.probes.values())
    assert "link n01-n02: fails again while both ends pass" in "\n".join(planner.decisions)


def test_a_link_hidden_by_a_bad_node_in_the_same_group_is_found_by_the_sweep() -> None:
    planner = run(fleet(bad=("n00",), links=(("n02", "n03"),)))
    assert planner.bad_nodes == ["n00"]
    assert planner.bad_links == [("n02", "n03")]
    assert any(p.purpose == SWEEP for p in planner.probes.values())


def test_a_failure_nothing_reproduces_is_a_flake_and_blames_nobody() -> None:
    planner = Planner(NODES)
    first = planner.plan()
    for probe in first:
        planner.record(probe.id, probe.nodes[0] != "n04")  # group n04..n07 fails once
    while probes := planner.plan():
        for probe in probes:
            planner.record(probe.id, True)
    assert [f.kind for f in planner.findings] == ["flake"]
    assert planner.bad_nodes == []
    assert planner.bad_links == []
    assert planner.cleared == set(NODES)


def test_the_same_results_give_the_same_decisions() -> None:
    """A fleet run replays from its recorded probe outcomes to the same decisions."""
    live = run(fleet(bad=("n03", "n12"), links=(("n09", "n10"),)))
    again = Planner(NODES)
    while probes := again.plan():
        assert [(p.nodes, p.purpose) for p in probes] == [
            (live.probes[p.id].nodes, live.probes[p.id].purpose) for p in probes
        ]
        for probe in probes:
            again.record(probe.id, live.outcomes[probe.id])
    assert again.decisions == live.decisions
    assert again.findings == live.findings


@pytest.mark.parametrize("seed", range(10))
def test_issue_12_targets_on_1024_nodes(seed: int) -> None:
    """k <= 3 bad nodes among 1024 named within 8 rounds and no healthy node blamed; a
    healthy fleet cleared within 3 rounds (one here). Every round's probes are disjoint
    (simulate checks it)."""
    outcome = simulate(model(1024, 3, 0, 0.0, seed))
    assert outcome.found_by is not None
    assert outcome.found_by <= 8
    assert outcome.rounds <= 8
    assert outcome.blamed == ()
    assert outcome.missed == ()
    assert simulate(model(1024, 0, 0, 0.0, seed)).rounds <= 3


def test_screen_groups_follow_topology_domains_and_split_large_ones() -> None:
    domains = {n: ("rack-a" if i < 6 else "rack-b") for i, n in enumerate(NODES)}
    groups = screen_groups(NODES, domains, size=4)
    assert groups[0] == NODES[:6]  # one domain, not more than twice the size: one group
    assert [len(g) for g in groups[1:]] == [4, 4, 2]  # 10 nodes, more than twice 4: split
    nine = screen_groups(NODES[:9], size=4)
    assert nine == [NODES[:4], NODES[4:9]]  # no group of one: it joins the one before


def test_planning_before_recording_the_last_round_is_refused() -> None:
    planner = Planner(NODES)
    planner.plan()
    with pytest.raises(RuntimeError, match="record every probe of the last round"):
        planner.plan()


@pytest.mark.parametrize("n", [2, 3, 5, 9, 17, 50, 101, 232])
def test_screen_groups_hold_every_node_once(n: int) -> None:
    nodes = tuple(f"n{i}" for i in range(n))
    groups = screen_groups(nodes)
    assert [node for group in groups for node in group] == list(nodes)
    assert all(len(group) >= 2 for group in groups)
