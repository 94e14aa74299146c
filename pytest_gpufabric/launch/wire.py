"""The rank protocol: typed, versioned messages between the controller (pytest) and each rank,
one JSON object per line over a TCP connection that the rank opens to the controller. The
first message on a connection is a :class:`Join` carrying the run's token; the controller
drops connections without it. Where the rank runs (a local process, a pod, another machine)
does not matter to the protocol.

Start-up: every rank sends Join; rank 0 starts the rendezvous store on a port of its own
choosing (bound, never guessed) and sends :class:`StoreReady`; the controller hands that
address to every rank in :class:`Rendezvous`; each rank joins the process group and sends
:class:`Ready` with what it sees (:class:`RankHello`). Then :class:`Job` in, :class:`Result`
or :class:`Failed` out, until :class:`Exit`.

A message of another major version is refused with a :class:`ProtocolError` naming both
versions (a container image and a CI runner with different pytest-gpufabric releases). No
torch here: the controller imports this module too.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar

PROTOCOL = "gpufabric-rank"
VERSION = 5  # 2: jobs name their timing method and repeats; results give each repeat;
# 3: a rank says when it begins a job (Begun), so a hang names the ranks that never arrived;
# 4: a job may run on groups of ranks at once (a parallel layout's TP, DP or pipeline groups);
# 5: and other groups' traffic beside it (a layout's DP groups while its TP groups run)


class ProtocolError(ValueError):
    """A line that is not a message of this protocol and version; the text says why."""


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    uuid: str
    pci_bus_id: str | None  # "00000000:19:00.0", as NVML writes it
    memory_mib: int


@dataclass(frozen=True)
class RankHello:
    """What a rank reports once it is in the process group (or what a recording says)."""

    rank: int
    host: str = ""
    node: str = ""  # NCCL's node: NCCL_HOSTID, else the host name
    pid: int = 0
    backend: str = ""
    local_rank: int | None = None
    world_size: int | None = None
    torch: str | None = None
    nccl: str | None = None
    cuda: str | None = None
    device: DeviceInfo | None = None
    shm_dev: int | None = None  # st_dev of the /dev/shm the rank sees (NCCL >= 2.24 compares)
    import_s: float | None = None
    init_s: float | None = None


@dataclass(frozen=True)
class FirstMismatch:
    index: int
    got: float
    want: float


@dataclass(frozen=True)
class JobResult:
    nbytes: int
    times_ms: tuple[float, ...] = ()  # per repeat: its loop's time divided by its iterations
    median_ms: float | None = None  # of times_ms; None: nothing was timed
    checked: int = 0  # result elements compared (0: not verified)
    mismatches: int = 0
    first_mismatch: FirstMismatch | None = None
    recorded: str | None = None  # a replayed result: where it was recorded
    method: str = ""  # how it was timed (rank/ops.py): "graph", "loop", "host"
    note: str = ""  # why the method differs from the one asked for
    warmup: int = 0  # warm-up calls made, and calls per timed loop (0: as the job asked;
    iters: int = 0  # a slow call gets shorter loops, rank/ops.py LOOP_BUDGET_S)
    beside_times_ms: tuple[float, ...] = ()  # per repeat: the traffic beside it (Job.beside)


@dataclass(frozen=True)
class Beside:
    """Traffic a job runs at the same time as its own, timed on its own: every rank of
    ``groups`` runs ``collective`` of ``nbytes`` on its group (a layout's TP groups while
    its DP groups reduce_scatter, as a training step's backward pass has them)."""

    collective: str
    nbytes: int
    groups: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class Message:
    kind: ClassVar[str] = ""


@dataclass(frozen=True)
class Join(Message):
    kind: ClassVar[str] = "join"
    token: str
    rank: int
    pid: int
    host: str


@dataclass(frozen=True)
class StoreReady(Message):
    kind: ClassVar[str] = "store_ready"
    addr: str
    port: int


@dataclass(frozen=True)
class Rendezvous(Message):
    kind: ClassVar[str] = "rendezvous"
    addr: str
    port: int


@dataclass(frozen=True)
class Ready(Message):
    kind: ClassVar[str] = "ready"
    hello: RankHello


@dataclass(frozen=True)
class Job(Message):
    """A collective to run; ``purpose`` "traffic" only makes NCCL connect its peers (a replay
    answers it with nothing). Timing as nccl-tests does it: ``warmup`` calls, then
    ``repeats`` loops of ``iters`` calls back to back, each loop timed as a whole;
    ``timing`` "graph" captures the loop once in a CUDA graph and replays it."""

    kind: ClassVar[str] = "job"
    id: int
    collective: str
    nbytes: int
    dtype: str
    warmup: int
    iters: int
    verify: bool
    purpose: str = "measure"
    repeats: int = 1
    timing: str = "loop"
    # Disjoint groups of global ranks covering the world, each running the collective on
    # its own at the same time (empty: the whole world); ``chain``: each group is a pipeline,
    # stage-to-stage send/recv both ways
    groups: tuple[tuple[int, ...], ...] = ()
    chain: bool = False
    beside: Beside | None = None


@dataclass(frozen=True)
class Begun(Message):
    """The rank took the job and is about to call the collective (a rank that never says so
    is stuck before it or frozen: it never arrived; the others wait in the collective)."""

    kind: ClassVar[str] = "begun"
    id: int
    rank: int


@dataclass(frozen=True)
class Result(Message):
    kind: ClassVar[str] = "result"
    id: int
    rank: int
    result: JobResult


@dataclass(frozen=True)
class Failed(Message):
    """A job (id 0: the start-up) raised on this rank."""

    kind: ClassVar[str] = "failed"
    id: int
    rank: int
    error: str
    traceback: str = ""


@dataclass(frozen=True)
class Exit(Message):
    kind: ClassVar[str] = "exit"


MESSAGES: dict[str, type[Message]] = {
    cls.kind: cls
    for cls in (Join, StoreReady, Rendezvous, Ready, Job, Begun, Result, Failed, Exit)
}


def encode(message: Message) -> bytes:
    body = {"protocol": PROTOCOL, "v": VERSION, "type": message.kind}
    body.update(dataclasses.asdict(message))
    return json.dumps(body, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes | str) -> Message:
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise ProtocolError(f"not JSON: {exc}") from None
    except RecursionError:
        raise ProtocolError("not JSON: nested too deeply") from None
    if not isinstance(data, dict) or data.get("protocol") != PROTOCOL:
        raise ProtocolError(f"not a {PROTOCOL} message")
    version = data.get("v")
    if version != VERSION:
        raise ProtocolError(
            f"message of {PROTOCOL}/{version}, this side speaks {PROTOCOL}/{VERSION} "
            "(the ranks and the controller run different pytest-gpufabric versions)"
        )
    cls = MESSAGES.get(str(data.get("type")))
    if cls is None:
        raise ProtocolError(f"unknown message type {data.get('type')!r}")
    message: Message = _build(cls, data)
    return message


def _build(cls: type[Any], data: dict[str, Any]) -> Any:
    """``cls`` from ``data``, every field checked against its type: a peer is not trusted."""
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"{getattr(cls, 'kind', cls.__name__)}: no field {spec.name!r}")
            continue
        values[spec.name] = _typed(data[spec.name], hints[spec.name], f"{cls.__name__}.{spec.name}")
    return cls(**values)


_HINTS: dict[type[Any], dict[str, Any]] = {}


def _hints(cls: type[Any]) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _typed(value: Any, hint: Any, where: str) -> Any:
    """``value`` as ``hint`` (int, float, str, bool, X | None, tuple[X, ...], a record)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = (a for a in args if a is not type(None))
        return _typed(value, inner, where)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ProtocolError(f"{where}: expected a list, got {type(value).__name__}")
        return tuple(_typed(v, args[0], where) for v in value)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ProtocolError(f"{where}: expected an object, got {type(value).__name__}")
        return _build(hint, value)  # type: ignore[arg-type]
    ok = (
        isinstance(value, (int, float)) and not isinstance(value, bool)
        if hint is float
        else isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    )
    if not ok:
        raise ProtocolError(f"{where}: expected {hint.__name__}, got {type(value).__name__}")
    return float(value) if hint is float else value


@dataclass
class LineBuffer:
    """Bytes from a stream in, complete lines out."""

    data: bytes = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self.data += chunk
        *complete, self.data = self.data.split(b"\n")
        return [line for line in complete if line.strip()]
