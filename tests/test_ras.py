"""NCCL RAS answers (evidence/ras.py) from a real 2 × H200 run (tests/data/ras)."""

from __future__ import annotations

import json
import socket
import textwrap
import threading
from pathlib import Path

import pytest

from pytest_gpufabric.evidence.ras import (
    hang_lines,
    never_arrived,
    parse_json,
    parse_text,
    query,
)

RAS = Path(__file__).parent / "data" / "ras"
PIDS = json.loads((RAS / "ranks.json").read_text())["pids"]


def test_a_healthy_job_is_ok_and_names_nobody() -> None:
    status = parse_text((RAS / "healthy-text.txt").read_text())
    assert status.nccl_version == "2.28.9"
    assert status.groups == [(0, "RUNNING", "OK")]
    assert status.ok
    assert never_arrived(status) == []


def test_a_rank_that_never_launched_the_collective_is_named_with_gpu_process_and_node() -> None:
    status = parse_text((RAS / "lagging-text.txt").read_text())
    assert status.groups == [(0, "RUNNING", "MISMATCH")]
    assert not status.ok
    (issue,) = status.issues
    assert (issue.kind, issue.communicator) == ("MISMATCH", "4c58ded14ec687fd")
    assert [(r.rank, r.operation, r.gpu, r.pid) for r in issue.launched] == [
        (0, 6, 0, PIDS[0]),
        (1, 5, 1, PIDS[1]),
    ]
    assert never_arrived(status) == [
        f"rank 1 (GPU 1, process {PIDS[1]} on node 192.0.2.2) launched up to operation 5, the "
        "others up to 6: it never arrived (NCCL RAS MISMATCH, communicator 4c58ded14ec687fd)"
    ]


def test_every_rank_answers_for_the_whole_job() -> None:
    zero = parse_text((RAS / "lagging-text.txt").read_text())
    one = parse_text((RAS / "lagging-rank1-text.txt").read_text())
    assert never_arrived(zero) == never_arrived(one)


def test_the_json_form_carries_the_same_counts() -> None:
    data = parse_json((RAS / "lagging-json.txt").read_text())
    assert data["nccl_version"] == "2.28.9"
    (comm,) = data["communicators"]
    counts = [r["collective_counts"]["AllReduce"] for r in comm["ranks"]]
    assert counts == [6, 5]
    assert comm["missing_ranks_count"] == 0


def test_missing_commas_of_nccl_2_28_9_are_put_back() -> None:
    broken = '{"missing_ranks": [{"rank": 3}\n      {"rank": 4}]}'
    assert parse_json("SERVER PROTOCOL 2\nOK\n" + broken) == {
        "missing_ranks": [{"rank": 3}, {"rank": 4}]
    }


def test_a_listener_that_never_answers_is_an_error_not_an_empty_status() -> None:
    """What a shared port held by a stopped process did (shared-port-stopped-text.txt is
    that real, empty answer): here a real listener that accepts and says nothing."""
    assert (RAS / "shared-port-stopped-text.txt").read_text() == ""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with pytest.raises(OSError, match=r"did not answer within 1 s \(a stopped process"):
            query("127.0.0.1", server.getsockname()[1], timeout=1.0)


def test_the_client_says_when_nothing_listens() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(ConnectionRefusedError):
        query("127.0.0.1", port, timeout=1.0)


class Replayer:
    """A listener that answers each connection with the next recorded RAS answer (None: says
    nothing, as a stopped process holding a shared port did)."""

    def __init__(self, answers: list[str | None]) -> None:
        self.answers = answers
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for answer in self.answers:
            conn, _ = self.server.accept()
            if answer is None:
                self.held.append(conn)
                continue
            with conn:
                while conn.recv(4096):
                    pass
                conn.sendall(answer.encode())

    def close(self) -> None:
        self.thread.join(timeout=5)
        for conn in self.held:
            conn.close()
        self.server.close()


def test_a_hang_names_the_rank_that_never_arrived() -> None:
    replayer = Replayer([(RAS / "lagging-text.txt").read_text()])
    lines = hang_lines(f"127.0.0.1:{replayer.port}", PIDS, timeout=2.0)
    replayer.close()
    assert lines == [f"NCCL RAS: rank 1 (GPU 1, process {PIDS[1]} on node 192.0.2.2) launched "
                     "up to operation 5, the others up to 6: it never arrived (NCCL RAS "
                     "MISMATCH, communicator 4c58ded14ec687fd)"]  # fmt: skip


def test_a_stopped_process_on_a_shared_port_is_asked_again() -> None:
    replayer = Replayer([None, (RAS / "lagging-text.txt").read_text()])
    lines = hang_lines(f"127.0.0.1:{replayer.port}", PIDS, attempts=2, timeout=1.0)
    replayer.close()
    assert lines[0].startswith("NCCL RAS: rank 1 (GPU 1,")


def test_equal_counts_mean_a_stall_in_transit_and_other_jobs_are_not_ours() -> None:
    healthy = Replayer([(RAS / "healthy-text.txt").read_text()])
    assert hang_lines(f"127.0.0.1:{healthy.port}", PIDS, timeout=2.0) == [
        "NCCL RAS: every rank launched the same operations: the collective stalls in transit "
        "(a link or a peer that does not progress), no rank is missing"
    ]
    healthy.close()
    other = Replayer([(RAS / "lagging-text.txt").read_text()])
    (line,) = hang_lines(f"127.0.0.1:{other.port}", [1, 2], timeout=2.0)
    other.close()
    assert "answered for other processes" in line
    assert "give each run its own NCCL_RAS_ADDR" in line


def test_no_ras_says_so_in_one_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (line,) = hang_lines(f"127.0.0.1:{port}", PIDS, attempts=2, timeout=0.5)
    assert line.startswith("NCCL RAS: no answer in 2 attempts (")
    assert hang_lines("nonsense", PIDS) == [
        "NCCL RAS: cannot read the address 'nonsense' (NCCL_RAS_ADDR)"
    ]


def test_a_stopped_rank_is_named_from_incomplete_data() -> None:
    """The real failure of a job whose rank 1 was stopped (SIGSTOP) before an all_reduce, on
    2 × H200 with a 10 s deadline: the RAS block as the failure message printed it."""
    log = (RAS / "deadline-stopped-rank.log").read_text()
    assert "NCCL RAS:" in log
    block = textwrap.dedent(log.split("NCCL RAS:\n", 1)[1].split("---", 1)[0])
    status = parse_text(block)
    (issue,) = status.issues
    assert issue.kind == "INCOMPLETE"
    assert never_arrived(status) == [
        "rank 1 (GPU 1, process 608 on node 192.0.2.2) sent no data: its process does not "
        "respond (stopped, frozen or dead) (NCCL RAS INCOMPLETE, communicator 7278f0a645a642eb)"
    ]
    assert "rank 1: no reply: process 608 alive (stopped)" in log
