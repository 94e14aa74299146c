"""The object suite tests receive as the ``gpufabric`` fixture: one method per check. Each
records what it measured on the test item (JUnit properties, JSON) and fails inside the
test with the measured value, the expectation and its source."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import pytest

from .launch.base import RankFailure, RankPool
from .measure import Measurement
from .session import BandwidthCase, CorrectnessCase, FabricSession, PoolDown
from .verdicts import Property, Verdict, judge_busbw, judge_correctness


class Fabric:
    def __init__(
        self, session: FabricSession, item: pytest.Item, default_artifacts: Callable[[], Path]
    ) -> None:
        self.session = session
        self.item = item
        self._default_artifacts = default_artifacts

    def record(self, properties: Iterable[Property]) -> None:
        self.item.user_properties.extend(properties)

    def pool(self, env: Mapping[str, str] | None = None) -> RankPool:
        """The rank pool for ``env``; a pool that broke earlier skips the test (the test that
        saw it break has failed already), one that fails now fails this test."""
        __tracebackhide__ = True
        try:
            return self.session.pool(
                env, default_artifacts=self._default_artifacts, requester=self.item.nodeid
            )
        except PoolDown as exc:
            skip: str | None = str(exc)
        except RankFailure as exc:
            skip, failure = None, str(exc)
        # Outside the except blocks: pytest would otherwise print the message twice (chained).
        if skip is not None:
            pytest.skip(skip)
        pytest.fail(failure, pytrace=False)

    def _measure(
        self, call: Callable[[RankPool], Measurement], env: Mapping[str, str] | None
    ) -> Measurement:
        __tracebackhide__ = True
        pool = self.pool(env)
        try:
            return call(pool)
        except RankFailure as exc:
            failure = str(exc)
        pytest.fail(failure, pytrace=False)

    def _conclude(self, verdict: Verdict) -> None:
        __tracebackhide__ = True
        self.record(verdict.properties)
        self.record(self.session.test_context())
        if not verdict.passed:
            pytest.fail(verdict.message, pytrace=False)

    # --- checks ----------------------------------------------------------------------------

    def check_ranks_joined(self) -> None:
        """Every rank started, joined the process group and runs the same software."""
        __tracebackhide__ = True
        hello = self.pool().hello
        self.record([("nranks", len(hello)), ("init_s", max(h["init_s"] for h in hello))])
        problems = []
        for key in ("torch", "nccl"):
            versions = {h.get(key) for h in hello}
            if len(versions) > 1:
                by_rank = ", ".join(f"rank {h['rank']}: {h.get(key)}" for h in hello)
                problems.append(f"ranks run different {key} versions ({by_rank})")
        devices = [h["device"]["uuid"] for h in hello if "device" in h]
        if len(set(devices)) != len(devices):
            problems.append(f"several ranks share a GPU: {devices}")
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)

    def check_inventory(self) -> None:
        """The node has the GPUs its profile says (model and count)."""
        __tracebackhide__ = True
        inv, profile = self.session.inventory, self.session.profile
        self.record([("gpu_model", inv.gpu_model or "none"), ("gpu_count", len(inv.gpus))])
        if profile is None:
            pytest.skip(f"no instance profile: {self.session.profile_reason}")
        problem = self.session.inventory_problem
        if problem:
            pytest.fail(problem, pytrace=False)

    def check_correctness(
        self, case: CorrectnessCase, env: Mapping[str, str] | None = None
    ) -> None:
        """The collective delivers exactly the expected result on every rank."""
        __tracebackhide__ = True
        session = self.session
        nbytes = case.nbytes(session.nranks)
        measurement = self._measure(
            lambda pool: session.run_collective(
                case.collective,
                nbytes,
                dtype=case.dtype,
                warmup=0,
                iters=0,
                verify=True,
                pool=pool,
                requester=self.item.nodeid,
            ),
            env,
        )
        self._conclude(judge_correctness(measurement))

    def check_busbw(self, case: BandwidthCase, env: Mapping[str, str] | None = None) -> None:
        """busbw of the collective at this size is at least the profile's floor."""
        __tracebackhide__ = True
        session = self.session
        reason = session.bandwidth_skip_reason(case)
        profile, floor = session.profile, case.floor
        if reason or profile is None or floor is None:
            pytest.skip(reason or "no floor to judge against")
        measurement = self._measure(
            lambda pool: session.run_collective(
                case.collective,
                case.nbytes,
                dtype=profile.dtype,
                warmup=profile.warmup,
                iters=profile.iters,
                verify=True,
                pool=pool,
                requester=self.item.nodeid,
            ),
            env,
        )
        self._conclude(judge_busbw(measurement, floor, profile.name))
