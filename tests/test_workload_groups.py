"""Jobs on a layout's groups, with 4 real gloo ranks (TP 2 × DP 2): every TP group, every DP
group and every pipeline at the same time, each result exact for a group of its size (a
whole-world call would sum four patterns, not two), the pipeline timed both ways, and a
whole-world job still right after the groups were made; DP groups while the TP groups
all_reduce (each loop timed on its own, both at once)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest

from pytest_gpufabric.collectives import Collective
from pytest_gpufabric.launch.local import LocalLauncher, LocalPool
from pytest_gpufabric.launch.protocol import PoolSpec
from pytest_gpufabric.launch.wire import Beside, Job
from pytest_gpufabric.rank.ops import _interleaved, _together_host
from pytest_gpufabric.workload.layout import Layout

LAYOUT = Layout(2, 1, 2)  # 4 ranks: TP groups (0,1) (2,3), DP groups (0,2) (1,3)
PIPE = Layout(1, 4, 1)  # one 4-stage pipeline


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPool]:
    spec = PoolSpec("layout", 4, "gloo", tmp_path_factory.mktemp("pool"), 300.0, 60.0)
    started = LocalLauncher().start(spec)
    yield started
    started.close()


def job(collective: Collective, groups: list[tuple[int, ...]], number: int, **more: object) -> Job:
    made = Job(number, collective.value, 4 * 1021 * 4, "float32", 1, 2, True, repeats=2,
               groups=tuple(groups))  # fmt: skip
    return dataclasses.replace(made, **more)  # type: ignore[arg-type]


@pytest.mark.parametrize("collective", [Collective.ALL_REDUCE, Collective.ALL_GATHER,
                                        Collective.REDUCE_SCATTER, Collective.SENDRECV])  # fmt: skip
def test_every_tp_group_at_once_is_exact_on_its_own_group(
    pool: LocalPool, collective: Collective
) -> None:
    number = 10 + list(Collective).index(collective)
    results = pool.run(job(collective, LAYOUT.tp_groups(), number), f"tp {collective.value}")
    assert [r.mismatches for r in results] == [0, 0, 0, 0]
    assert all(r.checked > 0 and len(r.times_ms) == 2 for r in results)


def test_dp_groups_cross_the_tp_groups_and_stay_exact(pool: LocalPool) -> None:
    for number, collective in enumerate((Collective.REDUCE_SCATTER, Collective.ALL_GATHER), 30):
        results = pool.run(job(collective, LAYOUT.dp_groups(), number), "dp")
        assert [r.mismatches for r in results] == [0, 0, 0, 0]


def test_a_pipeline_sends_both_ways_between_every_stage_pair(pool: LocalPool) -> None:
    results = pool.run(job(Collective.SENDRECV, PIPE.pipelines(), 40, chain=True), "pp")
    assert all(len(r.times_ms) == 2 and r.checked == 0 for r in results)  # timed, not checked


def test_a_whole_world_job_still_runs_after_group_jobs(pool: LocalPool) -> None:
    results = pool.run(job(Collective.ALL_REDUCE, [], 50), "world")
    assert [r.mismatches for r in results] == [0, 0, 0, 0]


def test_dp_groups_run_while_the_tp_groups_all_reduce_each_timed_on_its_own(
    pool: LocalPool,
) -> None:
    """A DP case's job (wire.Beside): every rank reduce_scatters on its DP group and
    all_reduces on its TP group at the same time; the DP result is still exact, and each
    rank times both loops."""
    beside = Beside(Collective.ALL_REDUCE.value, 4 * 1021 * 4, tuple(LAYOUT.tp_groups()))
    results = pool.run(
        job(Collective.REDUCE_SCATTER, LAYOUT.dp_groups(), 60, beside=beside), "dp beside tp"
    )
    assert [r.mismatches for r in results] == [0, 0, 0, 0]
    assert all(r.checked > 0 for r in results)
    assert all(len(r.times_ms) == 2 and len(r.beside_times_ms) == 2 for r in results)
    assert all(t > 0 for r in results for t in (*r.times_ms, *r.beside_times_ms))
    assert all("calls of the traffic beside it per loop" in r.note for r in results)


def test_both_loops_of_a_rank_run_at_the_same_time() -> None:
    """On CPU each loop has its own thread: a call of the job that waits for the traffic
    beside it to have started returns (it would time out if the loops took turns)."""
    started, seen = threading.Event(), []

    def mine() -> None:
        seen.append(started.wait(timeout=10))

    times, side_times = _together_host(mine, started.set, 3, 5, 2)
    assert seen == [True] * 6
    assert (len(times), len(side_times)) == (2, 2)


def test_a_failing_side_loop_is_raised_by_the_job_not_hung() -> None:
    def broken() -> None:
        raise RuntimeError("peer gone")

    with pytest.raises(RuntimeError, match="peer gone"):
        _together_host(lambda: time.sleep(0.01), broken, 3, 3, 2)


@pytest.mark.parametrize(("iters", "side_iters"), [(20, 20), (20, 7), (3, 40), (1, 1)])
def test_the_issue_order_spreads_both_loops_evenly(iters: int, side_iters: int) -> None:
    order = _interleaved(iters, side_iters)
    assert (order.count(True), order.count(False)) == (iters, side_iters)
    made = 0
    for position, mine in enumerate(order, 1):  # the job's share stays within one call
        made += mine
        assert abs(made - position * iters / (iters + side_iters)) <= 1
