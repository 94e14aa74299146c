"""Derive a profile's busbw floors from measured runs (``--gpufabric-json`` reports):

    python -m pytest_gpufabric.floors run1.json run2.json run3.json --name my-node > my-node.yaml

The floor for each collective × size is a fraction of the lowest run; the fraction depends on
the message size (small messages are latency-bound and noisy). The output is a complete
profile whose source names the host, software and runs, and whose margin text states the
policy used.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..collectives import ALL_COLLECTIVES, Collective
from ..judge import properties
from ..report.schema import report_problem, run_facts
from ..runs import DEFAULT, INTER_NODE, INTRA_NODE, KINDS, NETWORK_ONLY, RUN_KINDS
from ..units import format_size, parse_size
from ..workload import properties as workload_properties
from .catalogue import load_catalogue
from .keys import GROUP_KINDS
from .workload import SECTION as WORKLOAD

# (smallest size, fraction of the lowest run): first match from the top wins.
DEFAULT_MARGINS: tuple[tuple[int, float], ...] = ((256 << 20, 0.90), (16 << 20, 0.80), (0, 0.50))

Samples = dict[tuple[Collective, int], list[float]]


def collect(reports: Iterable[Mapping[str, Any]], run: str = DEFAULT) -> Samples:
    """busbw of every passed-or-failed bandwidth test of one run (the main run, or an
    isolation run), by (collective, bytes)."""
    samples: Samples = {}
    for report in reports:
        for test in report.get("tests", []):
            found = test.get("properties", {})
            measured = properties.read(found)
            if measured is None or measured.busbw_gbps is None or measured.run != run:
                continue
            if properties.TIME_US in found:  # a latency test: its ceiling, not a floor
                continue
            if test.get("outcome") in ("passed", "failed"):
                key = (measured.collective, measured.nbytes)
                samples.setdefault(key, []).append(measured.busbw_gbps)
    return samples


def fraction_for(nbytes: int, margins: Sequence[tuple[int, float]]) -> float:
    return next(f for smallest, f in margins if nbytes >= smallest)


def round_down(value: float) -> float:
    """Whole GB/s above 10, one decimal below: a floor never rounds up past its policy."""
    if value >= 10:
        return float(math.floor(value))
    return math.floor(value * 10) / 10


def derive(
    samples: Samples, margins: Sequence[tuple[int, float]] = DEFAULT_MARGINS
) -> dict[tuple[Collective, int], float]:
    return {
        key: round_down(min(values) * fraction_for(key[1], margins))
        for key, values in sorted(
            samples.items(), key=lambda kv: (ALL_COLLECTIVES.index(kv[0][0]), kv[0][1])
        )
    }


def margin_text(margins: Sequence[tuple[int, float]]) -> str:
    parts = []
    for i, (smallest, fraction) in enumerate(margins):
        if smallest:
            where = f"at >= {format_size(smallest)}"
        else:
            where = f"below {format_size(margins[i - 1][0])}" if i else "at every size"
        parts.append(f"{fraction:.0%} of the lowest run {where}")
    return "floor = " + ", ".join(parts)


def _number(value: float) -> str:
    return f"{value:g}" if value < 10 else f"{value:.0f}"


def reports_for(reports: Sequence[dict[str, Any]], section: str) -> list[dict[str, Any]]:
    """intra_node floors come from one-node runs, inter_node floors from runs over several
    NCCL nodes (--gpufabric-emulate-nodes or a multi-node launch); isolation runs from any."""
    if section == INTRA_NODE:
        return [r for r in reports if int(run_facts(r).get("nnodes", 1)) == 1]
    if section == INTER_NODE:
        return [r for r in reports if int(run_facts(r).get("nnodes", 1)) > 1]
    return list(reports)


def _measured_on(run: Mapping[str, Any], host_label: str | None) -> str:
    """The host and software of a source, up to its NCCL version (the parenthesis open)."""
    torch = run.get("rank_torch_version") or run.get("torch_version", "?")
    return (
        f"measured on {host_label or run.get('hostname', '?')} ({run.get('gpu_count', '?')}×"
        f"{run.get('gpu_model', '?')}, driver {run.get('driver', '?')}, torch {torch}, "
        f"NCCL {run.get('nccl_version', '?')}"
    )


def _section_lines(
    reports: Sequence[dict[str, Any]],
    section: str,
    host_label: str | None,
    margins: Sequence[tuple[int, float]],
) -> tuple[list[str], dict[str, Any]]:
    pool = KINDS[section].pool
    chosen = [r for r in reports_for(reports, section) if collect([r], pool)]  # the runs it has
    floors = derive(collect(chosen, pool), margins)
    if not floors:
        raise ValueError(f"no bandwidth measurement of the {section} run in these reports")
    props: dict[str, Any] = next(
        t["properties"]
        for r in chosen
        for t in r.get("tests", [])
        if (m := properties.read(t.get("properties", {}))) and m.busbw_gbps and m.run == pool
    )
    run = run_facts(chosen[0])
    env = next((e for r in chosen if (e := run_facts(r).get("nccl_env"))), None)
    env = env or "NCCL environment not recorded"
    date = chosen[0].get("started", time.strftime("%Y-%m-%d"))[:10]
    how = "" if pool == DEFAULT else f", {props.get('run_settings', pool + ' run')}"
    if section == INTER_NODE:
        how = f", ranks split into {run.get('nnodes')} NCCL nodes"
    source = (
        f"{_measured_on(run, host_label)}, {env}{how}) on {date} with pytest-gpufabric: "
        f"{len(chosen)} runs, {_method(props, _timings(chosen, pool, latency=False))}"
    )
    lines = [
        f"  {section}:",
        f"    source: {json.dumps(source, ensure_ascii=False)}",
        f"    margin: {json.dumps(margin_text(margins))}",
    ]
    if section == INTER_NODE:
        lines.append(f"    nodes: {run.get('nnodes', 2)}")
    elif section == NETWORK_ONLY and int(props.get("run_nodes", 1)) > 1:
        lines.append(f"    nodes: {props['run_nodes']}")
    lines.append("    floors:")
    for collective in ALL_COLLECTIVES:
        entries = [
            f"{format_size(n)}: {_number(v)}" for (c, n), v in floors.items() if c is collective
        ]
        if entries:
            lines.append(f"      {collective.value}: {{{', '.join(entries)}}}")
    return lines, props


def _method(props: Mapping[str, Any], timings: set[str] | None = None) -> str:
    """How the runs timed it; ``timings``: every method the section's tests used."""
    if props.get("repeats"):
        used = " and ".join(sorted(timings or {str(props.get("timing", "?"))}))
        return (f"median of {props['repeats']} timed loops of {props.get('iters', '?')} calls "
                f"({used}), slowest rank")  # fmt: skip
    return f"median of {props.get('iters', '?')} iterations, slowest rank"


def _timings(reports: Sequence[dict[str, Any]], pool: str, latency: bool) -> set[str]:
    found = set()
    for report in reports:
        for test in report.get("tests", []):
            p = test.get("properties", {})
            if ("time_us" in p) == latency and p.get("timing") and p.get("run", DEFAULT) == pool:
                found.add(str(p["timing"]))
    return found


# A latency ceiling is this much above the slowest run: small messages vary more from run
# to run than bandwidth does (2 × H200: up to 1.3× between runs, docs/validation.md run K).
LATENCY_FACTOR = 1.5


def latency_lines(reports: Sequence[dict[str, Any]], host_label: str | None) -> list[str]:
    """The ``latency`` section from the latency tests of one-node runs; [] without any."""
    samples: dict[tuple[Collective, int], list[float]] = {}
    props: dict[str, Any] = {}
    chosen: list[dict[str, Any]] = []  # the runs that have latency tests
    for report in reports_for(reports, INTRA_NODE):
        for test in report.get("tests", []):
            found = test.get("properties", {})
            measured = properties.read(found)
            time_us = found.get(properties.TIME_US)
            if measured is None or time_us is None or test.get("outcome") == "error":
                continue
            samples.setdefault((measured.collective, measured.nbytes), []).append(float(time_us))
            props = props or dict(found)
            if not chosen or chosen[-1] is not report:
                chosen.append(report)
    if not samples:
        return []
    run = run_facts(chosen[0])
    source = (
        f"{_measured_on(run, host_label)}) with pytest-gpufabric: {len(chosen)} runs, "
        f"{_method(props, _timings(chosen, DEFAULT, latency=True))}"
    )
    lines = ["latency:", f"  source: {json.dumps(source, ensure_ascii=False)}",
             f"  margin: \"ceiling = {LATENCY_FACTOR:g} × the slowest run, whole µs up\"",
             "  ceilings:"]  # fmt: skip
    for collective in ALL_COLLECTIVES:
        entries = [f"{format_size(n)}: {math.ceil(max(v) * LATENCY_FACTOR)}"
                   for (c, n), v in sorted(samples.items(), key=lambda kv: kv[0][1])
                   if c is collective]  # fmt: skip
        if entries:
            lines.append(f"    {collective.value}: {{{', '.join(entries)}}}")
    return lines


WorkloadSamples = dict[tuple[str, str, Collective, int], list[float]]


def collect_workload(reports: Iterable[Mapping[str, Any]]) -> WorkloadSamples:
    """Each workload test's slowest group (suites/test_workload.py: every group of its kind
    at once), by (layout as TPxPPxDP, group kind, collective, bytes)."""
    samples: WorkloadSamples = {}
    for report in reports:
        for test in report.get("tests", []):
            found = workload_properties.read(test.get("properties", {}))
            if found is None or found.shape is None or found.kind not in GROUP_KINDS:
                continue
            if test.get("outcome") == "error":  # measured but not judged (no floor) counts
                continue
            busbw = [g.busbw_gbps for g in found.groups if g.busbw_gbps is not None]
            if busbw:
                key = (found.shape, found.kind, Collective(found.collective), found.nbytes)
                samples.setdefault(key, []).append(min(busbw))
    return samples


def workload_lines(
    reports: Sequence[dict[str, Any]], host_label: str | None, margins: Sequence[tuple[int, float]]
) -> list[str]:
    """The ``workload`` section: per layout, group kind, collective and size, a fraction of
    the lowest run's slowest group; for runs over one number of nodes."""
    reports = [r for r in reports if collect_workload([r])]  # the runs that have it
    counts = {int(run_facts(r).get("nnodes", 1)) for r in reports}
    if len(counts) > 1:
        raise ValueError(f"the reports ran over different numbers of nodes ({sorted(counts)}): "
                         "workload floors hold for one")  # fmt: skip
    samples = collect_workload(reports)
    if not samples:  # also what an empty list of reports gives
        raise ValueError("no workload test (suites/test_workload.py) in these reports")
    run = run_facts(reports[0])
    env = next((e for r in reports if (e := run_facts(r).get("nccl_env"))), None)
    props = next(t["properties"] for r in reports for t in r.get("tests", [])
                 if workload_properties.read(t.get("properties", {})))  # fmt: skip
    date = reports[0].get("started", time.strftime("%Y-%m-%d"))[:10]
    source = (
        f"{_measured_on(run, host_label)}, {env or 'NCCL environment not recorded'}) on {date} "
        f"with pytest-gpufabric suites/test_workload.py: {len(reports)} runs, each group while "
        f"every group of its kind runs, the slowest group, {_method(props)}"
    )
    lines = [f"{WORKLOAD}:", f"  source: {json.dumps(source, ensure_ascii=False)}",
             f"  margin: {json.dumps(margin_text(margins))}"]  # fmt: skip
    if counts != {1}:
        lines.append(f"  nodes: {counts.pop()}")
    lines.append("  layouts:")
    for layout in dict.fromkeys(k[0] for k in samples):  # in the order the runs had them
        lines.append(f"    {layout}:")
        for kind in GROUP_KINDS:
            mine = {(c, n): v for (at, k, c, n), v in samples.items() if (at, k) == (layout, kind)}
            if not mine:
                continue
            cells, floors = [], derive(mine, margins)
            for collective in ALL_COLLECTIVES:
                sizes = [f"{format_size(n)}: {_number(v)}"
                         for (c, n), v in floors.items() if c is collective]  # fmt: skip
                if sizes:
                    cells.append(f"{collective.value}: {{{', '.join(sizes)}}}")
            lines.append(f"      {kind}: {{{', '.join(cells)}}}")
    return lines


def render(
    reports: Sequence[dict[str, Any]],
    *,
    name: str,
    host_label: str | None,
    margins: Sequence[tuple[int, float]] = DEFAULT_MARGINS,
    description: str | None = None,
    sections: Sequence[str] = (INTRA_NODE,),
    extends: str | None = None,
    section_margins: Mapping[str, Sequence[tuple[int, float]]] | None = None,
) -> str:
    """A profile file for the node the reports were measured on, with the floors of the
    given sections (bandwidth.<kind>, and ``workload``). With ``extends`` it is an overlay:
    only ``name``, ``extends`` and the floors (an overlay named after its parent replaces
    that shipped profile)."""
    own = section_margins or {}
    bodies = [_section_lines(reports, section, host_label, own.get(section, margins))
              for section in sections if section != WORKLOAD]  # fmt: skip
    workload = (workload_lines(reports, host_label, own.get(WORKLOAD, margins))
                if WORKLOAD in sections else [])  # fmt: skip
    props = bodies[0][1] if bodies else {}
    run = run_facts(reports[0])
    lines = [f"name: {name}"]
    if extends:
        lines.append(f"extends: {extends}")
    if description or not extends:
        default_description = f"{run['gpu_count']} × {run['gpu_model']}"
        lines.append(f"description: {description or default_description}")
    if not extends:
        lines += [
            "gpu:",
            f"  model: {run['gpu_model']}",
            f"  count: {run['gpu_count']}",
        ]
    parent = load_catalogue().get(extends) if extends else None
    dropped: list[str] = []
    if parent is not None and int(run.get("gpu_count", 0)) != parent.gpu_count:
        # Measured on another GPU count than the parent's: the parent's other floors do not
        # hold here, so they are removed rather than inherited.
        lines.append(f"gpu: {{count: {run['gpu_count']}}}")
        dropped = [f"  {kind}: null  # {parent.name}'s are for {parent.gpu_count} GPUs"
                   for kind in parent.runs if kind not in sections]  # fmt: skip
    if bodies or dropped or not extends:
        lines.append("bandwidth:")
    if not extends:
        lines += [
            f"  dtype: {props.get('dtype', 'bfloat16')}",
            f"  warmup: {props.get('warmup', 5)}",
            f"  iters: {props.get('iters', 20)}",
        ]
        if props.get("repeats"):
            lines.append(f"  repeats: {props['repeats']}")
    for body, _ in bodies:
        lines += body
    lines += dropped
    lines += latency_lines(reports, host_label) if bodies or not extends else []
    lines += workload
    return "\n".join(lines) + "\n"


def parse_margins(text: str) -> tuple[tuple[int, float], ...]:
    """'256MiB=0.9,16MiB=0.8,0=0.5' -> ((256 MiB, 0.9), (16 MiB, 0.8), (0, 0.5))."""
    margins = []
    for item in text.split(","):
        size, _, fraction = item.partition("=")
        try:
            smallest = 0 if size.strip() == "0" else parse_size(size.strip())
            value = float(fraction)
        except ValueError:
            raise ValueError(f"{item!r} is not SIZE=FRACTION (e.g. 16MiB=0.8)") from None
        if not 0 < value <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction!r}")
        margins.append((smallest, value))
    margins.sort(reverse=True)
    if margins[-1][0] != 0:
        raise ValueError("the margins need an entry for size 0 (the smallest messages)")
    return tuple(margins)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, no usage block: ``python -m pytest_gpufabric.floors: error: ...``."""
        self.exit(2, f"{self.prog}: error: {message}\n")


def _profile_name(text: str) -> str:
    if not text.strip() or not all(c.isalnum() or c in "-_." for c in text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a profile name (letters, digits, - _ .)")
    return text


def _margins(text: str) -> tuple[tuple[int, float], ...]:
    try:
        return parse_margins(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: {exc}") from None


def read_report(path: Path) -> dict[str, Any]:
    """A --gpufabric-json report; ValueError naming the file otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{path}: not JSON: nested too deeply") from None
    problem = report_problem(data)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    return dict(data)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m pytest_gpufabric.floors", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "reports", nargs="+", type=Path, help="--gpufabric-json reports of healthy runs"
    )
    parser.add_argument(
        "--name", required=True, type=_profile_name,
        help="profile name (the file name without .yaml)",
    )  # fmt: skip
    parser.add_argument(
        "--host-label", help="how to name the host in the source (default: its hostname)"
    )
    parser.add_argument("--description")
    parser.add_argument(
        "--margins", type=_margins, default=DEFAULT_MARGINS,
        help="e.g. 256MiB=0.9,16MiB=0.8,0=0.5",
    )  # fmt: skip
    parser.add_argument(
        "--section-margins", action="append", default=[], metavar="SECTION:MARGINS",
        help="margins for one section, e.g. network_only:0=0.5 (sockets vary 2x run to run)",
    )  # fmt: skip
    parser.add_argument(
        "--section",
        choices=(*RUN_KINDS, WORKLOAD),
        action="append",
        help="section(s) to derive, repeatable: intra_node (one-node main runs), inter_node "
        "(main runs over several NCCL nodes), network_only and nvlink_only (those isolation "
        "runs), workload (suites/test_workload.py's groups per layout). Default: intra_node",
    )
    parser.add_argument(
        "--extends",
        metavar="PROFILE",
        type=_profile_name,
        help="write an overlay of PROFILE (name, extends and floors only) instead of a "
        "complete profile",
    )
    args = parser.parse_args(argv)
    try:
        if args.extends is not None and load_catalogue().get(args.extends) is None:
            raise ValueError(
                f"--extends {args.extends}: no shipped profile has that name (an overlay must "
                "extend one; python -m pytest_gpufabric.catalogue list shows them)"
            )
        section_margins = {}
        for item in args.section_margins:
            section, _, spec = item.partition(":")
            if section not in (*RUN_KINDS, WORKLOAD):
                raise ValueError(f"--section-margins {item}: {section!r} is not one of "
                                 f"{', '.join((*RUN_KINDS, WORKLOAD))}")  # fmt: skip
            section_margins[section] = parse_margins(spec)
        reports = [read_report(path) for path in args.reports]
        text = render(
            reports,
            name=args.name,
            host_label=args.host_label,
            margins=args.margins,
            description=args.description,
            sections=args.section or [INTRA_NODE],
            extends=args.extends,
            section_margins=section_margins,
        )
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(text)
    return 0
