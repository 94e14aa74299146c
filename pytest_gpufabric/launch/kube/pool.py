"""One rank pool in the run's pods: an exec stream per rank (streams.py), adopted by the
controller's rank server, and the pods' side of the RankWatch (a rank's end, its pod and node,
its logs, copied out of the pod)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from ..controller import RankServer
from ..environment import nccl_log_name, rank_environment
from ..local import tail
from ..protocol import POOL_FILE, PoolSpec
from ..wire import Job, JobResult, RankHello
from . import diagnose, manifests
from .api import reason
from .errors import WHERE, KubeError
from .streams import ExecRank, open_exec, run_in_pod

if TYPE_CHECKING:
    from .launcher import KubernetesLauncher


class KubePool:
    """One rank pool: an exec stream per rank into the run's pods."""

    def __init__(self, spec: PoolSpec, launcher: KubernetesLauncher) -> None:
        self.spec = spec
        self.launcher = launcher
        self.server = RankServer(spec.name, spec.nranks, self)
        self._ranks: list[ExecRank] = []
        # by rank: (pod, local rank); a pool on some of the pods' ranks takes spec.slots
        held = [(plan, local) for plan in launcher.plans for local, _ in enumerate(plan.ranks)]
        self._where = [held[s] for s in spec.slots if s < len(held)] if spec.slots else held
        self._held = len(held)
        self._closed = False
        self._log_dir = PurePosixPath(manifests.WORK_DIR) / spec.name

    @property
    def hello(self) -> Sequence[RankHello]:
        return self.server.hello

    @property
    def pods(self) -> list[str]:
        """The pod of each rank, by rank."""
        return [plan.pod for plan, _ in self._where]

    def start(self) -> None:
        spec, launcher = self.spec, self.launcher
        if spec.nranks != len(self._where) or len(spec.slots) not in (0, spec.nranks):
            raise KubeError(
                f"{WHERE}: pool {spec.name} wants {spec.nranks} ranks (slots "
                f"{list(spec.slots) or 'all'}); the pods hold {self._held}"
            )
        spec.directory.mkdir(parents=True, exist_ok=True)
        record = spec.record() | {"pods": launcher.placement(), "namespace": launcher.namespace}
        (spec.directory / POOL_FILE).write_text(json.dumps(record, indent=1) + "\n")
        base = launcher.base_env
        for rank, (plan, local) in enumerate(self._where):
            env = rank_environment(
                base,
                spec.environment(rank),
                rank=rank,
                nranks=spec.nranks,
                backend=spec.backend,
                controller="stdio",
                token=self.server.token,
                rank_addr=None,
                startup_timeout=spec.startup_timeout,
                job_timeout=spec.job_timeout,
                log_dir=self._log_dir,
                local=(local, len(plan.ranks)),
                package_path=False,
            )
            assigned = [f"{k}={v}" for k, v in env.items() if base.get(k) != v]
            argv = [
                "env",
                *assigned,
                *launcher.exec_argv(["-m", "pytest_gpufabric.rank.worker"]),
            ]
            out = spec.directory / f"rank{rank}.out.log"
            try:
                client = open_exec(
                    launcher.api,
                    launcher.namespace,
                    plan.pod,
                    self.launcher.container,
                    argv,
                    stdin=True,
                )
            except Exception as exc:
                raise KubeError(
                    f"{WHERE}: pod {plan.pod} on node {plan.node}: "
                    f"cannot start rank {rank}: {reason(exc)}"
                ) from None
            exec_rank = ExecRank(client, out)
            self._ranks.append(exec_rank)
            self.server.adopt(exec_rank.sock)
        self.server.start(spec.startup_timeout)

    def run(self, job: Job, what: str) -> list[JobResult]:
        try:
            return self.server.run(job, what, self.spec.job_timeout)
        except BaseException:
            self.close()
            raise

    # --- RankWatch ---------------------------------------------------------------------------

    def _pod_of(self, rank: int) -> tuple[manifests.PodPlan, dict[str, Any] | None]:
        plan = self._where[rank][0]
        return plan, self.launcher.pods.get(plan.pod)

    def exited(self, rank: int) -> str | None:
        if rank >= len(self._ranks):
            return "never started"
        ended = self._ranks[rank].ended
        if ended is None:
            return None
        plan, _ = self._pod_of(rank)
        with contextlib.suppress(Exception):
            self.launcher.refresh()
        name = plan.pod
        pod = self.launcher.pods.get(name)
        where = f"pod {name} on node {plan.node}"
        if pod is None:
            return f"{ended} ({where} {diagnose.DELETED})"
        problem = diagnose.final_problem(pod, self.launcher.events(name))
        return f"{ended} ({problem})" if problem else f"{ended} ({where})"

    def describe(self, rank: int) -> str:
        plan, pod = self._pod_of(rank)
        return f"{diagnose.state(pod)}, rank stream open" if pod else f"pod {plan.pod}"

    def hang_evidence(self, ranks: Sequence[int]) -> Sequence[str]:
        """Not asked yet: RAS listens inside the pods, out of the controller's reach."""
        return []

    def logs(self, rank: int) -> Sequence[tuple[Path, str]]:
        out = self.spec.directory / f"rank{rank}.out.log"
        nccl = self._fetch_nccl(rank)
        found = [(out, tail(out))]
        if nccl is not None:
            found.append((nccl, tail(nccl)))
        return found

    def _fetch_nccl(self, rank: int) -> Path | None:
        """Copy the rank's NCCL debug log out of its pod (while the pod exists)."""
        plan, _ = self._pod_of(rank)
        local = self.spec.directory / nccl_log_name(rank)
        remote = str(self._log_dir / nccl_log_name(rank))
        with contextlib.suppress(Exception):
            code, out, _ = run_in_pod(
                self.launcher.api,
                self.launcher.namespace,
                plan.pod,
                self.launcher.container,
                ["cat", remote],
                30,
            )
            if code == 0:
                local.write_bytes(out)
        return local if local.exists() else None

    # --- evidence and the end ----------------------------------------------------------------

    def nccl_log(self) -> Any:
        from ...evidence.nccl_log import parse_files

        files = [self._fetch_nccl(rank) for rank in range(self.spec.nranks)]
        return parse_files(sorted(f for f in files if f is not None))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.server.broken is None and self._ranks:
            self.server.say_goodbye()
            deadline = time.monotonic() + 10
            for exec_rank in self._ranks:
                while exec_rank.ended is None and time.monotonic() < deadline:
                    time.sleep(0.05)
        for rank in range(len(self._ranks)):
            self._fetch_nccl(rank)
        for exec_rank in self._ranks:
            exec_rank.close()
        self.server.close()
