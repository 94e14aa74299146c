"""The JSON report's format, as every reader sees it (replay, the floors tool): schema
``pytest-gpufabric/2`` keeps each node's facts in ``run.nodes``; version 1 kept the one
node's facts in ``run`` itself. Readers call :func:`run_facts` and get the flat form of
either."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

JSON_SCHEMA = "pytest-gpufabric/2"
SCHEMA_PREFIX = "pytest-gpufabric/"
NODE_FACTS = ("hostname", "gpu_model", "gpu_count", "driver", "torch_version")


COUNT_FACTS = ("nranks", "nnodes", "gpu_count")


def report_problem(data: object) -> str | None:
    """What keeps ``data`` (parsed JSON) from being a report readers can use, or None."""
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith(SCHEMA_PREFIX):
        return "not a pytest-gpufabric report (--gpufabric-json)"
    if not isinstance(data.get("tests"), list) or not isinstance(data.get("run"), dict):
        return "a pytest-gpufabric report without a tests list and run facts"
    for number, test in enumerate(data["tests"]):
        if not isinstance(test, dict) or not isinstance(test.get("properties", {}), dict):
            return f"tests[{number}] is not a test with properties"
    facts = run_facts(data)
    for fact in COUNT_FACTS:
        value = facts.get(fact)
        if value is not None and not str(value).isdigit():
            return f"run.{fact} is {value!r}, not a count"
    return None


def run_facts(report: Mapping[str, Any]) -> dict[str, Any]:
    """A report's run facts, flat: the first node's facts stand where version 1 had them."""
    run = dict(report.get("run") or {})
    nodes = run.pop("nodes", None)
    if isinstance(nodes, list) and nodes and isinstance(nodes[0], Mapping):
        for key in NODE_FACTS:
            if key in nodes[0]:
                run[key] = nodes[0][key]
    return run
