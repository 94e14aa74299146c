"""NCCL debug output (NCCL_DEBUG=INFO) as structured facts.

Reads any number of files of any origin: per-rank ``NCCL_DEBUG_FILE`` logs, or NCCL lines
mixed into a job's stdout with other prefixes (timestamps, ``[default0]:`` from torchrun,
kubectl). Every fact keeps the file and line it came from and the host/pid that printed it.
Formats from NCCL 2.18 to 2.30 (the INFO format strings in NVIDIA/nccl src/transport/p2p.cc,
shm.cc, net.cc, coll_net.cc and src/init.cc) and aws-ofi-nccl 1.7+ (the ``NET/OFI`` lines of
aws/aws-ofi-nccl src/nccl_ofi_net.cpp and src/platform-aws.cpp); a ``via`` line of unknown
shape is kept in ``unknown_via``, never dropped.

Speed matters (fleet jobs replay many logs; target >= 100 MB/s on 2 cores): lines are split
in C, a line is rejected by ``find`` and ``startswith`` at an offset (no slicing), the
``host:pid:tid [dev]`` prefix is parsed once per distinct prefix, and regexes only run on the
few line kinds that carry facts.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable
from pathlib import Path

from .nccl_facts import (
    Comm,
    Connection,
    Counted,
    Fact,
    NcclLog,
    OfiInit,
    Process,
    ProcessLog,
    Source,
    Warning_,
)

__all__ = [  # the records are re-exported: callers import a log and its parts from here
    "Comm", "Connection", "Counted", "Fact", "NcclLog", "OfiInit", "Process", "ProcessLog",
    "Source", "Warning_", "looks_like_nccl", "parse_files", "parse_text",
]  # fmt: skip

# --- line shapes ----------------------------------------------------------------------------

_PREFIX = re.compile(
    r"(?:^|[\s\]:])(?P<host>[^\s:\[\]]+):(?P<pid>\d+):(?P<tid>\d+) \[(?P<dev>-?\d+)\]"
    r"(?: (?P<where>.+))?$"
)
_HEAD = re.compile(
    r"Channel (\d+)(?:/(\d+))? : (\d+)\[(\d+)\] -> (\d+)\[(\d+)\](?: \[(send|receive)\])?$"
)
_P2P = re.compile(r"P2P/(CUMEM|IPC|MNNVL|direct pointer|indirect/\d+\[\d+\])(/read)?(/CE)?\s*$")
_SHM = re.compile(r"SHM/(direct|CE)(?:/(direct|CE))?\s*$")
_NET = re.compile(r"NET/([^/]+)/(\d+)(?:\((\d+)\))?(/GDRDMA)?(?:\(PCI\))?(/Shared)?\s*$")
# The three common shapes in one pass; anything else falls back to the detailed path below.
_CONNECTION = re.compile(
    r"Channel (\d+)(?:/(\d+))? : (\d+)\[(\d+)\] -> (\d+)\[(\d+)\](?: \[(send|receive)\])? via "
    r"((?:P2P/(CUMEM|IPC|MNNVL|direct pointer)(/read)?(/CE)?)"
    r"|(?:SHM/(direct|CE)(?:/(direct|CE))?)"
    r"|(?:NET/([^/]+)/(\d+)(?:\((\d+)\))?(/GDRDMA)?(?:\(PCI\))?(/Shared)?))\s*$"
)
_COLLNET = re.compile(
    r"CollNet (\d+)/(\d+) : (\d+) \[(send|receive)\] via "
    r"(COLLNET/([^/]+)/(\d+)(/GDRDMA)?(?:\(PCI\))?(/Shared)?)\s*$"
)
_VERSION = re.compile(r"NCCL version (\d+\.\d+\.\d+)([^+\s]*)\+cuda(\d+\.\d+)")
_SUMMARY = re.compile(
    r"comm (\S+) rank (\d+) nRanks (\d+) nNodes (\d+) localRanks (\d+) localRank (\d+) MNNVL (\d+)"
)
_INIT = re.compile(
    r"(?:(nccl\w+) )?comm (\S+) rank (\d+) nranks (\d+) cudaDev (-?\d+) nvmlDev (-?\d+) "
    r"busId ([0-9a-fA-F]+)(?: parent \S+)?(?: splitCount -?\d+)?(?: color -?\d+ key -?\d+)?"
    r"(?: ?commId (0x[0-9a-fA-F]+))? ?- Init (START|COMPLETE)"
)
_ENV = re.compile(r"(NCCL_[A-Z0-9_]+) set by environment to (.*?)\.?\s*$")
_PATTERN = re.compile(
    r"Pattern \d+, crossNic \d+, nChannels (\d+), bw [\d.]+/[\d.]+, type (\w+)/(\w+)"
)
_CHANNELS = re.compile(
    r"(\d+) coll channels, (?:\d+ collnet channels, )?(\d+) nvls channels(?:, (\d+) p2p channels)?"
)
_RINGS = re.compile(r"Channel 00/(\d+) :(?: \d+)+\s*$")  # rank 0's ring layout, not a connection
_NVLS = re.compile(r"NVLS multicast support is (not )?available on dev (\d+)")
_OFI_INIT = re.compile(r"NET/OFI Initializing aws-ofi-nccl (\S+)")
_OFI_LIBFABRIC = re.compile(r"NET/OFI Using Libfabric version (\d+\.\d+)")
_OFI_RUNNING = re.compile(r"NET/OFI Running on (\S+) platform")
_OFI_PROTOCOL = re.compile(r"NET/OFI Using transport protocol (SENDRECV|RDMA)")
_OFI_PROVIDER = re.compile(
    r"NET/OFI Selected [Pp]rovider is ([^,\s]+),? (?:fabric is (\S+) )?\(found (\d+) nics\)"
)
_OFI_FAILURE = re.compile(
    r"NET/OFI (aws-ofi-nccl initialization failed|Failed to initialize \S+ protocol|"
    r"Unable to find a protocol that worked\..*|No eligible providers were found|"
    r"OFI fi_getinfo\(\) call failed: .*|GDR disabled on GDR-supported instance type \S+|"
    r"Could not disable CUDA API usage for HMEM, disabling GDR|"
    r"EFA provider requires at least libfabric version 1\.22\.0\.|Initializing plugin failed)"
)
_PLUGIN_LOADED = re.compile(
    r"(?:NET/Plugin ?: Loaded net plugin (.+?) \(v\d+\)"
    r"|Successfully loaded external (?:network )?plugin (\S+))\s*$"
)

# Messages worth a closer look; every other INFO line is skipped after one C-level test.
_INTERESTING = (
    "Channel ", "CollNet ", "comm ", "nccl", "NCCL version", "NCCL_", "Using network",
    "NET/", "Successfully loaded", "Failed to initialize NET", "NVLS multicast", "Pattern ",
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9",  # "24 coll channels, ..."
)  # fmt: skip


class _Parser:
    def __init__(self) -> None:
        self.log = NcclLog()
        self._prefixes: dict[str, tuple[Process, int, str | None] | None] = {}
        self._last_comm: dict[Process, Comm] = {}

    def process(self, proc: Process, dev: int) -> ProcessLog:
        entry = self.log.processes.get(proc)
        if entry is None:
            entry = self.log.processes[proc] = ProcessLog(proc, cuda_dev=dev)
        return entry

    def prefix(self, text: str) -> tuple[Process, int, str | None] | None:
        try:
            return self._prefixes[text]
        except KeyError:
            match = _PREFIX.search(text)
            parsed = None
            if match:
                proc = Process(match["host"], int(match["pid"]))
                parsed = (proc, int(match["dev"]), match["where"])
            self._prefixes[text] = parsed
            return parsed

    def feed(self, text: str, path: Path) -> None:
        self.log.files.append(path)
        self.log.nbytes += len(text)
        lines = text.split("\n")
        self.log.lines += len(lines)
        interesting = _INTERESTING
        for number, line in enumerate(lines, 1):
            # One C-level search decides most lines; slicing every line would dominate the cost.
            k = line.find(" NCCL INFO ")
            if k >= 0:
                if line.startswith(interesting, k + 11):
                    parsed = self.prefix(line[:k])
                    if parsed is not None:
                        self.info(parsed[0], parsed[1], line[k + 11 :], Source(path, number))
            elif " NCCL WARN " in line:
                k = line.find(" NCCL WARN ")
                parsed = self.prefix(line[:k])
                if parsed is not None:
                    proc, dev, origin = parsed
                    message = line[k + 11 :].strip()
                    where = Source(path, number)
                    self.process(proc, dev)
                    self.log.warnings.append(Warning_(proc, origin or "", message, where))
                    if message.startswith("NET/OFI"):
                        self._ofi(proc, dev, message, where)
            elif line.startswith("NCCL version"):
                self._bare_version(line, Source(path, number))

    def _bare_version(self, line: str, where: Source) -> None:
        match = _VERSION.match(line)
        if match:
            self.log.bare_versions.append(Fact(match[1], where))

    def info(self, proc: Process, dev: int, message: str, where: Source) -> None:
        if message.startswith(("Channel ", "CollNet ")):
            if " via " in message:
                self._connection(proc, message, where)
            elif message.startswith("Channel 00/"):
                self._rings(proc, message, where)
            return
        entry = self.process(proc, dev)
        if message.startswith("comm ") or (message.startswith("nccl") and " - Init " in message):
            self._comm_line(entry, message, where)
        elif message.startswith("NCCL version"):
            match = _VERSION.match(message)
            if match:
                entry.nccl_version = Fact(match[1], where)
        elif message.startswith("NCCL_"):
            match = _ENV.match(message)
            if match:
                entry.env[match[1]] = Fact(match[2], where)
        elif message.startswith("Using network"):
            entry.networks.append(Fact(message[len("Using network") :].strip(), where))
        elif message.startswith("NET/OFI"):
            self._ofi(proc, entry.cuda_dev or 0, message, where)
        elif message.startswith(("NET/Plugin", "Successfully loaded")):
            match = _PLUGIN_LOADED.match(message)
            if match:
                entry.plugins_loaded.append(Fact(match[1] or match[2], where))
        elif message.startswith("Failed to initialize NET plugin"):
            entry.plugins_failed.append(Fact(message.rsplit(" ", 1)[-1], where))
        elif message.startswith("NVLS multicast"):
            match = _NVLS.match(message)
            if match:
                state = "not available" if match[1] else "available"
                entry.nvls_available = Fact(state, where)
        elif message.startswith("Pattern "):
            match = _PATTERN.match(message)
            if match:
                entry.graph_paths.append(Fact(f"{match[2]}/{match[3]}", where))
                comm = self._last_comm.get(proc)
                found = int(match[1])
                if comm is not None and (comm.searched is None or found > comm.searched.number):
                    comm.searched = Counted(found, Fact(message.strip(), where))
        elif " coll channels" in message:
            match = _CHANNELS.match(message)
            comm = self._last_comm.get(proc)
            if match and comm is not None:
                comm.nvls_channels = int(match[2])
                comm.coll_channels = Counted(int(match[1]), Fact(message.strip(), where))
                comm.p2p_channels = None if match[3] is None else int(match[3])

    def _rings(self, proc: Process, message: str, where: Source) -> None:
        match = _RINGS.match(message)
        comm = self._last_comm.get(proc)
        if match and comm is not None and comm.rings is None:
            comm.rings = Counted(int(match[1]), Fact(message.strip(), where))

    def _comm_line(self, entry: ProcessLog, message: str, where: Source) -> None:
        summary = _SUMMARY.match(message)
        if summary:
            comm = self._comm(entry, summary[1], int(summary[2]), int(summary[3]))
            comm.nnodes, comm.local_ranks = int(summary[4]), int(summary[5])
            comm.local_rank, comm.mnnvl = int(summary[6]), int(summary[7])
            comm.summary = where
            return
        init = _INIT.match(message)
        if init:
            comm = self._comm(entry, init[2], int(init[3]), int(init[4]))
            comm.cuda_dev, comm.nvml_dev, comm.bus_id = int(init[5]), int(init[6]), init[7]
            comm.comm_id = init[8] or comm.comm_id
            if init[9] == "COMPLETE":
                comm.init_complete = where

    def _comm(self, entry: ProcessLog, pointer: str, rank: int, nranks: int) -> Comm:
        for comm in entry.comms:
            if comm.comm == pointer:
                break
        else:
            comm = Comm(entry.process, pointer, rank, nranks)
            entry.comms.append(comm)
        self._last_comm[entry.process] = comm
        return comm

    def _connection(self, proc: Process, message: str, where: Source) -> None:
        if message.startswith("CollNet "):
            match = _COLLNET.match(message)
            if match is None:
                self.log.unknown_via.append(Fact(message, where))
                return
            rank = int(match[3])
            self.log.connections.append(
                Connection(proc, rank, -1, rank, -1, int(match[1]), int(match[2]), "COLLNET",
                           match[5], where, net=match[6], net_dev=int(match[7]),
                           gdr=bool(match[8]), shared=bool(match[9]), direction=match[4])
            )  # fmt: skip
            return
        fast = _CONNECTION.match(message)
        if fast is not None:
            self.log.connections.append(_connection(proc, fast, where))
            return
        head_text, _, detail = message.partition(" via ")
        head = _HEAD.match(head_text)
        if head is None:
            self.log.unknown_via.append(Fact(message, where))
            return
        detail = detail.strip()
        channel, conn = int(head[1]), None if head[2] is None else int(head[2])
        ends = (int(head[3]), int(head[4]), int(head[5]), int(head[6]))
        if detail.startswith("P2P/"):
            p2p = _P2P.match(detail)
            if p2p:
                mode = "indirect" if p2p[1].startswith("indirect") else p2p[1]
                self.log.connections.append(
                    Connection(proc, *ends, channel, conn, "P2P", detail, where,
                               p2p_mode=mode, read=bool(p2p[2]), copy_engine=bool(p2p[3]))
                )  # fmt: skip
                return
        elif detail.startswith("SHM/"):
            shm = _SHM.match(detail)
            if shm:
                copy_engine = "CE" in (shm[1], shm[2])
                self.log.connections.append(
                    Connection(
                        proc, *ends, channel, conn, "SHM", detail, where, copy_engine=copy_engine
                    )
                )
                return
        elif detail.startswith("NET/"):
            net = _NET.match(detail)
            if net:
                self.log.connections.append(
                    Connection(proc, *ends, channel, conn, "NET", detail, where,
                               net=net[1], net_dev=int(net[2]),
                               proxy=None if net[3] is None else int(net[3]),
                               gdr=bool(net[4]), shared=bool(net[5]), direction=head[7])
                )  # fmt: skip
                return
        self.log.unknown_via.append(Fact(message, where))

    def _ofi(self, proc: Process, dev: int, message: str, where: Source) -> None:
        entry = self.process(proc, dev)
        ofi = entry.ofi
        if ofi is None:
            ofi = entry.ofi = OfiInit()
        if match := _OFI_INIT.match(message):
            ofi.version = Fact(match[1], where)
        elif match := _OFI_LIBFABRIC.match(message):
            ofi.libfabric = Fact(match[1], where)
        elif match := _OFI_RUNNING.match(message):
            ofi.platform = Fact(match[1], where)
        elif match := _OFI_PROTOCOL.match(message):
            ofi.protocol = Fact(match[1], where)
        elif match := _OFI_PROVIDER.match(message):
            ofi.provider = Fact(match[1], where)
            ofi.fabric = Fact(match[2], where) if match[2] else None
            ofi.nics = int(match[3])
        elif match := _OFI_FAILURE.match(message):
            ofi.failures.append(Fact(match[1], where))


def _connection(proc: Process, m: re.Match[str], where: Source) -> Connection:
    g = m.groups()
    ends = (int(g[2]), int(g[3]), int(g[4]), int(g[5]))
    channel, conn, detail = int(g[0]), None if g[1] is None else int(g[1]), g[7]
    if g[8] is not None:
        return Connection(proc, *ends, channel, conn, "P2P", detail, where, g[8],
                          g[9] is not None, g[10] is not None)  # fmt: skip
    if g[11] is not None:
        return Connection(proc, *ends, channel, conn, "SHM", detail, where,
                          copy_engine="CE" in (g[11], g[12]))  # fmt: skip
    return Connection(proc, *ends, channel, conn, "NET", detail, where, net=g[13],
                      net_dev=int(g[14]), proxy=None if g[15] is None else int(g[15]),
                      gdr=g[16] is not None, shared=g[17] is not None, direction=g[6])  # fmt: skip


def parse_text(texts: Iterable[tuple[str, Path]]) -> NcclLog:
    parser = _Parser()
    # Hundreds of thousands of small records, none of them in a reference cycle: the cyclic
    # collector would only rescan them again and again (measured: a fifth of the parse time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        for text, path in texts:
            parser.feed(text, path)
    finally:
        if enabled:
            gc.enable()
    return parser.log


def parse_files(paths: Iterable[Path]) -> NcclLog:
    """Parse every file (undecodable bytes are replaced, never fatal)."""
    return parse_text((p.read_text(encoding="utf-8", errors="replace"), p) for p in paths)


def looks_like_nccl(text: str) -> bool:
    """True when ``text`` holds NCCL debug lines (replay recognises files by content)."""
    for marker in (" NCCL INFO ", " NCCL WARN "):
        k = text.find(marker)
        for _ in range(1000):  # prose may mention "NCCL INFO" before the first real line
            if k < 0:
                break
            start = text.rfind("\n", 0, k) + 1
            if _PREFIX.search(text[start:k]) is not None:
                return True
            k = text.find(marker, k + 1)
    return False
