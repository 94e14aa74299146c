"""A fleet run per node, for people and machines: each node's verdict with its gate and the
probes it was in (the terminal's table, the JSON report's ``fleet`` section)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .run import FleetResult


@dataclass(frozen=True)
class NodeRow:
    node: str
    verdict: str  # "passed", "bad" or "undecided"
    why: str  # one line: what decided it
    gate: str  # what its gate measured, or "failed: <first finding>"
    probes: tuple[int, ...]  # the pair probes it was in

    def record(self, result: FleetResult) -> dict[str, Any]:
        gate = result.gates.get(self.node)
        return {
            "verdict": self.verdict,
            "why": self.why,
            "gate": gate.record() if gate is not None else None,
            "probes": list(self.probes),
        }


def node_rows(result: FleetResult) -> list[NodeRow]:
    planner = result.planner
    bad = {f.nodes[0]: f for f in planner.findings if f.kind == "node"}
    rows = []
    for node in list(result.gates) or list(planner.nodes):
        gate = result.gates.get(node)
        probes = tuple(pid for pid, p in planner.probes.items() if node in p.nodes)
        measured = gate.measured if gate is not None else ""
        if gate is not None and not gate.passed:
            first = gate.findings[0].splitlines()[0] if gate.findings else "failed"
            rows.append(NodeRow(node, "bad", "failed its own gate", f"failed: {first}", probes))
        elif node in bad:
            partners = [p for pid in bad[node].evidence for p in planner.probes[pid].nodes
                        if p != node]  # fmt: skip
            why = f"failed with {', '.join(dict.fromkeys(partners))}"
            rows.append(NodeRow(node, "bad", why, measured, probes))
        elif node in planner.cleared or list(planner.nodes) == [node]:
            why = "passed its gate and a pair" if node in planner.cleared else "passed its gate"
            rows.append(NodeRow(node, "passed", why, measured, probes))
        else:
            rows.append(NodeRow(node, "undecided", "no pair decided it", measured, probes))
    return rows


def fleet_section(result: FleetResult) -> dict[str, Any]:
    """The JSON report's ``fleet``: node -> verdict, the probes, rounds and findings."""
    planner = result.planner
    return {
        "rounds": planner.rounds,
        "nodes": {row.node: row.record(result) for row in node_rows(result)},
        "probes": [
            {
                "id": pid,
                "nodes": list(probe.nodes),
                "purpose": probe.purpose,
                "why": probe.why,
                "passed": planner.outcomes.get(pid),
                "scope": planner.scope(pid),
                "detail": result.details.get(pid, ""),
                "busbw_gbps": result.busbw.get(pid),
            }
            for pid, probe in planner.probes.items()
        ],
        "bad_nodes": sorted(row.node for row in node_rows(result) if row.verdict == "bad"),
        "bad_links": [list(link) for link in planner.bad_links],
        "left_out": dict(result.left_out),
        "decisions": list(planner.decisions),
        "domains": dict(planner.domains),
    }


def table_lines(result: FleetResult) -> list[str]:
    """The terminal's per-node table."""
    rows = node_rows(result)
    planner = result.planner
    links = ", ".join("-".join(link) for link in planner.bad_links) or "none"
    lines = [f"fleet: {len(rows)} nodes, {planner.rounds} rounds of {len(planner.probes)} "
             f"probes; bad links: {links}"]  # fmt: skip
    lines += [f"  left out: {node}: {why}" for node, why in result.left_out.items()]
    width = max([len(r.node) for r in rows] + [4])
    for row in rows:
        outcomes = [planner.outcomes.get(pid) for pid in row.probes]
        pairs = f"{outcomes.count(True)} passed, {outcomes.count(False)} failed"
        verdict = "BAD" if row.verdict == "bad" else row.verdict
        lines.append(f"  {row.node:<{width}}  {verdict:<9}  {row.why}; pairs {pairs}; "
                     f"gate {row.gate or 'not run'}")  # fmt: skip
    return lines
