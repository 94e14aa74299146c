"""What a run shows and leaves behind besides pytest's own JUnit: the report header, the
terminal summary of measured bandwidth, and the ``--gpufabric-json`` file."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ..session.session import FabricSession
from ..units import format_size

JSON_SCHEMA = "pytest-gpufabric/1"


def header_lines(session: FabricSession) -> list[str]:
    inv = session.inventory
    profile = f"{session.profile.name} ({session.profile.file})" if session.profile else "none"
    gpus = f"{len(inv.gpus)} × {inv.gpu_model} (driver {inv.driver})" if inv.gpus else "none"
    nccl = f", NCCL {inv.nccl_wheel}" if inv.nccl_wheel else ""
    lines = [f"gpufabric: instance {profile} [{session.profile_reason}]"]
    if session.replay_of is not None:
        lines.append(
            f"gpufabric: replay of {session.replay_of}: {session.nranks} ranks on "
            f"{session.nnodes} node(s), GPUs {gpus if inv.known else 'not recorded'}"
        )
        return lines
    lines.append(
        f"gpufabric: backend {session.backend}, {session.nranks} ranks, "
        f"torch {inv.torch_version}{nccl}, GPUs {gpus}"
    )
    return lines


def summary_lines(session: FabricSession) -> list[str]:
    """One line per bandwidth test: measured busbw next to its floor."""
    lines = []
    for record in session.records:
        props = record.properties
        if "busbw_gbps" not in props:
            continue
        floor = props.get("threshold_gbps")
        against = f"  floor {floor:>8g}" if isinstance(floor, (int, float)) else ""
        label = f"{props['collective']} {format_size(int(props['bytes']))}"
        lines.append(
            f"{record.outcome.upper():7} {label:22} busbw {props['busbw_gbps']:>8.1f} GB/s{against}"
        )
    if session.replay_of is not None:
        lines.append(f"judged the recorded run in {session.replay_of}")
    elif session.artifacts:
        lines.append(f"per-rank NCCL logs and output: {session.artifacts}")
    return lines


def build_json(session: FabricSession, exitstatus: int) -> dict[str, Any]:
    outcomes = Counter(r.outcome for r in session.records)
    return {
        "schema": JSON_SCHEMA,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(session.started)),
        "duration_s": round(time.time() - session.started, 3),
        "exitstatus": exitstatus,
        "run": session.facts(),
        "summary": dict(sorted(outcomes.items())),
        "tests": [
            {
                "nodeid": r.nodeid,
                "outcome": r.outcome,
                "duration_s": round(r.duration_s, 4),
                "properties": r.properties,
                "message": r.message,
            }
            for r in session.records
        ],
    }


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a fleet job reading the file never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
