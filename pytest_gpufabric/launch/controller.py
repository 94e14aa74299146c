"""The controller's end of the rank protocol (wire.py), shared by every launcher whose ranks
run somewhere as processes: one listening TCP socket, one authenticated connection per rank,
and a wait with a deadline that names the ranks that died, hung or failed.

The launcher says how its ranks are doing (:class:`RankWatch`: exited or not, the state of
a live one, the tail of its logs); this module knows nothing of processes or pods. Events
are handled on the calling thread with one selector, as pytest-xdist's controller loop does.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .causes import ranks_text
from .protocol import RankFailure, RankProblem
from .wire import (
    Begun,
    Exit,
    Failed,
    Job,
    JobResult,
    Join,
    LineBuffer,
    Message,
    ProtocolError,
    RankHello,
    Ready,
    Rendezvous,
    Result,
    StoreReady,
    decode,
    encode,
)

GRACE_AFTER_TROUBLE_S = 3.0  # after a death or an error, let the others report their side
SEND_TIMEOUT_S = 10.0  # a rank that does not take a message in this long is not listening
MAX_LINE_BEFORE_JOIN = 4096  # a Join is a few hundred bytes; a stranger gets no more
MAX_LINE = 16 << 20
STARTUP = "start-up (connect, import torch, rendezvous, join the process group)"


class RankWatch(Protocol):
    def exited(self, rank: int) -> str | None:
        """How the rank ended ("exited with code 1"), or None while it runs."""

    def describe(self, rank: int) -> str:
        """A running rank's state, e.g. "process 4242 alive (stopped)"."""

    def logs(self, rank: int) -> Sequence[tuple[Path, str]]:
        """(file, last lines) of the rank's output and NCCL log."""

    def hang_evidence(self, ranks: Sequence[int]) -> Sequence[str]:
        """What the launcher can find out about ``ranks`` that did not finish a job in time
        (NCCL RAS where it can reach it), as message lines; [] when nothing."""


@dataclass
class _Connection:
    sock: socket.socket
    buffer: LineBuffer = field(default_factory=LineBuffer)
    rank: int | None = None  # set once it joined
    closed: bool = False

    @property
    def who(self) -> str:
        return f"rank {self.rank}" if self.rank is not None else "a peer"

    def send(self, message: Message) -> bool:
        """Whole messages only: blocking (with a timeout) while it is sent, so a full socket
        buffer never cuts one in half; the selector reads without blocking."""
        try:
            self.sock.settimeout(SEND_TIMEOUT_S)
            self.sock.sendall(encode(message))
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                self.sock.setblocking(False)
        return True


class RankServer:
    """Accepts the ranks of one pool. ``bind`` is the address ranks connect to (127.0.0.1
    for local processes); the token in :attr:`token` must reach the ranks out of band (their
    environment)."""

    def __init__(self, pool: str, nranks: int, watch: RankWatch, bind: str = "127.0.0.1") -> None:
        self.pool = pool
        self.nranks = nranks
        self.watch = watch
        self.token = secrets.token_urlsafe(24)
        self._listener = socket.create_server((bind, 0))
        self._listener.setblocking(False)
        self.address = f"{bind}:{self._listener.getsockname()[1]}"
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._ranks: dict[int, _Connection] = {}
        self._rendezvous: Rendezvous | None = None
        self.hello: list[RankHello] = []
        self._begun: set[int] = set()  # ranks that began the current job
        self.refused: list[str] = []  # connections dropped: bad token, protocol, duplicate rank
        self.broken: str | None = None
        self._closed = False

    # --- start-up --------------------------------------------------------------------------

    def start(self, deadline_s: float) -> list[RankHello]:
        """Wait until every rank joined the process group; RankFailure otherwise."""

        def on_message(rank: int, message: Message) -> Message | None:
            if isinstance(message, StoreReady) and rank == 0 and self._rendezvous is None:
                self._rendezvous = Rendezvous(message.addr, message.port)
                for conn in self._ranks.values():
                    conn.send(self._rendezvous)
            elif isinstance(message, Ready) or (isinstance(message, Failed) and message.id == 0):
                return message
            return None

        replies = self._gather(STARTUP, deadline_s, on_message)
        self.hello = [r.hello for _, r in sorted(replies.items()) if isinstance(r, Ready)]
        return self.hello

    # --- jobs ------------------------------------------------------------------------------

    def run(self, job: Job, what: str, deadline_s: float) -> list[JobResult]:
        if self.broken is not None:
            raise RankFailure(self.pool, what, f"pool is down: {self.broken}", [])
        self._begun = set()
        for conn in self._ranks.values():
            conn.send(job)  # a dead rank shows up in _gather

        def on_message(rank: int, message: Message) -> Message | None:
            if isinstance(message, Begun) and message.id == job.id:
                self._begun.add(rank)
            if isinstance(message, (Result, Failed)) and message.id == job.id:
                return message
            return None

        replies = self._gather(what, deadline_s, on_message)
        return [r.result for r in (replies[rank] for rank in range(self.nranks))
                if isinstance(r, Result)]  # fmt: skip

    def say_goodbye(self) -> None:
        for conn in self._ranks.values():
            conn.send(Exit())

    # --- the loop --------------------------------------------------------------------------

    def _gather(
        self, what: str, deadline_s: float, on_message: Callable[[int, Message], Message | None]
    ) -> dict[int, Message]:
        """Handle events until every rank answered (``on_message`` returns its answer), a
        rank fails, or the deadline passes."""
        deadline = time.monotonic() + deadline_s
        replies: dict[int, Message] = {}
        trouble: float | None = None
        while len(replies) < self.nranks:
            now = time.monotonic()
            limit = deadline if trouble is None else min(deadline, trouble + GRACE_AFTER_TROUBLE_S)
            if now >= limit:
                break
            for key, _ in self._selector.select(timeout=min(limit - now, 0.25)):
                if key.data is None:
                    self._accept()
                else:
                    self._read(key.data, replies, on_message)
            if trouble is None and self._in_trouble(replies):
                trouble = time.monotonic()
        failed = [r for r in range(self.nranks) if not isinstance(replies.get(r), (Ready, Result))]
        if not failed:
            return replies
        self._fail(what, deadline_s, failed, replies, trouble is not None)
        raise AssertionError("unreachable")  # _fail raises

    def adopt(self, sock: socket.socket) -> None:
        """A rank connection made elsewhere (a stream the launcher opened and relays): it
        joins with the same Join and token as one that connected here."""
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _read(
        self,
        conn: _Connection,
        replies: dict[int, Message],
        on_message: Callable[[int, Message], Message | None],
    ) -> None:
        try:
            chunk = conn.sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        lines = conn.buffer.feed(chunk)
        limit = MAX_LINE if conn.rank is not None else MAX_LINE_BEFORE_JOIN
        if len(conn.buffer.data) > limit:
            self._refuse(conn, conn.who, f"a line longer than {limit} bytes")
            return
        for line in lines:
            try:
                message = decode(line)
            except ProtocolError as exc:
                self._refuse(conn, conn.who, exc)
                return
            if conn.rank is None:
                if not self._admit(conn, message):
                    return
                continue
            answer = on_message(conn.rank, message)
            if answer is not None:
                replies[conn.rank] = answer

    def _admit(self, conn: _Connection, message: Message) -> bool:
        if not isinstance(message, Join) or not hmac.compare_digest(
            message.token.encode(), self.token.encode()
        ):
            self._refuse(conn, "a peer", "first message is not a Join with this run's token")
            return False
        if not 0 <= message.rank < self.nranks or message.rank in self._ranks:
            self._refuse(conn, f"rank {message.rank}", "not a rank of this pool, or a duplicate")
            return False
        conn.rank = message.rank
        self._ranks[message.rank] = conn
        if self._rendezvous is not None:
            conn.send(self._rendezvous)
        return True

    def _refuse(self, conn: _Connection, who: str, why: object) -> None:
        self.refused.append(f"{who}: {why}")
        self._drop(conn)

    def _drop(self, conn: _Connection) -> None:
        if conn.closed:
            return
        conn.closed = True
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn.sock)
        conn.sock.close()

    def _in_trouble(self, replies: dict[int, Message]) -> bool:
        for rank in range(self.nranks):
            reply = replies.get(rank)
            if isinstance(reply, Failed):
                return True
            if reply is None and self.watch.exited(rank) is not None:
                return True
            if reply is None and rank in self._ranks and self._ranks[rank].closed:
                return True  # its connection closed: it cannot answer any more
        return False

    def _fail(
        self,
        what: str,
        deadline_s: float,
        failed: list[int],
        replies: dict[int, Message],
        after_trouble: bool,
    ) -> None:
        silent = [r for r in failed if r not in replies]
        dead = [r for r in silent if self.watch.exited(r) is not None]
        cut = [r for r in silent if r not in dead and r in self._ranks and self._ranks[r].closed]
        hung = [r for r in silent if r not in dead and r not in cut]
        # A job's ranks that never said they began it are stuck before the collective or
        # frozen: the others wait for them inside it (the start-up has no such report).
        never = [r for r in hung if r not in self._begun] if what != STARTUP else []
        hung = [r for r in hung if r not in never]
        errors = [r for r in failed if isinstance(replies.get(r), Failed)]
        parts = []
        if never:
            parts.append(f"{ranks_text(never)} never began it")
        if dead:
            parts.append(f"{ranks_text(dead)} died")
        if cut:
            parts.append(f"{ranks_text(cut)} lost the connection to the controller")
        if hung:
            within = "after the others failed" if after_trouble else f"within {deadline_s:g} s"
            waited = " (waiting in the collective)" if never else ""
            parts.append(f"{ranks_text(hung)} did not finish {within}{waited}")
        if errors:
            parts.append(f"{ranks_text(errors)} reported an error")
        summary = "; ".join(parts) + f" (of {self.nranks} ranks)"
        problems = [self._problem(r, replies.get(r)) for r in failed]
        self.broken = f"{what}: {summary}"
        notes = [f"connection refused: {note}" for note in self.refused]
        if (hung or never) and not after_trouble and what != STARTUP:  # RAS needs a communicator
            notes += self.watch.hang_evidence(never + hung)
        joined = self.hello or [r.hello for r in replies.values() if isinstance(r, Ready)]
        versions = {h.rank: f"torch {h.torch}" + (f", NCCL {h.nccl}" if h.nccl else "")
                    for h in joined}  # fmt: skip
        raise RankFailure(self.pool, what, summary, problems, notes, versions, tuple(never))

    def _problem(self, rank: int, reply: Message | None) -> RankProblem:
        logs = self.watch.logs(rank)
        if isinstance(reply, Failed):
            report = f"{reply.error}\n{reply.traceback}"
            return RankProblem(rank, f"error: {reply.error}", logs, report)
        ended = self.watch.exited(rank)
        if ended is not None:
            return RankProblem(rank, f"no reply: {ended}", logs, ended=True)
        if rank not in self._ranks:
            state = f"no reply: {self.watch.describe(rank)}, never connected to the controller"
        elif self._ranks[rank].closed:
            state = f"no reply: {self.watch.describe(rank)}, its connection closed"
        else:
            state = f"no reply: {self.watch.describe(rank)}"
        return RankProblem(rank, state, logs)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for key in list(self._selector.get_map().values()):  # every open connection
            if isinstance(key.data, _Connection):
                self._drop(key.data)
        self._selector.close()
        self._listener.close()
