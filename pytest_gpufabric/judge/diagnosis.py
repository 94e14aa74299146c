"""Why a bandwidth test came out slow, from the same run's evidence: the pool's NCCL logs (how
many channels NCCL ran and what limited them, tuning variables set by the environment,
transports that fell back from NVLink P2P or from RDMA) and the host facts read before and
after the collectives (another process on the GPUs, clocks held down, NVLink links down or
logging errors, PCIe links below their maximum).

:func:`diagnose` returns the causes it finds, most probable first; :func:`render` turns them
into the lines appended to a failing busbw message. Each cause quotes its evidence with file
and line (NCCL logs) or names the reading it comes from (host facts). Pure: no pytest here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..evidence.host import GpuHost, HostFacts, rdma_counts
from ..evidence.nccl_log import Comm, Connection, Fact, NcclLog, ProcessLog
from ..evidence.topology import CommGroup, comm_groups, connections, pairs_text
from .host import HostEvidence, origin_of
from .judgement import quote

EXAMPLES = 3
# Weights (Cause.weight) rank what the run was set up or connected to do (a channel cap 100, a
# transport fallback 85-90, tuning set by the environment 70) and what the hosts did during it
# (another process 85, clocks held down 50-80, NVLink errors or links down 45-80) above what a
# single reading shows (reasons active at a reading 35, PCIe width 30, generation 15); a cause
# the pool sets up on purpose (an isolation run) counts 30-40.
# Variables that cap the channels NCCL runs; a run that uses fewer channels is slower.
CHANNEL_LIMITS = ("NCCL_MAX_NCHANNELS", "NCCL_MAX_CTAS")
# Variables that change how NCCL connects GPUs (quoted with a transport fallback).
TRANSPORT_VARS = ("NCCL_P2P_DISABLE", "NCCL_SHM_DISABLE", "NCCL_P2P_LEVEL", "NCCL_HOSTID",
                  "NCCL_NET", "NCCL_IB_DISABLE", "NCCL_NET_PLUGIN")  # fmt: skip
# Tuning variables that can make a collective slower than NCCL's own choice. NCCL_NVLS_ENABLE
# is not one: floors are measured with NVLS as the profile has it, and judge_nvls checks it.
TUNING_VARS = ("NCCL_ALGO", "NCCL_PROTO", "NCCL_BUFFSIZE", "NCCL_NTHREADS", "NCCL_MIN_NCHANNELS",
               "NCCL_MIN_CTAS", "NCCL_LL_BUFFSIZE", "NCCL_LL128_BUFFSIZE", "NCCL_CTA_POLICY",
               "NCCL_P2P_NET_CHUNKSIZE", "NCCL_P2P_NVL_CHUNKSIZE", "NCCL_P2P_PCI_CHUNKSIZE",
               "NCCL_P2P_READ_ENABLE", "NCCL_P2P_USE_CUDA_MEMCPY", "NCCL_SHM_USE_CUDA_MEMCPY",
               "NCCL_CUMEM_ENABLE", "NCCL_NET_GDR_LEVEL", "NCCL_NET_GDR_READ", "NCCL_CROSS_NIC",
               "NCCL_NCHANNELS_PER_NET_PEER", "NCCL_IB_QPS_PER_CONNECTION")  # fmt: skip
# Cumulative "clocks held down" counters that mean a limit (live NVML names, then those of
# nvidia-smi -q's counters). NVML's low_utilization, app_clocks and base_clocks also grow
# while a GPU idles (measured on H200: ~17 s of each in 17 s idle), so they say nothing.
HELD = {"power": "the power cap", "thermal": "a thermal limit", "sync_boost": "sync boost",
        "board_limit": "a board limit", "reliability": "a reliability limit",
        "sw_power_cap": "the power cap", "sw_therm_slowdown": "software thermal slowdown",
        "hw_therm_slowdown": "hardware thermal slowdown",
        "hw_power_brake": "hardware power brake"}  # fmt: skip
HELD_SHARE = 0.05  # of the time between the readings: less is noise
IDLE_REASONS = ("gpu_idle", "display_clocks_setting")
CRC_PER_S = 100  # NVLink CRC errors a second and link that the shipped profiles allow


@dataclass(frozen=True)
class Cause:
    """A probable reason for low bandwidth: a short name (the kind), one line saying what was
    found, the evidence, and how strongly it points at slow collectives (causes sort by it)."""

    name: str
    summary: str
    evidence: tuple[str, ...] = ()
    weight: int = 0


def diagnose(
    log: NcclLog,
    hosts: Sequence[tuple[str, HostEvidence]] = (),
    env: Collection[str] = (),
    *,
    min_channels: int | None = None,
    min_channels_source: str = "",
    rank_pids: Collection[int] | None = None,
) -> list[Cause]:
    """The causes the evidence shows, most probable first.

    ``log``: the pool's NCCL logs. ``hosts``: (node, host evidence) of each node, as the host
    checks get them (``before`` is the reading before the first collective). ``env``: the
    variables the pool sets itself (its pool.json ``env`` and ``rank_env`` names): a cause they
    explain is set up on purpose and counts for less. ``min_channels`` (and where it comes
    from): the channels a healthy run uses. ``rank_pids``: the pids of every rank the session
    started, to tell them from other processes on the GPUs (default: the pids in ``log``)."""
    settings = _settings(log)
    causes = [
        *_channels(log, settings, env, min_channels, min_channels_source),
        *_tuning(settings, env),
        *_transports(log, hosts, settings, env),
    ]
    for node, ev in hosts:
        procs = _node_processes(log, node, len(hosts))
        pids = set(rank_pids) if rank_pids is not None else {p.process.pid for p in procs}
        causes += _other_processes(node, ev, pids, procs)
        causes += _clocks(node, ev)
        causes += _nvlink(node, ev)
        causes += _pcie(node, ev)
    return sorted(causes, key=lambda c: -c.weight)


def render(causes: Sequence[Cause]) -> str:
    """The text appended to a failing busbw message."""
    if not causes:
        return "  probable causes: none found in this run's NCCL logs and host facts"
    lines = ["  probable causes (most likely first):"]
    for number, cause in enumerate(causes, 1):
        lines.append(f"  {number}. {cause.summary}")
        lines += [f"     evidence: {e}" for e in cause.evidence[: EXAMPLES + 1]]
    return "\n".join(lines)


# --- the NCCL logs ---------------------------------------------------------------------------


def _settings(log: NcclLog) -> dict[str, Fact]:
    """'NCCL_X set by environment to Y': the first line of each variable."""
    found: dict[str, Fact] = {}
    for proc in log.processes.values():
        for name, fact in proc.env.items():
            found.setdefault(name, fact)
    return found


def _setting(name: str, fact: Fact) -> str:
    return quote(f"{name} set by environment to {fact.value}", fact.where)


def _on_purpose(
    names: Iterable[str], settings: Mapping[str, Fact], env: Collection[str], *, every: bool = True
) -> bool:
    """Every one (or, not ``every``: any one) of these settings is one the pool makes itself:
    the pool's value overrides the environment's, so the name says it."""
    present = [n in env for n in names if n in settings]
    return bool(present) and (all(present) if every else any(present))


def _world(log: NcclLog) -> list[Comm]:
    """The communicators of the most ranks (sub-communicators run their own channel counts)."""
    groups = comm_groups(log)
    return [c for g in groups if g.nranks == groups[0].nranks for c in g.comms.values()]


def _channels(
    log: NcclLog, settings: Mapping[str, Fact], env: Collection[str],
    min_channels: int | None, source: str,
) -> list[Cause]:  # fmt: skip
    comms = _world(log)
    ran = sorted(c.coll_channels for c in comms if c.coll_channels is not None)
    if not ran:
        return []
    used, line = ran[0]  # the fewest channels any rank ran
    searched = max((c.searched for c in comms if c.searched), default=None)
    limits = [(n, settings[n]) for n in CHANNEL_LIMITS if n in settings]
    limited = [(n, f) for n, f in limits if f.value.isdigit() and used <= int(f.value)]
    capped = searched is not None and used < searched.number
    short = min_channels is not None and used < min_channels
    if not (limited or capped or short):
        return []
    plural = "s" if used != 1 else ""
    if limited:
        summary = f"NCCL limited to {used} channel{plural} by the environment ({limited[0][0]}=" \
                  f"{limited[0][1].value})"  # fmt: skip
    else:
        summary = f"NCCL ran {used} channel{plural}"
    if short:
        summary += f"; a healthy run uses {min_channels}" + (f" ({source})" if source else "")
    elif capped and searched is not None:
        summary += f"; its graph search found paths for {searched.number}"
    evidence = [_setting(n, f) for n, f in limited or limits]
    evidence.append(quote(line.value, line.where))
    if searched is not None and capped:
        evidence.append(quote(searched.line.value, searched.line.where))
    weight = 100 if limited or capped else 60  # fewer channels alone follow from the transport
    if limited and _on_purpose(dict(limited), settings, env):
        summary, weight = summary + " (the pool sets it on purpose)", 40
    return [Cause("channels", summary, tuple(evidence), weight)]


def _tuning(settings: Mapping[str, Fact], env: Collection[str]) -> list[Cause]:
    found = [n for n in TUNING_VARS if n in settings]
    if not found:
        return []
    listing = ", ".join(f"{n}={settings[n].value}" for n in found)
    evidence = tuple(_setting(n, settings[n]) for n in found)
    if _on_purpose(found, settings, env):
        return [Cause("nccl-env", f"NCCL tuned by this pool on purpose: {listing}", evidence, 30)]
    return [Cause("nccl-env", f"NCCL tuning set by the environment: {listing}", evidence, 70)]


def _transports(
    log: NcclLog, hosts: Sequence[tuple[str, HostEvidence]], settings: Mapping[str, Fact],
    env: Collection[str],
) -> list[Cause]:  # fmt: skip
    """SHM or NET between GPUs of one host where NVLink P2P is possible; NET over TCP sockets
    between hosts that have an RDMA NIC."""
    groups = comm_groups(log)
    kinds: dict[str, list[Connection]] = {}
    for conn in connections(log.connections):
        if conn.transport not in ("SHM", "NET"):
            continue
        here = conn.process.host
        there = _peer_host(groups, conn)
        facts = _facts_of(hosts, here)
        if conn.transport == "SHM" or there == here:
            if _p2p_possible(log, facts, here, conn.src_dev, conn.dst_dev) is not None:
                kinds.setdefault(conn.transport, []).append(conn)
            elif conn.transport == "NET":
                kinds.setdefault("NET-one-host", []).append(conn)
        elif there is not None and conn.net == "Socket" and _has_rdma(facts, hosts, there):
            kinds.setdefault("Socket", []).append(conn)
    causes = []
    on_purpose = _on_purpose(TRANSPORT_VARS, settings, env, every=False)
    explained = [_setting(n, settings[n]) for n in TRANSPORT_VARS if n in settings]
    for kind, conns in kinds.items():
        pairs = pairs_text(sorted({(c.src, c.dst) for c in conns}))
        detail = conns[0].detail
        if kind == "Socket":
            summary = f"{len(conns)} connection(s) between hosts use TCP sockets ({detail}) " \
                      f"although the hosts have RDMA NICs (pairs {pairs})"  # fmt: skip
            weight = 85
        else:
            facts = _facts_of(hosts, conns[0].process.host)
            why = _p2p_possible(log, facts, conns[0].process.host, conns[0].src_dev,
                                conns[0].dst_dev)  # fmt: skip
            summary = (
                f"{len(conns)} connection(s) between GPUs of one host use {detail}"
                + (f", not NVLink P2P ({why})" if why else ", not P2P or SHM")
                + f" (pairs {pairs})"
            )
            weight = 90 if why else 75
        if on_purpose:
            summary, weight = summary + "; the pool sets this up on purpose", 40
        evidence = [
            f"rank {c.printed_by} ({c.process}): {quote(c.text, c.where)}" for c in conns[:2]
        ]
        causes.append(Cause("transport", summary, (*evidence, *explained[:2]), weight))
    return causes


def _peer_host(groups: Sequence[CommGroup], conn: Connection) -> str | None:
    """The host of the connection's other rank, from the communicator it belongs to."""
    mine = conn.printed_by
    other = conn.src if mine == conn.dst else conn.dst
    for group in groups:
        member = group.members.get(mine)
        if member is not None and member.process == conn.process:
            peer = group.members.get(other)
            return peer.process.host if peer else None
    return None


def _facts_of(hosts: Sequence[tuple[str, HostEvidence]], host: str) -> HostFacts | None:
    """The host facts of the node NCCL calls ``host`` (its host name up to the first dot);
    with one node, that node's."""
    if len(hosts) == 1:
        return hosts[0][1].facts
    for node, ev in hosts:
        if node.split(".")[0] == host:
            return ev.facts
    return None


def _node_processes(log: NcclLog, node: str, nodes: int) -> list[ProcessLog]:
    return [p for p in log.processes.values() if nodes == 1 or p.process.host == node.split(".")[0]]


def _p2p_possible(log: NcclLog, facts: HostFacts | None, host: str, a: int, b: int) -> str | None:
    """Why NVLink P2P is possible between NVML devices a and b of ``host``, or None."""
    if facts is not None:
        caps = facts.p2p.get((a, b), {})
        ok = [cap for cap in ("nvlink", "read", "write") if caps.get(cap) == "OK"]
        if ok:
            return f"NVML P2P {'/'.join(ok)} OK between GPU {a} and GPU {b}"
        cell = facts.topology.get(f"GPU{a}", {}).get(f"GPU{b}", "")
        if cell.startswith("NV"):
            return f"nvidia-smi topo -m shows {cell} between GPU{a} and GPU{b}"
    for proc in log.processes.values():
        for path in proc.graph_paths:
            if proc.process.host == host and path.value.startswith("NVL"):
                return "NCCL's graph search found NVLink: " + quote(
                    f"type {path.value}", path.where
                )
    return None


def _has_rdma(
    facts: HostFacts | None, hosts: Sequence[tuple[str, HostEvidence]], other: str
) -> bool:
    """Either end's host has an RDMA NIC (EFA or InfiniBand)."""
    return any(
        f is not None and (any(rdma_counts(f).values()) or bool(f.efa_pci_devices))
        for f in (facts, _facts_of(hosts, other))
    )


# --- the hosts -------------------------------------------------------------------------------


def _readings(ev: HostEvidence) -> list[tuple[str, HostFacts]]:
    return [(w, f) for w, f in (("before", ev.before), ("after", ev.facts)) if f is not None]


def _gpus(facts: HostFacts | None) -> dict[int, GpuHost]:
    return {g.index: g for g in facts.gpus} if facts is not None else {}


def _other_processes(
    node: str, ev: HostEvidence, pids: set[int], procs: Sequence[ProcessLog]
) -> list[Cause]:
    """Compute processes on the GPUs that are not the ranks. The reading before the run comes
    before any rank starts; after it, a pid that is not a rank's is another process only if
    NVML shows the ranks' own pids (in a container NVML may show the host's pids, or 0)."""
    readings = _readings(ev)
    seen = {p.pid for _, f in readings for g in f.gpus for p in g.processes or ()}
    same_namespace = bool(seen & pids)
    before = {i: {p.pid for p in g.processes or ()} for i, g in _gpus(ev.before).items()}
    others: dict[int, dict[str, list[str]]] = {}  # GPU -> reading -> "pid (MiB)"
    unsure: list[str] = []
    for when, facts in readings:
        for gpu in facts.gpus:
            foreign = [p for p in gpu.processes or () if p.pid not in pids]
            sure = [p for p in foreign if when == "before" or same_namespace
                    or p.pid in before.get(gpu.index, ())]  # fmt: skip
            if sure:
                others.setdefault(gpu.index, {})[when] = [
                    f"{p.pid}" + (f" ({p.used_mib} MiB)" if p.used_mib is not None else "")
                    for p in sure
                ]
            ranks = sum(c.nvml_dev == gpu.index for p in procs for c in p.comms[:1])
            if len(foreign) > len(sure) and len(gpu.processes or ()) > ranks:
                listing = ", ".join(str(p.pid) for p in foreign)
                unsure.append(f"GPU {gpu.index} {when} the run: pids {listing} for {ranks} rank(s)")
    causes = []
    where = {w: origin_of(f, "processes") for w, f in readings}
    for index, found in sorted(others.items()):
        during = "during the run" if "after" in found else "before the run (gone after it)"
        listing = ", ".join(sorted({x for v in found.values() for x in v}))
        rank_list = ", ".join(map(str, sorted(pids))) or "none known"
        causes.append(Cause(
            "other-process",
            f"another process on GPU {index} of {node} {during}: pid {listing}, not one of the "
            f"ranks ({rank_list})",
            tuple(f"{when} the run: GPU {index} runs {', '.join(v)} ({where[when]})"
                  for when, v in found.items()),
            85 if "after" in found else 65,
        ))  # fmt: skip
    if unsure:
        causes.append(Cause(
            "other-process",
            f"more processes on the GPUs of {node} than ranks, with pids NVML reports from "
            "another pid namespace (a container?): they may be other programs or the ranks",
            tuple(unsure[:EXAMPLES]),
            30,
        ))  # fmt: skip
    return causes


def _span(ev: HostEvidence) -> float | None:
    """Seconds between the readings before and after the run."""
    if ev.before is None or ev.before.taken_at is None or ev.facts.taken_at is None:
        return None
    return max(ev.facts.taken_at - ev.before.taken_at, 1e-3)


def _held(ev: HostEvidence) -> list[tuple[float, str, str]]:
    """(share of the time between the readings, what held which GPU down, the counter values)
    for each clock limit counter that grew by at least HELD_SHARE of that time."""
    span, old, found = _span(ev), _gpus(ev.before), []
    for gpu in ev.facts.gpus:
        for key, what in HELD.items():
            if gpu.index not in old or key not in gpu.clock_held_ns:
                continue
            was = old[gpu.index].clock_held_ns.get(key, 0) / 1e9
            now = gpu.clock_held_ns[key] / 1e9
            share = (now - was) / span if span else float(now - was >= 1)
            if now > was and share >= HELD_SHARE:
                of = f" of {span:.1f} s" if span else ""
                found.append((
                    min(share, 1.0),
                    f"GPU {gpu.index} by {what} {now - was:.1f} s{of}",
                    f"GPU {gpu.index} {key} time: {was:.2f} s before, {now:.2f} s after",
                ))  # fmt: skip
    return found


def _clocks(node: str, ev: HostEvidence) -> list[Cause]:
    """Clocks held down between the readings (NVML violation counters, or nvidia-smi's
    clocks event reason counters), clocks event reasons active at a reading, and
    applications clocks set below their default."""
    active = [
        (when, g.index, r, origin_of(facts, "clocks"))
        for when, facts in _readings(ev)
        for g in facts.gpus
        for r in g.clock_reasons or ()
        if r not in IDLE_REASONS
    ]
    reasons = tuple(f"{r} active on GPU {i} {when} the run ({o})" for when, i, r, o in active)
    causes = []
    if held := _held(ev):
        before = ev.before or ev.facts  # counters that grew were read twice
        where = f"read before ({origin_of(before, 'clocks')}) and after " \
                f"({origin_of(ev.facts, 'clocks')})"  # fmt: skip
        causes.append(Cause(
            "clocks",
            f"GPU clocks held down during the run on {node}: " + ", ".join(t for _, t, _ in held),
            (*(e for _, _, e in held), where, *reasons),
            50 + int(30 * max(s for s, _, _ in held)),
        ))  # fmt: skip
    elif active:
        names = ", ".join(sorted({f"GPU {i} {r}" for _, i, r, _ in active}))
        causes.append(Cause("clocks", f"GPU clocks held down at a reading on {node}: {names}",
                            reasons, 35))  # fmt: skip
    low = [
        (g, g.app_clock_default_mhz or g.max_clock_mhz)
        for g in ev.facts.gpus
        if g.app_clock_mhz and g.app_clock_mhz < (g.app_clock_default_mhz or g.max_clock_mhz or 0)
    ]
    if low:
        listing = ", ".join(f"GPU {g.index} {g.app_clock_mhz} MHz of {top}" for g, top in low)
        causes.append(Cause(
            "clocks",
            f"applications clocks set below their default on {node} (nvidia-smi -ac): {listing}",
            (f"applications clocks ({origin_of(ev.facts, 'clocks')})",),
            45,
        ))  # fmt: skip
    return causes


def _nvlink(node: str, ev: HostEvidence) -> list[Cause]:
    """NVLinks inactive at a reading; replay or recovery errors, or CRC errors above the
    rate the shipped profiles allow, counted between the readings."""
    causes = []
    down = sorted({(g.index, n) for _, f in _readings(ev) for g in f.gpus
                   for n, link in g.links.items() if not link.active})  # fmt: skip
    if down:
        listing = ", ".join(f"GPU {g} link {n}" for g, n in down[:8])
        causes.append(Cause("nvlink", f"{len(down)} NVLink(s) inactive on {node}: {listing}",
                            (f"NVLink state ({origin_of(ev.facts, 'nvlink')})",), 80))  # fmt: skip
    if ev.before is None:
        return causes
    old, span = ev.before.link_counters(), _span(ev)
    grown = []
    for (gpu, link, name), value in sorted(ev.facts.link_counters().items()):
        grew = value - old.get((gpu, link, name), value)
        crc = name.startswith("crc")
        if grew > 0 and (not crc or (span is not None and grew / span > CRC_PER_S)):
            rate = f" ({grew / span:.0f}/s)" if crc and span else ""
            grown.append((crc, f"GPU {gpu} link {link} {name} +{grew}{rate}"))
    if grown:
        causes.append(Cause(
            "nvlink",
            f"NVLink errors grew during the run on {node}: " + ", ".join(t for _, t in grown[:8]),
            (f"NVLink error counters before ({ev.before.origin}) and after ({ev.facts.origin})",),
            45 if all(crc for crc, _ in grown) else 55,
        ))  # fmt: skip
    return causes


def _pcie(node: str, ev: HostEvidence) -> list[Cause]:
    """PCIe links narrower, or at a lower generation, than the GPU supports. GPUs lower the
    generation when idle, so a generation is only taken from a reading of a busy GPU (or one
    whose clocks event reasons are unknown, said so)."""
    gpus = ev.facts.gpus
    narrow = [
        g for g in gpus if g.pcie_width and g.pcie_width_max and g.pcie_width < g.pcie_width_max
    ]
    slow = [g for g in gpus if g.pcie_gen and g.pcie_gen_max and g.pcie_gen < g.pcie_gen_max
            and "gpu_idle" not in (g.clock_reasons or ())]  # fmt: skip
    origin = origin_of(ev.facts, "gpus")
    causes = []
    if narrow:
        listing = ", ".join(f"GPU {g.index} x{g.pcie_width} of x{g.pcie_width_max}" for g in narrow)
        causes.append(Cause("pcie", f"PCIe links narrower than the GPU supports on {node}: "
                            f"{listing}", (f"PCIe link width ({origin})",), 30))  # fmt: skip
    if slow:
        listing = ", ".join(f"GPU {g.index} gen {g.pcie_gen} of {g.pcie_gen_max}" for g in slow)
        unsure = any(g.clock_reasons is None for g in slow)
        note = " (idle GPUs lower it; whether these were idle is unknown)" if unsure else ""
        causes.append(Cause("pcie", f"PCIe links below their generation on {node}: {listing}"
                            f"{note}", (f"PCIe link generation ({origin})",), 15))  # fmt: skip
    return causes
