"""The run's rank pools: one per run plan (session/plans.py), started on first use, one at a
time (a request for another stops the current one, so pools never contend for the GPUs). A
pool that failed stays down for the rest of the session: later tests that need it are
skipped with a pointer to the test that saw it break."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..collectives import Collective, layout
from ..judge.measure import Measurement, from_results
from ..launch.protocol import Launcher, PoolSpec, RankFailure, RankPool
from ..launch.wire import Beside, Job, JobResult, RankHello
from ..runs import DEFAULT
from ..settings import Settings
from ..units import format_size
from .plans import RunPlan


@dataclass(frozen=True)
class Call:
    """One collective job as the checks ask for it; "traffic" only makes NCCL connect."""

    collective: Collective
    nbytes: int
    dtype: str
    warmup: int = 0
    iters: int = 0
    verify: bool = True
    purpose: str = "measure"
    repeats: int = 1
    timing: str = "loop"  # rank/ops.py: "graph" or "loop" (CPU ranks use the host clock)
    groups: tuple[tuple[int, ...], ...] = ()  # a layout's groups, all at once (wire.Job)
    chain: bool = False  # the groups are pipelines
    beside: Beside | None = None  # other groups' traffic at the same time (wire.Job)


class PoolDown(Exception):
    """The pool for this run failed earlier in the session; the message says where."""


def _why(exc: RankFailure) -> str:
    """The failure in one line, with its recognised cause (launch/causes.py) if any."""
    return f"{exc.summary}; {exc.cause}" if exc.cause else exc.summary


def _dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name)


class Pools:
    def __init__(self, launcher: Launcher, settings: Settings, backend: str, nranks: int) -> None:
        self.launcher = launcher
        self.settings = settings
        self.backend = backend
        self.nranks = nranks
        self._pool: RankPool | None = None
        self._key: str | None = None
        self._down: dict[str, str] = {}
        self._next_job = 0
        self.main_hello: Sequence[RankHello] = ()  # what the main run's ranks reported
        self.timed_collectives = 0  # collectives timed in this session
        self.ahead: list[str] = []  # pools the launcher was asked to start ahead, and did

    @property
    def current(self) -> str | None:
        """The plan name of the pool running now, if any."""
        return self._key

    def _spec(self, plan: RunPlan, directory: Path) -> PoolSpec:
        return PoolSpec(
            name=plan.name,
            nranks=self.nranks,
            backend=self.backend,
            directory=directory / _dir_name(plan.name),
            startup_timeout=self.settings.startup_timeout.value,
            job_timeout=self.settings.timeout.value,
            env=dict(plan.env),
            rank_env=plan.rank_env(self.nranks),
        )

    def prestart(self, plan: RunPlan, directory: Path) -> None:
        """Have the launcher begin ``plan``'s pool ahead (--gpufabric-prestart), while the
        current one measures. Best effort: a pool that cannot start fails when it is due."""
        setting = self.settings.prestart.value
        if setting == "off" or (setting == "auto" and self.backend != "nccl"):
            return
        if plan.name in self._down or plan.name == self._key:
            return
        with contextlib.suppress(Exception):
            if plan.name not in self.ahead and self.launcher.prestart(self._spec(plan, directory)):
                self.ahead.append(plan.name)

    def get(self, plan: RunPlan, directory: Path, requester: str) -> RankPool:
        """The running pool of ``plan`` (artifacts in ``directory``), started on first use."""
        key = plan.name
        if key in self._down:
            raise PoolDown(f"rank pool {key!r} is down since {self._down[key]}")
        if self._pool is not None and self._key == key:
            return self._pool
        self.close()
        spec = self._spec(plan, directory)
        try:
            self._pool = self.launcher.start(spec)
        except RankFailure as exc:
            self._down[key] = f"{requester} (start-up: {_why(exc)})"
            raise
        except Exception as exc:  # a launcher's own error: once, not once per test
            self._down[key] = f"{requester} (start-up: {type(exc).__name__}: {exc})"
            raise
        self._key = key
        if plan.name == DEFAULT and not self.main_hello:
            self.main_hello = tuple(self._pool.hello)
        return self._pool

    def run(self, pool: RankPool, call: Call, requester: str) -> Measurement | None:
        """One collective job on every rank; None for a traffic job a replay does not run."""
        c = call
        results = self.results(pool, call, requester)
        if not results:
            return None
        return from_results(c.collective, c.dtype, c.warmup, c.iters, results)

    def results(self, pool: RankPool, call: Call, requester: str) -> list[JobResult]:
        """Every rank's result of one job (by rank); a pool that fails stays down."""
        c = call
        # The size as nccl-tests would print it (whole chunks); a recording without ranks
        # has no layout, only the size asked for.
        size = c.nbytes
        if self.nranks and not c.groups:
            size = layout(c.collective, c.nbytes, self.nranks, c.dtype).nbytes
        self._next_job += 1
        job = Job(self._next_job, c.collective.value, c.nbytes, c.dtype, c.warmup, c.iters,
                  c.verify, c.purpose, c.repeats, c.timing, c.groups, c.chain,
                  c.beside)  # fmt: skip
        what = f"{c.collective.value} {format_size(size)} {c.dtype}"
        if c.groups:
            what += f" on {len(c.groups)} groups at once"
        if c.beside:
            what += (f" beside {c.beside.collective} {format_size(c.beside.nbytes)} on "
                     f"{len(c.beside.groups)} groups")  # fmt: skip
        try:
            results = pool.run(job, what)
        except RankFailure as exc:
            self._down[self._key or DEFAULT] = f"{requester} ({what}: {_why(exc)})"
            self.close()
            raise
        self.timed_collectives += c.iters > 0
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        self._pool, self._key = None, None
