"""What suites/test_workload.py parametrizes over: per layout, each kind of group with the
traffic training puts on it. Tensor-parallel groups all_reduce and all_gather activations,
data-parallel (FSDP / ZeRO-3) groups reduce_scatter gradients and all_gather parameters,
pipelines send activations forward and gradients backward between stages. Every group of
a kind runs at the same time."""

from __future__ import annotations

from dataclasses import dataclass

from ..collectives import Collective
from ..units import format_size
from .layout import Layout

# Sizes: activations and shards of the seeds' models on GPUs; small on CPU (gloo over TCP).
GPU_SIZES = {"tp": (16 << 20, 256 << 20), "dp": (16 << 20, 256 << 20), "pp": (16 << 20, 64 << 20)}
CPU_SIZES = {"tp": (64 << 10,), "dp": (64 << 10,), "pp": (64 << 10,)}
TRAFFIC = {
    "tp": (Collective.ALL_REDUCE, Collective.ALL_GATHER),
    "dp": (Collective.REDUCE_SCATTER, Collective.ALL_GATHER),
    "pp": (Collective.SENDRECV,),
}
KIND_NAMES = {"tp": "tensor-parallel", "dp": "data-parallel", "pp": "pipeline"}


@dataclass(frozen=True)
class WorkloadCase:
    layout: Layout
    kind: str  # "tp", "dp", "pp"
    collective: Collective
    nbytes: int

    @property
    def id(self) -> str:
        size = format_size(self.nbytes)
        return f"{self.layout.slug}-{self.kind}-{self.collective.value}-{size}"

    @property
    def groups(self) -> list[tuple[int, ...]]:
        layout = self.layout
        return {"tp": layout.tp_groups, "dp": layout.dp_groups, "pp": layout.pipelines}[self.kind]()

    @property
    def chain(self) -> bool:
        return self.kind == "pp"

    @property
    def beside(self) -> tuple[Collective, list[tuple[int, ...]]] | None:
        """The traffic that runs beside this case's, timed on its own: a DP case runs while
        the TP groups all_reduce at the same size, as in a backward pass (tensor-parallel
        all_reduce of activation gradients while data-parallel reduce_scatter of the
        gradients of layers done); None: the groups of this kind run alone."""
        if self.kind == "dp" and self.layout.tp > 1:
            return Collective.ALL_REDUCE, self.layout.tp_groups()
        return None


def workload_cases(layouts: list[Layout], backend: str) -> list[WorkloadCase]:
    sizes = GPU_SIZES if backend == "nccl" else CPU_SIZES
    cases = []
    for layout in layouts:
        for kind, collectives in TRAFFIC.items():
            size = {"tp": layout.tp, "dp": layout.dp, "pp": layout.pp}[kind]
            if size < 2:
                continue  # no such group in this layout
            cases += [WorkloadCase(layout, kind, c, n) for c in collectives for n in sizes[kind]]
    return cases
