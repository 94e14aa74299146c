"""The run's state on the controller, composed of small parts: the world (world.py: profile,
nodes, ranks), the cases (cases.py), the rank pools (pools.py), the host readings
(hosts.py) and what every test did (records.py). No pytest here: plugin.py wires this object
into hooks and fixtures, fabric.py into the checks; neither changes its fields."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..evidence.host import HostFacts
from ..evidence.nccl_log import NcclLog
from ..fleet.gate import GateRules
from ..fleet.run import FleetNode, FleetResult
from ..fleet.summary import node_rows
from ..judge.catalog import CHECKS, GPU_HOST_CHECKS, HOST_CHECKS
from ..judge.certify import Certification, Demand, certify
from ..judge.host import HostEvidence
from ..judge.judgement import Skip
from ..judge.measure import Measurement
from ..launch.protocol import Launcher, NodeFleet, RankPool
from ..launch.wire import JobResult, RankHello
from ..profiles.catalogue import Catalogue
from ..profiles.implied import implied_nccl
from ..profiles.model import HostExpectations, NcclExpectations
from ..runs import DEFAULT, INTER_NODE, ISOLATION_RUNS, SPLIT
from ..settings import SettingError, Settings
from ..units import format_size
from ..workload.cases import WorkloadCase, workload_cases
from ..workload.judge import layout_floor
from ..workload.layout import Layout, LayoutError, defaults, parse
from .cases import (
    BandwidthCase,
    CorrectnessCase,
    LatencyCase,
    bandwidth_cases,
    bandwidth_key,
    correctness_cases,
    isolation_cases,
    latency_cases,
)
from .fleet import fleet_nodes, run_fleet
from .hosts import Hosts
from .plans import RunPlan, default_plan, isolation_plan, split_plan
from .pools import Call, Pools
from .records import Records
from .split import split_demands
from .world import World, plan_world

NODE_CHECKS = ("ranks_joined", "gpu_inventory")


class FabricSession:
    def __init__(
        self, settings: Settings, catalogue: Catalogue, launcher: Launcher, world: World
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.launcher = launcher
        self.world = world
        self.records = Records()
        self.started = time.time()
        self._pools = Pools(launcher, settings, world.backend, world.nranks)
        self._hosts = Hosts(launcher, world.nodes)
        self._artifacts: Path | None = settings.artifacts.value
        self._first_pool_done = False
        # The pools the collected tests need, in test order (plugin.py): the next one can be
        # started ahead (pools.py prestart).
        self.pool_order: list[str] = []
        # Split-cost sides measured ahead (fabric.py): (pool, call) -> (measurement, its log)
        self.kept_sides: dict[tuple[str, Call], tuple[Measurement, NcclLog | None]] = {}
        self._fleet: FleetResult | None = None
        self.notes: list[str] = []  # what went wrong outside any test (marking nodes), for the end
        self._fleet_nodes: tuple[list[FleetNode], str] | None = None

    @classmethod
    def build(cls, settings: Settings, catalogue: Catalogue, launcher: Launcher) -> FabricSession:
        """Read the nodes through the launcher and choose the profile; SettingError (a usage
        error) on any problem."""
        return cls(settings, catalogue, launcher, plan_world(settings, catalogue, launcher))

    # --- the run ---------------------------------------------------------------------------

    @property
    def replay_of(self) -> Path | None:
        """The recorded run being judged, or None for a live run."""
        return self.settings.replay.value

    @property
    def artifacts(self) -> Path | None:
        return self._artifacts

    @property
    def profile_name(self) -> str | None:
        return self.world.profile.name if self.world.profile else None

    @property
    def main_plan(self) -> RunPlan:
        """The main run: one node, or the host split into --gpufabric-emulate-nodes nodes."""
        return default_plan(self.settings.emulate_nodes.value if self.replay_of is None else 1)

    def plan(self, run: str) -> RunPlan | None:
        if run == DEFAULT:
            return self.main_plan
        profile = self.world.profile
        return isolation_plan(profile, run) if profile is not None else None

    def bandwidth_cases(self) -> list[BandwidthCase]:
        return bandwidth_cases(self.world.profile, self.world.nnodes)

    def floors_command(self) -> str:
        """The command that turns this run's report into a profile (docs/profiles.md)."""
        report = self.settings.json.value
        source = report or (self._artifacts / "report.json" if self._artifacts else "REPORT.json")
        return f"python -m pytest_gpufabric.floors {source} --name NAME > NAME.yaml"

    def latency_cases(self) -> list[LatencyCase]:
        return latency_cases(self.world.profile)

    def layouts(self) -> list[Layout]:
        """The parallel layouts of suites/test_workload.py: the option's, else those the
        profile has floors for (section workload) that fit this run's ranks, else the seeds'
        that fit; SettingError naming a value that does not fit."""
        setting = self.settings.layout
        profile, nranks = self.world.profile, self.world.nranks
        if setting.value is None:
            if profile is not None and profile.workload is not None:
                measured = [Layout(tp, pp, dp, f"floors in profile {profile.name}")
                            for tp, pp, dp in profile.workload.layouts
                            if tp * pp * dp == nranks]  # fmt: skip
                if measured:
                    return measured
            return defaults(nranks)
        where = f"--gpufabric-layout (from {setting.source})"
        try:
            return [parse(text, self.world.nranks, where) for text in setting.value.split(",")]
        except LayoutError as exc:
            raise SettingError(str(exc)) from None

    def workload_cases(self) -> list[WorkloadCase]:
        return workload_cases(self.layouts(), self.world.backend)

    def isolation_cases(self) -> list[BandwidthCase]:
        return isolation_cases(self.world.profile)

    def correctness_cases(self) -> list[CorrectnessCase]:
        return correctness_cases(self.world.backend, self.world.dtype, self.world.nranks)

    def bandwidth_skip_reason(self, case: BandwidthCase) -> str | None:
        """Why this bandwidth case cannot be judged on this run, or None."""
        world, profile = self.world, self.world.profile
        if world.nranks < 2:
            return (
                f"no rank in the recording {self.replay_of}"
                if world.nranks == 0
                else "1 rank: bus bandwidth needs at least 2 ranks"
            )
        if profile is None:
            return f"no instance profile ({world.profile_reason}): nothing to judge busbw against"
        if case.floor is None and case.run != DEFAULT:
            return (
                f"profile {profile.name} asks for no {case.run} run (no "
                f"bandwidth.{case.kind} in {profile.file})"
            )
        if case.floor is None:
            return f"profile {profile.name} has no bandwidth.{case.kind} floors ({profile.file})"
        if world.inventory_problem:
            return f"node does not match the profile: {world.inventory_problem}"
        if case.run == DEFAULT and case.kind == INTER_NODE:
            want = profile.runs[INTER_NODE].nodes
            if want != world.nnodes:
                return (
                    f"the run spans {world.nnodes} nodes; the bandwidth.inter_node floors of "
                    f"{profile.name} are for {want}"
                )
        if case.run != DEFAULT and world.backend != "nccl":
            return f"{case.run} is an NCCL isolation run; this run uses {world.backend}"
        # The floors hold for profile.ranks ranks on each machine the run spans (one host
        # split into NCCL nodes by NCCL_HOSTID or into pods is still one machine).
        machines = max(len(world.nodes), 1)
        if world.nranks != profile.ranks * machines:
            source = "(recorded)" if self.replay_of else f"(from {self.settings.nprocs.source})"
            per = f" on each of {machines} nodes" if machines > 1 else ""
            return (
                f"the floors of {profile.name} are for {profile.ranks} ranks{per}; "
                f"this run has {world.nranks} {source}"
            )
        return None

    # --- rank pools ------------------------------------------------------------------------

    def pool(
        self, plan: RunPlan, *, default_artifacts: Callable[[], Path], requester: str
    ) -> RankPool:
        """The running pool for ``plan``, started on first use (see pools.py). Before the
        first pool starts, the nodes and their host facts go to the artifacts bundle (the
        NVLink error counters before any traffic)."""
        if self._artifacts is None and self.replay_of is None:
            self._artifacts = default_artifacts()
        if not self._first_pool_done:
            self._first_pool_done = True
            if self._artifacts is not None:
                self._hosts.keep_nodes(self._artifacts)
            if self.world.backend == "nccl":
                self._hosts.read("before", self._artifacts)
        directory = self._artifacts or self.replay_of or Path()
        pool = self._pools.get(plan, directory, requester)
        later = self._after(plan.name)
        if later is not None:
            self._pools.prestart(later, directory)
        return pool

    def _after(self, name: str) -> RunPlan | None:
        """The plan of the pool the tests need after ``name``'s (pool_order), if any."""
        if name not in self.pool_order:
            return None
        for following in self.pool_order[self.pool_order.index(name) + 1 :]:
            plan = self.plan_named(following) if following != name else None
            if plan is not None:
                return plan
        return None

    def plan_named(self, name: str) -> RunPlan | None:
        if name == SPLIT:
            return split_plan(self.world.nranks)
        return self.plan(name)

    def run(self, pool: RankPool, call: Call, *, requester: str) -> Measurement | None:
        """``call`` on every rank of ``pool`` (see pools.py); a pool that fails stays down."""
        return self._pools.run(pool, call, requester)

    def run_results(self, pool: RankPool, call: Call, *, requester: str) -> list[JobResult]:
        """Every rank's own result of ``call`` (a job on a layout's groups)."""
        return self._pools.results(pool, call, requester)

    @property
    def running_pool(self) -> str | None:
        """The plan name of the pool running now (starting another stops it)."""
        return self._pools.current

    @property
    def timed_collectives(self) -> int:
        return self._pools.timed_collectives

    @property
    def hello(self) -> Sequence[RankHello]:
        """What the main run's ranks reported when they joined."""
        return self._pools.main_hello

    def close(self) -> None:
        self._pools.close()

    # --- the hosts -------------------------------------------------------------------------

    def host_evidence(self, *, fresh: bool) -> list[tuple[str, HostEvidence]]:
        """(node, host evidence) of every node; ``fresh`` reads the hosts again (after the
        collectives: NVLink error counters)."""
        if fresh or not self._hosts.now:
            self._hosts.read("after", self._artifacts)
        # Every rank's /dev/shm when the ranks said (a rank that could not stat it says None,
        # and counts); None when none did (a recording without them).
        shm = [(h.rank, h.shm_dev, h.host) for h in self.hello]
        known = shm if any(dev is not None for _, dev, _ in shm) else None
        placed = self.launcher.rank_nodes()
        evidence = []
        for node in self.world.nodes:
            ranks = known
            if known is not None and placed is not None:  # only this node's ranks share it
                ranks = [s for s in known if s[0] < len(placed) and placed[s[0]] == node.name]
            facts = self._hosts.now.get(node.name)
            if facts is None:
                facts = HostFacts(
                    f"{self.replay_of or node.name}",
                    unavailable={"nvml": "no host reading or capture of this node"},
                )
            before = self._hosts.before.get(node.name)
            evidence.append((node.name, HostEvidence(facts, before, ranks)))
        return evidence

    def nccl_expectations(self) -> NcclExpectations:
        """The profile's NCCL expectations; for a node no profile fits, what its hardware
        implies (profiles/implied.py: read from the hosts, so only once a pool ran)."""
        profile = self.world.profile
        if profile is None:
            return NcclExpectations()
        if not profile.implied:
            return profile.nccl
        facts = [ev.facts for _, ev in self.host_evidence(fresh=False)]
        return implied_nccl(profile, self.world.nodes, facts)

    # --- fleet mode ------------------------------------------------------------------------

    def fleet_nodes(self) -> tuple[list[FleetNode], str]:
        """The fleet's nodes, or why there are none; asked by the collection, the demands and
        every fleet test, read once (a replay searches its recording for the fleet run)."""
        if self._fleet_nodes is None:
            self._fleet_nodes = fleet_nodes(self.settings, self.world, self.launcher)
        return self._fleet_nodes

    @property
    def fleet_result(self) -> FleetResult | None:
        """The fleet run, once it ran (for the reports)."""
        return self._fleet

    def fleet(self, default_artifacts: Callable[[], Path]) -> FleetResult:
        """The fleet run, once per session; the main pool is stopped first (its ranks hold
        every GPU the probes need)."""
        if self._fleet is None:
            nodes, _ = self.fleet_nodes()
            self._pools.close()
            if self._artifacts is None and self.replay_of is None:
                self._artifacts = default_artifacts()
            if self._artifacts is not None and not self._first_pool_done:
                self._hosts.keep_nodes(self._artifacts)  # the bundle says what it ran on
            directory = (self._artifacts or self.replay_of or Path()) / "fleet"
            self._fleet = run_fleet(
                self.settings, self.world, self.launcher, nodes, self.gate_rules(), directory
            )
            if isinstance(self.launcher, NodeFleet) and self.replay_of is None:
                self._fleet.left_out = dict(self.launcher.skipped_nodes)
                self.notes += self.launcher.mark_nodes(node_rows(self._fleet))
        return self._fleet

    def gate_rules(self) -> GateRules:
        """What each node's gate holds it to: the profile's host checks, NCCL expectations."""
        profile = self.world.profile
        return GateRules(
            profile,
            profile.nccl if profile is not None and not profile.implied else NcclExpectations(),
            profile.host if profile is not None else HostExpectations(),
            [c for c in HOST_CHECKS if profile is not None and self.host_not_asked(c) is None],
            self.world.dtype,
        )

    # --- the verdict -----------------------------------------------------------------------

    def demands(self) -> list[Demand]:
        """Every check and floor the profile asks for on this run (certification)."""
        profile = self.world.profile
        if profile is None:
            return []
        if self.settings.fleet.value and not self.fleet_nodes()[1]:
            # A fleet is certified node by node: each node's gate (host checks, transports,
            # its busbw floor) and the pair isolation; other suites run are judged, not asked.
            nodes = self.fleet_nodes()[0]
            over = f"fleet isolation over {len(nodes)} nodes"
            return [Demand("fleet/isolation", over)] + [
                Demand(f"fleet/node/{n.name}", f"fleet verdict of {n.name}") for n in nodes
            ]
        demands = [Demand(f"node/{name}", f"node check {name}") for name in NODE_CHECKS]
        demands += [
            Demand(f"correctness/{c.id}", f"exact result of {c.id}")
            for c in self.correctness_cases()
        ]
        # The node's own floors are asked for even when this run's ranks span several NCCL
        # nodes: a run over emulated nodes judges inter_node floors and leaves them unjudged.
        own = bandwidth_cases(profile, 1) if self.world.nnodes > 1 else []
        split = (
            f"the main run spans {self.world.nnodes} NCCL nodes and is judged against "
            "bandwidth.inter_node; a run on one node judges these"
        )
        for case in [*self.bandwidth_cases(), *self.isolation_cases(), *own]:
            if case.floor is not None:
                demands.append(
                    Demand(
                        bandwidth_key(case),
                        f"busbw of {case.collective.value} {format_size(case.nbytes)} in the "
                        f"{case.run} run >= {case.floor.busbw_gbps:g} GB/s "
                        f"(bandwidth.{case.kind}, {case.floor.where})",
                        *((split,) if case in own else ()),
                    )
                )
        demands += [
            Demand(
                case.key,
                f"time per call of {case.id} <= {case.ceiling.max_us:g} µs "
                f"(latency, {case.ceiling.where})",
            )
            for case in self.latency_cases()
            if case.ceiling is not None
        ]
        for group in self.workload_cases():  # the layouts' groups the profile has floors for
            floor = layout_floor(profile, group, self.world.nnodes)
            if floor is not None:
                demands.append(Demand(
                    f"workload/{group.id}",
                    f"busbw of each {group.kind} group of layout {group.layout.key} in "
                    f"{group.collective.value} {format_size(group.nbytes)} >= "
                    f"{floor.busbw_gbps:g} GB/s (workload, {floor.where})",
                ))  # fmt: skip
        for run in ISOLATION_RUNS:
            if profile.runs.get(run) is not None:
                demands.append(Demand(f"isolation/{run}", f"the path of the {run} run"))
        demands += split_demands(profile, self.world)
        if self.world.backend == "nccl":
            empty = NcclLog()
            nccl = self.nccl_expectations() if self._hosts.before or not profile.implied else None
            demands += [
                Demand(f"nccl/{name}", f"NCCL check {name}")
                for name, judge in CHECKS.items()
                if nccl is not None and judge(empty, nccl).skip is not Skip.NOT_ASKED
            ]
        if profile.implied:
            demands.append(Demand(
                "bandwidth/floors",
                f"busbw floors for {profile.gpu_count} × {profile.gpu_model}",
                "no profile fits this node, so nothing judges its bandwidth: make one from "
                f"this run ({self.floors_command()})",
            ))  # fmt: skip
        nothing = HostEvidence(HostFacts("nothing read yet"))
        demands += [
            Demand(f"host/{name}", f"host check {name}")
            for name, judge in HOST_CHECKS.items()
            if self.host_not_asked(name) is None
            and judge(nothing, profile.host).skip is not Skip.NOT_ASKED
        ]
        return demands

    def host_not_asked(self, check: str) -> str | None:
        """Why the profile does not ask for this host check at all, or None."""
        profile = self.world.profile
        if profile is not None and profile.gpu_count == 0 and check in GPU_HOST_CHECKS:
            return f"profile {profile.name} describes a node without GPUs"
        return None

    def certification(self) -> Certification:
        return certify(
            self.profile_name,
            self.world.profile_reason,
            self.demands(),
            self.records.outcomes(),
            self.records.failed_elsewhere(),
        )

    # --- what the reports say --------------------------------------------------------------

    @property
    def nccl_version(self) -> str | None:
        """As the ranks report it (torch.cuda.nccl.version()), once a pool has started."""
        return self.hello[0].nccl if self.hello else None

    def test_context(self) -> list[tuple[str, object]]:
        """Properties every measured test carries, so one testcase stands on its own."""
        context: list[tuple[str, object]] = [("backend", self.world.backend)]
        if self.nccl_version:
            context.append(("nccl_version", self.nccl_version))
        if self.world.profile is not None:
            context.append(("instance", self.world.profile.name))
        return context

    def facts(self) -> dict[str, Any]:
        """Run-wide facts (JUnit testsuite properties and the JSON report's "run"); the
        nodes' own facts are in :meth:`node_facts`, summed up here."""
        world, inv = self.world, self.world.inventory
        nodes = [n.facts() for n in world.nodes]
        facts: dict[str, Any] = {
            "instance": world.profile.name if world.profile else "none",
            "instance_reason": world.profile_reason,
            "profile_file": str(world.profile.file) if world.profile else "",
            "launcher": self.launcher.name,
            "backend": world.backend,
            "nranks": world.nranks,
            "nnodes": world.nnodes,
            "node_names": ",".join(n["name"] for n in nodes),
            "hostname": ",".join(sorted({n["hostname"] for n in nodes})),
            "gpu_model": ",".join(sorted({n["gpu_model"] for n in nodes})),
            "gpu_count": sum(int(n["gpu_count"]) for n in nodes),
            "driver": ",".join(sorted({n["driver"] for n in nodes})),
            "torch_version": inv.torch_version or "unknown",
            "nccl_env": inv.nccl_env_text,
            "timeout_s": self.settings.timeout.value,
            "startup_timeout_s": self.settings.startup_timeout.value,
            "artifacts": str(self._artifacts) if self._artifacts else "",
            "replay": str(self.replay_of) if self.replay_of else "",
        }
        if self.hello:
            first = self.hello[0]
            facts["rank_torch_version"] = first.torch or ""
            if self.nccl_version:
                facts["nccl_version"] = self.nccl_version
                facts["cuda_version"] = first.cuda or ""
            facts["init_s"] = max(h.init_s or 0.0 for h in self.hello)
            devs = [h.shm_dev for h in self.hello]
            if any(d is not None for d in devs):
                facts["rank_shm_devs"] = ",".join(str(d) for d in devs)
            # Where each rank ran: its host (a pod's name in Kubernetes) and node.
            facts["rank_hosts"] = ",".join(h.host for h in self.hello)
        placed = self.launcher.rank_nodes()
        if placed is not None:
            facts["rank_nodes"] = ",".join(placed)
        if self._pools.ahead:  # spawned while another pool measured (--gpufabric-prestart)
            facts["pools_started_ahead"] = ",".join(self._pools.ahead)
        return facts

    def node_facts(self) -> list[dict[str, Any]]:
        return [n.facts() for n in self.world.nodes]
