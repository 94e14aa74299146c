"""What a fleet run leaves on its nodes, only when asked: the verdict as a label and the
time and reason as annotations (``--gpufabric-k8s-label-nodes``), and a NoSchedule taint on
bad nodes, lifted from nodes that pass again (``--gpufabric-k8s-taint-failed``). Running pods
stay and nothing is cordoned: a scheduler or an operator decides what to do with a bad node.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from ...fleet.summary import NodeRow
from .api import Api, reason
from .manifests import BAD_TAINT

VERDICT_LABEL = "gpufabric.dev/verdict"
CHECKED_AT = "gpufabric.dev/checked-at"
WHY = "gpufabric.dev/why"
TAINT_VALUE = "fleet"
WHY_CHARS = 1000


def patch_for(row: NodeRow, taints: Sequence[dict[str, Any]] | None, now: float,
              label: bool, taint: bool) -> dict[str, Any]:  # fmt: skip
    """The merge patch for one node (empty when nothing is asked); ``taints``: its taints now."""
    body: dict[str, Any] = {}
    if label:
        body["metadata"] = {
            "labels": {VERDICT_LABEL: row.verdict},
            "annotations": {
                CHECKED_AT: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
                WHY: re.sub(r"\s+", " ", f"{row.why}; gate {row.gate}")[:WHY_CHARS],
            },
        }
    if taint:
        kept = [t for t in taints or [] if t.get("key") != BAD_TAINT]
        if row.verdict == "bad":
            kept.append({"key": BAD_TAINT, "value": TAINT_VALUE, "effect": "NoSchedule"})
        if kept != list(taints or []):
            body["spec"] = {"taints": kept}
    return body


def mark_nodes(api: Api, rows: Sequence[NodeRow], *, label: bool, taint: bool,
               now: float | None = None) -> list[str]:  # fmt: skip
    """Patch each node; one line per node that could not be patched (the run goes on)."""
    problems = []
    when = time.time() if now is None else now
    for row in rows:
        try:
            node = api.core.read_node(row.node)
            taints = api.client.sanitize_for_serialization(node.spec).get("taints")
            body = patch_for(row, taints, when, label, taint)
            if body:
                api.core.patch_node(row.node, body)
        except Exception as exc:
            problems.append(f"node {row.node}: cannot mark it ({reason(exc)})")
    return problems
