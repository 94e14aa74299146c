"""The run's state on the controller: which profile judges this node, what the node has,
which rank pools are up, and what every test measured. No pytest imports: plugin.py wires
this object into hooks and fixtures."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..collectives import ALL_COLLECTIVES, DTYPE_SIZES, Collective, layout, pattern_modulus
from ..evidence.host import HostFacts
from ..evidence.host import collect as collect_host
from ..evidence.host import to_json as host_to_json
from ..evidence.inventory import Inventory
from ..judge.host import HostEvidence
from ..judge.measure import Measurement, from_results
from ..launch.protocol import Launcher, PoolSpec, RankFailure, RankPool
from ..profiles.catalogue import Catalogue
from ..profiles.detect import DetectionError, NodeFacts, detect, node_of
from ..profiles.model import INTER_NODE, INTRA_NODE, NVLINK_ONLY, Floor, Profile
from ..runs import DEFAULT, ISOLATION_RUNS, RunPlan, default_plan, isolation_plan
from ..settings import SettingError, Settings
from ..units import format_size

# Correctness runs use element counts that are prime per rank-chunk, so tails, unaligned
# chunks and uneven channel splits are all exercised.
CORRECTNESS_CHUNKS_CPU = (1021, 65537)
CORRECTNESS_CHUNKS_GPU = (1021, 65537, 4194319)


class PoolDown(Exception):
    """The pool for this environment failed earlier in the session; the message says where."""


@dataclass(frozen=True)
class BandwidthCase:
    collective: Collective
    nbytes: int
    floor: Floor | None
    kind: str = INTRA_NODE  # the bandwidth section that judges it
    run: str = DEFAULT  # the pool it runs in (runs.py)

    @property
    def id(self) -> str:
        size = f"{self.collective.value}-{format_size(self.nbytes)}"
        if self.run == DEFAULT:
            return size
        return f"{self.run}-{size}" if self.floor is not None else self.run


@dataclass(frozen=True)
class CorrectnessCase:
    collective: Collective
    chunk: int  # elements per rank-chunk
    dtype: str

    @property
    def id(self) -> str:
        return f"{self.collective.value}-{self.chunk}x{self.dtype}"

    def nbytes(self, nranks: int) -> int:
        """The nccl-tests size whose layout has exactly ``chunk`` elements per rank-chunk."""
        per_rank = self.chunk * DTYPE_SIZES[self.dtype]
        if self.collective in (
            Collective.ALL_GATHER,
            Collective.REDUCE_SCATTER,
            Collective.ALLTOALL,
        ):
            return per_rank * nranks
        return per_rank


@dataclass
class TestRecord:
    nodeid: str
    outcome: str
    duration_s: float
    properties: dict[str, Any]
    message: str


def choose_profile(
    settings: Settings,
    catalogue: Catalogue,
    inventory: Inventory,
    node: NodeFacts | None = None,
) -> tuple[Profile | None, str]:
    """The profile that judges this node and why it was chosen; SettingError when none fits.
    ``node``: what auto-detection may look at (default: the inventory's GPUs only)."""
    name = settings.instance.value
    if name != "auto":
        profile = catalogue.get(name)
        if profile is None:
            raise SettingError(
                f"--gpufabric-instance: unknown instance type {name!r} (from "
                f"{settings.instance.source}); known: {', '.join(catalogue.names())}"
            )
        return profile, f"{name} from {settings.instance.source}"
    if node is None:
        node = node_of(inventory)
    if node.label is None and not inventory.known:
        raise SettingError(
            f"--gpufabric-instance auto: {inventory.origin} says nothing about the GPUs; pass "
            f"--gpufabric-instance NAME (known: {', '.join(catalogue.names())})"
        )
    if node.label is None and not inventory.gpus:
        return None, f"auto: no GPU visible ({inventory.no_gpu_reason}); gloo on CPU, no floors"
    try:
        found = detect(catalogue, node)
    except DetectionError as exc:
        raise SettingError(str(exc)) from None
    return found.profile, found.how


def inventory_problem(profile: Profile | None, inventory: Inventory) -> str | None:
    """Why this node does not look like the profile's node, or None."""
    if profile is None or not inventory.known:
        return None
    have = f"{len(inventory.gpus)} × {inventory.gpu_model}" if inventory.gpus else "no GPU"
    want = f"{profile.gpu_count} × {profile.gpu_model}"
    if profile.gpu_count == 0:
        if not inventory.gpus:
            return None
        return f"profile {profile.name} is for a node without GPUs; this node has {have}"
    if (
        len(inventory.gpus) == profile.gpu_count
        and (inventory.gpu_model or "").lower() == profile.gpu_model.lower()
    ):
        return None
    reason = f" ({inventory.no_gpu_reason})" if not inventory.gpus else ""
    return (
        f"profile {profile.name} expects {want} ({profile.file}); "
        f"this node has {have} visible{reason}"
    )


def _pool_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


@dataclass
class FabricSession:
    settings: Settings
    catalogue: Catalogue
    profile: Profile | None
    profile_reason: str
    inventory: Inventory
    backend: str
    nranks: int
    launcher: Launcher
    artifacts: Path | None = None
    nnodes: int = 1  # NCCL nodes the ranks span (a local run is one node)
    records: list[TestRecord] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    _pool: RankPool | None = None
    _pool_key: str | None = None
    _down: dict[str, str] = field(default_factory=dict)
    _hello: list[dict[str, Any]] = field(default_factory=list)
    host_before: HostFacts | None = None  # read before the first collective
    host_now: HostFacts | None = None  # the latest reading (replay: the recording's)
    timed_collectives: int = 0  # since host_before was read
    recorded_rank_shm: list[tuple[int, int | None]] | None = None  # replay: from the report

    @classmethod
    def build(
        cls,
        settings: Settings,
        catalogue: Catalogue,
        inventory: Inventory,
        launcher: Launcher,
        recorded: tuple[int, int, str] | None = None,
        node: NodeFacts | None = None,
    ) -> FabricSession:
        """``recorded``: (ranks, nodes, backend) of a replayed run; ``node``: what
        auto-detection may look at."""
        profile, reason = choose_profile(settings, catalogue, inventory, node)
        if recorded is not None:
            ranks, nodes, backend = recorded
            return cls(settings, catalogue, profile, reason, inventory, backend, ranks, launcher,
                       artifacts=settings.artifacts.value, nnodes=nodes)  # fmt: skip
        # A CPU-only profile judges gloo even where GPUs exist; otherwise GPUs mean NCCL.
        gpu_run = bool(inventory.gpus) and (profile is None or profile.gpu_count > 0)
        backend = "nccl" if gpu_run else "gloo"
        if backend == "nccl":
            default_ranks = len(inventory.gpus)
        else:
            default_ranks = profile.ranks if profile is not None and profile.gpu_count == 0 else 2
        nranks = settings.nprocs.value or default_ranks
        if backend == "nccl" and nranks > len(inventory.gpus):
            raise SettingError(
                f"--gpufabric-nprocs: {nranks} ranks (from {settings.nprocs.source}) but only "
                f"{len(inventory.gpus)} GPUs are visible on {inventory.hostname}"
            )
        nodes = settings.emulate_nodes.value
        if nodes > nranks:
            raise SettingError(
                f"--gpufabric-emulate-nodes: {nodes} nodes (from {settings.emulate_nodes.source}) "
                f"but only {nranks} ranks"
            )
        return cls(
            settings,
            catalogue,
            profile,
            reason,
            inventory,
            backend,
            nranks,
            launcher,
            artifacts=settings.artifacts.value,
            nnodes=nodes,
        )

    # --- what the suites run -------------------------------------------------------------

    @property
    def replay_of(self) -> Path | None:
        """The recorded run being judged, or None for a live run."""
        return self.settings.replay.value

    @property
    def inventory_problem(self) -> str | None:
        return inventory_problem(self.profile, self.inventory)

    @property
    def dtype(self) -> str:
        if self.profile is not None and self.profile.backend == self.backend:
            return self.profile.dtype
        return "bfloat16" if self.backend == "nccl" else "float32"

    @property
    def default_plan(self) -> RunPlan:
        """The main run: one node, or the host split into --gpufabric-emulate-nodes nodes."""
        nodes = self.settings.emulate_nodes.value if self.replay_of is None else 1
        return default_plan(nodes)

    def plan(self, run: str) -> RunPlan | None:
        if run == DEFAULT:
            return self.default_plan
        return isolation_plan(self.profile, run) if self.profile is not None else None

    def bandwidth_cases(self) -> list[BandwidthCase]:
        """The main run's cases: bandwidth.intra_node floors, or bandwidth.inter_node ones
        when the ranks span several NCCL nodes."""
        kind = INTER_NODE if self.nnodes > 1 else INTRA_NODE
        run = self.profile.runs.get(kind) if self.profile is not None else None
        if run is None or not run.floors:
            return [BandwidthCase(c, 1 << 20, None, kind) for c in ALL_COLLECTIVES]
        return [BandwidthCase(f.collective, f.nbytes, f, kind) for f in run.floors]

    def isolation_cases(self) -> list[BandwidthCase]:
        """The isolation runs' cases; a run the profile does not ask for is one skipped case.
        nvlink_only without floors of its own is judged against bandwidth.intra_node."""
        cases: list[BandwidthCase] = []
        for kind in ISOLATION_RUNS:
            run = self.profile.runs.get(kind) if self.profile is not None else None
            floors = run.floors if run is not None else ()
            if run is not None and not floors and kind == NVLINK_ONLY and self.profile:
                floors = self.profile.floors
            if not floors:
                cases.append(BandwidthCase(Collective.ALL_REDUCE, 1 << 30, None, kind, kind))
            cases += [BandwidthCase(f.collective, f.nbytes, f, kind, kind) for f in floors]
        return cases

    def correctness_cases(self) -> list[CorrectnessCase]:
        chunks = CORRECTNESS_CHUNKS_GPU if self.backend == "nccl" else CORRECTNESS_CHUNKS_CPU
        dtype = self.dtype
        try:
            pattern_modulus(dtype, self.nranks)
        except ValueError:
            dtype = "float32"  # too many ranks for an exact bf16 sum
        return [CorrectnessCase(c, n, dtype) for c in ALL_COLLECTIVES for n in chunks]

    def bandwidth_skip_reason(self, case: BandwidthCase) -> str | None:
        """Why this bandwidth case cannot be judged on this run, or None."""
        if self.nranks < 2:
            return (
                f"no rank in the recording {self.replay_of}"
                if self.nranks == 0
                else "1 rank: bus bandwidth needs at least 2 ranks"
            )
        if self.profile is None:
            return f"no instance profile ({self.profile_reason}): nothing to judge busbw against"
        if case.floor is None and case.run != DEFAULT:
            return (
                f"profile {self.profile.name} asks for no {case.run} run (no "
                f"bandwidth.{case.kind} in {self.profile.file})"
            )
        if case.floor is None:
            return (
                f"profile {self.profile.name} has no bandwidth.{case.kind} floors "
                f"({self.profile.file})"
            )
        if self.inventory_problem:
            return f"node does not match the profile: {self.inventory_problem}"
        if case.run == DEFAULT and case.kind == INTER_NODE:
            want = self.profile.runs[INTER_NODE].nodes
            if want != self.nnodes:
                return (
                    f"the run spans {self.nnodes} nodes; the bandwidth.inter_node floors of "
                    f"{self.profile.name} are for {want}"
                )
        if case.run != DEFAULT and self.backend != "nccl":
            return f"{case.run} is an NCCL isolation run; this run uses {self.backend}"
        if self.nranks != self.profile.ranks:
            return (
                f"the floors of {self.profile.name} are for {self.profile.ranks} ranks; "
                f"this run has {self.nranks} "
                + ("(recorded)" if self.replay_of else f"(from {self.settings.nprocs.source})")
            )
        return None

    # --- rank pools ------------------------------------------------------------------------

    def pool(
        self,
        plan: RunPlan | None = None,
        *,
        default_artifacts: Callable[[], Path],
        requester: str = "",
    ) -> RankPool:
        """The running pool for ``plan`` (default: the main run), started on first use. One
        pool runs at a time: a request for another stops the current one, so pools never
        contend for the GPUs."""
        plan = plan or self.default_plan
        key = plan.name
        if key in self._down:
            raise PoolDown(f"rank pool {key!r} is down since {self._down[key]}")
        if self._pool is not None and self._pool_key == key:
            return self._pool
        self.close()
        if self.artifacts is None and self.replay_of is None:
            self.artifacts = default_artifacts()
        if self.replay_of is None and self.host_before is None and self.backend == "nccl":
            self.host_before = self.read_host("before")  # NVLink counters before any traffic
        spec = PoolSpec(
            name=plan.name,
            nranks=self.nranks,
            backend=self.backend,
            directory=(self.artifacts or self.replay_of or Path()) / _pool_dir_name(plan.name),
            timeout=self.settings.timeout.value,
            env=dict(plan.env),
            rank_env=plan.rank_env(self.nranks),
        )
        try:
            self._pool = self.launcher.start(spec)
        except RankFailure as exc:
            self._down[key] = f"{requester} (start-up: {exc.summary})"
            raise
        self._pool_key = key
        if not self._hello and plan.name == DEFAULT:
            self._hello = list(self._pool.hello)
        return self._pool

    def run_collective(
        self,
        collective: Collective,
        nbytes: int,
        *,
        dtype: str,
        warmup: int,
        iters: int,
        verify: bool,
        pool: RankPool,
        requester: str = "",
    ) -> Measurement:
        shape = layout(collective, nbytes, self.nranks, dtype)
        job = {
            "op": "collective",
            "collective": collective.value,
            "nbytes": nbytes,
            "dtype": dtype,
            "warmup": warmup,
            "iters": iters,
            "verify": verify,
        }
        what = f"{collective.value} {format_size(shape.nbytes)} {dtype}"
        try:
            results = pool.run(job, what)
        except RankFailure as exc:
            self._down[self._pool_key or DEFAULT] = f"{requester} ({what}: {exc.summary})"
            raise
        self.timed_collectives += iters > 0
        return from_results(collective, dtype, warmup, iters, results)

    # --- the host ------------------------------------------------------------------------

    def read_host(self, when: str) -> HostFacts:
        """Read this node's host facts now and keep them in the artifacts bundle."""
        facts = collect_host([g.index for g in self.inventory.gpus])
        if self.artifacts is not None:
            self.artifacts.mkdir(parents=True, exist_ok=True)
            path = self.artifacts / f"host-{when}.json"
            path.write_text(json.dumps(host_to_json(facts, when), indent=1, default=str) + "\n")
        return facts

    def host_evidence(self, *, fresh: bool = False) -> HostEvidence:
        """Host facts for the host checks; ``fresh`` reads them again (live runs)."""
        if self.replay_of is None and (fresh or self.host_now is None):
            self.host_now = self.read_host("after")
        facts = self.host_now or HostFacts(
            f"{self.replay_of}", unavailable={"nvml": "no host capture in the recording"}
        )
        return HostEvidence(facts, self.host_before, self.rank_shm)

    @property
    def rank_shm(self) -> list[tuple[int, int | None]] | None:
        """(rank, st_dev of the /dev/shm it sees), as the ranks reported it when they joined."""
        if self.recorded_rank_shm is not None:
            return self.recorded_rank_shm
        return [(h["rank"], h["shm_dev"]) for h in self._hello if "shm_dev" in h] or None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool, self._pool_key = None, None

    # --- what the reports say ------------------------------------------------------------

    @property
    def nccl_version(self) -> str | None:
        """As the ranks report it (torch.cuda.nccl.version()), once a pool has started."""
        return self._hello[0].get("nccl") if self._hello else None

    def test_context(self) -> list[tuple[str, object]]:
        """Properties every measured test carries, so one testcase stands on its own."""
        context: list[tuple[str, object]] = [("backend", self.backend)]
        if self.nccl_version:
            context.append(("nccl_version", self.nccl_version))
        if self.profile is not None:
            context.append(("instance", self.profile.name))
        return context

    def facts(self) -> dict[str, Any]:
        """Run-wide facts: JUnit testsuite properties and the JSON report's "run"."""
        inv = self.inventory
        facts: dict[str, Any] = {
            "instance": self.profile.name if self.profile else "none",
            "instance_reason": self.profile_reason,
            "profile_file": str(self.profile.file) if self.profile else "",
            "backend": self.backend,
            "nranks": self.nranks,
            "nnodes": self.nnodes,
            "hostname": inv.hostname,
            "gpu_model": inv.gpu_model or "none",
            "gpu_count": len(inv.gpus),
            "driver": inv.driver or "none",
            "torch_version": inv.torch_version or "unknown",
            "nccl_env": inv.nccl_env_text,
            "timeout_s": self.settings.timeout.value,
            "artifacts": str(self.artifacts) if self.artifacts else "",
            "replay": str(self.replay_of) if self.replay_of else "",
        }
        if self._hello:
            first = self._hello[0]
            facts["rank_torch_version"] = first.get("torch", "")
            if self.nccl_version:
                facts["nccl_version"] = self.nccl_version
                facts["cuda_version"] = first.get("cuda") or ""
            facts["init_s"] = max(h.get("init_s", 0.0) for h in self._hello)
        if self.rank_shm:
            facts["rank_shm_devs"] = ",".join(str(dev) for _, dev in self.rank_shm)
        return facts
