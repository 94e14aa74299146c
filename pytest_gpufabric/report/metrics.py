"""The run's verdict and measurements in Prometheus' text exposition format
(``--gpufabric-metrics PATH``): a file for node-exporter's textfile collector (written to a
temporary name, then renamed, as the collector needs), so that a nightly run's results land
in the monitoring a fleet already has.

    gpufabric_certified{instance="p5.48xlarge",node="ip-10-1-2-3"} 1
    gpufabric_busbw_gbps{collective="all_reduce",bytes="1073741824",run="default"} 331.2
    gpufabric_latency_us{collective="all_reduce",bytes="8"} 16.2
    gpufabric_fleet_node_bad{node="gpufabric-node2"} 1
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from ..judge import properties
from ..judge.certify import Certification
from ..session.session import FabricSession

PREFIX = "gpufabric_"


def _labels(labels: Mapping[str, object]) -> str:
    def escape(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def _family(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, object], float]]
) -> list[str]:
    rows = [f"{PREFIX}{name}{_labels(labels)} {value:.15g}" for labels, value in samples]
    if not rows:
        return []
    return [f"# HELP {PREFIX}{name} {help_text}", f"# TYPE {PREFIX}{name} {kind}", *rows]


def render(
    session: FabricSession, certification: Certification | None, now: float | None = None
) -> str:
    facts = session.facts()
    run = {"instance": facts.get("instance", "none"), "node": facts.get("node_names", "")}
    lines = _family("run_timestamp_seconds", "gauge", "When the run ended (Unix time).",
                    [(run, now if now is not None else time.time())])  # fmt: skip
    if certification is not None:
        lines += _family("certified", "gauge", "1 when the run was CERTIFIED, else 0.",
                         [(run, 1.0 if certification.certified else 0.0)])  # fmt: skip
        lines += _family("tests_failed", "gauge", "Tests that failed in the run.",
                         [(run, float(len(certification.failed)))])  # fmt: skip
    busbw, latency, bad = [], [], []
    for record in session.records.tests:
        measured = properties.read(record.properties)
        if measured is None:
            continue
        time_us = record.properties.get(properties.TIME_US)
        labels: dict[str, object] = {"collective": measured.collective.value,
                                     "bytes": measured.nbytes}  # fmt: skip
        if time_us is not None:
            latency.append((labels, float(str(time_us))))
        elif (
            measured.busbw_gbps is not None
            and properties.BASELINE + properties.RUN not in record.properties
        ):
            busbw.append(({**labels, "run": measured.run}, measured.busbw_gbps))
    for record in session.records.tests:
        node = record.properties.get("fleet_node")
        if node is not None and record.outcome in ("passed", "failed"):
            bad.append(({"node": node}, 1.0 if record.outcome == "failed" else 0.0))
    lines += _family(
        "busbw_gbps", "gauge", "Bus bandwidth measured (GB/s, nccl-tests conventions).", busbw
    )
    lines += _family(
        "latency_us", "gauge", "Time per call of a small collective (µs, slowest rank).", latency
    )
    lines += _family(
        "fleet_node_bad", "gauge", "1 when fleet mode found the node bad, 0 when cleared.", bad
    )
    return "\n".join(lines) + "\n"


def write_metrics(path: Path, text: str) -> None:
    """Atomically: the textfile collector must never read half a file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
