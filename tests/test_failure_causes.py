"""Why ranks failed (launch/causes.py), from real texts only: failures provoked through the
local launcher on this CPU machine and error output quoted in public issues, all under
data/failures (its README says where each comes from, expected.json what each must give).
A new capture there needs only its files and an entry in expected.json."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from pytest_gpufabric.launch.causes import (
    RankText,
    Verdict,
    classify,
    cut_native_frames,
    versions_cause,
)
from pytest_gpufabric.launch.local import LocalLauncher, tail
from pytest_gpufabric.launch.protocol import PoolSpec, RankFailure, RankProblem

FAILURES = Path(__file__).parent / "data" / "failures"
EXPECTED: dict[str, dict[str, Any]] = json.loads((FAILURES / "expected.json").read_text())


def captures() -> list[str]:
    """Every capture: a folder with failure.json, or a quoted text under github/."""
    folders = [p.parent.name for p in FAILURES.glob("*/failure.json")]
    texts = [f"github/{p.name}" for p in (FAILURES / "github").glob("*.txt")]
    return sorted(folders + texts)


def replay(name: str) -> RankFailure:
    """The failure as the controller would raise it from what the capture holds: the ranks'
    states and reports, and the last lines of their logs as the local launcher reads them."""
    path = FAILURES / name
    if path.is_file():
        text = path.read_text()
        return RankFailure("default", "start-up", "rank 0 failed", [RankProblem(0, text, (), text)])
    record = json.loads((path / "failure.json").read_text())
    problems = []
    for rank in record["ranks"]:
        number = rank["rank"]
        report = path / f"rank{number}.report.txt"
        logs = [(log, tail(log)) for log in sorted(path.glob(f"rank{number}.*.log"))]
        text = report.read_text() if report.exists() else ""
        problems.append(RankProblem(number, rank["state"], logs, text, rank["ended"]))
    return RankFailure("default", record["what"], record["summary"], problems)


def outcome(verdict: Verdict) -> str | None:
    """A verdict as expected.json writes it."""
    if verdict.cause is not None:
        return verdict.cause.name
    if verdict.after:
        return "after:" + ",".join(map(str, verdict.after))
    return "peer" if verdict.symptom is not None else None


@pytest.mark.parametrize("name", captures())
def test_capture_is_classified_as_expected(name: str) -> None:
    assert name in EXPECTED, f"{name}: add what it must give to {FAILURES / 'expected.json'}"
    failure = replay(name)
    got = {str(v.rank): outcome(v) for v in failure.verdicts}
    assert got == EXPECTED[name]["ranks"]
    message = str(failure)
    for text in EXPECTED[name].get("says", []):
        assert text in message


def test_every_expectation_has_its_capture() -> None:
    assert sorted(EXPECTED) == captures()


def test_the_cause_opens_the_message_with_its_remedy_and_evidence() -> None:
    failure = replay("cpu-gloo-ifname-bogus0")
    lines = str(failure).splitlines()
    assert lines[0].startswith("rank pool 'default': start-up (connect, import torch, rendezvous")
    assert lines[1].startswith("  cause (ranks 0, 1): no network interface matches GLOO_SOCKET")
    assert lines[2].startswith("  remedy: set GLOO_SOCKET_IFNAME to an interface")
    # The evidence is quoted with the line of the whole log it is on (the tail starts later).
    log = FAILURES / "cpu-gloo-ifname-bogus0" / "rank0.out.log"
    quoted = f"  evidence: {log}:21: RuntimeError: [enforce fail at "
    assert lines[3].startswith(quoted)
    assert "Unable to find address for: bogus0" in log.read_text().splitlines()[20]
    assert failure.summary == "ranks 0, 1 reported an error (of 2 ranks)"
    assert failure.cause == "rank 0: no network interface matches GLOO_SOCKET_IFNAME=bogus0: " + (
        "gloo found none"
    )


def test_a_rank_that_lost_its_peer_names_the_rank_that_failed_instead_of_a_cause() -> None:
    failure = replay("cpu-gloo-killed-mid-job")
    text = str(failure)
    assert not [line for line in text.splitlines() if line.startswith(("  cause", "  remedy"))]
    assert "  rank 0: failed because rank 1 failed (error: RuntimeError: [" in text
    assert "  rank 1: no reply: exited on signal SIGKILL" in text
    assert failure.cause is None


def test_a_rank_waiting_for_rank_0s_nccl_id_failed_because_of_rank_0() -> None:
    """The shape of a bogus NCCL_SOCKET_IFNAME (the cause is on rank 0, rank 1 waited for its
    NCCL id), from two real quotes: rank 0's NCCL bootstrap and a rank waiting for rank 0."""
    bootstrap = (FAILURES / "github" / "pytorch-29482-bootstrap-warn.txt").read_text()
    waiting = (FAILURES / "github" / "verl-1611-waits-for-rank0.txt").read_text()
    verdicts = classify([RankText(0, bootstrap), RankText(1, waiting)])
    assert [outcome(v) for v in verdicts] == ["socket_ifname", "after:0"]
    symptom = verdicts[1].symptom
    assert symptom is not None
    assert "retrieving ncclUniqueId from [0]" in symptom.text


def test_a_timeout_while_another_rank_died_is_not_a_cause() -> None:
    watchdog = (FAILURES / "github" / "llamafactory-6269-watchdog-rank-prefix.txt").read_text()
    died = RankText(1, "no reply: exited on signal SIGKILL", ended=True)
    verdicts = classify([RankText(0, watchdog), died])
    assert [outcome(v) for v in verdicts] == ["after:1", None]


def quoted(name: str) -> str:
    return (FAILURES / "github" / name).read_text()


def test_native_frames_are_cut_and_the_message_kept() -> None:
    cut = cut_native_frames(quoted("verl-1611-waits-for-rank0.txt"))
    assert cut.splitlines() == [
        "(TaskRunner pid=1714137) torch.distributed.DistBackendError: [7] is setting up NCCL "
        "communicator and retrieving ncclUniqueId from [0] via c10d key-value store by key '0', "
        "but store->get('0') got error: failed to recv, got 0 bytes",
        "(TaskRunner pid=1714137) [4 lines of native frames cut]",
    ]


def test_frames_without_a_header_and_numbered_frames_are_cut() -> None:
    watchdog = cut_native_frames(quoted("sglang-1693-watchdog-timeout.txt")).splitlines()
    assert watchdog[0] == "[4 lines of native frames cut]"
    assert watchdog[-1] == "[3 lines of native frames cut]"
    assert "Watchdog caught collective operation timeout" in watchdog[3]
    assert not [line for line in watchdog if "frame #" in line]
    numbered = cut_native_frames(quoted("pytorch-68597-socket-timeout-numbered-frames.txt"))
    assert numbered.splitlines()[1:] == ["[6 lines of native frames cut]"]
    omitted = cut_native_frames(quoted("pytorch-82091-omitting-python-frames.txt"))
    assert omitted == "[5 lines of native frames cut]\n"


def test_text_without_frames_is_left_alone() -> None:
    text = quoted("llamafactory-7233-torch-shm-segment.txt")
    assert cut_native_frames(text) == text


def test_different_versions_of_joined_ranks_are_a_cause() -> None:
    """The versions as ranks report them when they join (RankHello), not log text."""
    same = {0: "torch 2.11.0, NCCL 2.28.9", 1: "torch 2.11.0, NCCL 2.28.9"}
    assert versions_cause(same) is None
    other = {**same, 1: "torch 2.9.1, NCCL 2.27.5"}
    found = versions_cause(other)
    assert found is not None
    assert found.cause == (
        "the ranks run different versions (rank 0: torch 2.11.0, NCCL 2.28.9; rank 1: torch "
        "2.9.1, NCCL 2.27.5)"
    )
    killed = replay("cpu-gloo-killed-mid-job")
    failure = RankFailure("default", killed.what, killed.summary, killed.problems, (), other)
    assert str(failure).splitlines()[1] == f"  cause: {found.cause}"
    assert failure.cause == found.cause


def test_a_pool_without_an_interface_fails_start_up_with_that_cause(tmp_path: Path) -> None:
    """Through the real local launcher: gloo ranks told to use an interface that is not there."""
    env = {"GLOO_SOCKET_IFNAME": "bogus0"}
    spec = PoolSpec("default", 2, "gloo", tmp_path / "pool", 300.0, 30.0, env)
    with pytest.raises(RankFailure) as info:
        LocalLauncher().start(spec).close()
    lines = str(info.value).splitlines()
    assert lines[1] == (
        "  cause (ranks 0, 1): no network interface matches GLOO_SOCKET_IFNAME=bogus0: gloo "
        "found none"
    )
    evidence = re.fullmatch(r"  evidence: (.+):(\d+): (.+)", lines[3])
    assert evidence is not None
    path, number, line = evidence.groups()
    assert Path(path) == spec.directory / "rank0.out.log"
    assert Path(path).read_text().splitlines()[int(number) - 1].strip() == line
