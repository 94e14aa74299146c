"""Why ranks failed, in one line each, with a remedy: a classification of what failed ranks
reported (their exception and traceback, or the controller's state of a silent rank) and of
the last lines of their logs.

A rank's own cause is recognised by the real message texts of NCCL, PyTorch, gloo and CUDA
(each pattern says where its text comes from). A rank whose error only says that a peer went
away (a connection reset, a store that stopped answering, a wait for rank 0's NCCL id, a
timeout while another rank died) failed *because another rank failed*; :func:`classify` says
which. Nothing here imports torch or pytest, or reads a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

QUOTE_CHARS = 240  # an evidence line is cut to this many characters


@dataclass(frozen=True)
class Evidence:
    text: str  # the line, stripped
    path: str | None = None  # the log it is in; None: the rank's reported error
    line: int | None = None  # its number in the text that was searched (1-based)


@dataclass(frozen=True)
class Cause:
    name: str  # "socket_ifname", "shm", ... (the patterns below)
    cause: str  # one line: what went wrong
    remedy: str  # one line: what to do about it
    evidence: Evidence | None = None


@dataclass(frozen=True)
class RankText:
    """What is known of one failed rank."""

    rank: int
    error: str  # its exception and traceback, or the controller's state of a silent rank
    logs: Sequence[tuple[str | Path, str]] = ()  # (file, its last lines)
    ended: bool = False  # its process ended without reporting an error (killed, crashed)


@dataclass(frozen=True)
class Verdict:
    rank: int
    cause: Cause | None = None  # its own cause, if recognised
    after: tuple[int, ...] = ()  # it failed because these ranks failed
    symptom: Evidence | None = None  # the line saying it lost a peer or waited in vain


Explain = Callable[[re.Match[str], str], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Pattern:
    name: str
    regex: re.Pattern[str]
    explain: Explain  # (cause, remedy) from the match and all of the rank's text; None: not it


def _fixed(cause: str, remedy: str) -> Explain:
    return lambda match, text: (cause.format(*match.groups()), remedy)


def setting(variable: str, text: str) -> str | None:
    """A variable's value as NCCL logs it: "NCCL_SOCKET_IFNAME set by environment to eth0"
    (src/misc/socket.cc), "NCCL_NET_PLUGIN set by environment to ofi" (src/plugin/net.cc)."""
    found = re.findall(rf"\b{variable} set (?:by environment )?to (\S+?)\.?$", text, re.M)
    return found[-1] if found else None


def _ifname_remedy(variable: str) -> str:
    return f"set {variable} to an interface that every node has (`ip -br addr`), or unset it"


def _nccl_ifname(match: re.Match[str], text: str) -> tuple[str, str] | None:
    value = setting("NCCL_SOCKET_IFNAME", text)
    if value is None and "family" in match.group(0):
        return None  # alone, that message has other causes too (NVIDIA/nccl#1267)
    named = f"NCCL_SOCKET_IFNAME={value}" if value else "NCCL_SOCKET_IFNAME (or none is up)"
    cause = f"no network interface matches {named}: NCCL has no socket to bootstrap with"
    return cause, _ifname_remedy("NCCL_SOCKET_IFNAME")


def _gloo_ifname(match: re.Match[str], text: str) -> tuple[str, str]:
    cause = f"no network interface matches GLOO_SOCKET_IFNAME={match.group(1)}: gloo found none"
    return cause, _ifname_remedy("GLOO_SOCKET_IFNAME")


SHM_REMEDY = (
    "give the ranks a larger /dev/shm (Docker: --shm-size=1g or more; Kubernetes: an emptyDir "
    "{medium: Memory} volume mounted at /dev/shm); the host check test_host[shm] measures it"
)


def _shm(match: re.Match[str], text: str) -> tuple[str, str]:
    size = re.search(r"\(size (\d+)\)| to (\d+) bytes", text)
    of = f" of {int(size.group(1) or size.group(2)):,} bytes" if size else ""
    full = re.search(r"No space left on device|failed to extend|fallocate", text)
    why = "/dev/shm is full or too small" if full else "/dev/shm refused it"
    return f"{why}: NCCL could not create a shared memory segment{of} there", SHM_REMEDY


def _net(match: re.Match[str], text: str) -> tuple[str, str]:
    if match.group(1):
        cause = f"NCCL has no network {match.group(1)!r}: NCCL_NET names one no plugin offers"
    else:
        cause = "NCCL initialised no network plugin (the one NCCL_NET or NCCL_NET_PLUGIN names)"
    # src/plugin/plugin_open.cc: "NET/Plugin: Could not find: <names>. Using internal network
    # plugin." (2.22+); older "No plugin found (<name>)". The default name alone is normal.
    found = (
        r"NET/Plugin ?:.*?(?:Could not find: ?(.+?)(?:\. Using .*)?|No plugin found \((.+?)\).*)$"
    )
    missing = re.findall(found, text, re.M)
    names = [n.strip() for pair in missing for n in pair if n and n.strip() != "libnccl-net.so"]
    plugin = names[-1] if names else setting("NCCL_NET_PLUGIN", text)
    if plugin:
        cause += f"; the plugin {plugin} did not load"
    # aws/aws-ofi-nccl nccl_net_ofi_create_plugin(): the last line of its failed start.
    ofi = re.findall(r"NET/OFI (aws-ofi-nccl initialization failed|No eligible providers .*)", text)
    if ofi:
        cause += f"; aws-ofi-nccl: {ofi[-1].strip()}"
    remedy = (
        "install the network plugin (libnccl-net*.so, e.g. aws-ofi-nccl) where the loader finds "
        "it (LD_LIBRARY_PATH, or NCCL_NET_PLUGIN=<path>), or unset NCCL_NET and NCCL_NET_PLUGIN"
    )
    return cause, remedy


GPU_REMEDY = (
    "run the ranks where the GPUs and the NVIDIA driver are visible (`nvidia-smi -L`; a "
    "container needs the GPUs passed in), at most one rank per visible GPU"
)
VERSION_REMEDY = "run one torch and one NCCL on every node (one container image)"


def _p(name: str, regex: str, explain: Explain) -> Pattern:
    return Pattern(name, re.compile(regex), explain)


# A rank's own cause; the first pattern that matches wins.
CAUSES: tuple[Pattern, ...] = (
    # NVIDIA/nccl src/bootstrap.cc bootstrapNetInit (a WARN in 2.4.8 and 2.28.9 alike; torch
    # repeats it after "Last error:", codefuse-ai/MFTCoder#31); "No usable ..." there with
    # NCCL_COMM_ID set.
    _p("socket_ifname", r"Bootstrap ?: no socket interface found", _nccl_ifname),
    _p("socket_ifname", r"No usable listening interface found", _nccl_ifname),
    # src/misc/socket.cc ncclSocketInit: what NCCL 2.27 said when NCCL_SOCKET_IFNAME matched
    # no interface (NVIDIA/nccl#1837).
    _p("socket_ifname", r"connecting to address .*with family \d+ is neither", _nccl_ifname),
    # pytorch/gloo gloo/transport/tcp/device.cc:84, GLOO_ENFORCE(ifa != nullptr, ...): the
    # interface torch's c10d takes from GLOO_SOCKET_IFNAME (captured here).
    _p("socket_ifname", r"ifa != nullptr\. Unable to find address for: (\S+)", _gloo_ifname),
    # NCCL src/misc/shmutils.cc ncclShmOpen, 2.12+ ("Error: failed to extend /dev/shm/nccl-X
    # to N bytes", "Error while creating shared memory segment /dev/shm/nccl-X (size N)", with
    # ", error: No space left on device (28)" from 2.22); src/include/shm.h before 2.12
    # ("Call to posix_fallocate failed : No space left on device", NVIDIA/nccl#290).
    _p(
        "shm",
        r"Error while creating shared memory segment|failed to extend /dev/shm/|"
        r"posix_fallocate failed",
        _shm,
    ),
    _p(
        "shm_shared",
        r"Error while attaching to shared memory segment",
        _fixed(
            "NCCL could not attach another rank's /dev/shm segment: the ranks of a node do not "
            "share one /dev/shm",
            "run the ranks of a node with one /dev/shm (one pod or container, or hostIPC); the "
            "host check test_host[shm_shared] compares them",
        ),
    ),
    # NCCL src/plugin/net.cc ncclNetInit: "Failed to initialize any NET plugin" (2.27+), and
    # "Error: network %s not found." (src/net.cc up to 2.25, src/plugin/net.cc in 2.26).
    _p("net_plugin", r"Error: network (.*?) not found\.|Failed to initialize any NET plugin", _net),
    # PyTorch c10/cuda/CUDACachingAllocator.cpp ("CUDA out of memory. Tried to allocate"),
    # CUDA's cudaErrorMemoryAllocation text through torch and NCCL's CUDACHECK (checks.h).
    _p(
        "cuda_oom",
        r"CUDA out of memory|Cuda failure (?:\d+ )?'out of memory'|CUDA error: out of memory",
        _fixed(
            "the GPU ran out of memory",
            "free the GPU (`nvidia-smi` lists the processes that hold it) or run smaller messages",
        ),
    ),
    # CUDA's text for cudaErrorDevicesUnavailable: "CUDA-capable device(s) is/are busy or
    # unavailable" (NVIDIA/nvidia-resiliency-ext#18), in older CUDA "all CUDA-capable devices
    # are busy or unavailable" (exclusive-process GPUs: BUTSpeechFIT/safe_gpu#1).
    _p(
        "cuda_busy",
        r"CUDA-capable device\(s\) is/are busy or unavailable"
        r"|all CUDA-capable devices are busy or unavailable",
        _fixed(
            "the GPU is busy or unavailable: another process holds it in exclusive-process "
            "compute mode, or it is in a bad state",
            "check `nvidia-smi` (its Compute M. column and processes) and stop what holds the "
            "GPU: an exclusive-process GPU takes one process",
        ),
    ),
    # CUDA's text for cudaErrorInvalidDevice: torch.cuda.set_device(LOCAL_RANK) beyond the
    # visible GPUs (microsoft/SimXNS#2).
    _p(
        "no_gpu",
        r"invalid device ordinal",
        _fixed(
            "the rank's GPU index is beyond the GPUs it can see (invalid device ordinal): more "
            "ranks than visible GPUs, or CUDA_VISIBLE_DEVICES hides them",
            GPU_REMEDY,
        ),
    ),
    # PyTorch's lazy CUDA init ("No CUDA GPUs are available"), CUDA's text for
    # cudaErrorNoDevice, c10/cuda/CUDAFunctions.cpp device_count_impl ("Found no NVIDIA
    # driver on your system. Please check that you have an NVIDIA GPU and installed a driver").
    _p(
        "no_gpu",
        r"No CUDA GPUs are available|no CUDA-capable device is detected|Found no NVIDIA driver",
        _fixed("the rank sees no CUDA GPU", GPU_REMEDY),
    ),
    # torch/cuda/__init__.py _lazy_init; an NCCL rank on torch's CPU wheel (captured here:
    # tests/data/failures/cpu-nccl-without-cuda).
    _p(
        "no_gpu",
        r"Torch not compiled with CUDA enabled|has no attribute '_cuda_setDevice'",
        _fixed(
            "the rank's torch is built without CUDA",
            "install a CUDA build of torch where the ranks run "
            "(`python -c 'import torch; print(torch.version.cuda)'`)",
        ),
    ),
    # NCCL src/init.cc initTransportsRank.
    _p(
        "nccl_version",
        r"Mismatched NCCL version detected : rank (\d+) version (\d+) rank (\d+) version (\d+)",
        _fixed(
            "the ranks run different NCCL versions: rank {0} has {1}, rank {2} has {3}",
            VERSION_REMEDY,
        ),
    ),
    _p(
        "duplicate_gpu",
        r"Duplicate GPU detected : rank (\d+) and rank (\d+) both on CUDA device (\w+)",
        _fixed(
            "ranks {0} and {1} use the same GPU ({2})",
            "give each rank its own GPU (LOCAL_RANK, CUDA_VISIBLE_DEVICES)",
        ),
    ),
)

# A rank that waited in vain: that is its cause only when no other rank failed for a reason
# of its own or died.
TIMEOUTS: tuple[Pattern, ...] = (
    # PyTorch torch/csrc/distributed/c10d/TCPStore.cpp: doWait ("wait timeout after 30000ms,
    # keys: ...", captured here), the server ("Timed out after 901 seconds waiting for
    # clients. 1/2 clients joined."), older versions ("Timeout waiting for key: ...",
    # pytorch/pytorch#82091; "Socket Timeout", c10d/Utils.hpp); c10d/socket.cpp ("The client
    # socket has timed out after 900s while trying to connect to (host, port)."); older
    # torch/distributed/distributed_c10d.py _store_based_barrier ("Timed out initializing
    # process group in store based barrier on rank ...").
    _p(
        "rendezvous_timeout",
        r"wait timeout after \d+ms|Timed out after \d+ seconds waiting for clients"
        r"|client socket has timed out after|Timeout waiting for key|Socket Timeout"
        r"|Timed out initializing process group in store based barrier",
        _fixed(
            "the rendezvous timed out: not every rank joined the store",
            "see why the other ranks did not get there (their states and logs); if start-up is "
            "only slow, raise --gpufabric-startup-timeout",
        ),
    ),
    # PyTorch c10d/ProcessGroupNCCL.cpp checkTimeout; pytorch/gloo tcp/unbound_buffer.cc.
    _p(
        "collective_timeout",
        r"Watchdog caught collective operation timeout|Timed out waiting \d+ms for (?:recv|send)",
        _fixed(
            "a collective did not complete within its timeout",
            "see which rank stopped taking part (the other ranks' states and logs) and the NCCL "
            "WARN lines",
        ),
    ),
)

# A rank that lost a peer: it failed because another rank failed.
PEER = re.compile(
    # strerror() through pytorch/gloo tcp/pair.cc ("Read error [addr]: Connection reset by
    # peer", captured here) and PyTorch c10d/Utils.hpp sendBytes/recvBytes (ECONNRESET, EPIPE)
    r"Connection reset by peer|Broken pipe"
    # gloo tcp/pair.cc at EOF; NCCL src/misc/socket.cc socketProgress
    r"|Connection closed by (?:remote )?peer"
    # PyTorch c10d/Utils.hpp recvBytes/sendBytes, under TCPStore (captured here)
    r"|[Ff]ailed to recv, got 0 bytes|[Ff]ailed to send, sent 0 bytes"
    # NCCL src/init.cc ncclGetErrorString(ncclRemoteError); PyTorch c10d/NCCLUtils names it
    r"|remote process exited or there was a network error|ncclRemoteError"
    # gloo tcp/unbound_buffer.cc: pairs closed because another operation timed out
    r"|Application timeout caused pair closure"
    # torch.distributed.DistNetworkError (c10/util/Exception.h), which PyTorch raises for the
    # socket errors above since pytorch/pytorch#108191
    r"|DistNetworkError"
)
# PyTorch c10d/ProcessGroupNCCL.cpp broadcastUniqueNCCLID ("retreiving" before torch 2.1):
# whatever the store then said, rank N never delivered its NCCL id.
WAITS_FOR = re.compile(
    r"is setting up NCCL communicator and retr(?:ie|ei)ving ncclUniqueId from \[(\d+)\]"
)
# PyTorch c10d/NCCLUtils ("..., NCCL version 2.21.5"); NCCL src/init.cc ("NCCL version
# 2.28.9+cuda13.0").
NCCL_VERSION = re.compile(r"NCCL version (\d+\.\d+\.\d+)")


def classify(ranks: Sequence[RankText]) -> list[Verdict]:
    """One verdict per rank, in order: its own cause, or the ranks it failed because of."""
    scans = {r.rank: _scan(r) for r in ranks}
    own = [n for n, s in scans.items() if s.kind == "cause"] or _version_split(scans)
    died = [r.rank for r in ranks if r.ended and scans[r.rank].kind is None]
    rest = [n for n, s in scans.items() if s.kind in (None, "timeout")]
    verdicts = []
    for rank in ranks:
        scan = scans[rank.rank]
        if scan.kind is None or scan.kind == "cause" or (scan.kind == "timeout" and not own + died):
            verdicts.append(Verdict(rank.rank, scan.cause))
            continue
        first = next((g for g in (own, died, rest if scan.kind == "peer" else []) if g), [])
        after = [n for n in first if n != rank.rank]
        waits = scan.waits_for
        if waits is not None and waits in scans and waits != rank.rank:
            after = [waits]
        verdicts.append(Verdict(rank.rank, None, tuple(after), scan.evidence))
    return verdicts


def versions_cause(versions: Mapping[int, str]) -> Cause | None:
    """A cause when the ranks said, as they joined, that they run different versions
    (``versions``: rank -> "torch 2.8.0, NCCL 2.27.3")."""
    if len(set(versions.values())) < 2:
        return None
    listed = "; ".join(f"rank {r}: {v}" for r, v in sorted(versions.items()))
    return Cause("versions", f"the ranks run different versions ({listed})", VERSION_REMEDY)


def ranks_text(ranks: Sequence[int]) -> str:
    return f"rank {ranks[0]}" if len(ranks) == 1 else "ranks " + ", ".join(map(str, ranks))


def head_lines(
    verdicts: Sequence[Verdict],
    extra: Sequence[Cause] = (),
    where: Callable[[Evidence], str] | None = None,
) -> list[str]:
    """The lines that open a failure message: each distinct cause with the ranks that have it,
    its remedy and the line it was recognised by (``where``: that line's file:line)."""
    grouped: dict[tuple[str, str], tuple[Cause, list[int]]] = {}
    for verdict in verdicts:
        if verdict.cause is not None:
            key = (verdict.cause.name, verdict.cause.cause)
            grouped.setdefault(key, (verdict.cause, []))[1].append(verdict.rank)
    lines = []
    for cause, ranks in grouped.values():
        lines.append(f"cause ({ranks_text(ranks)}): {cause.cause}")
        lines.append(f"remedy: {cause.remedy}")
        if cause.evidence is not None:
            seen = cause.evidence
            at = f"rank {ranks[0]}'s error" if seen.path is None else (where or _where)(seen)
            lines.append(f"evidence: {at}: {seen.text}")
    for cause in extra:
        lines += [f"cause: {cause.cause}", f"remedy: {cause.remedy}"]
    return lines


def rank_line(verdict: Verdict, state: str) -> str:
    """A rank's state without native frames, or that it failed because of other ranks (with
    the first line of its state)."""
    lines = [line for line in cut_native_frames(state).splitlines() if line.strip()]
    if verdict.after:
        return f"failed because {ranks_text(verdict.after)} failed ({lines[0] if lines else ''})"
    return "\n    ".join(lines)


# --- native frames -------------------------------------------------------------------------

# c10/util/Exception.cpp: what() ends with "Exception raised from <function> at <file>:<line>
# (most recent call first):" and "frame #N: <symbol> + 0x.. (0x.. in <library>)" lines;
# torchrun and Ray put "[rank0]:" or "(Worker pid=1)" before each line.
_HEADER = re.compile(
    r"^(?P<prefix>.{0,80}?)(?:Exception raised from \S+ at .*\(most recent call "
    r"first\):|C\+\+ CapturedTraceback:)\s*$"
)
_FRAME = re.compile(r"^.{0,80}?(?:frame #\d+: |<omitting python frames>)")
_NUMBERED = re.compile(r"^.{0,80}?#\s?\d+\s+\S")  # after a header: "#4 c10::Error::Error(...)"


def cut_native_frames(text: str) -> str:
    """``text`` with each C++ stack dump (its header and frame lines, or a run of frame lines)
    replaced by one line that says how many lines were cut."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        header = _HEADER.match(lines[i])
        if not header and not _FRAME.match(lines[i]):
            out.append(lines[i])
            i += 1
            continue
        j = i + 1
        while j < len(lines) and (_FRAME.match(lines[j]) or (header and _NUMBERED.match(lines[j]))):
            j += 1
        prefix = header.group("prefix") if header else ""
        out.append(f"{prefix}[{j - i} line{'s' if j - i > 1 else ''} of native frames cut]")
        i = j
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


# --- scanning ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scan:
    kind: str | None = None  # "cause", "timeout", "peer"
    cause: Cause | None = None
    evidence: Evidence | None = None
    waits_for: int | None = None  # the rank whose NCCL id it waited for
    nccl: str | None = None  # the NCCL version its text names


def _scan(rank: RankText) -> _Scan:
    sources = [(str(path), text) for path, text in rank.logs] + [(None, rank.error)]
    everything = "\n".join(text for _, text in sources)
    versions = NCCL_VERSION.findall(everything)
    nccl = versions[-1] if versions else None
    for pattern in CAUSES:
        for evidence, match in _find(pattern.regex, sources):
            explained = pattern.explain(match, everything)
            if explained is not None:
                cause = Cause(pattern.name, *explained, evidence)
                return _Scan("cause", cause, evidence, nccl=nccl)
    waiting = _find(WAITS_FOR, sources)
    if waiting:
        evidence, match = waiting[0]
        return _Scan("peer", None, evidence, int(match.group(1)), nccl)
    for pattern in TIMEOUTS:
        timed_out = _find(pattern.regex, sources)
        if timed_out:
            evidence, match = timed_out[0]
            cause = Cause(pattern.name, *(pattern.explain(match, everything) or ("", "")), evidence)
            return _Scan("timeout", cause, evidence, nccl=nccl)
    lost = _find(PEER, sources)
    return _Scan("peer", None, lost[0][0], nccl=nccl) if lost else _Scan(nccl=nccl)


def _find(
    regex: re.Pattern[str], sources: Sequence[tuple[str | None, str]]
) -> list[tuple[Evidence, re.Match[str]]]:
    """The first line of each source that ``regex`` matches."""
    found = []
    for path, text in sources:
        for number, line in enumerate(text.splitlines(), 1):
            match = regex.search(line)
            if match:
                quoted = line.strip()[:QUOTE_CHARS]
                found.append((Evidence(quoted, path, number if path else None), match))
                break
    return found


def _version_split(scans: dict[int, _Scan]) -> list[int]:
    """When the ranks' texts name different NCCL versions, that is each one's cause."""
    named = {n: s.nccl for n, s in scans.items() if s.nccl}
    if len(set(named.values())) < 2:
        return []
    listed = ", ".join(f"rank {n} {v}" for n, v in sorted(named.items()))
    cause = Cause(
        "nccl_version", f"the ranks run different NCCL versions ({listed})", VERSION_REMEDY
    )
    for n in named:
        scans[n] = replace(scans[n], kind="cause", cause=cause)
    return sorted(named)


def _where(evidence: Evidence) -> str:
    return f"{evidence.path}:{evidence.line}" if evidence.line else str(evidence.path)
