"""Who is where in a set of NCCL logs: communicators joined across processes, the NCCL node
of every process (NCCL_HOSTID, else the host name), and which connections stay on one node
or cross nodes. Read by the judges and by replay (the recorded world's ranks and nodes)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from .cite import quote
from .nccl_log import Comm, Connection, Fact, NcclLog, Process, ProcessLog


@dataclass
class CommGroup:
    """One communicator across all processes that logged it."""

    key: str
    nranks: int
    members: dict[int, ProcessLog] = field(default_factory=dict)
    comms: dict[int, Comm] = field(default_factory=dict)

    @property
    def missing(self) -> list[int]:
        return [r for r in range(self.nranks) if r not in self.members]


def comm_groups(log: NcclLog) -> list[CommGroup]:
    """Communicators joined across processes by commId (else by size and creation order);
    the largest first."""
    groups: dict[str, CommGroup] = {}
    for proc in log.processes.values():
        for index, comm in enumerate(proc.comms):
            key = comm.comm_id or f"{comm.nranks} ranks, communicator #{index + 1}"
            group = groups.setdefault(key, CommGroup(key, comm.nranks))
            group.members[comm.rank] = proc
            group.comms[comm.rank] = comm
    return sorted(groups.values(), key=lambda g: (-g.nranks, g.key))


class Topology:
    """Which node each rank's process is on, for classifying connections."""

    def __init__(self, log: NcclLog) -> None:
        self.log = log
        self.groups = comm_groups(log)
        self._peers: dict[tuple[Process, int, int], tuple[str, str | None]] = {}

    def nodes(self, conn: Connection) -> tuple[str, str | None]:
        """(node of the printing rank, node of its peer or None when the peer's log is absent).
        Senders print P2P/SHM/NET [send] lines; NET [receive] lines come from the receiver."""
        mine = conn.printed_by
        other = conn.src if mine == conn.dst else conn.dst
        key = (conn.process, mine, other)
        if key not in self._peers:
            proc = self.log.processes.get(conn.process)
            here = proc.node if proc else conn.process.host
            there: str | None = None
            for group in self.groups:
                if group.members.get(mine) is proc:
                    peer = group.members.get(other)
                    there = peer.node if peer else None
                    break
            self._peers[key] = (here, there)
        return self._peers[key]

    def split(self) -> tuple[list[Connection], list[Connection], list[Connection]]:
        """Connections between ranks on one node, on two nodes, and to ranks without a log."""
        same, cross, unknown = [], [], []
        for conn in self.log.connections:
            if conn.transport == "COLLNET":
                cross.append(conn)
                continue
            here, there = self.nodes(conn)
            if there is None:
                unknown.append(conn)
            elif here == there:
                same.append(conn)
            else:
                cross.append(conn)
        return same, cross, unknown


def env_facts(log: NcclLog, names: Iterable[str]) -> list[str]:
    """'NCCL_X set by environment to Y' lines for these variables, one per distinct value."""
    seen: dict[tuple[str, str], Fact] = {}
    for proc in log.processes.values():
        for name in names:
            fact = proc.env.get(name)
            if fact is not None:
                seen.setdefault((name, fact.value), fact)
    return [
        quote(f"{name} set by environment to {value}", fact.where)
        for (name, value), fact in seen.items()
    ]


def connections(conns: Iterable[Connection]) -> list[Connection]:
    """One line per connection: NET connections are logged by both ends ([send], [receive]);
    every other transport only by the sender (and SHM lines carry no connIndex to merge on)."""
    seen: set[tuple[int, int, int, int | None]] = set()
    unique = []
    for conn in conns:
        if conn.transport == "NET":
            key = (conn.src, conn.dst, conn.channel, conn.conn)
            if key in seen:
                continue
            seen.add(key)
        unique.append(conn)
    return unique


def transport_counts(conns: Iterable[Connection]) -> str:
    counts = Counter(c.detail for c in connections(conns))
    return ", ".join(f"{detail}×{n}" for detail, n in counts.most_common())


def pairs_text(pairs: Sequence[tuple[int, int]]) -> str:
    shown = ", ".join(f"{a}->{b}" for a, b in pairs[:8])
    return shown + (f" and {len(pairs) - 8} more" if len(pairs) > 8 else "")
