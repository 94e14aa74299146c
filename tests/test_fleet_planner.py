"""The fleet isolation planner against model fleets (pytest_gpufabric/fleet): the round and
test counts of issue 12's targets, node versus link attribution, flakes, and decisions that
replay the same from the same results."""

from __future__ import annotations

import pytest

from pytest_gpufabric.fleet.planner import (
    BISECT,
    CONFIRM,
    PAIR,
    RETEST,
    SCREEN,
    SWEEP,
    Planner,
    round_robin,
    screen_groups,
)
from pytest_gpufabric.fleet.run import (
    FAULT_HOOK,
    FleetNode,
    domains_of,
    emulated_nodes,
    faults,
    placed_nodes,
    waves,
)
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


def small(nodes: tuple[str, ...], bad: tuple[str, ...] = (),
          links: tuple[tuple[str, str], ...] = ()) -> Planner:  # fmt: skip
    model_fleet = ModelFleet(nodes, frozenset(bad), frozenset(frozenset(x) for x in links))
    planner = Planner(model_fleet.nodes)
    while probes := planner.plan():
        for probe in probes:
            planner.record(probe.id, model_fleet.run(probe))
    return planner


def test_every_pair_once_in_rounds_of_disjoint_pairs() -> None:
    assert round_robin(("a", "b", "c", "d")) == [
        [("a", "d"), ("b", "c")], [("a", "c"), ("b", "d")], [("a", "b"), ("c", "d")],
    ]  # fmt: skip
    assert round_robin(("a", "b", "c")) == [[("b", "c")], [("a", "c")], [("a", "b")]]


@pytest.mark.parametrize("bad", ["a", "b", "c"])
def test_three_nodes_one_bad_is_named_by_its_two_pairs(bad: str) -> None:
    """With three nodes a failing screen leaves no cleared node to confirm against: every
    pair is tested instead (the bisection used to stop there, leaving every node undecided)."""
    planner = small(("a", "b", "c"), bad=(bad,))
    assert planner.bad_nodes == [bad]
    assert planner.cleared == {"a", "b", "c"} - {bad}
    assert planner.rounds == 3
    assert {p.purpose for p in planner.probes.values()} == {PAIR}


def test_four_nodes_two_bad_are_both_named() -> None:
    planner = small(("a", "b", "c", "d"), bad=("b", "d"))
    assert planner.bad_nodes == ["b", "d"]
    assert planner.rounds == 3
    assert len(planner.probes) == 6


def test_a_bad_link_among_four_is_retested_and_named() -> None:
    planner = small(("a", "b", "c", "d"), links=(("a", "c"),))
    assert planner.bad_links == [("a", "c")]
    assert planner.bad_nodes == []
    assert planner.rounds == 4  # three rounds of pairs, then the failing pair once more
    assert planner.probes[7].purpose == RETEST


def test_two_nodes_whose_pair_fails_are_undecided_not_blamed() -> None:
    planner = small(("a", "b"), bad=("b",))
    assert planner.bad_nodes == []
    assert planner.done
    assert "b: undecided: it passed with no partner" in "\n".join(planner.decisions)


def test_a_planner_that_cannot_go_on_says_so() -> None:
    """Bad nodes in both screen groups of five: no cleared node is left to test against."""
    planner = small(("a", "b", "c", "d", "e"), bad=("b", "d"))
    assert planner.done
    assert planner.bad_nodes == []
    assert planner.decisions[-1].endswith("undecided: no cleared node is left to test them against")


def test_emulated_nodes_split_the_ranks_or_share_them() -> None:
    four = emulated_nodes(4, 4)
    assert [n.slots for n in four] == [(0,), (1,), (2,), (3,)]
    assert waves(four) == [[n.name for n in four]]  # disjoint GPUs: all gate at once
    shared = emulated_nodes(2, 4)  # 2 GPUs, 4 nodes: each node has both
    assert [n.slots for n in shared] == [(0, 1)] * 4
    assert [n.hostid for n in shared] == [f"gpufabric-node{j}" for j in range(4)]
    assert waves(shared) == [[n.name] for n in shared]  # one after another
    assert placed_nodes(["x", "x", "y", "y"]) == [FleetNode("x", (0, 1)), FleetNode("y", (2, 3))]


def test_the_fault_hook_has_a_scope() -> None:
    found = faults({FAULT_HOOK: "n1:A=1,B=2;pairs@n3:C=3"})
    assert found == {("all", "n1"): {"A": "1", "B": "2"}, ("pairs", "n3"): {"C": "3"}}


def test_suspects_are_confirmed_inside_their_own_domain_first() -> None:
    """Two NVLink domains of eight: the screen follows them, a suspect's partners come from
    its own domain, and each probe says which links it crossed."""
    domains = {n: ("clique=a" if i < 8 else "clique=b") for i, n in enumerate(NODES)}
    model_fleet = fleet(bad=("n05",))
    planner = Planner(NODES, domains)
    while probes := planner.plan():
        for probe in probes:
            planner.record(probe.id, model_fleet.run(probe))
    assert planner.bad_nodes == ["n05"]
    screens = [p for p in planner.probes.values() if p.purpose == SCREEN]
    assert [set(p.nodes) for p in screens] == [set(NODES[:8]), set(NODES[8:])]
    confirms = [p for p in planner.probes.values() if p.purpose == CONFIRM]
    assert confirms
    assert all(planner.scope(p.id) == "domain clique=a" for p in confirms)


def test_domains_come_from_the_first_label_every_node_has() -> None:
    labels = {
        "a": {"nvidia.com/gpu.clique": "c1", "topology.kubernetes.io/zone": "z"},
        "b": {"nvidia.com/gpu.clique": "c2", "topology.kubernetes.io/zone": "z"},
    }
    assert domains_of(labels) == {"a": "nvidia.com/gpu.clique=c1", "b": "nvidia.com/gpu.clique=c2"}
    del labels["b"]["nvidia.com/gpu.clique"]  # not on every node: the zone decides
    assert domains_of(labels) == {
        "a": "topology.kubernetes.io/zone=z",
        "b": "topology.kubernetes.io/zone=z",
    }
    assert domains_of({"a": {}}) == {}
