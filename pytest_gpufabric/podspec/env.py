"""nccl-env / env-from: NCCL and libfabric variables that turn off a transport or force a
fallback. Semantics follow NCCL's environment documentation (docs.nvidia.com/deeplearning/
nccl/user-guide/docs/env.html) and aws-ofi-nccl's; integer variables are read like NCCL reads
them (strtoll, base 0; anything else is ignored with a WARN)."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from .context import Check
from .findings import Severity, cite
from .pod import Container

# NCCL_P2P_LEVEL: P2P is used where the GPUs' path is at most this far. NVL < PIX < PXB <
# PHB < SYS, so every name but LOC keeps NVLink; legacy integers 0..4 are LOC, PIX..SYS.
_P2P_LEVELS = ("LOC", "NVL", "NVB", "C2C", "PIX", "PXB", "PXN", "PHB", "SYS")
_FEW_CHANNELS = 8  # below this NCCL cannot fill NVLink (it opens 24 on p4d: seed 000's log)
_OFI_PLUGINS = ("ofi", "aws-ofi-nccl", "libnccl-net.so", "libnccl-net")


def _int(value: str) -> int | None:
    try:
        return int(value.strip(), 0)
    except ValueError:
        return None


Rule = Callable[[Check, Container, str, str, int], None]


def _add(check: Check, c: Container, sev: Severity, msg: str, line: int, remedy: str) -> None:
    check.add(sev, "nccl-env", msg, line, remedy, c)


def _p2p_disable(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if not _int(value):
        return
    few = 0 < check.gpus < 2
    _add(
        check, c, "info" if few else "error",
        f"{name}={value} turns NCCL's P2P transport off: GPUs of this pod talk through SHM "
        "(host memory) or the network instead of NVLink"
        + (" (no effect while the pod has one GPU)" if few else ""),
        line, f"remove {name}",
    )  # fmt: skip


def _p2p_level(check: Check, c: Container, name: str, value: str, line: int) -> None:
    level = value.strip().upper()
    number = _int(level)
    if level == "LOC" or number == 0:
        _add(
            check, c, "error",
            f"{name}={value} allows P2P only within one GPU: P2P is off between GPUs and "
            "NVLink is not used (SHM or the network carry the traffic)",
            line, f"remove {name} or set it to NVL",
        )  # fmt: skip
    elif number is not None:
        _add(
            check, c, "info",
            f"{name}={value} is a legacy integer (PIX..SYS; NVL has none): it keeps NVLink, "
            "but integer meanings have changed between NCCL versions",
            line, f"write the level by name ({name}=NVL)",
        )  # fmt: skip
    elif level not in _P2P_LEVELS:
        _add(
            check, c, "warning",
            f"{name}={value} is not a level NCCL knows ({', '.join(_P2P_LEVELS)}): "
            "NCCL warns and ignores it",
            line, f"remove {name} or set it to NVL",
        )  # fmt: skip


def _shm_disable(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if _int(value):
        _add(
            check, c, "warning",
            f"{name}={value} turns NCCL's SHM transport off: where P2P is not possible "
            "(P2P disabled, GPUs of another pod with the same NCCL_HOSTID) the network is "
            "used instead of host memory",
            line, f"remove {name}",
        )  # fmt: skip


def _ib_disable(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if not _int(value):
        return
    if check.rdma_kind == "ib":
        _add(
            check, c, "error",
            f"{name}={value} turns NCCL's InfiniBand transport off on an IB instance: "
            "inter-node traffic goes over TCP sockets (NET/Socket)",
            line, f"remove {name}",
        )  # fmt: skip
    elif check.rdma_kind == "efa":
        _add(
            check, c, "info",
            f"{name}={value} disables NCCL's built-in verbs transport only; EFA traffic goes "
            "through the aws-ofi-nccl plugin, which this does not touch",
            line, f"remove {name}: it has no effect here and misleads readers",
        )  # fmt: skip


def _net_plugin(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if check.rdma_kind != "efa":
        return
    low = value.strip().lower()
    if low == "none":
        _add(
            check, c, "error",
            f"{name}={value} stops NCCL loading aws-ofi-nccl: without it NCCL cannot use "
            "EFA and falls back to NET/Socket",
            line, f"remove {name} (NCCL loads libnccl-net.so, aws-ofi-nccl, by default)",
        )  # fmt: skip
    elif not any(p in low for p in _OFI_PLUGINS):
        _add(
            check, c, "warning",
            f"{name}={value} loads another net plugin than aws-ofi-nccl, the only one that "
            "drives EFA: if it is not an aws-ofi-nccl build NCCL falls back to NET/Socket",
            line, f"remove {name} or point it at aws-ofi-nccl (libnccl-net-ofi.so)",
        )  # fmt: skip


def _net(check: Check, c: Container, name: str, value: str, line: int) -> None:
    expected = check.profile.nccl.networks if check.profile else None
    if check.rdma_kind is None and expected is None:
        return
    names = expected.names if expected is not None else ()
    source = f" ({cite(expected)})" if expected is not None else ""
    if value.strip().lower() == "socket":
        _add(
            check, c, "error",
            f"{name}={value} forces TCP sockets between nodes; a {check.instance} is expected "
            f"to use {' or '.join(names) or 'its RDMA NICs'}{source}",
            line, f"remove {name}",
        )  # fmt: skip
    elif names and value.strip() not in names:
        _add(
            check, c, "error",
            f"{name}={value} asks for a network a {check.instance} does not have "
            f"(expected {' or '.join(names)}{source}): NCCL fails to initialise",
            line, f"remove {name}",
        )  # fmt: skip


def _fi_provider(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if check.rdma_kind == "efa" and value.strip().lower() != "efa":
        _add(
            check, c, "error",
            f"{name}={value} keeps libfabric off the EFA provider: aws-ofi-nccl finds no EFA "
            "endpoint and NCCL falls back to NET/Socket (or runs libfabric over TCP)",
            line, f"remove {name} (aws-ofi-nccl selects efa itself) or set it to efa",
        )  # fmt: skip


def _efa_rdma(check: Check, c: Container, name: str, value: str, line: int) -> None:
    gdr = check.profile.host.rdma_gdr if check.profile else None
    off = value.strip().lower() in ("0", "false", "no", "off")
    if check.rdma_kind == "efa" and gdr is not None and gdr.value and off:
        _add(
            check, c, "error",
            f"{name}={value} turns off EFA device RDMA, which GPUDirect RDMA needs on a "
            f"{check.instance} ({cite(gdr)}): aws-ofi-nccl requires it there",
            line, f"remove {name}",
        )  # fmt: skip


def _gdr_level(check: Check, c: Container, name: str, value: str, line: int) -> None:
    gdr = check.profile.nccl.gdr if check.profile else None
    if gdr is not None and gdr.value and (value.strip().upper() == "LOC" or _int(value) == 0):
        _add(
            check, c, "error",
            f"{name}={value} turns GPUDirect RDMA off: network traffic is bounced through host "
            f"memory, where a {check.instance} is expected to use GDR ({cite(gdr)})",
            line, f"remove {name}",
        )  # fmt: skip


def _forcing(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if value.strip().startswith("^"):
        _add(
            check, c, "info",
            f"{name}={value} excludes choices from NCCL's tuner for every collective and size",
            line, f"keep {name} only with a measurement that shows it helps on this NCCL",
        )  # fmt: skip
    else:
        _add(
            check, c, "warning",
            f"{name}={value} forces one choice for every collective and message size, "
            "overriding NCCL's tuner; the profile's floors were measured without it",
            line, f"remove {name} outside of experiments",
        )  # fmt: skip


def _nvls(check: Check, c: Container, name: str, value: str, line: int) -> None:
    expected = check.profile.nccl.nvls if check.profile else None
    number = _int(value)
    if expected is None or expected.value is None or number is None:
        return
    if expected.value and number == 0:
        _add(
            check, c, "warning",
            f"{name}={value} turns NVLink SHARP off on a {check.instance}, which uses it "
            f"({cite(expected)}): all_reduce loses the NVSwitch offload",
            line, f"remove {name}",
        )  # fmt: skip
    elif not expected.value and number:
        _add(
            check, c, "info",
            f"{name}={value}: a {check.instance} has no NVLink SHARP ({cite(expected)}), "
            "NCCL ignores it",
            line, f"remove {name}",
        )  # fmt: skip


def _cumem(check: Check, c: Container, name: str, value: str, line: int) -> None:
    if _int(value) == 0:
        _add(
            check, c, "info",
            f"{name}={value}: NCCL shares GPU memory with legacy CUDA IPC handles (P2P/IPC) "
            "instead of cuMem (P2P/CUMEM); it works, but it is not what the profile's "
            "transport checks saw (seed 000 ran P2P/CUMEM/read)",
            line, f"remove {name} unless a driver or container issue needs it",
        )  # fmt: skip


def _channels(check: Check, c: Container, name: str, value: str, line: int) -> None:
    number = _int(value)
    if number is not None and 0 < number < _FEW_CHANNELS:
        _add(
            check, c, "warning",
            f"{name}={value} caps NCCL at {number} channel(s): one channel moves a fraction "
            "of NVLink's bandwidth (README: all_reduce 25.1 GB/s with NCCL_MAX_NCHANNELS=1 "
            "on 4×H200 against a floor of 318 GB/s)",
            line, f"remove {name}",
        )  # fmt: skip


def _socket_ifname(check: Check, c: Container, name: str, value: str, line: int) -> None:
    """Inside a pod (no hostNetwork) NCCL sees lo and eth0 (plus net1... with Multus)."""
    meta = check.pod.target.metadata
    annotations = meta.get("annotations") if meta is not None else None
    multus = annotations is not None and annotations.get("k8s.v1.cni.cncf.io/networks")
    if check.pod.flag("hostNetwork") or multus:
        return
    spec = value.strip()
    exclude = spec.startswith("^")
    exact = spec.lstrip("^").startswith("=")
    prefixes = [p for p in spec.lstrip("^").lstrip("=").split(",") if p]

    def match(interface: str) -> bool:
        hit = any(
            interface == p if exact else interface.startswith(p) or fnmatch.fnmatch(interface, p)
            for p in prefixes
        )
        return hit != exclude

    if prefixes and not match("eth0"):
        _add(
            check, c, "warning",
            f"{name}={value} leaves NCCL no interface in this pod: a pod without hostNetwork "
            "has only lo and eth0, so bootstrap fails with 'no socket interface found'",
            line, f"remove {name} or set it to eth0 (or ^lo,docker0)",
        )  # fmt: skip


RULES: dict[str, Rule] = {
    "NCCL_P2P_DISABLE": _p2p_disable,
    "NCCL_P2P_LEVEL": _p2p_level,
    "NCCL_SHM_DISABLE": _shm_disable,
    "NCCL_IB_DISABLE": _ib_disable,
    "NCCL_NET_PLUGIN": _net_plugin,
    "NCCL_NET": _net,
    "FI_PROVIDER": _fi_provider,
    "FI_EFA_USE_DEVICE_RDMA": _efa_rdma,
    "NCCL_NET_GDR_LEVEL": _gdr_level,
    "NCCL_ALGO": _forcing,
    "NCCL_PROTO": _forcing,
    "NCCL_NVLS_ENABLE": _nvls,
    "NCCL_CUMEM_ENABLE": _cumem,
    "NCCL_MAX_NCHANNELS": _channels,
    "NCCL_MAX_CTAS": _channels,
    "NCCL_SOCKET_IFNAME": _socket_ifname,
}


def check_env(check: Check) -> None:
    for container in check.pod.device_containers:
        env = container.node.get("env")
        for entry in env.items() if env is not None else []:
            name = entry.text_of("name") or ""
            value = entry.get("value")
            if name in RULES and value is not None and value.text:
                RULES[name](check, container, name, value.text, value.line)
            elif name in RULES and entry.get("valueFrom") is not None:
                check.add(
                    "info",
                    "env-from",
                    f"{name} comes from valueFrom: its value is not in the spec and was not "
                    "checked",
                    entry.start_line,
                    f"check {name}'s value in its ConfigMap/Secret, or set it inline",
                    container,
                )
        env_from = container.node.get("envFrom")
        if env_from is not None and env_from.items():
            sources = ", ".join(
                f"{key} {ref.text_of('name') or '?'}"
                for item in env_from.items()
                for key, ref in item.pairs()
                if key.endswith("Ref")
            )
            check.add(
                "info",
                "env-from",
                f"envFrom ({sources or 'a source'}) may set NCCL_*/FI_* variables this tool "
                "cannot see: they were not checked",
                env_from.line,
                "lint the ConfigMap/Secret too, or set the NCCL variables inline in env",
                container,
            )
