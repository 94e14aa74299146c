"""What NCCL's debug output says, as records: processes, communicators, connections with
their transport, environment settings, aws-ofi-nccl facts and WARN lines, each with the file
and line it came from. nccl_log.py fills them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple


# Small immutable records are NamedTuples: built and hashed in C, once per interesting line.
class Source(NamedTuple):
    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Process(NamedTuple):
    host: str
    pid: int

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"


@dataclass(slots=True)  # not frozen: frozen dataclasses are slow to build, and there are many
class Connection:
    """One ``Channel ... via ...`` line: a connection as the printing rank set it up."""

    process: Process
    src: int
    src_dev: int
    dst: int
    dst_dev: int
    channel: int
    conn: int | None  # connIndex: 0 rings/trees, 1 send/recv; SHM lines print none
    transport: str  # P2P | SHM | NET | COLLNET
    detail: str  # what follows "via ", e.g. "P2P/CUMEM/read", "NET/AWS Libfabric/0/GDRDMA"
    where: Source
    p2p_mode: str | None = None  # CUMEM | IPC | MNNVL | direct pointer | indirect
    read: bool = False
    copy_engine: bool = False
    net: str | None = None
    net_dev: int | None = None
    proxy: int | None = None
    gdr: bool = False
    shared: bool = False
    direction: str | None = None  # send | receive (NET)

    @property
    def printed_by(self) -> int:
        """The rank whose log holds the line: the sender, except for NET [receive] lines."""
        return self.dst if self.direction == "receive" else self.src

    @property
    def text(self) -> str:
        conn = "" if self.conn is None else f"/{self.conn}"
        direction = f" [{self.direction}]" if self.direction else ""
        return (
            f"Channel {self.channel:02d}{conn} : {self.src}[{self.src_dev}] -> "
            f"{self.dst}[{self.dst_dev}]{direction} via {self.detail}"
        )


@dataclass(slots=True)
class Comm:
    """A communicator as one process saw it."""

    process: Process
    comm: str  # the pointer NCCL prints
    rank: int
    nranks: int
    comm_id: str | None = None  # shared by all ranks (Init START/COMPLETE of InitRank, 2.21+)
    nnodes: int | None = None
    local_ranks: int | None = None
    local_rank: int | None = None
    mnnvl: int | None = None
    cuda_dev: int | None = None
    nvml_dev: int | None = None
    bus_id: str | None = None
    summary: Source | None = None  # "comm ... nRanks ... nNodes ..." (2.20+)
    init_complete: Source | None = None
    nvls_channels: int | None = None
    # How many channels NCCL runs, and how many its graph search found paths for: fewer run
    # than found means a limit (NCCL_MAX_NCHANNELS, NCCL_MAX_CTAS) cut them.
    coll_channels: Counted | None = None  # "24 coll channels, ..., 32 p2p channels, ..."
    p2p_channels: int | None = None  # from the same line
    rings: Counted | None = None  # the first "Channel 00/24 : 0 1 2 3" (rank 0 only): 24
    searched: Counted | None = None  # the graph search of most channels ("Pattern ... nChannels")


class Fact(NamedTuple):
    """A value read from a line: a plugin name, a version, an environment setting."""

    value: str
    where: Source


class Counted(NamedTuple):
    """A number read from a line, and the line's message (to quote it)."""

    number: int
    line: Fact


@dataclass(slots=True)
class OfiInit:
    """aws-ofi-nccl as one process initialised it."""

    version: Fact | None = None
    libfabric: Fact | None = None
    platform: Fact | None = None  # "p4d.24xlarge" from "Running on ... platform"
    provider: Fact | None = None
    fabric: Fact | None = None
    nics: int | None = None
    protocol: Fact | None = None
    failures: list[Fact] = field(default_factory=list)


@dataclass(slots=True)
class ProcessLog:
    process: Process
    cuda_dev: int | None = None
    nccl_version: Fact | None = None
    env: dict[str, Fact] = field(default_factory=dict)  # "X set by environment to Y"
    plugins_loaded: list[Fact] = field(default_factory=list)  # external net plugins
    plugins_failed: list[Fact] = field(default_factory=list)
    networks: list[Fact] = field(default_factory=list)  # "Using network X"
    ofi: OfiInit | None = None
    nvls_available: Fact | None = None  # "available" / "not available"
    comms: list[Comm] = field(default_factory=list)
    graph_paths: list[Fact] = field(default_factory=list)  # "NVL/PIX" from graph search lines

    @property
    def node(self) -> str:
        """NCCL's idea of this process's node: NCCL_HOSTID when set, else the host name."""
        hostid = self.env.get("NCCL_HOSTID")
        return hostid.value if hostid else self.process.host


class Warning_(NamedTuple):
    process: Process
    origin: str  # NCCL's file:line or the plugin function that warned
    message: str
    where: Source


@dataclass
class NcclLog:
    files: list[Path] = field(default_factory=list)
    processes: dict[Process, ProcessLog] = field(default_factory=dict)
    connections: list[Connection] = field(default_factory=list)
    warnings: list[Warning_] = field(default_factory=list)
    unknown_via: list[Fact] = field(default_factory=list)
    bare_versions: list[Fact] = field(default_factory=list)  # 2.18-2.21 print it unprefixed
    lines: int = 0
    nbytes: int = 0

    @property
    def versions(self) -> set[str]:
        found = {p.nccl_version.value for p in self.processes.values() if p.nccl_version}
        return found | {f.value for f in self.bare_versions}

    def comms(self) -> list[Comm]:
        return [c for p in self.processes.values() for c in p.comms]
