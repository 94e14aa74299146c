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
from dataclasses import dataclass
from typing import Any, ClassVar

PROTOCOL = "gpufabric-rank"
VERSION = 1


class ProtocolError(ValueError):
    """A line that is not a message of this protocol and version; the text says why."""


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    uuid: str
    pci_bus_id: str | None
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
    times_ms: tuple[float, ...] = ()
    median_ms: float | None = None  # None: nothing was timed
    checked: int = 0  # result elements compared (0: not verified)
    mismatches: int = 0
    first_mismatch: FirstMismatch | None = None
    recorded: str | None = None  # a replayed result: where it was recorded


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
    answers it with nothing)."""

    kind: ClassVar[str] = "job"
    id: int
    collective: str
    nbytes: int
    dtype: str
    warmup: int
    iters: int
    verify: bool
    purpose: str = "measure"


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
    cls.kind: cls for cls in (Join, StoreReady, Rendezvous, Ready, Job, Result, Failed, Exit)
}
# Nested records by field name (messages are flat apart from these).
_NESTED: dict[str, type[Any]] = {
    "hello": RankHello,
    "result": JobResult,
    "device": DeviceInfo,
    "first_mismatch": FirstMismatch,
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
    values: dict[str, Any] = {}
    for spec in dataclasses.fields(cls):
        if spec.name not in data:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ProtocolError(f"{getattr(cls, 'kind', cls.__name__)}: no field {spec.name!r}")
            continue
        value = data[spec.name]
        nested = _NESTED.get(spec.name)
        if nested is not None and isinstance(value, dict):
            value = _build(nested, value)
        elif isinstance(value, list):
            value = tuple(value)
        values[spec.name] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ProtocolError(f"{cls.__name__}: {exc}") from None


@dataclass
class LineBuffer:
    """Bytes from a stream in, complete lines out."""

    data: bytes = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self.data += chunk
        *complete, self.data = self.data.split(b"\n")
        return [line for line in complete if line.strip()]
