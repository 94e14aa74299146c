"""pytest-gpufabric: certify a node's GPU interconnect with real collectives and honest verdicts.

The public API for suite files: the ``gpufabric`` fixture's type and the cases it is
parametrized with. Imported lazily, so that a rank process (``python -m
pytest_gpufabric.rank.worker``) does not import pytest and the plugin with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

if TYPE_CHECKING:
    from .fabric import Fabric
    from .judge.judgement import GpufabricWarning
    from .session.cases import SPLIT_COLLECTIVES, BandwidthCase, CorrectnessCase, LatencyCase
    from .workload.cases import WorkloadCase

_LAZY = {
    "Fabric": ("fabric", "Fabric"),
    "BandwidthCase": ("session.cases", "BandwidthCase"),
    "CorrectnessCase": ("session.cases", "CorrectnessCase"),
    "LatencyCase": ("session.cases", "LatencyCase"),
    "GpufabricWarning": ("judge.judgement", "GpufabricWarning"),
    "SPLIT_COLLECTIVES": ("session.cases", "SPLIT_COLLECTIVES"),
    "WorkloadCase": ("workload.cases", "WorkloadCase"),
}

__all__ = [
    "SPLIT_COLLECTIVES", "BandwidthCase", "CorrectnessCase", "Fabric", "GpufabricWarning",
    "LatencyCase", "WorkloadCase", "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        return getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
