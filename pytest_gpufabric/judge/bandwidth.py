"""A measurement against its expectation: exact results, and busbw against the profile's
floor, with a message that names the measured value, the floor, where the floor comes from
and its margin policy. Pure: no pytest here."""

from __future__ import annotations

from ..profiles.model import Floor
from . import properties
from .judgement import Judgement, failed, passed
from .measure import Measurement


def judge_correctness(m: Measurement) -> Judgement:
    props = properties.of_measurement(m)
    if m.checked == 0:
        return failed(f"{m.label}: the ranks did not verify the result", props)
    if m.mismatches == 0:
        return passed(f"{m.label}: {m.checked} elements exact on {m.nranks} ranks", props)
    bad = m.first_mismatch
    where = (
        f"; first on rank {bad.rank} at element {bad.index}: got {bad.got:g}, want {bad.want:g}"
        if bad
        else ""
    )
    return failed(
        f"{m.label} ({m.dtype}, {m.nranks} ranks): {m.mismatches} wrong result elements over all "
        f"ranks (of {m.checked} per rank){where}. The pattern is exact in {m.dtype}, so any "
        "difference is data lost, duplicated or corrupted in transit.",
        props,
    )


def judge_busbw(m: Measurement, floor: Floor, profile_name: str) -> Judgement:
    """busbw against the profile's floor; a wrong result fails too, whatever the speed."""
    margin_pct = (m.busbw_gbps - floor.busbw_gbps) / floor.busbw_gbps * 100
    props = [*properties.of_measurement(m), *properties.of_floor(floor, margin_pct, profile_name)]
    correctness = judge_correctness(m) if m.checked else None
    if correctness is not None and not correctness.passed:
        return failed(correctness.message, props)
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
            return passed(summary, props)
        warning = (
            f"{m.label}: busbw {m.busbw_gbps:.1f} GB/s passes the floor of "
            f"{floor.busbw_gbps:g} GB/s ({floor.where}) by only {margin_pct:.1f}%, inside its "
            f"{floor.warn_band_pct:g}% warn band"
        )
        props.append((properties.WARNING, warning))
        return passed(summary, props, warning)
    return failed(
        f"{m.label} ({m.dtype}, {m.nranks} ranks): busbw {m.busbw_gbps:.1f} GB/s is below the "
        f"floor of {floor.busbw_gbps:g} GB/s by {floor.busbw_gbps - m.busbw_gbps:.1f} GB/s "
        f"({margin_pct:.1f}%)\n{detail}",
        props,
    )
