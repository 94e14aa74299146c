"""A fleet run as recorded in its report (the isolation test's ``fleet_record`` property),
and its replay: each node's recorded gate, then the planner fed the recorded outcomes makes
the same probes and decisions, so a fleet run is judged again from its bundle
(``--gpufabric-replay``) without any rank."""

from __future__ import annotations

import json
from pathlib import Path

from .gate import NodeGate
from .planner import Planner
from .run import FleetNode, FleetResult

RECORD = "fleet_record"  # the JSON text on test_fleet_isolation
MAX_ROUNDS = 64


def encode(result: FleetResult) -> str:
    planner = result.planner
    return json.dumps(
        {
            "nodes": list(result.gates) or list(planner.nodes),
            "gates": {node: gate.record() for node, gate in result.gates.items()},
            "left_out": result.left_out,
            "domains": planner.domains,
            "probes": {str(pid): list(p.nodes) for pid, p in planner.probes.items()},
            "outcomes": {str(pid): ok for pid, ok in planner.outcomes.items()},
            "details": {str(pid): text for pid, text in result.details.items()},
            "busbw": {str(pid): value for pid, value in result.busbw.items()},
        },
        separators=(",", ":"),
    )


def find(directory: Path) -> str | None:
    """The fleet record in any of this plugin's reports under ``directory``."""
    for path in sorted(directory.rglob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError, RecursionError):
            continue
        if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(
            "pytest-gpufabric"
        ):
            continue
        for test in data.get("tests", []):
            record = test.get("properties", {}).get(RECORD)
            if isinstance(record, str):
                return record
    return None


def nodes_of(record: str) -> list[FleetNode]:
    return [FleetNode(name, ()) for name in json.loads(record)["nodes"]]


def replay(record: str) -> FleetResult:
    """The recorded run again: every probe the planner asks for must be the recorded one
    (same id, same nodes); ValueError naming the first that is not."""
    data = json.loads(record)
    gates = {
        node: NodeGate(node, bool(g["passed"]), tuple(g["findings"]), str(g["measured"]))
        for node, g in data.get("gates", {}).items()
    }
    passed = [n for n in data["nodes"] if n not in gates or gates[n].passed]
    planner = Planner(passed, dict(data.get("domains", {})) or None)
    result = FleetResult(planner, gates=gates, left_out=dict(data.get("left_out", {})))
    while planner.rounds < MAX_ROUNDS:
        probes = planner.plan()
        if not probes:
            break
        for probe in probes:
            key = str(probe.id)
            if data["probes"].get(key) != list(probe.nodes) or key not in data["outcomes"]:
                raise ValueError(
                    f"the recording has no probe {probe.id} over {', '.join(probe.nodes)}: it "
                    "was made by another planner"
                )
            result.details[probe.id] = str(data["details"].get(key, ""))
            if key in data.get("busbw", {}):
                result.busbw[probe.id] = float(data["busbw"][key])
            planner.record(probe.id, bool(data["outcomes"][key]))
    return result
