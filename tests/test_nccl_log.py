"""The NCCL log parser over every real capture (4×H200, NCCL 2.28.9) and the seed's p4d log
(NCCL 2.27.3, aws-ofi-nccl 1.16.2). Formats of other NCCL versions, which no capture here
holds, are checked with lines built from NCCL's own format strings (research notes §2-3, 7)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from pytest_gpufabric.evidence.nccl_log import NcclLog, looks_like_nccl, parse_files, parse_text

SEED = Path(__file__).parent / "data" / "seeds" / "000_c5442fdf6457d6ce.txt"


def parse_dir(capture: Path, name: str) -> NcclLog:
    files = sorted((capture / name).glob("*.log"))
    assert len(files) == 4
    return parse_files(files)


@pytest.mark.parametrize(
    ("name", "transports", "nnodes", "local_ranks", "env"),
    [
        ("default", {"P2P/CUMEM": 480}, 1, 4, {"NCCL_NVLS_ENABLE": "0"}),
        ("p2p_disabled", {"SHM/direct/direct": 24}, 1, 4, {"NCCL_P2P_DISABLE": "1"}),
        (
            "socket_only",
            {"NET/Socket/0": 32},
            4,
            1,
            {"NCCL_SHM_DISABLE": "1", "NCCL_IB_DISABLE": "1"},
        ),
        (
            "two_node_hostid",
            {"NET/Socket/0": 16, "P2P/CUMEM": 12, "NET/Socket/0/Shared": 8},
            2,
            2,
            {},
        ),
    ],
)
def test_every_capture(
    h200_capture: Path,
    name: str,
    transports: dict[str, int],
    nnodes: int,
    local_ranks: int,
    env: dict[str, str],
) -> None:
    log = parse_dir(h200_capture, name)
    assert Counter(c.detail for c in log.connections) == transports
    assert log.versions == {"2.28.9"}
    assert log.unknown_via == []
    assert log.warnings == []
    assert len(log.processes) == 4
    comms = sorted(log.comms(), key=lambda c: c.rank)
    assert [c.rank for c in comms] == [0, 1, 2, 3]
    assert {(c.nranks, c.nnodes, c.local_ranks) for c in comms} == {(4, nnodes, local_ranks)}
    assert len({c.comm_id for c in comms}) == 1
    assert all(c.init_complete is not None for c in comms)
    for proc in log.processes.values():
        assert [n.value for n in proc.networks] == ["Socket"]
        for key, value in env.items():
            assert proc.env[key].value == value


def test_facts_point_at_their_line(h200_capture: Path) -> None:
    """Every connection's file:line holds exactly the line it was read from."""
    for name in ("default", "p2p_disabled", "socket_only", "two_node_hostid"):
        log = parse_dir(h200_capture, name)
        lines = {p: p.read_text().splitlines() for p in log.files}
        for conn in log.connections:
            text = lines[conn.where.file][conn.where.line - 1]
            assert text.endswith(conn.text), (conn.where, text)
            assert text.startswith(f"{conn.process.host}:{conn.process.pid}:")


def test_nccl_hostid_makes_the_node(h200_capture: Path) -> None:
    log = parse_dir(h200_capture, "two_node_hostid")
    nodes = {p.process.pid: p.node for p in log.processes.values()}
    assert nodes == {
        989: "fabric-node-0",
        991: "fabric-node-0",
        990: "fabric-node-1",
        992: "fabric-node-1",
    }
    assert {p.process.host for p in log.processes.values()} == {"vm"}


def test_graph_paths(h200_capture: Path) -> None:
    assert {
        f.value
        for p in parse_dir(h200_capture, "default").processes.values()
        for f in p.graph_paths
    } == {"NVL/PIX"}
    assert {
        f.value
        for p in parse_dir(h200_capture, "socket_only").processes.values()
        for f in p.graph_paths
    } == {"LOC/PHB"}


@pytest.mark.parametrize(
    ("name", "coll", "p2p", "searched"),
    [("default", 24, 32, 12), ("p2p_disabled", 4, 4, 2), ("socket_only", 2, 2, 1)],
)
def test_channels_run_and_found(
    h200_capture: Path, name: str, coll: int, p2p: int, searched: int
) -> None:
    """Every rank's "N coll channels, ..." line, rank 0's ring layout ("Channel 00/24 : 0 1 2
    3", no connection) and the graph search's most channels ("Pattern ..., nChannels 12")."""
    log = parse_dir(h200_capture, name)
    comms = sorted(log.comms(), key=lambda c: c.rank)
    for comm in comms:
        assert comm.coll_channels is not None
        assert (comm.coll_channels.number, comm.p2p_channels) == (coll, p2p)
        assert comm.coll_channels.line.value.startswith(f"{coll} coll channels, {coll} collnet")
        assert comm.searched is not None
        assert comm.searched.number == searched
    rings = [c.rings for c in comms]
    assert rings[1:] == [None, None, None]  # rank 0 prints the layout
    assert rings[0] is not None
    assert (rings[0].number, rings[0].line.value) == (coll, f"Channel 00/{coll:02d} : 0 1 2 3")
    line = rings[0].line.where
    assert line.file.read_text().splitlines()[line.line - 1].endswith(rings[0].line.value)


def test_a_channel_cap_set_by_the_environment() -> None:
    """The real 2×H200 run with NCCL_MAX_NCHANNELS=1: one channel run, twelve found."""
    bundle = Path(__file__).parent / "data" / "runs" / "2026-11-30-h200x2-diagnosis"
    log = parse_files(sorted((bundle / "nchannels1" / "default").glob("rank*.nccl.log")))
    for proc in log.processes.values():
        assert proc.env["NCCL_MAX_NCHANNELS"].value == "1"
        (comm,) = proc.comms
        assert comm.coll_channels is not None
        assert comm.searched is not None
        assert (comm.coll_channels.number, comm.p2p_channels, comm.searched.number) == (1, 1, 12)


def test_seed_p4d_log_with_failed_aws_ofi_nccl() -> None:
    log = parse_files([SEED])
    assert log.versions == {"2.27.3"}
    assert Counter(c.detail for c in log.connections) == {"P2P/CUMEM/read": 192}
    assert all(c.read and c.p2p_mode == "CUMEM" for c in log.connections)
    assert len(log.processes) == 4
    for proc in log.processes.values():
        ofi = proc.ofi
        assert ofi is not None
        assert ofi.version is not None
        assert ofi.version.value == "1.16.2"
        assert ofi.libfabric is not None
        assert ofi.libfabric.value == "2.1"
        assert ofi.platform is not None
        assert ofi.platform.value == "p4d.24xlarge"
        assert ofi.protocol is not None
        assert ofi.protocol.value == "SENDRECV"
        assert ofi.provider is None  # init failed before a provider was selected
        assert [f.value for f in ofi.failures] == [
            "Failed to initialize sendrecv protocol",
            "aws-ofi-nccl initialization failed",
            "Initializing plugin failed",
        ]
        assert {n.value for n in proc.networks} == {"Socket"}
        assert proc.plugins_loaded[0].value == "Libfabric"
        assert proc.nvls_available is not None
        assert proc.nvls_available.value == "available"
        # ncclCommInitRankConfig and a ncclCommSplit (no commId printed for splits)
        assert [c.comm_id is not None for c in proc.comms] == [True, False]
        assert all(c.nvls_channels == 0 for c in proc.comms)
    assert len(log.warnings) == 12
    warning = log.warnings[0]
    assert warning.process.host == "llama-3-8b-node-0-0"
    assert warning.origin == "int nccl_net_ofi_create_plugin(nccl_net_ofi_plugin_t**):209"
    assert warning.message == "NET/OFI Failed to initialize sendrecv protocol"
    assert SEED.read_text().splitlines()[warning.where.line - 1].endswith(warning.message)


def test_nccl_lines_mixed_into_stdout(h200_capture: Path) -> None:
    """torchrun --tee prefixes, timestamps and other output around real NCCL lines."""
    real = (h200_capture / "default" / "nccl.vm.1034.log").read_text().splitlines()
    mixed = []
    for i, line in enumerate(real):
        mixed.append(f"[default0]:{line}" if i % 2 else f"2026-11-22T12:00:00Z {line}")
        mixed.append("[rank0]: step 3 loss 1.2345 (via the usual path)")
    log = parse_text([("\n".join(mixed), Path("stdout.txt"))])
    assert Counter(c.detail for c in log.connections) == {"P2P/CUMEM": 120}
    assert list(log.processes) == [
        next(iter(parse_files([h200_capture / "default" / "nccl.vm.1034.log"]).processes))
    ]
    assert log.unknown_via == []


def test_recognised_by_content(h200_capture: Path) -> None:
    assert looks_like_nccl((h200_capture / "default" / "nccl.vm.1035.log").read_text())
    assert looks_like_nccl(SEED.read_text())  # prose mentioning "NCCL INFO" comes first there
    assert not looks_like_nccl((h200_capture / "default" / "stdout.txt").read_text())
    assert not looks_like_nccl("we saw NCCL INFO P2P is disabled in the pod\n")


# Lines built from NCCL's format strings for versions no capture here holds.
OTHER_VERSIONS = """\
h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/IPC
h:1:1 [0] NCCL INFO Channel 01/1 : 0[0] -> 1[1] via P2P/IPC/read
h:1:1 [0] NCCL INFO Channel 02/0 : 0[0] -> 1[1] via P2P/direct pointer
h:1:1 [0] NCCL INFO Channel 03/0 : 0[0] -> 1[1] via P2P/MNNVL
h:1:1 [0] NCCL INFO Channel 04/0 : 0[0] -> 3[3] via P2P/indirect/2[2]
h:1:1 [0] NCCL INFO Channel 05/0 : 0[0] -> 1[1] via P2P/CUMEM/CE
h:1:1 [0] NCCL INFO Channel 06 : 0[0] -> 1[1] via SHM/CE/direct
h:1:1 [0] NCCL INFO Channel 07 : 0[0] -> 1[1] via SHM/direct
h:1:1 [0] NCCL INFO Channel 02/0 : 8[0] -> 0[0] [receive] via NET/IB/0/GDRDMA
h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 8[0] [send] via NET/AWS Libfabric/1/GDRDMA
h:1:1 [0] NCCL INFO Channel 00/1 : 0[0] -> 9[1] [send] via NET/Libfabric/0(1)/GDRDMA/Shared
h:1:1 [0] NCCL INFO Channel 01/0 : 0[0] -> 8[0] [send] via NET/IB/3/GDRDMA(PCI)
h:1:1 [0] NCCL INFO CollNet 00/0 : 0 [send] via COLLNET/SHARP/0/GDRDMA
h:1:1 [0] NCCL INFO Channel 00/0 : 0[0] -> 1[1] via P2P/NVLINK5
h:1:1 [0] NCCL INFO comm 0x55d5 rank 0 nranks 8 cudaDev 0 nvmlDev 0 busId 18000 commId 0x1234abcd - Init COMPLETE
h:2:2 [1] NCCL INFO ncclCommInitRank comm 0x66e6 rank 1 nranks 8 cudaDev 1 nvmlDev 1 busId 19000 commId 0x1234abcd - Init COMPLETE
h:2:2 [1] NCCL INFO 32 coll channels, 32 collnet channels, 16 nvls channels, 32 p2p channels, 32 p2p channels per peer
h:3:3 [2] NCCL INFO NET/OFI Selected provider is efa, fabric is efa-direct (found 32 nics)
h:4:4 [3] NCCL INFO NET/OFI Selected Provider is efa (found 4 nics)
h:4:4 [3] NCCL INFO NET/OFI Using transport protocol RDMA (platform set)
NCCL version 2.18.3+cuda12.2
"""


def test_formats_of_other_versions() -> None:
    log = parse_text([(OTHER_VERSIONS, Path("synthetic.log"))])
    conns = {c.channel * 10 + (c.conn or 0): c for c in log.connections if c.process.pid == 1}
    assert [c.detail for c in log.connections] == [
        "P2P/IPC", "P2P/IPC/read", "P2P/direct pointer", "P2P/MNNVL", "P2P/indirect/2[2]",
        "P2P/CUMEM/CE", "SHM/CE/direct", "SHM/direct", "NET/IB/0/GDRDMA",
        "NET/AWS Libfabric/1/GDRDMA", "NET/Libfabric/0(1)/GDRDMA/Shared", "NET/IB/3/GDRDMA(PCI)",
        "COLLNET/SHARP/0/GDRDMA",
    ]  # fmt: skip
    assert conns[11].read
    assert conns[11].p2p_mode == "IPC"
    assert conns[40].p2p_mode == "indirect"
    assert conns[50].copy_engine
    libfabric = next(c for c in log.connections if c.net == "AWS Libfabric")
    assert (libfabric.net_dev, libfabric.gdr, libfabric.direction) == (1, True, "send")
    pxn = next(c for c in log.connections if c.proxy is not None)
    assert (pxn.net, pxn.proxy, pxn.shared, pxn.gdr) == ("Libfabric", 1, True, True)
    receive = next(c for c in log.connections if c.direction == "receive")
    assert (receive.src, receive.dst, receive.printed_by) == (8, 0, 0)
    assert [f.value for f in log.unknown_via] == ["Channel 00/0 : 0[0] -> 1[1] via P2P/NVLINK5"]
    assert log.versions == {"2.18.3"}
    comms = {c.process.pid: c for c in log.comms()}
    assert comms[1].comm_id == comms[2].comm_id == "0x1234abcd"
    assert comms[2].nvls_channels == 16
    assert comms[2].coll_channels is not None
    assert (comms[2].coll_channels.number, comms[2].p2p_channels) == (32, 32)
    procs = {p.process.pid: p for p in log.processes.values()}
    ofi = procs[3].ofi
    assert ofi is not None
    assert ofi.nics == 32
    assert ofi.provider is not None
    assert ofi.provider.value == "efa"
    assert ofi.fabric is not None
    assert ofi.fabric.value == "efa-direct"
    assert procs[4].ofi is not None
    assert procs[4].ofi.nics == 4
    assert procs[4].ofi.protocol is not None
    assert procs[4].ofi.protocol.value == "RDMA"
