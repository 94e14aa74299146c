"""Parallel layouts as training jobs place them: ``tp × pp × dp`` ranks, numbered the way
Megatron-LM numbers them (tensor-parallel fastest, then data-parallel, then pipeline: rank =
tp_rank + tp·(dp_rank + dp·pp_rank)), so that a tensor-parallel group is consecutive local
ranks of one node, and pipeline and data-parallel groups cross nodes first.

The seeds' jobs: Megatron TP 2 × PP 4 on 8 GPUs (seed 002), an 8-stage pipeline (seed 004),
FSDP full-shard over 4 GPUs (seed 003), ZeRO-3 over 4 GPUs (seed 000).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# The seeds' layouts (tp, pp, dp), and what each is.
SEED_LAYOUTS: tuple[tuple[tuple[int, int, int], str], ...] = (
    ((2, 4, 1), "Megatron TP 2 × PP 4 (seed 002)"),
    ((1, 8, 1), "8-stage pipeline (seed 004)"),
    ((1, 1, 4), "FSDP full-shard / ZeRO-3 over 4 GPUs (seeds 003, 000)"),
)
_TEXT = re.compile(r"^\s*(\d+)\s*[x×*]\s*(\d+)\s*[x×*]\s*(\d+)\s*$")


class LayoutError(ValueError):
    """A layout that cannot be placed; the message names the value."""


@dataclass(frozen=True)
class Layout:
    tp: int
    pp: int
    dp: int
    why: str = ""  # where it came from (a seed, the option)

    @property
    def name(self) -> str:
        return f"tp{self.tp}×pp{self.pp}×dp{self.dp}"

    @property
    def slug(self) -> str:
        """The name in test ids (ASCII: CI systems and shells handle it everywhere)."""
        return f"tp{self.tp}pp{self.pp}dp{self.dp}"

    @property
    def key(self) -> str:
        """The name in a profile's ``workload.layouts`` (what ``--gpufabric-layout`` takes)."""
        return f"{self.tp}x{self.pp}x{self.dp}"

    @property
    def world(self) -> int:
        return self.tp * self.pp * self.dp

    def coords(self, rank: int) -> tuple[int, int, int]:
        """(tp_rank, pp_rank, dp_rank) of a global rank."""
        return rank % self.tp, rank // (self.tp * self.dp), (rank // self.tp) % self.dp

    def rank(self, tp: int, pp: int, dp: int) -> int:
        return tp + self.tp * (dp + self.dp * pp)

    def tp_groups(self) -> list[tuple[int, ...]]:
        return [tuple(self.rank(t, p, d) for t in range(self.tp))
                for p in range(self.pp) for d in range(self.dp)]  # fmt: skip

    def dp_groups(self) -> list[tuple[int, ...]]:
        return [tuple(self.rank(t, p, d) for d in range(self.dp))
                for p in range(self.pp) for t in range(self.tp)]  # fmt: skip

    def pipelines(self) -> list[tuple[int, ...]]:
        """Each pipeline's ranks, stage 0 first."""
        return [tuple(self.rank(t, p, d) for p in range(self.pp))
                for d in range(self.dp) for t in range(self.tp)]  # fmt: skip


def shape(text: str, where: str) -> tuple[int, int, int]:
    """``"2x4x1"`` (tp × pp × dp; ``×`` or ``*`` too) as (tp, pp, dp); LayoutError naming the
    value and ``where`` it came from otherwise."""
    found = _TEXT.match(text)
    if found is None:
        raise LayoutError(f"{where}: {text!r} is not a layout: give TPxPPxDP, e.g. 2x4x1")
    tp, pp, dp = (int(found[i]) for i in (1, 2, 3))
    if min(tp, pp, dp) < 1:
        raise LayoutError(f"{where}: {text!r}: every dimension must be at least 1")
    return tp, pp, dp


def parse(text: str, world: int, where: str) -> Layout:
    """``"2x4x1"`` for ``world`` ranks; LayoutError naming the value and ``where`` it came
    from otherwise."""
    tp, pp, dp = shape(text, where)
    if tp * pp * dp != world:
        raise LayoutError(
            f"{where}: {text!r} places {tp * pp * dp} ranks (tp {tp} × pp {pp} × dp {dp}); "
            f"this run has {world}"
        )
    return Layout(tp, pp, dp, f"from {where}")


def defaults(world: int) -> list[Layout]:
    """The seeds' layouts that fit ``world`` ranks; else the same shapes scaled to it: all
    ranks in one TP group, one pipeline, one DP group, and TP 2 × DP rest where it splits."""
    found = [Layout(*shape, why) for shape, why in SEED_LAYOUTS if _product(shape) == world]
    if found:
        return found
    scaled = [Layout(world, 1, 1, "every rank one tensor-parallel group"),
              Layout(1, world, 1, f"a {world}-stage pipeline"),
              Layout(1, 1, world, f"FSDP / ZeRO-3 over {world} ranks")]  # fmt: skip
    if world >= 4 and world % 2 == 0:
        scaled.append(Layout(2, 1, world // 2, "TP 2 × DP, as Megatron with pp 1"))
    return scaled if world > 1 else []


def _product(shape: Sequence[int]) -> int:
    out = 1
    for value in shape:
        out *= value
    return out


@dataclass(frozen=True)
class Placed:
    """A group and where its ranks are: the link class it crosses, for people."""

    kind: str  # "tp", "dp", "pp"
    ranks: tuple[int, ...]
    nodes: tuple[str, ...]  # each rank's node, by position

    @property
    def crosses_nodes(self) -> bool:
        return len(set(self.nodes)) > 1

    def describe(self) -> str:
        where = ", ".join(dict.fromkeys(self.nodes))
        return f"{self.kind} group of ranks {', '.join(map(str, self.ranks))} on {where}"


def place(layout: Layout, rank_nodes: Sequence[str]) -> list[Placed]:
    """Every group of ``layout`` with the node of each of its ranks."""
    groups = [("tp", g) for g in layout.tp_groups()] + [("dp", g) for g in layout.dp_groups()]
    groups += [("pp", g) for g in layout.pipelines()]
    return [Placed(kind, ranks, tuple(rank_nodes[r] for r in ranks))
            for kind, ranks in groups if len(ranks) > 1]  # fmt: skip


def misplaced(
    layout: Layout, rank_nodes: Sequence[str], machines: Sequence[str] | None = None
) -> list[str]:
    """What Megatron would not do: a tensor-parallel group across NCCL nodes (its all_reduce
    then leaves NVLink for the network on every layer). ``machines``: the launcher's node of
    each rank; NCCL nodes on one of them are pods of one node (seed 000's 4 pods × 1 GPU),
    each its own NCCL node all the same."""
    found = []
    for group in place(layout, rank_nodes):
        if group.kind != "tp" or not group.crosses_nodes:
            continue
        under = {machines[r] for r in group.ranks} if machines else set()
        if len(under) == 1:
            why = "each pod is its own NCCL node, so it leaves NVLink"
            found.append(f"{group.describe()}: tensor-parallel traffic crosses pods of node "
                         f"{under.pop()} ({why})")  # fmt: skip
        else:
            found.append(f"{group.describe()}: tensor-parallel traffic crosses nodes")
    return found
