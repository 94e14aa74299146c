"""Judgements: a measurement against its expectation, with a message that names the measured
value, the expectation and where the expectation comes from. Pure: no pytest here."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..profiles.model import Floor
from .judgement import Property
from .measure import Measurement


@dataclass(frozen=True)
class Verdict:
    passed: bool
    message: str  # the failure text; a one-line summary when passed
    properties: tuple[Property, ...] = field(default_factory=tuple)
    warning: str | None = None  # passed, but inside the floor's warn band


def _measurement_properties(m: Measurement) -> list[Property]:
    props: list[Property] = [
        ("collective", m.collective.value),
        ("bytes", m.nbytes),
        ("dtype", m.dtype),
        ("nranks", m.nranks),
    ]
    if m.rank_median_ms:
        props += [
            ("time_ms", round(m.time_ms, 4)),
            ("algbw_gbps", round(m.algbw_gbps, 2)),
            ("busbw_gbps", round(m.busbw_gbps, 2)),
            ("slowest_rank", m.slowest_rank),
            ("iters", m.iters),
            ("warmup", m.warmup),
        ]
    if m.checked:
        props += [("checked_elements", m.checked), ("mismatches", m.mismatches)]
    if m.recorded:
        props.append(("recorded_in", m.recorded))
    return props


def judge_correctness(m: Measurement) -> Verdict:
    props = _measurement_properties(m)
    if m.checked == 0:
        return Verdict(False, f"{m.label}: the ranks did not verify the result", tuple(props))
    if m.mismatches == 0:
        return Verdict(
            True, f"{m.label}: {m.checked} elements exact on {m.nranks} ranks", tuple(props)
        )
    bad = m.first_mismatch
    where = (
        f"; first on rank {bad.rank} at element {bad.index}: got {bad.got:g}, want {bad.want:g}"
        if bad
        else ""
    )
    return Verdict(
        False,
        f"{m.label} ({m.dtype}, {m.nranks} ranks): {m.mismatches} wrong result elements over all "
        f"ranks (of {m.checked} per rank){where}. The pattern is exact in {m.dtype}, so any "
        "difference is data lost, duplicated or corrupted in transit.",
        tuple(props),
    )


def judge_busbw(m: Measurement, floor: Floor, profile_name: str) -> Verdict:
    """busbw against the profile's floor; a wrong result fails too, whatever the speed."""
    margin_pct = (m.busbw_gbps - floor.busbw_gbps) / floor.busbw_gbps * 100
    props = [
        *_measurement_properties(m),
        ("threshold_gbps", floor.busbw_gbps),
        ("threshold_source", floor.source),
        ("threshold_file", floor.where),
        ("margin_pct", round(margin_pct, 1)),
        ("profile", profile_name),
    ]
    correctness = judge_correctness(m) if m.checked else None
    if correctness is not None and not correctness.passed:
        return Verdict(False, correctness.message, tuple(props))
    per_rank = ", ".join(f"{t:.3f}" for t in m.rank_median_ms)
    how = (
        f"recorded in {m.recorded}"
        if m.recorded
        else f"median of {m.iters} iterations after {m.warmup} warm-up, slowest rank "
        f"{m.slowest_rank}; per rank {per_rank} ms"
    )
    detail = (
        f"  measured: {m.time_ms:.3f} ms ({how}), algbw {m.algbw_gbps:.1f} GB/s\n"
        f"  floor: {floor.busbw_gbps:g} GB/s from {floor.where} (profile {profile_name})\n"
        f"  source: {floor.source}" + (f"\n  margin policy: {floor.margin}" if floor.margin else "")
    )
    if m.busbw_gbps >= floor.busbw_gbps:
        summary = (
            f"{m.label}: busbw {m.busbw_gbps:.1f} GB/s >= floor {floor.busbw_gbps:g} GB/s "
            f"({margin_pct:+.1f}%)"
        )
        if m.busbw_gbps >= floor.warn_below_gbps:
            return Verdict(True, summary, tuple(props))
        warning = (
            f"{m.label}: busbw {m.busbw_gbps:.1f} GB/s passes the floor of "
            f"{floor.busbw_gbps:g} GB/s ({floor.where}) by only {margin_pct:.1f}%, inside its "
            f"{floor.warn_band_pct:g}% warn band"
        )
        props.append(("warning", warning))
        return Verdict(True, summary, tuple(props), warning)
    return Verdict(
        False,
        f"{m.label} ({m.dtype}, {m.nranks} ranks): busbw {m.busbw_gbps:.1f} GB/s is below the "
        f"floor of {floor.busbw_gbps:g} GB/s by {floor.busbw_gbps - m.busbw_gbps:.1f} GB/s "
        f"({margin_pct:.1f}%)\n{detail}",
        tuple(props),
    )
