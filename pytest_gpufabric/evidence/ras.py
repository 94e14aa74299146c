"""NCCL's RAS service (2.24+): who never arrived in a hung collective.

Every NCCL process listens for RAS clients on ``NCCL_RAS_ADDR`` (default localhost:28028):
one command per line (``CLIENT PROTOCOL 2``, ``TIMEOUT <s>``, ``SET FORMAT json``,
``VERBOSE STATUS``), plain text or JSON back, gathered by that process from the whole job.
A rank that has not launched the collective the others wait in shows as a MISMATCH of
operation counts with its GPU, process and node; a rank whose process is stopped shows as
INCOMPLETE, "Missing communicator data", with the same (tests/data/ras: real 2 × H200 captures,
validation/ras_capture.py and a job that missed its deadline). With one port shared by the
ranks (the default) the kernel hands a query to any of them (SO_REUSEPORT), and a stopped one
never answers (captured too): :func:`hang_lines` asks again from a new client port.

Pure parsing plus a small client; nothing here imports NCCL or torch.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

_ISSUE = re.compile(r"^#(\d+)-(\d+) \((\w+)\) ([A-Z_]+)\s*$")
_LAUNCHED = re.compile(
    r"^\s*Rank (\d+) has launched up to operation (\d+) -- GPU (\d+) managed by process "
    r"(\d+) on node (\S+)"
)
_MISSING = re.compile(r"^\s*Rank (\d+) -- GPU (\d+) managed by process (\d+) on node (\S+)")
_VERSION = re.compile(r"^NCCL version (\S+)")
_GROUP = re.compile(r"^\s*(\d+)\s+\d+\s+\d+\s+\d+\s+\d+\s+\d+\s+([A-Z]+)\s+([A-Z_,]+)\s*$")


@dataclass(frozen=True)
class LaunchedRank:
    rank: int
    operation: int  # the last operation it launched
    gpu: int
    pid: int
    node: str  # the bootstrap address NCCL knows the node by


@dataclass(frozen=True)
class RasIssue:
    kind: str  # MISMATCH, INCOMPLETE, DEAD, ...
    communicator: str  # its hash
    lines: tuple[str, ...]  # the block as RAS printed it
    launched: tuple[LaunchedRank, ...] = ()
    missing: tuple[LaunchedRank, ...] = ()  # INCOMPLETE: ranks that sent no data (operation -1)

    @property
    def behind(self) -> list[LaunchedRank]:
        """The ranks that launched fewer operations than the others (never arrived)."""
        if not self.launched:
            return []
        top = max(r.operation for r in self.launched)
        return [r for r in self.launched if r.operation < top]


@dataclass
class RasStatus:
    nccl_version: str | None = None
    groups: list[tuple[int, str, str]] = field(default_factory=list)  # (group, status, errors)
    issues: list[RasIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.groups) and all(err == "OK" for _, _, err in self.groups)


def parse_text(text: str) -> RasStatus:
    """``VERBOSE STATUS`` (or ``STATUS``) in RAS's text format."""
    status = RasStatus()
    block: list[str] = []
    head: re.Match[str] | None = None

    def close() -> None:
        if head is not None:
            launched = tuple(
                LaunchedRank(int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5])
                for line in block
                if (m := _LAUNCHED.match(line))
            )
            missing = tuple(
                LaunchedRank(int(m[1]), -1, int(m[2]), int(m[3]), m[4])
                for line in block
                if (m := _MISSING.match(line))
            )
            status.issues.append(RasIssue(head[4], head[3], tuple(block), launched, missing))

    for line in text.splitlines():
        if (m := _VERSION.match(line)) and status.nccl_version is None:
            status.nccl_version = m[1]
        elif m := _ISSUE.match(line):
            close()
            head, block = m, [line]
        elif head is not None and line.strip():
            block.append(line)
        elif head is not None:
            close()
            head, block = None, []
        elif m := _GROUP.match(line):
            status.groups.append((int(m[1]), m[2], m[3]))
    close()
    return status


def parse_json(text: str) -> dict[str, Any]:
    """``SET FORMAT json`` then ``VERBOSE STATUS`` (NCCL >= 2.28.7): the JSON object after
    the protocol lines. NCCL 2.28.9 can leave out the comma between two entries of
    ``missing_ranks``; it is put back before parsing."""
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON object in the RAS answer")
    body = re.sub(r"}(\s*){", r"},\1{", text[start:])
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("the RAS answer is not a JSON object")
    return data


def query(host: str, port: int, command: str = "VERBOSE STATUS", timeout: float = 5.0) -> str:
    """One client session with one NCCL process's RAS listener; OSError (refused, or no
    answer within ``timeout``: a stopped process) otherwise."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        request = f"CLIENT PROTOCOL 2\nTIMEOUT {max(int(timeout) - 1, 1)}\n{command}\n"
        try:
            sock.sendall(request.encode())
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the peer closed already: whatever it said is read below
            pass
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except TimeoutError:
            raise OSError(
                f"RAS at {host}:{port} did not answer within {timeout:g} s (a stopped process "
                "holds the port?)"
            ) from None
    answer = b"".join(chunks).decode(errors="replace")
    if not answer:
        raise OSError(f"RAS at {host}:{port} closed the connection without an answer")
    return answer


def never_arrived(status: RasStatus) -> list[str]:
    """One line per rank that had not launched the operation the others had, or that sent
    RAS no data at all (its process stopped, frozen or dead), as RAS saw it."""
    lines = []
    for issue in status.issues:
        for rank in issue.missing:
            lines.append(
                f"rank {rank.rank} (GPU {rank.gpu}, process {rank.pid} on node {rank.node}) "
                f"sent no data: its process does not respond (stopped, frozen or dead) (NCCL "
                f"RAS {issue.kind}, communicator {issue.communicator})"
            )
        ahead = max((r.operation for r in issue.launched), default=0)
        for rank in issue.behind:
            lines.append(
                f"rank {rank.rank} (GPU {rank.gpu}, process {rank.pid} on node {rank.node}) "
                f"launched up to operation {rank.operation}, the others up to {ahead}: it never "
                f"arrived (NCCL RAS {issue.kind}, communicator {issue.communicator})"
            )
    return lines


def hang_lines(
    addr: str, pids: Collection[int], *, attempts: int = 3, timeout: float = 3.0
) -> list[str]:
    """What RAS at ``addr`` ("host:port") says about a job of processes ``pids`` that missed
    its deadline, as lines for the failure message. A port shared by several processes may
    hand the query to a stopped one that never answers (SO_REUSEPORT): each attempt comes
    from a new client port, which the kernel may hand to another process."""
    host, _, port_text = addr.rpartition(":")
    host = host.strip("[]") or "localhost"
    try:
        port = int(port_text)
    except ValueError:
        return [f"NCCL RAS: cannot read the address {addr!r} (NCCL_RAS_ADDR)"]
    problem = ""
    for _ in range(max(attempts, 1)):
        try:
            answer = query(host, port, timeout=timeout)
        except OSError as exc:
            problem = str(exc)
            continue
        status = parse_text(answer)
        named = [r.pid for issue in status.issues for r in (*issue.launched, *issue.missing)]
        if named and not set(named) & set(pids):
            return [f"NCCL RAS at {addr} answered for other processes ({named}): another job "
                    "shares the port; give each run its own NCCL_RAS_ADDR"]  # fmt: skip
        lines = never_arrived(status)
        if lines:
            return [f"NCCL RAS: {line}" for line in lines]
        if status.ok:
            return [
                "NCCL RAS: every rank launched the same operations: the collective stalls in "
                "transit (a link or a peer that does not progress), no rank is missing"
            ]
        found = [line.strip() for issue in status.issues for line in issue.lines][:8]
        if found:
            return ["NCCL RAS:", *(f"  {line}" for line in found)]
        return [f"NCCL RAS at {addr} answered, but with no status of this job"]
    return [f"NCCL RAS: no answer in {attempts} attempts ({problem})"]
