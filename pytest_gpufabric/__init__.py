"""pytest-gpufabric: certify a node's GPU interconnect with real collectives and honest verdicts."""

from __future__ import annotations

__version__ = "0.1.0"

from .judge.judgement import GpufabricWarning

__all__ = ["GpufabricWarning", "__version__"]
