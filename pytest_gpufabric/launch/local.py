"""Ranks as local processes: one ``python -m pytest_gpufabric.rank.worker`` per rank.

Each rank gets two inherited pipes (jobs in, results out) and its own session (process
group), so a terminal's Ctrl-C reaches only pytest, which then stops the ranks itself. The
controller waits on all result pipes with one selector and a deadline: a rank that exits,
hangs or never joins is named in a RankFailure within the timeout, and the pool is killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..evidence.nccl_log import NcclLog, parse_files
from .environment import nccl_log_name, rank_environment
from .protocol import POOL_FILE, Message, PoolSpec, RankFailure, RankProblem

TAIL_LINES = 15
_GRACE_AFTER_TROUBLE_S = 3.0  # after a death or an error, let the others report their side
_EXIT_GRACE_S = 10.0
_PROC_STATES = {
    "R": "running",
    "S": "sleeping",
    "D": "in uninterruptible wait",
    "T": "stopped",
    "t": "stopped by a tracer",
    "Z": "zombie",
}


def _ranks(ranks: list[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = TAIL_LINES) -> str:
    try:
        with path.open("rb") as stream:
            stream.seek(0, os.SEEK_END)
            stream.seek(max(stream.tell() - 64 * 1024, 0))
            data = stream.read().decode("utf-8", "replace")
    except OSError:
        return "(no such file)"
    return "\n".join(data.splitlines()[-lines:])


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"exited on signal {signal.Signals(-code).name}"
        except ValueError:
            return f"exited on signal {-code}"
    return f"exited with code {code}"


def process_state(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "alive"
    code = stat.rsplit(")", 1)[-1].split()[0]
    return _PROC_STATES.get(code, f"state {code}")


@dataclass
class _Rank:
    rank: int
    process: subprocess.Popen[bytes]
    commands: IO[str]
    results_fd: int
    log: IO[bytes]
    out_path: Path
    nccl_path: Path
    buffer: bytes = b""
    eof: bool = False
    messages: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> bool:
        try:
            self.commands.write(json.dumps(message) + "\n")
            self.commands.flush()
        except (BrokenPipeError, ValueError, OSError):
            return False
        return True

    def read(self) -> None:
        try:
            chunk = os.read(self.results_fd, 1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.eof = True
            return
        self.buffer += chunk
        *lines, self.buffer = self.buffer.split(b"\n")
        self.messages.extend(json.loads(line) for line in lines if line.strip())


class LocalLauncher:
    name = "local"

    def start(self, spec: PoolSpec) -> LocalPool:
        pool = LocalPool(spec)
        try:
            pool.start()
        except BaseException:
            pool.kill()
            raise
        return pool


class LocalPool:
    recorded = False

    def __init__(self, spec: PoolSpec) -> None:
        self.spec = spec
        self._ranks: list[_Rank] = []
        self._hello: list[Message] = []
        self._next_id = 0
        self._killed = False
        self.broken: str | None = None

    @property
    def hello(self) -> list[Message]:
        return self._hello

    @property
    def pids(self) -> list[int]:
        return [r.process.pid for r in self._ranks]

    def start(self) -> None:
        self.spec.directory.mkdir(parents=True, exist_ok=True)
        # Tells a later replay which run these logs belong to.
        (self.spec.directory / POOL_FILE).write_text(
            json.dumps(self.spec.record(), indent=1) + "\n"
        )
        port = free_port()
        for rank in range(self.spec.nranks):
            self._ranks.append(self._spawn(rank, port))
        self._hello = self._collect(0, "start-up (import torch, join the process group)")

    def _spawn(self, rank: int, port: int) -> _Rank:
        spec = self.spec
        cmd_read, cmd_write = os.pipe()
        res_read, res_write = os.pipe()
        env = rank_environment(
            os.environ,
            spec.environment(rank),
            rank=rank,
            nranks=spec.nranks,
            backend=spec.backend,
            port=port,
            timeout=spec.timeout,
            log_dir=spec.directory,
        )
        env["GPUFABRIC_CMD_FD"], env["GPUFABRIC_RESULT_FD"] = str(cmd_read), str(res_write)
        out_path = spec.directory / f"rank{rank}.out.log"
        log = out_path.open("wb")
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "pytest_gpufabric.rank.worker"],
                env=env,
                cwd=spec.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(cmd_read, res_write),
                start_new_session=True,
            )
        finally:
            os.close(cmd_read)
            os.close(res_write)
        os.set_blocking(res_read, False)
        return _Rank(
            rank,
            process,
            os.fdopen(cmd_write, "w", encoding="utf-8"),
            res_read,
            log,
            out_path,
            spec.directory / nccl_log_name(rank),
        )

    def run(self, job: Message, what: str) -> list[Message]:
        if self.broken is not None:
            raise RankFailure(self.spec.name, what, f"pool is down: {self.broken}", [])
        self._next_id += 1
        message = {**job, "id": self._next_id}
        for rank in self._ranks:
            rank.send(message)  # a dead rank shows up in _collect
        return self._collect(self._next_id, what)

    def _collect(self, job_id: int, what: str) -> list[Message]:
        deadline = time.monotonic() + self.spec.timeout
        replies: dict[int, Message] = {}
        selector = selectors.DefaultSelector()
        for rank in self._ranks:
            if not rank.eof:
                selector.register(rank.results_fd, selectors.EVENT_READ, rank)
        trouble: float | None = None
        try:
            while len(replies) < len(self._ranks):
                now = time.monotonic()
                limit = (
                    deadline if trouble is None else min(deadline, trouble + _GRACE_AFTER_TROUBLE_S)
                )
                if now >= limit:
                    break
                for key, _ in selector.select(timeout=min(limit - now, 0.25)):
                    rank = key.data
                    rank.read()
                    if rank.eof:
                        selector.unregister(rank.results_fd)
                    for reply in rank.messages:
                        if reply.get("id") == job_id:
                            replies[rank.rank] = reply
                    rank.messages.clear()
                if trouble is None and any(
                    (r.rank not in replies and r.process.poll() is not None)
                    or not replies.get(r.rank, {"ok": True})["ok"]
                    for r in self._ranks
                ):
                    trouble = time.monotonic()
        finally:
            selector.close()
        failed = [r for r in self._ranks if not replies.get(r.rank, {}).get("ok", False)]
        if not failed:
            return [replies[r.rank]["result"] for r in self._ranks]
        problems = [self._problem(r, replies.get(r.rank)) for r in failed]
        silent = [r for r in self._ranks if r.rank not in replies]
        dead = [r.rank for r in silent if r.process.poll() is not None]
        hung = [r.rank for r in silent if r.process.poll() is None]
        errors = [r.rank for r in failed if r.rank in replies]
        parts = []
        if dead:
            parts.append(f"{_ranks(dead)} died")
        if hung:
            parts.append(
                f"{_ranks(hung)} did not finish "
                + (
                    f"within {self.spec.timeout:g} s"
                    if trouble is None
                    else "after the others failed"
                )
            )
        if errors:
            parts.append(f"{_ranks(errors)} reported an error")
        summary = "; ".join(parts) + f" (of {len(self._ranks)} ranks)"
        self.broken = f"{what}: {summary}"
        self.kill()
        raise RankFailure(self.spec.name, what, summary, problems)

    def _problem(self, rank: _Rank, reply: Message | None) -> RankProblem:
        code = rank.process.poll()
        if reply is not None:
            state = f"error: {reply.get('error')}"
        elif code is not None:
            state = f"no reply: {describe_exit(code)}"
        else:
            state = (
                f"no reply: process {rank.process.pid} alive ({process_state(rank.process.pid)})"
            )
        rank.log.flush()
        logs = [(rank.out_path, tail(rank.out_path))]
        if rank.nccl_path.exists():
            logs.append((rank.nccl_path, tail(rank.nccl_path)))
        return RankProblem(rank.rank, state, logs)

    def nccl_log(self) -> NcclLog:
        for rank in self._ranks:
            rank.log.flush()
        return parse_files(sorted(self.spec.directory.glob(nccl_log_name("*"))))

    def close(self) -> None:
        """Ask every rank to leave; whatever has not gone after a grace period is killed."""
        if self.broken is None:
            for rank in self._ranks:
                rank.send({"op": "exit", "id": -1})
            deadline = time.monotonic() + _EXIT_GRACE_S
            for rank in self._ranks:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    rank.process.wait(timeout=max(deadline - time.monotonic(), 0.01))
        self.kill()

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        for rank in self._ranks:
            if rank.process.poll() is None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(rank.process.pid, signal.SIGKILL)
        for rank in self._ranks:
            with contextlib.suppress(subprocess.TimeoutExpired):
                rank.process.wait(timeout=10)
            for close in (rank.commands.close, rank.log.close):
                with contextlib.suppress(OSError):
                    close()
            with contextlib.suppress(OSError):
                os.close(rank.results_fd)
