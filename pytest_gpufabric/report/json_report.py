"""The ``--gpufabric-json`` report (and report.json in every artifacts bundle): the run's
facts, each node's facts, the certification verdict and every test with its outcome,
properties and message.

Schema ``pytest-gpufabric/2`` (schema.py; version 1, before node facts moved to
``run.nodes`` and the verdict was added, is still read).
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..fleet.summary import fleet_section
from ..judge.certify import Certification
from ..session.session import FabricSession
from .html import write_html
from .metrics import render, write_metrics
from .push import PushError, push
from .schema import JSON_SCHEMA


def build_json(
    session: FabricSession, exitstatus: int, certification: Certification | None
) -> dict[str, Any]:
    records = session.records.tests
    outcomes = Counter(r.outcome for r in records)
    return {
        "schema": JSON_SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(session.started)),
        "duration_s": round(time.time() - session.started, 3),
        "exitstatus": exitstatus,
        "run": {**session.facts(), "nodes": session.node_facts()},
        "certification": certification.facts() if certification else None,
        "fleet": fleet_section(session.fleet_result) if session.fleet_result else None,
        "summary": dict(sorted(outcomes.items())),
        "tests": [
            {
                "nodeid": r.nodeid,
                "outcome": r.outcome,
                "duration_s": round(r.duration_s, 4),
                "properties": r.properties,
                "message": r.message,
            }
            for r in records
        ],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a fleet job reading the file never sees half of it. OSError when
    the file cannot be written (the caller reports it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_reports(
    session: FabricSession, exitstatus: int, certification: Certification | None
) -> list[str]:
    """The JSON report where --gpufabric-json says, and report.json in a live run's artifacts
    bundle (so that the bundle replays on its own). Returns one line per file that could
    not be written."""
    data = build_json(session, exitstatus, certification)
    targets = [session.settings.json.value]
    artifacts = session.artifacts
    if artifacts is not None and artifacts.is_dir() and session.replay_of is None:
        targets.append(artifacts / "report.json")
    problems = []
    for path in targets:
        if path is None:
            continue
        try:
            write_json(path, data)
        except OSError as exc:
            why = exc.strerror or str(exc)
            problems.append(f"ERROR: gpufabric: cannot write the JSON report {path}: {why}")
    html = session.settings.html.value
    if html is not None:
        try:
            write_html(html, data, session.replay_of or session.artifacts)
        except OSError as exc:
            why = exc.strerror or str(exc)
            problems.append(f"ERROR: gpufabric: cannot write the HTML report {html}: {why}")
    metrics, gateway = session.settings.metrics.value, session.settings.pushgateway.value
    text = render(session, certification) if metrics or gateway else ""
    if metrics is not None:
        try:
            write_metrics(metrics, text)
        except OSError as exc:
            why = exc.strerror or str(exc)
            problems.append(f"ERROR: gpufabric: cannot write the metrics file {metrics}: {why}")
    if gateway is not None:
        try:
            push(gateway, text, grouping={"gpufabric_profile": session.profile_name or "none"})
        except PushError as exc:
            problems.append(f"ERROR: gpufabric: {exc}")
    return problems
