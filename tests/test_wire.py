"""The rank protocol's messages: every type survives the wire, and what is not a message of
this protocol and version is refused with the reason."""

from __future__ import annotations

import pytest

from pytest_gpufabric.launch.wire import (
    MESSAGES,
    Begun,
    DeviceInfo,
    Exit,
    Failed,
    FirstMismatch,
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

HELLO = RankHello(
    3, "node7", "gpufabric-node1", 4242, "nccl", local_rank=3, world_size=4, torch="2.13.0",
    nccl="2.28.9", cuda="13.0", device=DeviceInfo("NVIDIA H200", "GPU-1f", "0000:19:00.0", 143771),
    shm_dev=25, import_s=1.5, init_s=2.25,
)  # fmt: skip
EXAMPLES: list[Message] = [
    Join("token", 3, 4242, "node7"),
    StoreReady("10.0.0.2", 41234),
    Rendezvous("10.0.0.2", 41234),
    Ready(HELLO),
    Job(9, "all_gather", 1 << 20, "bfloat16", 5, 20, True),
    Job(10, "sendrecv", 1 << 20, "bfloat16", 0, 1, False, "traffic"),
    Begun(9, 3),
    Result(9, 3, JobResult(1 << 20, (0.5, 0.25), 0.375, 524288, 1, FirstMismatch(7, -1.0, 6.0))),
    Failed(9, 3, "KeyError: 'int4'", "Traceback ..."),
    Exit(),
]


def test_every_message_type_has_an_example() -> None:
    assert {type(m) for m in EXAMPLES} == set(MESSAGES.values())


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.kind)
def test_messages_survive_the_wire(message: Message) -> None:
    line = encode(message)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode(line) == message


def test_line_buffer_splits_a_stream_at_newlines() -> None:
    data = b"".join(encode(m) for m in EXAMPLES)
    buffer, got = LineBuffer(), []
    for start in range(0, len(data), 7):  # arbitrary TCP segment boundaries
        got += [decode(line) for line in buffer.feed(data[start : start + 7])]
    assert got == EXAMPLES


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"hello\n", "not JSON"),
        (b'{"type": "join"}', "not a gpufabric-rank message"),
        (b'{"protocol": "gpufabric-rank", "v": 1, "type": "join"}',
         "message of gpufabric-rank/1, this side speaks gpufabric-rank/5 (the ranks and the "
         "controller run different pytest-gpufabric versions)"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "shout"}', "unknown message type 'shout'"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "join", "token": "t", "rank": 1}',
         "join: no field 'pid'"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "join", "token": 7, "rank": 1, "pid": 2, "host": "h"}',
         "Join.token: expected str, got int"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "join", "token": "t", "rank": "1", "pid": 2, "host": "h"}',
         "Join.rank: expected int, got str"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "join", "token": "t", "rank": true, "pid": 2, "host": "h"}',
         "Join.rank: expected int, got bool"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "ready", "hello": [1]}',
         "Ready.hello: expected an object, got list"),
        (b'{"protocol": "gpufabric-rank", "v": 5, "type": "result", "id": 1, "rank": 0, "result": {"nbytes": 4, "times_ms": "fast"}}',
         "JobResult.times_ms: expected a list, got str"),
        (b"[" * 100000 + b"]" * 100000, "not JSON: nested too deeply"),
    ],
)  # fmt: skip
def test_what_is_not_a_message_is_refused_with_the_reason(line: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode(line)
    assert str(info.value).startswith(problem)
