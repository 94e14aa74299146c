"""Each group of a workload case against its floor: the profile's for this layout (section
``workload``, profiles/workload.py), else its fair share of the whole-world floor: the
world's busbw divided among the groups that run at the same time (floor × group size /
world size), said so in the message. A group below it is measured again alone, which tells
contention (alone it is fast) from a slow group (alone it is slow too)."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..collectives import Collective, layout
from ..judge.judgement import Judgement, Property, failed, not_asked, passed
from ..judge.measure import Measurement
from ..launch.wire import JobResult
from ..profiles.model import Floor, Profile
from ..runs import main_kind
from ..units import format_size
from . import properties as P
from .cases import KIND_NAMES, WorkloadCase


@dataclass(frozen=True)
class GroupResult:
    ranks: tuple[int, ...]
    measured: Measurement
    where: str  # "GPUs 0, 1 on node-a" / "ranks on node-a, node-b"
    link: str  # "NVLink (P2P/CUMEM)", "SHM", "network (NET/Socket)", "gloo over TCP"


def beside_result(
    reply: JobResult, collective: Collective, nbytes: int, nranks: int, dtype: str
) -> JobResult:
    """A rank's reply seen as its result of the traffic beside the job (its own times)."""
    times = reply.beside_times_ms
    return JobResult(
        nbytes=layout(collective, nbytes, nranks, dtype).nbytes, times_ms=times,
        median_ms=statistics.median(times) if times else None, recorded=reply.recorded,
        method=reply.method, iters=reply.iters,
    )  # fmt: skip


def layout_floor(profile: Profile | None, case: WorkloadCase, nodes: int) -> Floor | None:
    """The profile's floor for this case's groups (section ``workload``, for runs over as
    many nodes), or None."""
    section = profile.workload if profile is not None else None
    if section is None or section.nodes != nodes:
        return None
    layout = case.layout
    return section.floor_for((layout.tp, layout.pp, layout.dp), case.kind, case.collective,
                             case.nbytes)  # fmt: skip


def limit_for(
    profile: Profile | None, case: WorkloadCase, world: int, nodes: int
) -> tuple[float, str] | None:
    """(floor for one group, where it comes from): the profile's floor for this layout's
    groups, else the fair share of the whole-world floor; None without either."""
    floor = layout_floor(profile, case, nodes)
    if profile is None or floor is None:
        return fair_share(profile, case, world, nodes)
    how = (
        f"{floor.busbw_gbps:g} GB/s per {case.kind} group of layout {case.layout.key} from "
        f"{floor.where} (profile {profile.name})\n  source: {floor.source}"
    )
    return floor.busbw_gbps, how + (f"\n  margin policy: {floor.margin}" if floor.margin else "")


def fair_share(
    profile: Profile | None, case: WorkloadCase, world: int, nodes: int = 1
) -> tuple[float, str] | None:
    """(floor for one group, how it was derived) or None without a whole-world floor: the
    main run's (bandwidth.intra_node on one node, inter_node for as many nodes)."""
    run = profile.runs.get(main_kind(nodes)) if profile is not None else None
    if profile is None or run is None:
        return None
    floor: Floor | None = run.floor_for(case.collective, case.nbytes)
    if floor is None or (profile.ranks != world if nodes == 1 else run.nodes != nodes):
        return None
    size = len(case.groups[0])
    value = floor.busbw_gbps * size / world
    how = (
        f"fair share of the whole-world floor: {floor.busbw_gbps:g} GB/s ({floor.where}) × "
        f"{size} ranks per group / {world} ranks = {value:.3g} GB/s (no per-layout floor in "
        f"profile {profile.name} yet)"
    )
    return value, how


def judge_groups(
    case: WorkloadCase,
    results: Sequence[GroupResult],
    limit: tuple[float, str] | None,
    alone: Callable[[GroupResult], Measurement | None],
    misplaced: Sequence[str] = (),
    beside: Sequence[GroupResult] = (),
) -> Judgement:
    """Every group at or above ``limit``; a failing group names its ranks, GPUs, nodes and
    link, and how it did alone. ``misplaced``: what of the layout Megatron would not do (a
    TP group across nodes), said in the verdict either way: it is the layout's doing, not
    the node's. ``beside``: the groups whose traffic ran at the same time (reported, not
    judged: their own cases judge them)."""
    judgement = _judge(case, results, limit, alone, beside)
    if not misplaced:
        return judgement
    note = "layout: " + "; ".join(misplaced)
    props = (*judgement.properties, ("misplaced", "; ".join(misplaced)))
    if judgement.status == "failed":
        return failed(f"{judgement.message}\n  {note}", props)
    return Judgement(judgement.status, f"{judgement.summary} ({note})", judgement.findings,
                     props, judgement.warning or note, judgement.skip)  # fmt: skip


def _judge(
    case: WorkloadCase,
    results: Sequence[GroupResult],
    limit: tuple[float, str] | None,
    alone: Callable[[GroupResult], Measurement | None],
    beside: Sequence[GroupResult],
) -> Judgement:
    kind = KIND_NAMES[case.kind]
    props: list[Property] = [(P.LAYOUT, case.layout.name), (P.KIND, case.kind),
                             (P.GROUPS, len(results)), (P.COLLECTIVE, case.collective.value),
                             (P.BYTES, case.nbytes)]  # fmt: skip
    for number, group in enumerate(results):
        props += [(P.group_key(number, "ranks"), ",".join(map(str, group.ranks))),
                  (P.group_key(number, "time_ms"), group.measured.time_ms),
                  (P.group_key(number, "mismatches"), group.measured.mismatches),
                  (P.group_key(number, "busbw_gbps"), float(f"{group.measured.busbw_gbps:.4g}")),
                  (P.group_key(number, "link"), group.link)]  # fmt: skip
    first = results[0].measured if results else None
    if first is not None and first.rank_median_ms:  # how it was timed (the floors tool says)
        props += [("timing", first.method or "loop"), ("iters", first.iters),
                  ("repeats", first.repeats or 1)]  # fmt: skip
    if beside:
        props.append((P.BESIDE, beside[0].measured.collective.value))
    for number, group in enumerate(beside):
        busbw = float(f"{group.measured.busbw_gbps:.4g}")
        props += [(P.group_key(number, "ranks", "beside"), ",".join(map(str, group.ranks))),
                  (P.group_key(number, "time_ms", "beside"), group.measured.time_ms),
                  (P.group_key(number, "busbw_gbps", "beside"), busbw)]  # fmt: skip
    wrong = [g for g in results if g.measured.mismatches]
    if wrong:
        return failed("\n".join(
            f"{kind} group of ranks {_ranks(g)} ({g.where}): {g.measured.mismatches} wrong "
            f"elements in {case.collective.value} {format_size(case.nbytes)}" for g in wrong
        ), props)  # fmt: skip
    what = f"{case.collective.value} {format_size(case.nbytes)}"
    label = f"{what}, {len(results)} {kind} group{'s' if len(results) > 1 else ''} at once"
    if beside:
        slowest_beside = min(g.measured.busbw_gbps for g in beside)
        label += (f" while {len(beside)} tensor-parallel group{'s' if len(beside) > 1 else ''} "
                  f"{beside[0].measured.collective.value} {format_size(case.nbytes)} (slowest "
                  f"{slowest_beside:.3g} GB/s)")  # fmt: skip
    if limit is None:
        slowest = min(g.measured.busbw_gbps for g in results)
        return not_asked(f"{label}: slowest group {slowest:.3g} GB/s busbw; no floor to judge "
                         "it (none for this layout, no whole-world floor at this size for this "
                         "many nodes)", props)  # fmt: skip
    floor, how = limit
    props += [(P.THRESHOLD, float(f"{floor:.4g}")), ("threshold_from", how.splitlines()[0])]
    slow = [g for g in results if g.measured.busbw_gbps < floor]
    if not slow:
        slowest = min(g.measured.busbw_gbps for g in results)
        return passed(f"{label}: slowest group {slowest:.3g} GB/s >= {floor:.4g} GB/s", props)
    lines = [f"{label}: {len(slow)} of {len(results)} groups below {floor:.4g} GB/s busbw"]
    for group in slow:
        lines.append(
            f"  {kind} group of ranks {_ranks(group)} ({group.where}) over {group.link}: "
            f"{group.measured.busbw_gbps:.3g} GB/s ({group.measured.how()})"
        )
        if len(results) == 1:
            lines.append("    it ran alone (the only group of its kind): the group itself is slow")
            continue
        solo = alone(group)
        if solo is not None:
            verdict = (
                "contention: alone it reaches the floor"
                if solo.busbw_gbps >= floor
                else "the group itself is slow: alone it is below the floor too"
            )
            lines.append(f"    alone: {solo.busbw_gbps:.3g} GB/s busbw: {verdict}")
            props += [(P.alone_key(group.ranks, "gbps"), float(f"{solo.busbw_gbps:.4g}")),
                      (P.alone_key(group.ranks, "time_ms"), solo.time_ms)]  # fmt: skip
    lines.append(f"  expected: {how}")
    return failed("\n".join(lines), props)


def _ranks(group: GroupResult) -> str:
    return ", ".join(map(str, group.ranks))
