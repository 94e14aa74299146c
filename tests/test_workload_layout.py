"""Parallel layouts (pytest_gpufabric/workload/layout.py): Megatron's rank order, the seeds'
shapes, and what is refused with the value named."""

from __future__ import annotations

import pytest

from pytest_gpufabric.workload.layout import Layout, LayoutError, defaults, misplaced, parse, place


def test_megatron_order_puts_tp_on_consecutive_ranks_and_pp_outermost() -> None:
    """Seed 002: TP 2 × PP 4 on 8 GPUs."""
    layout = Layout(2, 4, 1)
    assert layout.tp_groups() == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert layout.pipelines() == [(0, 2, 4, 6), (1, 3, 5, 7)]
    assert layout.dp_groups() == [(0,), (1,), (2,), (3,), (4,), (5,), (6,), (7,)]
    assert [layout.coords(r) for r in (0, 3, 7)] == [(0, 0, 0), (1, 1, 0), (1, 3, 0)]


def test_tp_dp_pp_all_at_once() -> None:
    layout = Layout(2, 2, 2)  # 8 ranks
    assert layout.tp_groups() == [(0, 1), (2, 3), (4, 5), (6, 7)]
    assert layout.dp_groups() == [(0, 2), (1, 3), (4, 6), (5, 7)]
    assert layout.pipelines() == [(0, 4), (1, 5), (2, 6), (3, 7)]
    every = sorted(r for g in layout.tp_groups() for r in g)
    assert every == list(range(8))  # each kind partitions the world


def test_the_seeds_shapes_that_fit_are_the_defaults() -> None:
    assert [x.name for x in defaults(8)] == ["tp2×pp4×dp1", "tp1×pp8×dp1"]
    assert [x.name for x in defaults(4)] == ["tp1×pp1×dp4"]
    assert [x.name for x in defaults(2)] == ["tp2×pp1×dp1", "tp1×pp2×dp1", "tp1×pp1×dp2"]
    assert defaults(1) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2x2", "--gpufabric-layout (from ini): '2x2' is not a layout: give TPxPPxDP, e.g. 2x4x1"),
        ("2x0x2", "--gpufabric-layout (from ini): '2x0x2': every dimension must be at least 1"),
        ("2x4x1", "--gpufabric-layout (from ini): '2x4x1' places 8 ranks (tp 2 × pp 4 × dp 1); "
                  "this run has 4"),
    ],
)  # fmt: skip
def test_a_layout_that_does_not_fit_names_the_value(text: str, problem: str) -> None:
    with pytest.raises(LayoutError) as raised:
        parse(text, 4, "--gpufabric-layout (from ini)")
    assert str(raised.value) == problem


def test_parse_accepts_times_signs() -> None:
    assert parse("2×1×2", 4, "x").name == "tp2×pp1×dp2"


def test_tp_stays_inside_a_node_and_a_layout_that_crosses_is_named() -> None:
    """Two nodes of 4 GPUs: TP 2 × PP 4 keeps each TP pair on one node; TP 8 cannot."""
    nodes = ["a"] * 4 + ["b"] * 4
    assert misplaced(Layout(2, 4, 1), nodes) == []
    pipelines = [g for g in place(Layout(2, 4, 1), nodes) if g.kind == "pp"]
    assert all(g.crosses_nodes for g in pipelines)  # stages 0, 1 on a; 2, 3 on b
    (problem,) = misplaced(Layout(8, 1, 1), nodes)
    assert problem == ("tp group of ranks 0, 1, 2, 3, 4, 5, 6, 7 on a, b: tensor-parallel "
                       "traffic crosses nodes")  # fmt: skip


def test_a_tp_group_across_pods_of_one_node_says_so() -> None:
    """Seed 000's 4 pods × 1 GPU on one node: four NCCL nodes on one machine."""
    pods, machines = ["pod-0", "pod-1", "pod-2", "pod-3"], ["ip-10-0-0-1"] * 4
    (problem,) = misplaced(Layout(4, 1, 1), pods, machines)
    assert problem == (
        "tp group of ranks 0, 1, 2, 3 on pod-0, pod-1, pod-2, pod-3: tensor-parallel traffic "
        "crosses pods of node ip-10-0-0-1 (each pod is its own NCCL node, so it leaves NVLink)"
    )
    two_nodes = ["ip-10-0-0-1"] * 2 + ["ip-10-0-0-2"] * 2
    (problem,) = misplaced(Layout(4, 1, 1), pods, two_nodes)
    assert problem.endswith(": tensor-parallel traffic crosses nodes")
