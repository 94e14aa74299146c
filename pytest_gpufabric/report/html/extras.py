"""A per-test picture for pytest-html's report (when pytest-html is installed): each timed
loop's busbw as a dot against the floor and its warn band, as a small inline SVG (pytest-html
pages are often kept self-contained too)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from ...judge.properties import read
from .data import warn_top

WIDTH, HEIGHT, PAD = 420, 64, 12


def busbw_svg(props: Mapping[str, object]) -> str | None:
    """The SVG of one busbw test's properties; None for a test without busbw."""
    measured = read(props)
    if measured is None or measured.busbw_gbps is None or measured.time_us is not None:
        return None
    busbw, floor, warn = measured.busbw_gbps, measured.threshold_gbps, warn_top(measured)
    loops = list(measured.busbw_repeats) or [busbw]
    top = max([*loops, busbw, warn or 0.0]) * 1.15 or 1.0

    def x(value: float) -> float:
        return PAD + (WIDTH - 2 * PAD) * value / top

    parts = [f"<svg class=gf-busbw xmlns='http://www.w3.org/2000/svg' width={WIDTH} "
             f"height={HEIGHT} role=img>"]  # fmt: skip
    parts.append(f"<line x1={PAD} x2={WIDTH - PAD} y1=34 y2=34 stroke='#999'/>")
    if floor is not None and warn is not None:
        width = x(warn) - x(floor)
        parts.append(f"<rect x={x(floor):.1f} y=18 width={width:.1f} height=32 "
                     "fill='rgba(230,126,34,0.25)'/>")  # fmt: skip
        parts.append(f"<line x1={x(floor):.1f} x2={x(floor):.1f} y1=14 y2=54 stroke='#c0392b' "
                     "stroke-width=2/>")  # fmt: skip
    for value in loops:
        parts.append(f"<circle cx={x(value):.1f} cy=34 r=4 fill='none' stroke='#1f5fa8'/>")
    parts.append(f"<line x1={x(busbw):.1f} x2={x(busbw):.1f} y1=24 y2=44 stroke='#1f5fa8' "
                 "stroke-width=3/>")  # fmt: skip
    label = f"busbw {busbw:.1f} GB/s" + (f", floor {floor:g} GB/s" if floor is not None else "")
    parts.append(f"<text x={PAD} y=12 font-size=11 font-family=sans-serif>{escape(label)}</text>")
    parts.append(f"<text x={PAD} y={HEIGHT - 2} font-size=10 fill='#666' font-family=sans-serif>"
                 f"0</text><text x={WIDTH - PAD - 60} y={HEIGHT - 2} font-size=10 fill='#666' "
                 f"font-family=sans-serif>{top:.1f} GB/s</text></svg>")  # fmt: skip
    return "".join(parts)
