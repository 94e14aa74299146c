"""The object suite tests receive as the ``gpufabric`` fixture: one method per check. Each
records what it measured on the test item (JUnit properties, JSON) and fails inside the
test with the measured value, the expectation and its source. In a replay, a check whose
evidence was not recorded is skipped with the reason."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn

import pytest

from .collectives import Collective
from .evidence.nccl_log import NcclLog
from .judge.bandwidth import Verdict, judge_busbw, judge_correctness
from .judge.host import HOST_CHECKS
from .judge.isolation import ISOLATION_CHECKS
from .judge.judgement import GpufabricWarning, Judgement, Property
from .judge.measure import Measurement
from .judge.nccl import CHECKS
from .launch.protocol import EvidenceMissing, RankFailure, RankPool
from .profiles.model import HostExpectations, NcclExpectations
from .runs import RunPlan
from .session.session import BandwidthCase, CorrectnessCase, FabricSession, PoolDown

# Small collectives that make NCCL connect rings (all_reduce) and every send/recv peer
# (alltoall, the ring of sendrecv): NCCL >= 2.22 logs a connection only when it is first used.
TRAFFIC = (Collective.ALL_REDUCE, Collective.ALLTOALL, Collective.SENDRECV)


class Fabric:
    def __init__(
        self, session: FabricSession, item: pytest.Item, default_artifacts: Callable[[], Path]
    ) -> None:
        self.session = session
        self.item = item
        self._default_artifacts = default_artifacts

    def record(self, properties: Iterable[Property]) -> None:
        self.item.user_properties.extend(properties)

    def pool(self, plan: RunPlan | None = None) -> RankPool:
        """The rank pool of ``plan`` (default: the main run). A pool that broke earlier skips
        the test (the test that saw it break has failed already); one that fails now fails
        this test."""
        __tracebackhide__ = True
        try:
            return self.session.pool(
                plan, default_artifacts=self._default_artifacts, requester=self.item.nodeid
            )
        except (PoolDown, EvidenceMissing) as exc:
            skip: str | None = str(exc)
        except RankFailure as exc:
            skip, failure = None, str(exc)
        # Outside the except blocks: pytest would otherwise print the message twice (chained).
        if skip is not None:
            pytest.skip(skip)
        _fail(failure)

    def _measure(
        self, call: Callable[[RankPool], Measurement], plan: RunPlan | None
    ) -> Measurement:
        __tracebackhide__ = True
        pool = self.pool(plan)
        try:
            return call(pool)
        except EvidenceMissing as exc:
            skip: str | None = str(exc)
        except RankFailure as exc:
            skip, failure = None, str(exc)
        if skip is not None:
            pytest.skip(skip)
        _fail(failure)

    def _settle(self, judgement: Judgement, *context: Iterable[Property]) -> None:
        """Record a judgement's properties (and ``context``), then skip or fail as it says."""
        __tracebackhide__ = True
        self.record(judgement.properties)
        for properties in context:
            self.record(properties)
        if judgement.status == "skipped":
            pytest.skip(judgement.reason)
        if judgement.status == "failed":
            _fail(judgement.message)

    def _conclude(self, verdict: Verdict) -> None:
        __tracebackhide__ = True
        self.record(verdict.properties)
        self.record(self.session.test_context())
        if not verdict.passed:
            _fail(verdict.message)
        if verdict.warning:
            warnings.warn(GpufabricWarning(verdict.warning), stacklevel=2)

    # --- checks ----------------------------------------------------------------------------

    def check_ranks_joined(self) -> None:
        """Every rank started, joined the process group and runs the same software."""
        __tracebackhide__ = True
        pool = self.pool()
        hello = pool.hello
        if pool.recorded and not hello:
            pytest.skip(f"no rank in the recording ({self.session.replay_of})")
        self.record([("nranks", len(hello))])
        init = [h["init_s"] for h in hello if h.get("init_s") is not None]
        if init:
            self.record([("init_s", max(init))])
        problems = []
        missing = sorted(set(range(self.session.nranks)) - {h["rank"] for h in hello})
        if missing:
            problems.append(
                f"rank(s) {', '.join(map(str, missing))} of {self.session.nranks} not seen"
            )
        for key in ("torch", "nccl"):
            versions = {h.get(key) for h in hello}
            if len(versions) > 1:
                by_rank = ", ".join(f"rank {h['rank']}: {h.get(key)}" for h in hello)
                problems.append(f"ranks run different {key} versions ({by_rank})")
        devices = [h["device"]["uuid"] for h in hello if "device" in h]
        if len(set(devices)) != len(devices):
            problems.append(f"several ranks share a GPU: {devices}")
        if problems:
            _fail("; ".join(problems))

    def check_inventory(self) -> None:
        """The node has the GPUs its profile says (model and count)."""
        __tracebackhide__ = True
        inv, profile = self.session.inventory, self.session.profile
        if not inv.known:
            pytest.skip(f"no GPU facts in {inv.origin}")
        self.record([("gpu_model", inv.gpu_model or "none"), ("gpu_count", len(inv.gpus))])
        if profile is None:
            pytest.skip(f"no instance profile: {self.session.profile_reason}")
        problem = self.session.inventory_problem
        if problem:
            _fail(problem)

    def check_correctness(self, case: CorrectnessCase) -> None:
        """The collective delivers exactly the expected result on every rank."""
        __tracebackhide__ = True
        session = self.session
        if session.nranks < 1:
            pytest.skip(f"no rank in the recording {session.replay_of}")
        nbytes = case.nbytes(session.nranks)
        measurement = self._measure(
            lambda pool: session.run_collective(
                case.collective, nbytes, dtype=case.dtype, warmup=0, iters=0, verify=True,
                pool=pool, requester=self.item.nodeid,
            ),
            None,
        )  # fmt: skip
        self._conclude(judge_correctness(measurement))

    def check_busbw(self, case: BandwidthCase) -> None:
        """busbw of the collective at this size, in the case's run, is at least the profile's
        floor (a pass within the warn band is recorded as a warning)."""
        __tracebackhide__ = True
        session = self.session
        reason = session.bandwidth_skip_reason(case)
        profile, floor, plan = session.profile, case.floor, session.plan(case.run)
        if reason or profile is None or floor is None or plan is None:
            pytest.skip(reason or "no floor to judge against")
        self.record(
            [
                ("run", plan.name),
                ("run_settings", plan.describe()),
                ("run_nodes", plan.nodes),
                ("floors_from", f"bandwidth.{floor.run}"),
            ]
        )
        measurement = self._measure(
            lambda pool: session.run_collective(
                case.collective, case.nbytes, dtype=profile.dtype, warmup=profile.warmup,
                iters=profile.iters, verify=True, pool=pool, requester=self.item.nodeid,
            ),
            plan,
        )  # fmt: skip
        self._conclude(judge_busbw(measurement, floor, profile.name))

    def nccl_evidence(self, plan: RunPlan | None = None) -> NcclLog:
        """The NCCL debug logs of the pool's ranks, after traffic that makes NCCL connect
        every peer it will use (a replayed run's logs are used as recorded)."""
        __tracebackhide__ = True
        pool = self.pool(plan)
        if not pool.recorded:
            for collective in TRAFFIC:

                def traffic(p: RankPool, c: Collective = collective) -> Measurement:
                    return self.session.run_collective(
                        c, 1 << 20, dtype=self.session.dtype, warmup=0, iters=1, verify=False,
                        pool=p, requester=self.item.nodeid,
                    )  # fmt: skip

                self._measure(traffic, plan)
        return pool.nccl_log()

    def check_isolation_path(self, run: str) -> None:
        """The isolation run's NCCL logs show the path it forces: every connection through
        the NIC (network_only) or over NVLink P2P (nvlink_only); see isolation_checks.py."""
        __tracebackhide__ = True
        session = self.session
        if session.backend != "nccl":
            pytest.skip(f"{run} is an NCCL isolation run; this run uses {session.backend}")
        profile = session.profile
        if profile is None:
            pytest.skip(f"no instance profile ({session.profile_reason})")
        plan = session.plan(run)
        if plan is None:
            pytest.skip(f"profile {profile.name} asks for no {run} run (no bandwidth.{run})")
        if session.inventory_problem:
            pytest.skip(f"node does not match the profile: {session.inventory_problem}")
        self.record([("run", plan.name), ("run_settings", plan.describe())])
        log = self.nccl_evidence(plan)
        self._settle(ISOLATION_CHECKS[run](log, profile.nccl), session.test_context())

    def check_host(self, check: str) -> None:
        """The host has what the profile says: /dev/shm, fabric manager, NVLink links and error
        counters, P2P capability, PCIe links, NICs and RDMA support (see host_checks.py)."""
        __tracebackhide__ = True
        session = self.session
        if session.inventory_problem:
            reason = session.inventory_problem
            pytest.skip(f"node does not match the profile (see test_gpu_inventory): {reason}")
        profile = session.profile
        expectations = profile.host if profile is not None else HostExpectations()
        live = session.replay_of is None
        if live and check == "shm_shared":
            self.pool()  # the ranks report the /dev/shm they see when they join
        if live and check == "nvlink_errors" and session.backend == "nccl":
            self.pool()  # starting the ranks reads the counters before any traffic
            if not session.timed_collectives:
                self._exercise_links()
        evidence = session.host_evidence(fresh=check == "nvlink_errors")
        self._settle(HOST_CHECKS[check](evidence, expectations))

    def _exercise_links(self) -> None:
        """Traffic over every NVLink before the counters are read again: 10 × 256 MiB all_reduce."""

        def traffic(pool: RankPool) -> Measurement:
            return self.session.run_collective(
                Collective.ALL_REDUCE, 256 << 20, dtype=self.session.dtype, warmup=0, iters=10,
                verify=False, pool=pool, requester=self.item.nodeid,
            )  # fmt: skip

        self._measure(traffic, None)

    def check_nccl(self, check: str) -> None:
        """What NCCL did (transports, P2P mode, network, plugin, NVLS, nodes, WARNs) is what
        the instance profile expects; see transports.py for each check."""
        __tracebackhide__ = True
        if self.session.backend != "nccl":
            pytest.skip("gloo backend: NCCL is not used on this run")
        profile = self.session.profile
        expectations = profile.nccl if profile is not None else NcclExpectations()
        log = self.nccl_evidence()
        judgement = CHECKS[check](log, expectations)
        self._settle(judgement, self.session.test_context(), [("nccl_log_files", len(log.files))])


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)
