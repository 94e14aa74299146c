"""NVLink and peer access, judged against the profile's ``host`` section: every link active
with the profile's count and version, error counters grown no more than allowed during the
run, and NVML's P2P capabilities between every pair of GPUs."""

from __future__ import annotations

from collections import Counter

from ..evidence.host import HostFacts
from ..profiles.model import Expectation, HostExpectations
from .host import HostEvidence, cite, origin_of, unknown
from .judgement import Finding, Judgement, Property, judged, not_asked, skipped

P2P_LEGEND = {"OK": "OK", "CNS": "chipset not supported", "GNS": "GPU not supported",
              "TNS": "topology not supported", "DR": "disabled by regkey", "NS": "not supported",
              "U": "unknown"}  # fmt: skip


def judge_nvlink(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """Every NVLink is active, each GPU has the profile's link count and version, and
    nvidia-smi topo -m shows NV<links> between every GPU pair."""
    gpus = [g for g in ev.facts.gpus if g.links]
    if not gpus:
        return unknown(ev.facts, "nvlink", "NVLink state")
    active = {g.index: sum(link.active for link in g.links.values()) for g in gpus}
    versions = sorted({link.version for g in gpus for link in g.links.values() if link.version})
    props: list[Property] = [
        ("nvlinks_per_gpu", ",".join(str(active[g.index]) for g in gpus)),
        ("nvlink_version", ",".join(versions) or "unknown"),
    ]
    origin = origin_of(ev.facts, "nvlink")
    findings = []
    inactive = [(g.index, n) for g in gpus for n, link in g.links.items() if not link.active]
    if inactive:
        findings.append(
            Finding(
                f"{len(inactive)} NVLink(s) inactive: "
                + ", ".join(f"GPU {g} link {n}" for g, n in inactive[:12]),
                (origin,),
                "every NVLink active",
                "an inactive link halves (or worse) the bandwidth through it: check nvidia-smi "
                "nvlink -s, the fabric manager, and Xid 74 in the kernel log; the GPU or baseboard "
                "may need service",
            )
        )
    if exp.nvlink_links is not None:
        want = exp.nvlink_links.integer
        short = {i: n for i, n in active.items() if n != want}
        if short:
            findings.append(
                Finding(
                    "active NVLinks per GPU differ from the profile: "
                    + ", ".join(f"GPU {i}: {n}" for i, n in short.items()),
                    (origin,),
                    cite(exp.nvlink_links, f"{want} active links per GPU"),
                    "a different GPU/board than the profile describes, or links down (see "
                    "nvidia-smi nvlink -s)",
                )
            )
        findings += _topology_links(ev.facts, exp.nvlink_links, want)
    if exp.nvlink_version is not None and versions and versions != [str(exp.nvlink_version.value)]:
        findings.append(
            Finding(
                f"NVLink version {', '.join(versions)}, expected {exp.nvlink_version.value}",
                (origin,),
                cite(exp.nvlink_version, f"NVLink {exp.nvlink_version.value}"),
                "a different GPU generation than the profile describes",
            )
        )
    return judged(findings, f"{len(gpus)} GPUs, links per GPU {props[0][1]}", props)


def _topology_links(facts: HostFacts, exp: Expectation, want: int) -> list[Finding]:
    gpus = sorted(k for k in facts.topology if k.startswith("GPU"))
    wrong = [
        (a, b, facts.topology[a].get(b, "?"))
        for a in gpus
        for b in gpus
        if a < b and facts.topology[a].get(b) != f"NV{want}"
    ]
    if not wrong:
        return []
    listing = ", ".join(f"{a}-{b}: {cell}" for a, b, cell in wrong[:8])
    return [
        Finding(
            f"nvidia-smi topo -m shows {listing}, not NV{want}",
            (origin_of(facts, "topology"),),
            cite(exp, f"NV{want} between every GPU pair"),
            "GPUs that do not reach each other over all their NVLinks: check the fabric manager "
            "and nvidia-smi nvlink -s",
        )
    ]


def judge_nvlink_errors(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """NVLink error counters while the suite's collectives ran: replay and recovery errors may
    not grow beyond the profile's count per link, CRC errors not beyond its rate per second
    and link (DCGM's form: healthy H200 links under load log a few CRC data errors a second,
    corrected without replay). Absolute counts are not judged: healthy links carry old counts."""
    limits = {"replay": exp.max_replay, "recovery": exp.max_recovery}
    if exp.max_crc_per_s is None and all(v is None for v in limits.values()):
        return not_asked("the profile sets no host.nvlink_errors")
    if ev.before is None:
        return skipped(
            "NVLink counters are judged as increases over a live run; no 'before' reading"
        )
    before, after = ev.before.link_counters(), ev.facts.link_counters()
    if not after:
        return unknown(ev.facts, "nvlink", "NVLink error counters")
    growth: Counter[tuple[int, int, str]] = Counter()
    for (gpu, link, name), value in after.items():
        kind = "crc" if name.startswith("crc") else name
        growth[(gpu, link, kind)] += max(value - before.get((gpu, link, name), value), 0)
    totals = Counter({"crc": 0, "replay": 0, "recovery": 0})
    for (_, _, kind), value in growth.items():
        totals[kind] += value
    props: list[Property] = [(f"nvlink_{kind}_increase", n) for kind, n in totals.items()]
    seconds = None
    if ev.before.taken_at is not None and ev.facts.taken_at is not None:
        seconds = max(ev.facts.taken_at - ev.before.taken_at, 1e-3)
        peak = max((n for (_, _, k), n in growth.items() if k == "crc"), default=0)
        props += [
            ("nvlink_interval_s", round(seconds, 1)),
            ("nvlink_crc_per_s_max", round(peak / seconds, 2)),
        ]
    where = (f"before: {ev.before.origin}", f"after: {ev.facts.origin}")
    remedy = (
        "a link that logs errors under load is marginal: watch nvidia-smi nvlink -e and the "
        "kernel log (Xid 74); replay and recovery errors cost bandwidth and can hang jobs"
    )
    findings = []
    for kind, exp_limit in limits.items():
        if exp_limit is None:
            continue
        over = [
            (g, link, n)
            for (g, link, k), n in growth.items()
            if k == kind and n > exp_limit.integer
        ]
        if over:
            listing = ", ".join(f"GPU {g} link {link}: +{n}" for g, link, n in over[:8])
            findings.append(
                Finding(
                    f"NVLink {kind} errors grew during the run: {listing}",
                    where,
                    cite(exp_limit, f"at most +{exp_limit.integer} per link"),
                    remedy,
                )
            )
    if exp.max_crc_per_s is not None and seconds is not None:
        rate = exp.max_crc_per_s.number
        over = [
            (g, link, n) for (g, link, k), n in growth.items() if k == "crc" and n / seconds > rate
        ]
        if over:
            listing = ", ".join(
                f"GPU {g} link {link}: +{n} ({n / seconds:.0f}/s)" for g, link, n in over[:8]
            )
            findings.append(
                Finding(
                    f"NVLink CRC errors above {rate:g}/s over {seconds:.1f} s: {listing}",
                    where,
                    cite(exp.max_crc_per_s, f"at most {rate:g} CRC errors per second and link"),
                    remedy,
                )
            )
    return judged(findings, "NVLink error counters steady", props)


def judge_p2p(ev: HostEvidence, exp: HostExpectations) -> Judgement:
    """NVML reports the profile's P2P capabilities (read, write, NVLink, atomics) OK between
    every pair of GPUs: what NCCL's P2P transport checks before it uses P2P."""
    if exp.p2p is None:
        return not_asked("the profile sets no host.p2p")
    if not ev.facts.p2p:
        return unknown(ev.facts, "p2p", "P2P capability")
    caps = exp.p2p.names
    bad = [
        (a, b, cap, status.get(cap, "unread"))
        for (a, b), status in sorted(ev.facts.p2p.items())
        for cap in caps
        if status.get(cap) != "OK"
    ]
    summary = Counter(
        f"{cap}={status.get(cap, '-')}" for status in ev.facts.p2p.values() for cap in caps
    )
    props: list[Property] = [
        ("p2p_pairs", len(ev.facts.p2p)),
        ("p2p_status", ", ".join(f"{k}×{n}" for k, n in sorted(summary.items()))),
    ]
    findings = []
    if bad:
        listing = ", ".join(
            f"GPU{a}->GPU{b} {cap}: {P2P_LEGEND.get(s, s)}" for a, b, cap, s in bad[:8]
        )
        findings.append(
            Finding(
                f"{len(bad)} P2P capabilities not OK: {listing}",
                (origin_of(ev.facts, "p2p"),),
                cite(exp.p2p, f"{', '.join(caps)} OK between every GPU pair"),
                "NCCL will not use P2P where NVML says it cannot: check the fabric manager, "
                "nvidia-smi topo -p2p r/w/n/a, and (in VMs) that peer-to-peer is passed through",
            )
        )
    return judged(findings, f"{len(ev.facts.p2p)} GPU pairs: {', '.join(caps)} OK", props)
