"""A measurement against its expectation: exact results, and busbw against the profile's
floor, with a message that names the measured value, the floor, where the floor comes from
and its margin policy. Pure: no pytest here."""

from __future__ import annotations

from collections.abc import Callable

from ..profiles.model import Ceiling, Floor
from . import properties
from .judgement import Judgement, failed, not_asked, passed
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


def judge_busbw(
    m: Measurement, floor: Floor, profile_name: str, why: Callable[[], str] | None = None
) -> Judgement:
    """busbw against the profile's floor; a wrong result fails too, whatever the speed.
    ``why``: the probable causes of a shortfall, asked for only when there is one."""
    margin_pct = (m.busbw_gbps - floor.busbw_gbps) / floor.busbw_gbps * 100
    props = [*properties.of_measurement(m), *properties.of_floor(floor, margin_pct, profile_name)]
    correctness = judge_correctness(m) if m.checked else None
    if correctness is not None and not correctness.passed:
        return failed(correctness.message, props)
    detail = (
        f"  measured: {m.time_ms:.4g} ms ({m.how()}), algbw {m.algbw_gbps:.1f} GB/s\n"
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
        f"({margin_pct:.1f}%)\n{detail}" + (f"\n{why()}" if why is not None else ""),
        props,
    )


def judge_latency(
    m: Measurement, ceiling: Ceiling | None, profile_name: str | None, no_ceiling: str
) -> Judgement:
    """Time per call of a small collective against the profile's ceiling; without one the
    measurement is recorded and the check is not asked for (``no_ceiling`` says why)."""
    props = [*properties.of_measurement(m), (properties.TIME_US, round(m.time_us, 2))]
    correctness = judge_correctness(m) if m.checked else None
    if correctness is not None and not correctness.passed:
        return failed(correctness.message, props)
    measured = f"{m.label}: {m.time_us:.1f} µs per call"
    if ceiling is None or profile_name is None:
        return not_asked(f"{measured}; {no_ceiling}", props)
    props += properties.of_ceiling(ceiling, profile_name)
    over = (m.time_us - ceiling.max_us) / ceiling.max_us * 100
    if m.time_us <= ceiling.max_us:
        return passed(f"{measured} <= ceiling {ceiling.max_us:g} µs ({over:+.0f}%)", props)
    return failed(
        f"{m.label} ({m.dtype}, {m.nranks} ranks): {m.time_us:.1f} µs per call is "
        f"{over:.0f}% above the ceiling of {ceiling.max_us:g} µs "
        f"({m.time_us / ceiling.max_us:.1f}×)\n"
        f"  measured: {m.how()}\n"
        f"  ceiling: {ceiling.max_us:g} µs from {ceiling.where} (profile {profile_name})\n"
        f"  source: {ceiling.source}"
        + (f"\n  margin policy: {ceiling.margin}" if ceiling.margin else ""),
        props,
    )
