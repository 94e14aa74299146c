"""Kubernetes resource quantities (``64Gi``, ``"4"``, ``1e9``), as the API server reads them."""

from __future__ import annotations

import re

_SUFFIX = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}  # fmt: skip
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([a-zA-Z]{0,2})$")
GIB = 2.0**30


def parse_quantity(text: str | None) -> float | None:
    """The value of a quantity (bytes for memory); None when it is not one."""
    if text is None:
        return None
    match = _QUANTITY.match(text.strip())
    if match is None or match.group(2) not in _SUFFIX:
        return None
    return float(match.group(1)) * _SUFFIX[match.group(2)]


def parse_count(text: str | None) -> int | None:
    """A device count (extended resources are whole numbers); None otherwise."""
    value = parse_quantity(text)
    return int(value) if value is not None and value >= 0 and value == int(value) else None


def gib(nbytes: float) -> str:
    """``64 GiB``, ``0.06 GiB`` (64 MiB): one unit for every /dev/shm message."""
    value = nbytes / GIB
    return f"{value:.0f} GiB" if value >= 10 or value == int(value) else f"{value:.2g} GiB"
