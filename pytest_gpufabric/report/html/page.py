"""The HTML report (``--gpufabric-html``): one self-contained file that opens from a CI
artifact store or a laptop without network. Charts are drawn by uPlot (vendor/, MIT, 53 KB:
small, offline, canvas, log axes), inlined with the data; no font, script or style is
fetched from anywhere. Failures come first; then busbw and latency against size with floors
and warn bands, the transport matrix of each host, host facts, the groups of parallel
layouts, and a fleet's nodes and pairs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from ...fleet.record import RECORD, replay
from ...fleet.summary import fleet_section
from .data import (
    Matrix,
    add_reference,
    bandwidth_charts,
    bundle_of,
    latency_charts,
    nccl_tests_curves,
    transport_matrices,
    workload_rows,
)

FACTS = ("instance", "instance_reason", "profile_file", "launcher", "backend", "nranks",
         "nnodes", "node_names", "gpu_model", "gpu_count", "driver", "nccl_version",
         "torch_version", "cuda_version", "replay", "artifacts")  # fmt: skip
HOST_TESTS = "suites/test_host.py::"
OPEN_FAILURES = 3


def _asset(name: str) -> str:
    return (files(__package__) / name).read_text(encoding="utf-8")


def _json_for_script(data: object) -> str:
    """JSON safe inside <script>: no "</" can end the element early."""
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def render(data: Mapping[str, Any], bundle: Path | None = None,
           nccl_tests: Sequence[Path] = ()) -> str:  # fmt: skip
    """The page for a JSON report (``build_json``'s dict); ``bundle``: the run's artifacts
    (NCCL logs for the transport matrix; nccl-tests output found there is drawn next to our
    curves), else the directory the report names; ``nccl_tests``: more nccl-tests output."""
    tests = list(data.get("tests", []))
    run = data.get("run", {})
    cert = data.get("certification") or {}
    verdict = str(cert.get("verdict", "no verdict"))
    where = bundle_of(data, bundle)
    matrices, no_matrix = transport_matrices(where)
    busbw = bandwidth_charts(tests)
    add_reference(busbw, nccl_tests_curves([*([where] if where else []), *nccl_tests]))
    charts = {
        "bandwidth": [s.record() for s in busbw],
        "latency": [s.record() for s in latency_charts(tests)],
    }
    body = [
        _banner(verdict, str(cert.get("reason", ""))),
        _failures(tests),
        _facts(run, data),
        _charts_section(charts),
        _matrices(matrices, no_matrix, tests),
        _hosts(tests),
        _workload(tests),
        _fleet(data.get("fleet") or _fleet_from_record(tests)),
        _all_tests(tests),
    ]
    title = f"gpufabric: {verdict} — {run.get('instance', '')} {run.get('node_names', '')}"
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        # No request may leave the page: everything below is inline.
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
        "script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
        f"<style>{_asset('vendor/uPlot.min.css')}\n{_asset('page.css')}</style></head><body>"
        + "\n".join(part for part in body if part)
        + f"<script id=gf-data type=application/json>{_json_for_script(charts)}</script>"
        f"<script>{_asset('vendor/uPlot.iife.min.js')}</script>"
        f"<script>{_asset('page.js')}</script></body></html>\n"
    )


def _banner(verdict: str, reason: str) -> str:
    kind = "ok" if verdict == "CERTIFIED" else "bad"
    return (f"<header class='banner {kind}'><h1>{escape(verdict)}</h1>"
            f"<p>{escape(reason)}</p></header>")  # fmt: skip


def _failures(tests: Sequence[Mapping[str, Any]]) -> str:
    failed = [t for t in tests if t.get("outcome") == "failed"]
    if not failed:
        return ""
    items = "".join(  # the first few open; the rest one click away, so the charts stay near
        f"<details{' open' if n < OPEN_FAILURES else ''} class=failure>"
        f"<summary>{escape(str(t.get('nodeid')))}</summary>"
        f"<pre>{escape(str(t.get('message') or ''))}</pre></details>"
        for n, t in enumerate(failed)
    )
    return f"<section id=failures><h2>{len(failed)} failed</h2>{items}</section>"


def _facts(run: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    rows = [(k, run[k]) for k in FACTS if run.get(k) not in (None, "")]
    summary = ", ".join(f"{v} {k}" for k, v in (data.get("summary") or {}).items())
    rows += [("started", data.get("started", "")),
             ("duration", f"{data.get('duration_s', '')} s"), ("tests", summary)]  # fmt: skip
    return "<section id=facts><h2>Run</h2>" + _table(["fact", "value"], rows) + "</section>"


def _charts_section(charts: Mapping[str, list[dict[str, Any]]]) -> str:
    parts = []
    if charts["bandwidth"]:
        parts.append(
            "<section id=bandwidth><h2>Bus bandwidth against message size</h2><p class=note>"
            "dots: every timed loop; line: the median judged; red steps: the profile's floor; "
            "shaded: its warn band; green: nccl-tests on the same host, where its output is at "
            "hand</p><div class=charts data-kind=bandwidth></div></section>"
        )
    if charts["latency"]:
        parts.append(
            "<section id=latency><h2>Latency against message size</h2><div class=charts "
            "data-kind=latency></div></section>"
        )
    return "".join(parts)


def _expected_transport(tests: Sequence[Mapping[str, Any]]) -> tuple[bool | None, str]:
    """(did the intra-node transport check pass, the transport it expected if it failed)."""
    for test in tests:
        if str(test.get("nodeid", "")).endswith("test_nccl[intra_node_transport]"):
            outcome = test.get("outcome")
            if outcome == "passed":
                return True, ""
            if outcome == "failed":
                found = re.search(r", not (\S+?)[\s(,]", str(test.get("message") or ""))
                return False, found[1] if found else ""
    return None, ""


def _matrices(matrices: Sequence[Matrix], why_none: str,
              tests: Sequence[Mapping[str, Any]]) -> str:  # fmt: skip
    if not matrices:
        note = f"<p class=note>{escape(why_none)}</p>"
        return f"<section id=transports><h2>Transports</h2>{note}</section>"
    passed, expected = _expected_transport(tests)
    out = ["<section id=transports><h2>Transports between GPUs (NCCL's choice)</h2>",
           "<p class=note>row: sending GPU, column: receiving GPU; green: what the profile "
           "expects, red: not; each cell links to its first log line</p>"]  # fmt: skip
    for matrix in matrices:
        head = "".join(f"<th>GPU {d}</th>" for d in matrix.devices)
        rows = []
        for src in matrix.devices:
            cells = []
            for dst in matrix.devices:
                cell = matrix.cells.get((src, dst))
                if cell is None:
                    cells.append("<td class=none>—</td>")
                    continue
                text = ", ".join(f"{t} ×{n}" for t, n in sorted(cell.transports.items()))
                good = passed is True or (
                    passed is False and bool(expected)
                    and all(t.startswith(expected) for t in cell.transports)
                )  # fmt: skip
                kind = "ok" if good else ("bad" if passed is False else "unknown")
                link = "file://" + cell.evidence.rsplit(":", 1)[0]
                cells.append(
                    f"<td class='cell {kind}' title='{escape(cell.line, quote=True)}'>"
                    f"<a href='{escape(link, quote=True)}'>{escape(text)}</a>"
                    f"<small>{escape(cell.evidence.rsplit('/', 1)[-1])}</small></td>"
                )
            rows.append(f"<tr><th>GPU {src}</th>{''.join(cells)}</tr>")
        out.append(f"<h3>{escape(matrix.host)}</h3><table class=matrix><tr><th></th>{head}</tr>"
                   f"{''.join(rows)}</table>")  # fmt: skip
    return "".join(out) + "</section>"


def _hosts(tests: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for test in tests:
        nodeid = str(test.get("nodeid", ""))
        if HOST_TESTS not in nodeid or not test.get("properties"):
            continue
        check = nodeid.rsplit("[", 1)[-1].rstrip("]")
        facts = "; ".join(f"{k} {v}" for k, v in test["properties"].items())
        rows.append((check, test.get("outcome", ""), facts))
    if not rows:
        return ""
    return (
        "<section id=host><h2>Host</h2>"
        + _table(["check", "outcome", "facts"], rows)
        + "</section>"
    )


def _workload(tests: Sequence[Mapping[str, Any]]) -> str:
    """Every group of the workload tests: its link, busbw against its floor, what ran
    beside it and how it did alone."""
    rows = [(r.layout, r.kind, r.traffic, r.ranks, r.link, f"{r.busbw:.4g}",
             "" if r.floor is None else f"{r.floor:.4g}",
             "" if r.alone is None else f"{r.alone:.4g}", r.beside, r.outcome)
            for r in workload_rows(tests)]  # fmt: skip
    if not rows:
        return ""
    head = ["layout", "group", "traffic", "ranks", "link", "busbw GB/s", "floor GB/s",
            "alone GB/s", "beside it", "outcome"]  # fmt: skip
    return ("<section id=workload><h2>Parallel layouts: each group (docs/workload.md)</h2>"
            + _table(head, rows) + "</section>")  # fmt: skip


def _fleet(fleet: Mapping[str, Any] | None) -> str:
    if not fleet:
        return ""
    nodes = fleet.get("nodes", {})
    rows = [(n, v.get("verdict", ""), v.get("why", ""),
             (v.get("gate") or {}).get("measured", "")) for n, v in nodes.items()]  # fmt: skip
    names = list(nodes)
    pairs: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for probe in fleet.get("probes", []):
        members = probe.get("nodes", [])
        for a in members:
            for b in members:
                if a != b:
                    pairs.setdefault((a, b), []).append(probe)
    bad = set(fleet.get("bad_nodes", []))
    links = {tuple(sorted(link)) for link in fleet.get("bad_links", [])}
    head = "".join(f"<th class='{'badnode' if n in bad else ''}'>{escape(n)}</th>" for n in names)
    body = []
    for a in names:
        cells = []
        for b in names:
            probes = pairs.get((a, b), [])
            if a == b or not probes:
                cells.append("<td class=none></td>")
                continue
            failed = [p for p in probes if p.get("passed") is False]
            kind = "bad" if failed else "ok"
            if tuple(sorted((a, b))) in links:
                kind = "bad link"
            tip = "\n".join(f"probe {p.get('id')} ({p.get('purpose')}): "
                            f"{'passed' if p.get('passed') else 'failed'}: {p.get('detail', '')}"
                            for p in probes)  # fmt: skip
            speeds = [p["busbw_gbps"] for p in probes if p.get("busbw_gbps") is not None]
            speed = f"<small>{speeds[-1]:.1f} GB/s</small>" if speeds else ""
            cells.append(f"<td class='cell {kind}' title='{escape(tip, quote=True)}'>"
                         f"{len(probes) - len(failed)}/{len(probes)}{speed}</td>")  # fmt: skip
        mark = " class=badnode" if a in bad else ""
        body.append(f"<tr><th{mark}>{escape(a)}</th>{''.join(cells)}</tr>")
    left = fleet.get("left_out", {})
    extra = "".join(f"<li>{escape(n)}: {escape(w)}</li>" for n, w in left.items())
    return (
        f"<section id=fleet><h2>Fleet: {len(names)} nodes, {fleet.get('rounds', 0)} rounds</h2>"
        + _table(["node", "verdict", "why", "gate"], rows)
        + "<h3>Pairs tested (passed/probes and the last busbw; hover for each probe)</h3>"
        f"<table class='matrix heat'><tr><th></th>{head}</tr>{''.join(body)}</table>"
        + (f"<h3>Left out</h3><ul>{extra}</ul>" if extra else "")
        + "</section>"
    )


def _fleet_from_record(tests: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """A report written before it had a fleet section: the run again from its record."""
    for test in tests:
        record = (test.get("properties") or {}).get(RECORD)
        if isinstance(record, str):
            try:
                return fleet_section(replay(record))
            except (ValueError, KeyError):
                return None
    return None


def _all_tests(tests: Sequence[Mapping[str, Any]]) -> str:
    rows = [(t.get("nodeid", ""), t.get("outcome", ""), f"{t.get('duration_s', '')} s")
            for t in tests]  # fmt: skip
    return ("<section id=tests><details><summary><h2>Every test</h2></summary>"
            + _table(["test", "outcome", "duration"], rows) + "</details></section>")  # fmt: skip


def _table(head: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td class='{escape(str(v))}'>{escape(str(v))}</td>"
                         if str(v) in ("passed", "failed", "skipped", "bad", "undecided")
                         else f"<td>{escape(str(v))}</td>" for v in row) + "</tr>"
        for row in rows
    )  # fmt: skip
    return f"<table><tr>{th}</tr>{body}</table>"


def write_html(path: Path, data: Mapping[str, Any], bundle: Path | None = None,
               nccl_tests: Sequence[Path] = ()) -> None:  # fmt: skip
    """Write atomically (a CI job may collect it while we write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render(data, bundle, nccl_tests), encoding="utf-8")
    tmp.replace(path)
