"""The object suite tests receive as the ``gpufabric`` fixture: one method per check. Each
records what it measured on the test item (JUnit properties, JSON), tells the session which
demand of the profile it answers (certification), and fails inside the test with the
measured value, the expectation and its source. A check without evidence is skipped with
the reason, and says whether that keeps the run from being certified."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

from .collectives import Collective
from .evidence.nccl_log import NcclLog
from .fleet.record import RECORD, encode
from .fleet.run import FleetResult
from .judge import properties
from .judge.bandwidth import judge_busbw, judge_correctness, judge_latency
from .judge.catalog import CHECKS, HOST_CHECKS, ISOLATION_CHECKS
from .judge.diagnosis import diagnose, render
from .judge.host import per_node
from .judge.judgement import GpufabricWarning, Judgement, Property, Skip
from .judge.measure import Measurement, from_results
from .judge.topology import Side, judge_split
from .launch.protocol import EvidenceMissing, RankFailure, RankPool
from .launch.wire import Beside
from .profiles.model import (
    DEFAULT_ITERS,
    DEFAULT_REPEATS,
    DEFAULT_TIMING,
    DEFAULT_WARMUP,
    HostExpectations,
    Profile,
)
from .runs import SPLIT
from .session.cases import (
    LATENCY_ITERS,
    SPLIT_COLLECTIVES,
    BandwidthCase,
    CorrectnessCase,
    LatencyCase,
    bandwidth_key,
    split_case,
    timing_method,
)
from .session.plans import RunPlan, split_plan
from .session.pools import Call, PoolDown
from .session.session import FabricSession
from .session.split import split_skip
from .units import format_size
from .workload.cases import WorkloadCase
from .workload.judge import GroupResult, beside_result, judge_groups, limit_for
from .workload.layout import misplaced
from .workload.links import group_links, where_of

# Small collectives that make NCCL connect rings (all_reduce) and every send/recv peer
# (alltoall, the ring of sendrecv): NCCL >= 2.22 logs a connection only when it is first used.
TRAFFIC = (Collective.ALL_REDUCE, Collective.ALLTOALL, Collective.SENDRECV)
T = TypeVar("T")


class Fabric:
    def __init__(
        self, session: FabricSession, item: pytest.Item, default_artifacts: Callable[[], Path]
    ) -> None:
        self.session = session
        self.item = item
        self._default_artifacts = default_artifacts

    # --- plumbing ----------------------------------------------------------------------------

    def record(self, properties: Iterable[Property]) -> None:
        self.item.user_properties.extend(properties)

    def _claim(self, key: str) -> None:
        self.session.records.claim(self.item.nodeid, key)

    def _skip(self, reason: str, kind: Skip = Skip.NO_EVIDENCE) -> NoReturn:
        __tracebackhide__ = True
        self.session.records.skip_kind(self.item.nodeid, kind)
        pytest.skip(reason)

    def pool(self, plan: RunPlan | None = None) -> RankPool:
        """The rank pool of ``plan`` (default: the main run). A pool that broke earlier skips
        the test (the test that saw it break has failed already); one that fails now fails
        this test."""
        __tracebackhide__ = True
        main = plan or self.session.main_plan
        return self._guard(
            lambda: self.session.pool(
                main, default_artifacts=self._default_artifacts, requester=self.item.nodeid
            )
        )

    def _collective(self, plan: RunPlan | None, call: Call) -> Measurement | None:
        __tracebackhide__ = True
        pool = self.pool(plan)
        return self._guard(lambda: self.session.run(pool, call, requester=self.item.nodeid))

    def _guard(self, action: Callable[[], T]) -> T:
        """``action``'s result; missing evidence or a pool that broke earlier skips the test,
        ranks that fail now fail it."""
        __tracebackhide__ = True
        try:
            return action()
        except (PoolDown, EvidenceMissing) as exc:
            skip: str | None = str(exc)
        except RankFailure as exc:
            skip, failure = None, str(exc)
        # Outside the except blocks: pytest would otherwise print the message twice (chained).
        if skip is not None:
            self._skip(skip)
        _fail(failure)

    def _measure(self, plan: RunPlan | None, call: Call) -> Measurement:
        """A verified collective's measurement (``iters`` 0: correctness only)."""
        __tracebackhide__ = True
        measured = self._collective(plan, call)
        if measured is None:
            self._skip(f"the {self.session.launcher.name} launcher returned no result")
        return measured

    def _without_profile(self, judgement: Judgement) -> Judgement:
        """Without a profile nothing asks for the check: say so, not "the profile sets no X"."""
        world = self.session.world
        if world.profile is not None or judgement.skip is not Skip.NOT_ASKED:
            return judgement
        summary = f"no instance profile asks for this check ({world.profile_reason})"
        return dataclasses.replace(judgement, summary=summary)

    def _settle(self, judgement: Judgement, *context: Iterable[Property]) -> None:
        """Record a judgement's properties (and ``context``), then pass, warn, skip or fail
        as it says."""
        __tracebackhide__ = True
        self.record(judgement.properties)
        for props in context:
            self.record(props)
        if judgement.status == "skipped":
            self._skip(judgement.summary, judgement.skip or Skip.NO_EVIDENCE)
        if judgement.status == "failed":
            _fail(judgement.message)
        if judgement.warning:
            warnings.warn(GpufabricWarning(judgement.warning), stacklevel=3)

    # --- checks ------------------------------------------------------------------------------

    def check_ranks_joined(self) -> None:
        """Every rank started, joined the process group and runs the same software."""
        __tracebackhide__ = True
        self._claim("node/ranks_joined")
        nranks = self.session.world.nranks
        if nranks == 0:
            self._skip(f"no rank in the recording ({self.session.replay_of})")
        hello = self.pool().hello
        props: list[Property] = [("nranks", len(hello))]
        init = [h.init_s for h in hello if h.init_s is not None]
        if init:
            props.append(("init_s", max(init)))
        findings = []
        missing = sorted(set(range(nranks)) - {h.rank for h in hello})
        if missing:
            findings.append(f"rank(s) {', '.join(map(str, missing))} of {nranks} not seen")
        for key in ("torch", "nccl"):
            versions = {getattr(h, key) for h in hello}
            if len(versions) > 1:
                by_rank = ", ".join(f"rank {h.rank}: {getattr(h, key)}" for h in hello)
                findings.append(f"ranks run different {key} versions ({by_rank})")
        devices = [h.device.uuid for h in hello if h.device is not None]
        if len(set(devices)) != len(devices):
            findings.append(f"several ranks share a GPU: {devices}")
        self.record(props)
        if findings:
            _fail("; ".join(findings))

    def check_inventory(self) -> None:
        """The node has the GPUs its profile says (model and count)."""
        __tracebackhide__ = True
        self._claim("node/gpu_inventory")
        world = self.session.world
        inv = world.inventory
        if not inv.known:
            self._skip(f"no GPU facts in {inv.origin}")
        self.record([("gpu_model", inv.gpu_model or "none"), ("gpu_count", len(inv.gpus))])
        if world.profile is None:
            self._skip(f"no instance profile: {world.profile_reason}")
        problem = world.inventory_problem
        if problem:
            _fail(problem)

    def check_correctness(self, case: CorrectnessCase) -> None:
        """The collective delivers exactly the expected result on every rank."""
        __tracebackhide__ = True
        self._claim(f"correctness/{case.id}")
        nranks = self.session.world.nranks
        if nranks < 1:
            self._skip(f"no rank in the recording {self.session.replay_of}")
        measured = self._measure(None, Call(case.collective, case.nbytes(nranks), case.dtype))
        self._settle(judge_correctness(measured), self.session.test_context())

    def check_busbw(self, case: BandwidthCase) -> None:
        """busbw of the collective at this size, in the case's run, is at least the profile's
        floor (a pass within the warn band is recorded as a warning)."""
        __tracebackhide__ = True
        self._claim(bandwidth_key(case))
        session = self.session
        profile, floor, plan = session.world.profile, case.floor, session.plan(case.run)
        if profile is not None and profile.implied and floor is None and plan is not None:
            self._measure_only(case, plan, profile)
        reason = session.bandwidth_skip_reason(case)
        if reason or profile is None or floor is None or plan is None:
            asked = profile is not None and floor is not None
            self._skip(reason or "no floor to judge against", Skip.NO_EVIDENCE if asked else
                       Skip.NOT_ASKED)  # fmt: skip
        self.record(properties.of_run(plan.name, plan.describe(), plan.nodes, floor.run))
        measured = self._measure(plan, self._timed(case.collective, case.nbytes, profile.dtype))
        judgement = judge_busbw(measured, floor, profile.name, lambda: self._why_slow(plan))
        self._settle(judgement, session.test_context())

    def _measure_only(self, case: BandwidthCase, plan: RunPlan, profile: Profile) -> NoReturn:
        """busbw of a node no profile fits: measured and reported, nothing to judge it by."""
        __tracebackhide__ = True
        world = self.session.world
        if world.nranks < 2:
            self._skip("1 rank: bus bandwidth needs at least 2 ranks")
        self.record(properties.of_run(plan.name, plan.describe(), plan.nodes, case.kind))
        measured = self._measure(plan, self._timed(case.collective, case.nbytes))
        judgement = judge_correctness(measured)
        self.record([*properties.of_measurement(measured), *self.session.test_context()])
        if not judgement.passed:
            _fail(judgement.message)
        self._skip(
            f"{measured.label}: busbw {measured.busbw_gbps:.1f} GB/s; no floor: "
            f"{world.profile_reason}",
            Skip.NOT_ASKED,
        )

    def _timed(
        self, collective: Collective, nbytes: int, dtype: str | None = None, iters: int = 0
    ) -> Call:
        """A timed job as the profile says (warm-up, calls per loop, repeats, timing method),
        or as the defaults say without one; ``iters`` replaces the profile's calls per loop."""
        profile = self.session.world.profile
        warmup, loop, repeats, timing = (
            DEFAULT_WARMUP,
            DEFAULT_ITERS,
            DEFAULT_REPEATS,
            DEFAULT_TIMING,
        )
        if profile is not None:
            warmup, loop, repeats, timing = (profile.warmup, profile.iters, profile.repeats,
                                             profile.timing)  # fmt: skip
        return Call(collective, nbytes, dtype or self.session.world.dtype, warmup, iters or loop,
                    repeats=repeats, timing=timing_method(timing, nbytes))  # fmt: skip

    def _why_slow(self, plan: RunPlan) -> str:
        """The probable causes of a bandwidth shortfall, from ``plan``'s pool's NCCL logs and
        the hosts read again now, while its ranks still run (judge/diagnosis.py). Variables
        the pool sets itself (an isolation run's) are causes on purpose, ranked lower."""
        __tracebackhide__ = True
        session = self.session
        log = self.pool(plan).nccl_log() if session.world.backend == "nccl" else NcclLog()
        hosts = session.host_evidence(fresh=True)
        own = set(plan.env) | {name for env in plan.rank_env(session.world.nranks) for name in env}
        pids = {h.pid for h in self.pool(plan).hello if h.pid}
        channels = session.nccl_expectations().channels
        return render(
            diagnose(
                log, hosts, own, rank_pids=pids or None,
                min_channels=channels.integer if channels is not None else None,
                min_channels_source=f"{channels.key} in {channels.where}" if channels else "",
            )
        )  # fmt: skip

    def check_latency(self, case: LatencyCase) -> None:
        """Time per call of a small collective in the main run, against the profile's latency
        ceiling; measured and reported (not judged) without one."""
        __tracebackhide__ = True
        self._claim(case.key)
        session, world = self.session, self.session.world
        profile = world.profile
        if world.nranks < 2:
            self._skip("latency needs at least 2 ranks" if world.nranks else
                       f"no rank in the recording {session.replay_of}")  # fmt: skip
        if profile is not None and world.inventory_problem:
            self._skip(f"node does not match the profile: {world.inventory_problem}")
        call = self._timed(case.collective, case.nbytes, iters=LATENCY_ITERS)
        main = session.main_plan
        self.record([(properties.RUN, main.name), (properties.RUN_SETTINGS, main.describe()),
                     (properties.RUN_NODES, main.nodes),
                     (properties.FLOORS_FROM, "latency")])  # fmt: skip
        measured = self._measure(None, call)
        ceiling = case.ceiling
        if profile is None or profile.implied:
            why = f"no instance profile ({world.profile_reason}): nothing to judge it against"
        elif world.nnodes > 1:
            why, ceiling = (
                f"the run spans {world.nnodes} NCCL nodes; latency ceilings hold for one",
                None,
            )
        else:
            key = f"latency.ceilings.{case.collective.value}.{format_size(case.nbytes)}"
            why = f"profile {profile.name} sets no {key} ({profile.file})"
        judgement = judge_latency(measured, ceiling, session.profile_name, why)
        self._settle(judgement, session.test_context())

    def nccl_evidence(self, plan: RunPlan | None = None) -> NcclLog:
        """The NCCL debug logs of the pool's ranks, after traffic that makes NCCL connect
        every peer it will use (a replay answers the traffic with nothing and keeps the
        recorded logs)."""
        __tracebackhide__ = True
        pool = self.pool(plan)
        dtype = self.session.world.dtype
        for collective in TRAFFIC:
            self._collective(plan, Call(collective, 1 << 20, dtype, 0, 1, False, "traffic"))
        return pool.nccl_log()

    def check_isolation_path(self, run: str) -> None:
        """The isolation run's NCCL logs show the path it forces: every connection through
        the NIC (network_only) or over NVLink P2P (nvlink_only); see judge/isolation.py."""
        __tracebackhide__ = True
        self._claim(f"isolation/{run}")
        world = self.session.world
        profile = world.profile
        asked = Skip.NO_EVIDENCE if profile is not None and run in profile.runs else Skip.NOT_ASKED
        if world.backend != "nccl":
            self._skip(f"{run} is an NCCL isolation run; this run uses {world.backend}", asked)
        if profile is None:
            self._skip(f"no instance profile ({world.profile_reason})", Skip.NOT_ASKED)
        plan = self.session.plan(run)
        if plan is None:
            self._skip(
                f"profile {profile.name} asks for no {run} run (no bandwidth.{run})",
                Skip.NOT_ASKED,
            )
        if world.inventory_problem:
            self._skip(f"node does not match the profile: {world.inventory_problem}")
        self.record([("run", plan.name), ("run_settings", plan.describe())])
        log = self.nccl_evidence(plan)
        self._settle(ISOLATION_CHECKS[run](log, profile.nccl), self.session.test_context())

    def check_host(self, check: str) -> None:
        """The host has what the profile says: /dev/shm, fabric manager, NVLink links and error
        counters, P2P capability, PCIe links, NICs and RDMA support (see judge/host.py and
        judge/links.py). Every node of the run is judged; each finding names its node."""
        __tracebackhide__ = True
        self._claim(f"host/{check}")
        session, world = self.session, self.session.world
        profile = world.profile
        if world.inventory_problem:
            self._skip(
                f"node does not match the profile (see test_gpu_inventory): "
                f"{world.inventory_problem}"
            )
        not_asked = session.host_not_asked(check)
        if not_asked is not None:
            self._skip(not_asked, Skip.NOT_ASKED)
        expectations = profile.host if profile is not None else HostExpectations()
        if check == "shm_shared":
            self.pool()  # the ranks report the /dev/shm they see when they join
        if check == "nvlink_errors" and world.backend == "nccl":
            self.pool()  # starting the ranks reads the counters before any traffic
            if not session.timed_collectives:
                self._exercise_links()
        evidence = session.host_evidence(fresh=check == "nvlink_errors")
        self._settle(self._without_profile(per_node(HOST_CHECKS[check], evidence, expectations)))

    def _exercise_links(self) -> None:
        """Traffic over every NVLink before the counters are read again: 10 × 256 MiB all_reduce."""
        dtype = self.session.world.dtype
        links = Call(Collective.ALL_REDUCE, 256 << 20, dtype, 0, 10, False, "traffic")
        self._collective(None, links)

    def check_nccl(self, check: str) -> None:
        """What NCCL did (transports, P2P mode, network, plugin, NVLS, nodes, WARNs) is what
        the instance profile expects; see judge/nccl.py and judge/network.py."""
        __tracebackhide__ = True
        self._claim(f"nccl/{check}")
        world = self.session.world
        if world.backend != "nccl":
            self._skip("gloo backend: NCCL is not used on this run", Skip.NOT_APPLICABLE)
        log = self.nccl_evidence()
        expectations = self.session.nccl_expectations()
        self._settle(
            self._without_profile(CHECKS[check](log, expectations)),
            self.session.test_context(),
            [("nccl_log_files", len(log.files))],
        )

    def check_split_cost(self, collective: Collective | str) -> None:
        """What splitting this node into one NCCL host per rank (one pod per GPU) costs: busbw
        of the collective on one host and split (NCCL_HOSTID per rank), with the transports
        NCCL chose in each, against bandwidth.split (reported, not judged, without it)."""
        __tracebackhide__ = True
        session, world = self.session, self.session.world
        profile = world.profile
        case = split_case(Collective(collective), profile, world.backend)
        self._claim(case.key)
        skip = split_skip(world)
        if skip is not None:
            self._skip(*skip)
        one, split = session.main_plan, split_plan(world.nranks)
        self.record(properties.of_run(split.name, split.describe(), split.nodes, SPLIT))

        def call(collective: Collective) -> Call:
            return self._timed(collective, split_case(collective, profile, world.backend).nbytes)

        # Every case's side measured in one visit of each pool (the pool already running
        # first): two pool starts for all cases instead of two per case.
        calls = [call(c) for c in SPLIT_COLLECTIVES]
        order = (split, one) if session.running_pool == split.name else (one, split)
        sides = {plan.name: self._side(plan, calls, call(case.collective)) for plan in order}
        name = session.profile_name
        judgement = judge_split(sides[one.name], sides[split.name], case.limit, name)
        self._settle(judgement, session.test_context())

    def _side(self, plan: RunPlan, calls: list[Call], wanted: Call) -> Side:
        """``wanted`` measured in ``plan``'s pool, with that pool's NCCL logs (after it: NCCL
        logs a connection when it first uses it); the first request measures every call of
        ``calls`` and keeps them for the later ones."""
        __tracebackhide__ = True
        kept = self.session.kept_sides
        if (plan.name, wanted) not in kept:
            todo = [wanted, *(c for c in calls if c != wanted)]
            results = {c: self._measure(plan, c) for c in todo}
            nccl = self.session.world.backend == "nccl"
            log = self.pool(plan).nccl_log() if nccl else None
            kept.update({(plan.name, c): (m, log) for c, m in results.items()})
        measured, log = kept[(plan.name, wanted)]
        return Side(plan.name, plan.describe(), measured, log)

    def check_workload(self, case: WorkloadCase) -> None:
        """Every group of a kind (a layout's tensor-parallel, data-parallel or pipeline
        groups) runs its traffic at the same time; each group's busbw is judged against the
        profile's floor for it (its fair share of the whole-world floor until a per-layout
        floor is measured), and a group below it is measured again alone."""
        __tracebackhide__ = True
        self._claim(f"workload/{case.id}")
        session, world = self.session, self.session.world
        if world.nranks < 2:
            self._skip("1 rank: no parallel layout", Skip.NOT_APPLICABLE)
        pool = self.pool()
        groups = tuple(case.groups)
        timed = self._timed(case.collective, case.nbytes)
        side = case.beside  # (collective, its groups) or None
        beside = Beside(side[0].value, case.nbytes, tuple(side[1])) if side else None
        call = dataclasses.replace(timed, groups=groups, chain=case.chain, beside=beside)
        results = self._guard(lambda: session.run_results(pool, call, requester=self.item.nodeid))
        if not results:
            self._skip(f"the {session.launcher.name} launcher returned no result")
        links = group_links(pool, (*groups, *(beside.groups if beside else ())), world.backend)
        machines = session.launcher.rank_nodes()  # pods: the node under each

        def measure(collective: Collective, group: tuple[int, ...], mine: bool) -> GroupResult:
            replies = [results[r] for r in group]
            if not mine:  # the traffic beside: its own times, as a job of its own
                replies = [beside_result(r, collective, case.nbytes, len(group), call.dtype)
                           for r in replies]  # fmt: skip
            m = from_results(collective, call.dtype, call.warmup, call.iters, replies)
            return GroupResult(group, m, where_of(pool, group, machines), links[group])

        measured = [measure(case.collective, g, True) for g in groups]
        besides = [measure(side[0], g, False) for g in side[1]] if side else []

        def alone(group: GroupResult) -> Measurement | None:
            solo = dataclasses.replace(call, groups=(group.ranks,), beside=None)
            try:  # a recording without it: the verdict stands, only the comparison is missing
                again = session.run_results(pool, solo, requester=self.item.nodeid)
            except EvidenceMissing:
                return None
            except RankFailure as exc:
                _fail(str(exc))
            mine = [again[r] for r in group.ranks] if again else []
            if not mine:
                return None
            return from_results(case.collective, call.dtype, call.warmup, call.iters, mine)

        limit = limit_for(world.profile, case, world.nranks, world.nnodes)
        wrong_place = misplaced(case.layout, [h.node for h in pool.hello], machines)
        self._settle(judge_groups(case, measured, limit, alone, wrong_place, besides),
                     session.test_context())  # fmt: skip

    def _fleet(self) -> FleetResult:
        """The session's fleet run (once); skips when fleet mode is off or cannot run here."""
        __tracebackhide__ = True
        session = self.session
        if not session.settings.fleet.value:
            self._skip("fleet mode is off (--gpufabric-fleet)", Skip.NOT_ASKED)
        why_not = session.fleet_nodes()[1]
        if why_not:
            self._skip(why_not, Skip.NOT_APPLICABLE)
        try:
            return session.fleet(self._default_artifacts)
        except ValueError as exc:  # a recording another planner made
            self._skip(str(exc))

    def check_fleet(self) -> None:
        """Fleet mode: rounds of probes over the run's nodes (fleet/planner.py) find the bad
        nodes and links; fails naming each with the probes that decided it."""
        __tracebackhide__ = True
        self._claim("fleet/isolation")
        result = self._fleet()
        planner = result.planner
        self.record([
            ("fleet_nodes", len(planner.nodes)), ("fleet_rounds", planner.rounds),
            ("fleet_probes", len(planner.probes)), ("fleet_bad_nodes", ",".join(planner.bad_nodes)),
            ("fleet_bad_links", ",".join("-".join(link) for link in planner.bad_links)),
            ("fleet_decisions", "\n".join(planner.decisions)),
            (RECORD, encode(result)),
        ])  # fmt: skip
        gated = [g.node for g in result.gates.values() if not g.passed]
        self.record([("fleet_gate_failed", ",".join(gated))])
        bad = [f for f in planner.findings if f.kind in ("node", "link")]
        if not bad:
            return
        lines = [
            f"{len(planner.nodes)} nodes in {planner.rounds} rounds of {len(planner.probes)} "
            f"probes: {len(planner.bad_nodes)} bad node(s), {len(planner.bad_links)} bad link(s)"
            + (f"; not paired, failed their own gate: {', '.join(gated)}" if gated else "")
        ]
        for finding in bad:
            what = "node" if finding.kind == "node" else "link"
            lines.append(f"{what} {'-'.join(finding.nodes)} is bad:")
            lines += [f"  {self._probe_line(result, pid)}" for pid in finding.evidence]
        _fail("\n".join(lines))

    def check_fleet_node(self, name: str) -> None:
        """One node's fleet verdict: bad (with the probes that decided it), cleared, or not
        decided."""
        __tracebackhide__ = True
        self._claim(f"fleet/node/{name}")
        result = self._fleet()
        planner = result.planner
        probes = [p.id for p in planner.probes.values() if name in p.nodes]
        gate = result.gates.get(name)
        pairs = [
            f"probe {pid} with {', '.join(n for n in planner.probes[pid].nodes if n != name)}: "
            + ("passed" if planner.outcomes.get(pid) else "failed")
            for pid in probes
        ]
        self.record([("fleet_node", name), ("fleet_probes", ",".join(map(str, probes))),
                     ("fleet_pairs", "\n".join(pairs))])  # fmt: skip
        if gate is not None:
            self.record([("fleet_gate", "passed" if gate.passed else "failed"),
                         ("fleet_gate_measured", gate.measured)])  # fmt: skip
            if not gate.passed:
                _fail("\n".join([f"{name} failed its own gate (alone, before any pairing):",
                                  *(f"  {line}" for f in gate.findings
                                    for line in f.splitlines())]))  # fmt: skip
            if list(planner.nodes) == [name]:
                return  # the only node that passed its gate: no partner, its gate decides
        for finding in planner.findings:
            if finding.kind == "node" and finding.nodes == (name,):
                evidence = [f"  {self._probe_line(result, pid)}" for pid in finding.evidence]
                _fail("\n".join([f"{name} is bad:", *evidence]))
        if name not in planner.cleared:
            self._skip(f"{name}: the fleet run did not decide it", Skip.NO_EVIDENCE)

    @staticmethod
    def _probe_line(result: FleetResult, probe_id: int) -> str:
        probe = result.planner.probes[probe_id]
        outcome = "passed" if result.planner.outcomes.get(probe_id) else "failed"
        detail = result.details.get(probe_id, "")
        over = ", ".join(probe.nodes)
        return f"probe {probe_id} ({probe.purpose}: {probe.why}) over {over} {outcome}: {detail}"

    def check_pod_spec(self) -> None:
        """The training pod spec (--gpufabric-podspec, or the kubernetes launcher's pod
        template) fits the instance profile; see podspec/ and docs/podspec.md."""
        __tracebackhide__ = True
        from .podspec.judge import judge_podspec

        self._claim("podspec")
        session = self.session
        path = session.settings.podspec.value
        k8s_template = session.settings.k8s.get("k8s-pod-template")
        if path is None and k8s_template is not None and k8s_template.value:
            path = Path(k8s_template.value)
        if path is None:
            self._skip("no pod spec to lint (--gpufabric-podspec FILE)", Skip.NOT_ASKED)
        self._settle(judge_podspec(path, session.world.profile))


def _fail(message: str) -> NoReturn:
    __tracebackhide__ = True
    pytest.fail(message, pytrace=False)
