"""Pod-spec preflight: lint a training pod spec against an instance profile before GPU time
is spent (``python -m pytest_gpufabric.podspec FILE``; docs/podspec.md lists every rule).

The checks are static: what the manifest asks of the node (GPUs, EFA/IB devices, IPC_LOCK,
/dev/shm, hostIPC) and NCCL/libfabric variables that turn a transport off, each compared
with the profile in ``thresholds/`` that a live run would be judged against.
"""

from __future__ import annotations

from .findings import Finding, Severity
from .instance import profile_from_spec
from .lint import lint_file
from .report import Choice, PodspecReport
from .source import PodspecError

__all__ = [
    "Choice",
    "Finding",
    "PodspecError",
    "PodspecReport",
    "Severity",
    "lint_file",
    "profile_from_spec",
]
