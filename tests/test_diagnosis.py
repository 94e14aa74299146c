"""Probable causes of a slow bandwidth test, from real evidence: the 2×H200 bundles of
data/runs/2026-11-30-h200x2-diagnosis (NCCL_MAX_NCHANNELS=1, another process on GPU 0,
NCCL tuning variables), the 4×H200 captures (healthy, P2P disabled, sockets only, two NCCL
hosts) and the healthy live bundles. Where no capture shows a fault (a throttled GPU, a link
down, a narrow PCIe link, pids from another namespace), the test changes one fact of a real
HostFacts object in Python: data, never log text."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_gpufabric.evidence import host_captures, recorded
from pytest_gpufabric.evidence.host import HostFacts
from pytest_gpufabric.evidence.nccl_log import NcclLog, parse_files
from pytest_gpufabric.judge.diagnosis import Cause, diagnose, render
from pytest_gpufabric.judge.host import HostEvidence

DATA = Path(__file__).parent / "data"
RUNS = DATA / "runs"
DIAG = RUNS / "2026-11-30-h200x2-diagnosis"
H200 = DATA / "h200x4-nccl2.28.9"
FINAL = RUNS / "2026-11-22-h200x4-F-final-one"
SPLIT = RUNS / "2026-11-29-h200x2-split"
PROFILE = "hgx-h200-4gpu.yaml:14"  # where a profile would say how many channels are healthy


def bundle(
    directory: Path, pool: str = "default"
) -> tuple[NcclLog, list[tuple[str, HostEvidence]]]:
    """A live bundle's NCCL logs of one pool and its host readings before and after."""
    run = recorded.load(directory)
    facts = run.host or run.host_before
    assert facts is not None
    return run.nccl_log(pool), [("vm", HostEvidence(facts, run.host_before))]


def capture(name: str) -> tuple[NcclLog, list[tuple[str, HostEvidence]]]:
    """The 4×H200 NCCL logs of one configuration and the host captures of that machine."""
    host = recorded.load(H200 / "host").host
    assert host is not None
    return parse_files(sorted((H200 / name).glob("*.log"))), [("vm", HostEvidence(host))]


def quoted_line(evidence: str) -> tuple[str, str]:
    """('text', the line at file:line) of a quote '"text" (file:line)'."""
    text, _, where = evidence.rpartition(" (")
    path, _, number = where.rstrip(")").rpartition(":")
    return text.strip('"'), Path(path).read_text().splitlines()[int(number) - 1]


def test_the_channel_cap_of_the_environment_comes_first() -> None:
    log, hosts = bundle(DIAG / "nchannels1")
    causes = diagnose(log, hosts, min_channels=24, min_channels_source=PROFILE)
    assert [c.name for c in causes] == ["channels"]  # the ranks' own pids are not "another"
    cause = causes[0]
    assert cause.summary == (
        "NCCL limited to 1 channel by the environment (NCCL_MAX_NCHANNELS=1); a healthy run "
        f"uses 24 ({PROFILE})"
    )
    assert cause.evidence[0].endswith("nchannels1/default/rank0.nccl.log:95)")
    for evidence in cause.evidence:
        text, line = quoted_line(evidence)
        assert line.endswith((text, f"{text}."))  # NCCL ends numbers with "."
    assert "1 coll channels" in cause.evidence[1]
    assert render(causes).splitlines()[:3] == [
        "  probable causes (most likely first):",
        f"  1. {cause.summary}",
        f"     evidence: {cause.evidence[0]}",
    ]


def test_without_an_expectation_the_graph_search_says_what_was_possible() -> None:
    log, hosts = bundle(DIAG / "nchannels1")
    (cause,) = diagnose(log, hosts)
    assert cause.summary.endswith("; its graph search found paths for 12")
    assert "Pattern 4, crossNic 0, nChannels 12" in cause.evidence[-1]


@pytest.mark.parametrize(
    ("directory", "pool"),
    [(H200 / "default", ""), (FINAL, "default"), (SPLIT, "default"), (FINAL, "nvlink_only")],
    ids=["h200x4-capture", "h200x4-live-before-after", "h200x2-live", "nvlink-only-pool"],
)
def test_healthy_runs_have_no_cause(directory: Path, pool: str) -> None:
    """NVLink CRC counters grow on healthy H200 links (up to 25 a link in 9.9 s here), the
    clocks idle between readings, the ranks are on the GPUs: none of it is a cause."""
    log, hosts = bundle(directory, pool) if pool else capture(directory.name)
    assert diagnose(log, hosts, min_channels=24) == []
    assert render([]) == "  probable causes: none found in this run's NCCL logs and host facts"


def test_p2p_disabled_falls_back_to_shm_where_nvlink_works() -> None:
    log, hosts = capture("p2p_disabled")
    transport, channels = diagnose(log, hosts, min_channels=24, min_channels_source=PROFILE)
    assert transport.name == "transport"
    assert transport.summary.startswith(
        "24 connection(s) between GPUs of one host use SHM/direct/direct, not NVLink P2P "
        "(NVML P2P nvlink/read/write OK between GPU 0 and GPU 1)"
    )
    assert '"NCCL_P2P_DISABLE set by environment to 1"' in transport.evidence[-1]
    assert "via SHM/direct/direct" in transport.evidence[0]
    assert channels.summary == f"NCCL ran 4 channels; a healthy run uses 24 ({PROFILE})"
    assert channels.weight < transport.weight  # fewer channels follow from SHM


def test_sockets_between_gpus_of_one_host() -> None:
    log, hosts = capture("socket_only")
    cause = diagnose(log, hosts)[0]
    assert cause.summary.startswith(
        "16 connection(s) between GPUs of one host use NET/Socket/0, not NVLink P2P"
    )
    assert any("NCCL_SHM_DISABLE set by environment to 1" in e for e in cause.evidence)


def test_nccl_hostid_splits_one_host() -> None:
    log, hosts = capture("two_node_hostid")
    cause = diagnose(log, hosts)[0]
    assert "12 connection(s) between GPUs of one host use NET/Socket/0" in cause.summary
    assert '"NCCL_HOSTID set by environment to fabric-node-0"' in cause.evidence[-1]


@pytest.mark.parametrize(("directory", "pool"), [(FINAL, "network_only"), (SPLIT, "split")])
def test_a_fallback_the_pool_sets_up_counts_for_less(directory: Path, pool: str) -> None:
    data = json.loads((directory / pool / "pool.json").read_text())
    env = {*data["env"], *(name for rank in data["rank_env"] for name in rank)}
    log, hosts = bundle(directory, pool)
    (unasked,) = diagnose(log, hosts)
    (asked,) = diagnose(log, hosts, env)
    assert asked.summary == f"{unasked.summary}; the pool sets this up on purpose"
    assert (unasked.weight, asked.weight) == (90, 40)


def test_tuning_variables_set_by_the_environment() -> None:
    log = parse_files(sorted((DIAG / "tuned").glob("*.log")))
    channels, tuning = diagnose(log)
    assert channels.summary == (
        "NCCL limited to 4 channels by the environment (NCCL_MAX_NCHANNELS=4); its graph "
        "search found paths for 12"
    )
    assert tuning.summary == (
        "NCCL tuning set by the environment: NCCL_ALGO=Tree, NCCL_PROTO=Simple, "
        "NCCL_BUFFSIZE=1048576, NCCL_NTHREADS=128, NCCL_MIN_NCHANNELS=2"
    )
    for evidence in tuning.evidence:
        text, line = quoted_line(evidence)
        assert line.endswith((text, f"{text}."))
    names = ("NCCL_ALGO", "NCCL_PROTO", "NCCL_BUFFSIZE", "NCCL_NTHREADS", "NCCL_MIN_NCHANNELS")
    on_purpose = diagnose(log, env=names)[1]
    assert on_purpose.summary.startswith("NCCL tuned by this pool on purpose: NCCL_ALGO=Tree")


def test_another_process_on_a_gpu_and_the_power_cap_it_brought() -> None:
    log, hosts = bundle(DIAG / "hog")
    other, clocks = diagnose(log, hosts)
    assert other.summary == (
        "another process on GPU 0 of vm during the run: pid 698 (1130 MiB), not one of the "
        "ranks (757, 758)"
    )
    assert other.evidence[0].startswith("before the run: GPU 0 runs 698 (1130 MiB) (NVML on")
    assert other.evidence[1].startswith("after the run: GPU 0 runs 698 (1130 MiB) (NVML on")
    assert (
        clocks.summary
        == "GPU clocks held down during the run on vm: GPU 0 by the power cap 7.1 s of 7.3 s"
    )
    assert clocks.evidence[0] == "GPU 0 power time: 5.00 s before, 12.14 s after"
    assert "sw_power_cap active on GPU 0 before the run" in clocks.evidence[2]
    assert other.weight > clocks.weight


def test_pids_from_another_namespace_are_not_blamed() -> None:
    """As in a container, where NVML shows the host's pids: the ranks' pids (here 1 and 2)
    appear nowhere, so only a GPU with more processes than ranks is mentioned, as unsure."""
    log, hosts = bundle(DIAG / "hog")
    causes = diagnose(log, [("vm", HostEvidence(hosts[0][1].facts))], rank_pids={1, 2})
    (cause,) = [c for c in causes if c.name == "other-process"]
    assert cause.weight == 30
    assert "another pid namespace" in cause.summary
    assert cause.evidence == ("GPU 0 after the run: pids 698, 757 for 1 rank(s)",)  # not GPU 1


def busy_smi() -> HostFacts:
    """nvidia-smi -q of the 2×H200 host while another process ran on GPU 0."""
    facts = HostFacts("test")
    path = DIAG / "host" / "smi-q-busy.txt"
    host_captures.merge(facts, path.read_text(), path)
    return facts


def test_clocks_held_down_by_nvidia_smi_counters() -> None:
    """The real counters after; before, the same capture with the power-capping counter at 0
    and read 10 s earlier (no capture before the load was kept)."""
    after = replace(busy_smi(), taken_at=1010.0)
    before = replace(busy_smi(), taken_at=1000.0)
    before.gpus = [
        replace(g, clock_held_ns={**g.clock_held_ns, "sw_power_cap": 0}) for g in before.gpus
    ]
    causes = diagnose(NcclLog(), [("vm", HostEvidence(after, before))], rank_pids=())
    assert [c.name for c in causes] == ["other-process", "clocks"]  # pid 698 before and after
    assert causes[1].summary == (
        "GPU clocks held down during the run on vm: GPU 0 by the power cap 3.3 s of 10.0 s"
    )
    assert causes[1].evidence[0] == "GPU 0 sw_power_cap time: 0.00 s before, 3.30 s after"


def test_a_single_reading_shows_the_reasons_active_then() -> None:
    facts = busy_smi()
    causes = diagnose(NcclLog(), [("vm", HostEvidence(facts))], rank_pids={698})
    assert [(c.name, c.summary) for c in causes] == [
        ("clocks", "GPU clocks held down at a reading on vm: GPU 0 sw_power_cap")
    ]


def test_applications_clocks_below_their_default() -> None:
    log, hosts = bundle(SPLIT)
    facts = hosts[0][1].facts
    facts.gpus = [replace(g, app_clock_mhz=1410, app_clock_default_mhz=1980, max_clock_mhz=1980)
                  if g.index == 1 else g for g in facts.gpus]  # fmt: skip
    (cause,) = diagnose(log, hosts)
    assert cause.summary == (
        "applications clocks set below their default on vm (nvidia-smi -ac): GPU 1 1410 MHz of 1980"
    )


def test_nvlink_down_and_errors_during_the_run() -> None:
    log, hosts = bundle(FINAL)
    ev = hosts[0][1]
    link = ev.facts.gpus[2].links[5]
    ev.facts.gpus[2].links[5] = replace(
        link, active=False, errors={**link.errors, "replay": link.errors["replay"] + 3}
    )
    down, errors = diagnose(log, hosts)
    assert down.summary == "1 NVLink(s) inactive on vm: GPU 2 link 5"
    assert errors.summary == "NVLink errors grew during the run on vm: GPU 2 link 5 replay +3"
    assert down.weight > errors.weight


def test_pcie_width_and_generation() -> None:
    log, hosts = capture("default")
    facts = hosts[0][1].facts
    assert all(g.clock_reasons == ["gpu_idle"] for g in facts.gpus)  # read at idle
    facts.gpus[0] = replace(facts.gpus[0], pcie_width=8, pcie_gen=4)  # gen 4 at idle: normal
    (narrow,) = diagnose(log, hosts)
    assert narrow.summary == "PCIe links narrower than the GPU supports on vm: GPU 0 x8 of x16"
    facts.gpus[0] = replace(facts.gpus[0], clock_reasons=None)
    assert diagnose(log, hosts)[1].summary == (
        "PCIe links below their generation on vm: GPU 0 gen 4 of 5 (idle GPUs lower it; "
        "whether these were idle is unknown)"
    )


def test_causes_are_ranked_by_weight() -> None:
    causes = [Cause("pcie", "b", (), 15), Cause("channels", "a", ("x",), 100)]
    text = render(sorted(causes, key=lambda c: -c.weight))
    assert text.splitlines() == [
        "  probable causes (most likely first):",
        "  1. a",
        "     evidence: x",
        "  2. b",
    ]
