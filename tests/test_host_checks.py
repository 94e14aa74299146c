"""Host facts from the real 4×H200 captures (nvidia-smi text and XML, topo, NVML probe) and
the seed's 8-GPU topo -m, and the host checks against the shipped profiles. Failure cases
change one thing in a real capture."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest

from pytest_gpufabric.evidence import host, host_captures, recorded
from pytest_gpufabric.evidence.host import HostFacts, Shm
from pytest_gpufabric.judge.catalog import HOST_CHECKS
from pytest_gpufabric.judge.host import HostEvidence, judge_fabric_manager, judge_rdma, per_node
from pytest_gpufabric.profiles.catalogue import load_catalogue

PROFILES = load_catalogue().profiles
H200, P4D = PROFILES["hgx-h200-4gpu"].host, PROFILES["p4d.24xlarge"].host
SEED_TOPO = Path(__file__).parent / "data" / "seeds" / "001_4d4b157738f4d5a3.txt"


@pytest.fixture
def capture(h200_capture: Path) -> Path:
    return h200_capture / "host"


@pytest.fixture
def facts(capture: Path) -> HostFacts:
    run = recorded.load(capture)
    assert run.host is not None
    return run.host


def test_topology_matrix(capture: Path) -> None:
    matrix, nics = host_captures.parse_topo_matrix((capture / "nvidia-smi-topo-m.txt").read_text())
    assert matrix["GPU0"] == {"GPU0": "X", "GPU1": "NV18", "GPU2": "NV18", "GPU3": "NV18"}
    assert sorted(matrix) == ["GPU0", "GPU1", "GPU2", "GPU3"]
    assert nics == {}


def test_p2p_nvlink_and_errors_from_the_combined_capture(capture: Path) -> None:
    text = (capture / "nvidia-smi-topo-p2p-nvlink.txt").read_text()
    p2p = host_captures.parse_p2p_tables(text)
    assert len(p2p) == 12
    assert set(map(tuple, (sorted(v.items()) for v in p2p.values()))) == {
        (("atomics", "OK"), ("nvlink", "OK"), ("pcie", "NS"), ("read", "OK"), ("write", "OK"))
    }
    links = host_captures.parse_nvlink_text(text)
    assert sorted(links) == [0, 1, 2, 3]
    assert all(
        len(gpu) == 18 and all(link.active for link in gpu.values()) for gpu in links.values()
    )
    assert links[0][0].errors == {"replay": 0, "recovery": 0, "crc_flit": 0}


def test_xml_and_text_agree(capture: Path) -> None:
    xml = host_captures.parse_smi_xml((capture / "nvidia-smi-q.xml").read_text())
    text = host_captures.parse_smi_text((capture / "nvidia-smi-q.txt").read_text())
    for gpus in (xml, text):
        assert [g.name for g in gpus] == ["NVIDIA H200"] * 4
        assert {(g.fabric_state, g.fabric_status) for g in gpus} == {("Completed", "Success")}
        assert {(g.pcie_gen, g.pcie_gen_max, g.pcie_width, g.pcie_width_max) for g in gpus} == {
            (5, 5, 16, 16)
        }
    assert [g.pci_bus_id for g in text] == [
        "00000000:00:06.0",
        "00000000:00:07.0",
        "00000000:00:08.0",
        "00000000:00:09.0",
    ]


def test_nvml_probe_and_its_pitfalls(capture: Path) -> None:
    driver, gpus, p2p = host_captures.parse_nvml_probe(
        json.loads((capture / "nvml-probe.json").read_text())
    )
    assert driver == "580.159.04"
    link = gpus[0].links[0]
    assert (link.active, link.version) == (True, "4.0")
    assert (
        link.errors["crc_data"] == 10
    )  # an old count on a healthy link: only increases are judged
    assert all(g.fabric_state is None for g in gpus)  # the legacy struct reads state 0: ignored
    assert p2p[(0, 1)]["read"] == "unread"  # NVML_P2P_CAPS_INDEX_READ is a tuple in nvidia-ml-py
    assert p2p[(0, 1)]["write"] == "OK"


BUSY = Path(__file__).parent / "data" / "runs" / "2026-11-30-h200x2-diagnosis"


def test_clocks_and_processes_of_a_busy_and_an_idle_host(capture: Path) -> None:
    """nvidia-smi -q text and XML of the 2×H200 host while another process ran on GPU 0 (SW
    power cap active, 3.3 s of power capping when the text was taken, 3.5 s at the XML), and
    of the idle 4×H200 host."""
    for busy, capped_ns in (
        (host_captures.parse_smi_text((BUSY / "host" / "smi-q-busy.txt").read_text()), 3304356000),
        (host_captures.parse_smi_xml((BUSY / "host" / "smi-q-busy.xml").read_text()), 3504326000),
    ):
        assert [g.clock_reasons for g in busy] == [["sw_power_cap"], ["gpu_idle"]]
        assert busy[0].clock_held_ns == {
            "sw_power_cap": capped_ns, "sync_boost": 0, "sw_therm_slowdown": 0,
            "hw_therm_slowdown": 0, "hw_power_brake": 0,
        }  # fmt: skip
        assert busy[0].processes == [host.GpuProcess(698, 1130)]
        assert busy[1].processes == []
        clocks = {(g.app_clock_mhz, g.app_clock_default_mhz, g.max_clock_mhz) for g in busy}
        assert clocks == {(1980, 1980, 1980)}
    for idle in (
        host_captures.parse_smi_text((capture / "nvidia-smi-q.txt").read_text()),
        host_captures.parse_smi_xml((capture / "nvidia-smi-q.xml").read_text()),
    ):
        assert {(tuple(g.clock_reasons or ["?"]), g.sm_clock_mhz) for g in idle} == {
            (("gpu_idle",), 345)
        }
        assert all(g.processes == [] for g in idle)
        assert all(set(g.clock_held_ns.values()) == {0} for g in idle)


def test_live_snapshots_keep_clocks_and_processes() -> None:
    """A live run's host-after.json (NVML on a 2×H200 host, another process on GPU 0) reads
    back as written, and writes back the same."""
    path = BUSY / "hog" / "host-after.json"
    data = json.loads(path.read_text())
    facts = host.from_json(data, str(path))
    gpu = facts.gpus[0]
    assert gpu.clock_reasons == ["sw_power_cap"]
    assert gpu.clock_held_ns["power"] == 12144678048
    assert gpu.processes == [host.GpuProcess(698, 1130), host.GpuProcess(757, 2078)]
    assert (gpu.sm_clock_mhz, gpu.app_clock_mhz, gpu.max_clock_mhz) == (1410, 1980, 1980)
    again = host.to_json(facts, "after")
    assert again["gpus"] == data["gpus"]
    assert host.from_json(again, "again").gpus == facts.gpus


def test_older_snapshots_leave_the_new_facts_unknown() -> None:
    path = Path(__file__).parent / "data" / "runs" / "2026-11-22-h200x4-F-final-one"
    facts = host.from_json(json.loads((path / "host-after.json").read_text()), "old")
    assert all(g.processes is None and g.clock_reasons is None for g in facts.gpus)
    assert all(g.clock_held_ns == {} for g in facts.gpus)


def test_shm_from_a_mounts_line(capture: Path) -> None:
    shm = host_captures.parse_shm_mount((capture / "system.txt").read_text(), "system.txt")
    assert shm is not None
    assert (shm.fstype, shm.size) == ("tmpfs", 536870912 * 1024)


def test_the_h200_host_passes_its_profile(facts: HostFacts) -> None:
    verdicts = {name: check(HostEvidence(facts), H200) for name, check in HOST_CHECKS.items()}
    assert {n: v.status for n, v in verdicts.items()} == {
        "shm": "passed", "shm_shared": "skipped", "fabric_manager": "passed", "nvlink": "passed",
        "nvlink_errors": "skipped", "p2p": "passed", "pcie": "passed", "nic_affinity": "skipped",
        "rdma": "skipped",
    }  # fmt: skip
    props = {k: v for verdict in verdicts.values() for k, v in verdict.properties}
    assert props["nvlinks_per_gpu"] == "18,18,18,18"
    assert props["nvlink_version"] == "4.0"
    assert props["fabric_states"] == "Completed/Success×4"
    assert props["pcie_width"] == "x16/x16,x16/x16,x16/x16,x16/x16"
    assert props["shm_size_gib"] == 512.0


def test_fabric_not_registered(capture: Path) -> None:
    xml = (
        (capture / "nvidia-smi-q.xml")
        .read_text()
        .replace("<state>Completed</state>", "<state>In Progress</state>", 1)
    )
    facts = HostFacts("test")
    host_captures.merge(facts, xml, Path("smi.xml"))
    verdict = judge_fabric_manager(HostEvidence(facts), H200)
    assert verdict.status == "failed"
    assert verdict.message.startswith(
        "1 of 4 GPUs are not registered with the fabric (GPU 0: In Progress/Success)"
    )
    assert "nvidia-fabricmanager" in verdict.message
    assert f"host.fabric_manager in {PROFILES['hgx-h200-4gpu'].file}:" in verdict.message


def test_a100_has_no_fabric_state_and_links_stand_in(facts: HostFacts) -> None:
    a100 = HostFacts(
        "test",
        gpus=[replace(g, fabric_state="Not Supported", fabric_status=None) for g in facts.gpus],
        p2p=facts.p2p,
    )
    verdict = judge_fabric_manager(HostEvidence(a100), P4D)
    assert verdict.status == "passed"
    assert verdict.summary.startswith("pre-Hopper")
    a100.gpus[1].links[5].active = False
    assert judge_fabric_manager(HostEvidence(a100), P4D).status == "failed"


def test_inactive_link_and_wrong_link_count(capture: Path) -> None:
    text = (capture / "nvidia-smi-topo-p2p-nvlink.txt").read_text()
    gpu1 = text.index("GPU 1: NVIDIA H200")
    at = text.index("Link 5: 26.562 GB/s", gpu1)
    broken = text[:at] + "Link 5: <inactive>" + text[at + len("Link 5: 26.562 GB/s") :]
    facts = HostFacts("test")
    host_captures.merge(facts, broken, Path("nvlink.txt"))
    verdict = HOST_CHECKS["nvlink"](HostEvidence(facts), H200)
    assert verdict.status == "failed"
    assert "1 NVLink(s) inactive: GPU 1 link 5" in verdict.message
    assert "active NVLinks per GPU differ from the profile: GPU 1: 17" in verdict.message
    a100 = HOST_CHECKS["nvlink"](HostEvidence(host_captures_facts(text)), P4D)
    assert "nvidia-smi topo -m shows GPU0-GPU1: NV18" in a100.message  # p4d expects NV12


def host_captures_facts(text: str) -> HostFacts:
    facts = HostFacts("test")
    host_captures.merge(facts, text, Path("capture.txt"))
    return facts


def test_p2p_not_ok_names_the_pair(capture: Path) -> None:
    text = (capture / "nvidia-smi-topo-p2p-nvlink.txt").read_text()
    start = text.index("== topo -p2p w")
    row = text.index(" GPU2\tOK", start)
    broken = text[:row] + " GPU2\tCNS" + text[row + len(" GPU2\tOK") :]
    verdict = HOST_CHECKS["p2p"](HostEvidence(host_captures_facts(broken)), H200)
    assert verdict.status == "failed"
    assert verdict.message.startswith(
        "1 P2P capabilities not OK: GPU2->GPU0 write: chipset not supported"
    )


def test_narrow_pcie_link(capture: Path) -> None:
    xml = (capture / "nvidia-smi-q.xml").read_text()
    last = xml.rindex("<current_link_width>16x</current_link_width>")
    xml = (
        xml[:last]
        + "<current_link_width>8x</current_link_width>"
        + xml[last + len("<current_link_width>16x</current_link_width>") :]
    )
    verdict = HOST_CHECKS["pcie"](HostEvidence(host_captures_facts(xml)), H200)
    assert verdict.status == "failed"
    assert "PCIe link narrower than the GPU supports: GPU 3 x8 of x16" in verdict.message
    idle = xml.replace(
        "<current_link_gen>5</current_link_gen>", "<current_link_gen>1</current_link_gen>"
    )
    idle = idle.replace(
        "<current_link_width>8x</current_link_width>",
        "<current_link_width>16x</current_link_width>",
    )
    assert (
        HOST_CHECKS["pcie"](HostEvidence(host_captures_facts(idle)), H200).status == "passed"
    )  # idle downshift


def test_nvlink_error_increases(capture: Path) -> None:
    data = json.loads((capture / "nvml-probe.json").read_text())
    before = HostFacts("before")
    host_captures.merge_nvml_probe(before, data, Path("before.json"))
    data["gpus"][0]["nvlinks"][4]["errors"]["NVML_NVLINK_ERROR_DL_REPLAY"] += 3
    data["gpus"][2]["nvlinks"][7]["errors"]["NVML_NVLINK_ERROR_DL_CRC_DATA"] += 50  # within 100
    after = HostFacts("after")
    host_captures.merge_nvml_probe(after, data, Path("after.json"))
    verdict = HOST_CHECKS["nvlink_errors"](HostEvidence(after, before), H200)
    assert verdict.status == "failed"
    assert verdict.message.startswith("NVLink replay errors grew during the run: GPU 0 link 4: +3")
    assert "crc errors" not in verdict.message
    assert dict(verdict.properties) == {
        "nvlink_crc_increase": 50,
        "nvlink_replay_increase": 3,
        "nvlink_recovery_increase": 0,
    }
    assert HOST_CHECKS["nvlink_errors"](HostEvidence(before, before), H200).status == "passed"


def test_nvlink_crc_errors_are_judged_as_a_rate(capture: Path) -> None:
    data = json.loads((capture / "nvml-probe.json").read_text())
    before = HostFacts("before", taken_at=1000.0)
    host_captures.merge_nvml_probe(before, data, Path("before.json"))
    data["gpus"][2]["nvlinks"][7]["errors"]["NVML_NVLINK_ERROR_DL_CRC_DATA"] += 50
    for seconds, status in ((10.0, "passed"), (0.25, "failed")):
        after = HostFacts("after", taken_at=1000.0 + seconds)
        host_captures.merge_nvml_probe(after, data, Path("after.json"))
        verdict = HOST_CHECKS["nvlink_errors"](HostEvidence(after, before), H200)
        assert verdict.status == status
        assert dict(verdict.properties)["nvlink_crc_per_s_max"] == round(50 / seconds, 2)
    assert verdict.message.startswith(
        "NVLink CRC errors above 100/s over 0.2 s: GPU 2 link 7: +50 (200/s)"
    )


def test_small_private_shm() -> None:
    small = Shm("/dev/shm", "tmpfs", 1 << 20, 1 << 20, 99, "statvfs(/dev/shm) of pid 1")
    verdict = HOST_CHECKS["shm"](HostEvidence(HostFacts("test", shm=small)), H200)
    assert verdict.status == "failed"
    first = verdict.message.splitlines()[0]
    assert first == "/dev/shm size is 1 MiB, below the minimum of 1 GiB"
    assert "emptyDir {medium: Memory, sizeLimit: 64Gi}" in verdict.message
    assert HOST_CHECKS["shm"](
        HostEvidence(
            HostFacts("t", shm=replace(small, fstype="overlay", size=2 << 30, free=2 << 30))
        ),
        H200,
    ).message.startswith("/dev/shm is overlay, not tmpfs")


def test_ranks_with_different_shm_mounts() -> None:
    verdict = HOST_CHECKS["shm_shared"](
        HostEvidence(HostFacts("t"), rank_shm=[(0, 27, "h"), (1, 27, "h"), (2, 31, "h")]), H200
    )
    assert verdict.status == "failed"
    assert verdict.message.startswith(
        "the ranks see 2 different /dev/shm mounts (rank 0 on h: st_dev 27, rank 1 on h: st_dev 27, rank 2 on h: st_dev 31)"
    )


def test_nic_affinity_on_the_seed_8_gpu_node() -> None:
    text = SEED_TOPO.read_text()
    facts = host_captures_facts(text)
    assert facts.nics["NIC0"] == "mlx5_0"
    assert len(facts.topology) == 18  # 8 GPUs and 10 NICs
    assert HOST_CHECKS["nic_affinity"](HostEvidence(facts), P4D).status == "passed"
    far = text.replace("GPU5\tNV18\tNV18\tNV18\tNV18\tNV18\t X \tNV18\tNV18\tSYS\tSYS\tSYS\tSYS\tSYS\tSYS\tNODE\tPIX\tNODE\tNODE",
                       "GPU5\tNV18\tNV18\tNV18\tNV18\tNV18\t X \tNV18\tNV18\tSYS\tSYS\tSYS\tSYS\tSYS\tSYS\tNODE\tNODE\tNODE\tNODE")  # fmt: skip
    assert far != text
    verdict = HOST_CHECKS["nic_affinity"](HostEvidence(host_captures_facts(far)), P4D)
    assert verdict.status == "failed"
    assert verdict.message.startswith("GPUs without a close NIC: GPU5 nearest NODE")


def test_rdma_devices_memlock_and_gdr(tmp_path: Path) -> None:
    """A sysfs tree laid out as on an EFA node (one device), read by the live code."""
    sys_root = tmp_path / "sys"
    driver = sys_root / "bus" / "pci" / "drivers" / "efa"
    driver.mkdir(parents=True)
    function = sys_root / "bus" / "pci" / "devices" / "0000:10:1b.0"
    function.mkdir(parents=True)
    (function / "vendor").write_text("0x1d0f\n")
    (function / "device").write_text("0xefa1\n")
    (function / "driver").symlink_to(driver)
    device = sys_root / "class" / "infiniband" / "rdmap16s27"
    device.mkdir(parents=True)
    (device / "device").symlink_to(function)
    listing = HostFacts("test")  # what auto-detection reads: the device listing alone
    host.read_rdma_devices(listing, sys_root)
    assert host.rdma_counts(listing) == {"efa": 1, "ib": 0}
    assert (listing.origins["rdma"], listing.memlock) == (
        str(sys_root / "class" / "infiniband"),
        None,
    )
    facts = HostFacts("test")
    host.read_rdma(facts, sys_root)
    assert facts.rdma_devices == [("rdmap16s27", "efa")]
    assert facts.efa_pci_devices == 1
    assert facts.peermem is False
    verdict = judge_rdma(HostEvidence(facts), P4D)
    assert verdict.status == "failed"
    assert "1 efa device(s) in the container, expected 4" in verdict.message
    if facts.memlock != "unlimited":
        assert f"memlock limit is {facts.memlock} bytes, not unlimited" in verdict.message
    (sys_root / "module" / "nvidia_peermem").mkdir(parents=True)
    host.read_rdma(facts, sys_root)
    assert facts.peermem is True


def test_live_collection_on_this_machine() -> None:
    facts = host.collect()
    assert facts.shm is not None
    assert facts.shm.fstype == "tmpfs"
    assert facts.shm.dev == os.stat("/dev/shm").st_dev
    if not facts.gpus:
        assert "nvml" in facts.unavailable
        assert "clocks" not in facts.origins
        assert "processes" not in facts.origins
    again = host.from_json(json.loads(json.dumps(host.to_json(facts, "after"))), "snapshot.json")
    assert again.shm == facts.shm
    assert again.memlock == facts.memlock


def test_host_only_recording_replays(pytester: pytest.Pytester, capture: Path) -> None:
    suites = Path(__file__).resolve().parent.parent / "suites"
    result = pytester.runpytest(
        str(suites / "test_host.py"), str(suites / "test_node.py"), "-p", "no:cacheprovider", "-v",
        f"--gpufabric-replay={capture}", "--gpufabric-instance=hgx-h200-4gpu",
    )  # fmt: skip
    result.assert_outcomes(passed=6, skipped=5)
    result.stdout.fnmatch_lines(
        ["*test_gpu_inventory PASSED*", "*test_host[[]fabric_manager] PASSED*"]
    )


def test_too_small_shm_fails_a_live_run(pytester: pytest.Pytester, tmp_path: Path) -> None:
    """The real /dev/shm of this machine against a profile asking for more than it has."""
    free_gib = os.statvfs("/dev/shm").f_bavail * os.statvfs("/dev/shm").f_frsize / (1 << 30)
    wanted = int(free_gib * 4) + 1
    (tmp_path / "cpu-bigshm.yaml").write_text(
        f"name: cpu-bigshm\ngpu: {{count: 0}}\nhost:\n  source: test\n  shm_min_gib: {wanted}\n"
    )
    suites = Path(__file__).resolve().parent.parent / "suites"
    result = pytester.runpytest(
        str(suites / "test_host.py"), "-p", "no:cacheprovider", "-k", "shm",
        "--gpufabric-instance=cpu-bigshm", f"--gpufabric-thresholds={tmp_path}",
    )  # fmt: skip
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([f"/dev/shm size is * GiB, below the minimum of {wanted} GiB"])


def test_several_nodes_are_judged_each_and_a_finding_names_its_node(facts: HostFacts) -> None:
    """Two nodes of one run: the healthy capture, and the same host with GPU 2's fabric
    registration not completed; the failure names the second node only."""
    broken = replace(facts, gpus=list(facts.gpus))
    broken.gpus[2] = replace(broken.gpus[2], fabric_state="In Progress")
    evidence = [("node-a", HostEvidence(facts)), ("node-b", HostEvidence(broken))]
    verdict = per_node(judge_fabric_manager, evidence, H200)
    assert verdict.status == "failed"
    assert [f.summary.split(":")[0] for f in verdict.findings] == ["node node-b"]
    assert ("node-a.fabric_states", "Completed/Success×4") in verdict.properties
    assert per_node(judge_fabric_manager, evidence[:1], H200).status == "passed"
    assert per_node(judge_fabric_manager, [evidence[0], evidence[0]], H200).status == "passed"
