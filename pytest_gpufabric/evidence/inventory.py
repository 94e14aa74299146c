"""What this node has: visible GPUs (through NVML, honouring CUDA_VISIBLE_DEVICES), driver,
and the torch / NCCL builds the ranks will use. Read without importing torch, so the
controller stays light; the ranks report their own view at start-up."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any


@dataclass(frozen=True)
class Gpu:
    index: int  # NVML index (PCI bus order)
    name: str
    uuid: str
    pci_bus_id: str
    memory_mib: int


@dataclass(frozen=True)
class Inventory:
    gpus: tuple[Gpu, ...]  # the GPUs CUDA will show to the ranks
    driver: str | None
    hostname: str
    torch_version: str | None
    nccl_wheel: str | None  # e.g. "2.28.9 (nvidia-nccl-cu13)"; None when torch carries its own
    no_gpu_reason: str | None = None  # why no GPU is visible, when none is
    all_gpus: tuple[Gpu, ...] = field(default_factory=tuple)  # before CUDA_VISIBLE_DEVICES
    nccl_env: tuple[tuple[str, str], ...] = ()  # NCCL settings the operator exported
    known: bool = True  # False: a replayed run without GPU facts (nothing to compare)
    origin: str = "NVML on this node"

    @property
    def nccl_env_text(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.nccl_env)

    @property
    def gpu_model(self) -> str | None:
        names = sorted({g.name for g in self.gpus})
        if not names:
            return None
        return names[0] if len(names) == 1 else "mixed: " + ", ".join(names)


def visible_gpus(gpus: Iterable[Gpu], cuda_visible_devices: str | None) -> tuple[Gpu, ...]:
    """Apply CUDA_VISIBLE_DEVICES as the CUDA driver does: indices or ``GPU-<uuid prefix>``
    tokens, in the order given; the first token that matches nothing ends the list."""
    all_gpus = tuple(gpus)
    if cuda_visible_devices is None:
        return all_gpus
    chosen: list[Gpu] = []
    for token in (t.strip() for t in cuda_visible_devices.split(",")):
        match: Gpu | None = None
        if token.lstrip("-").isdigit():
            index = int(token)
            match = next((g for g in all_gpus if g.index == index), None)
        elif token.startswith("GPU-") and len(token) > 4:
            candidates = [g for g in all_gpus if g.uuid.startswith(token)]
            match = candidates[0] if len(candidates) == 1 else None
        if match is None or match in chosen:
            break
        chosen.append(match)
    return tuple(chosen)


def read_nvml() -> tuple[list[Gpu], str | None, str | None]:
    """(gpus, driver version, reason none could be read)."""
    try:
        import pynvml
    except ImportError:
        return [], None, "nvidia-ml-py is not installed"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], None, f"NVML unavailable ({exc}): no NVIDIA driver on this machine"
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        gpus = []
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            memory = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                Gpu(
                    index=index,
                    name=_text(pynvml.nvmlDeviceGetName(handle)),
                    uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
                    pci_bus_id=_text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
                    memory_mib=int(memory.total) // (1 << 20),
                )
            )
        return gpus, driver, None
    except pynvml.NVMLError as exc:
        return [], None, f"NVML query failed: {exc}"
    finally:
        pynvml.nvmlShutdown()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def nccl_wheel() -> str | None:
    """Version of the NCCL wheel torch loads, when NCCL came as a wheel (pip's CUDA torch)."""
    for dist in metadata.distributions():
        name = (dist.metadata["Name"] or "").lower()
        if name.startswith("nvidia-nccl"):
            return f"{dist.version} ({name})"
    return None


# Set by the plugin itself, or not read by NCCL at all (NGC images export NCCL_VERSION).
_NOT_OPERATOR_SETTINGS = {"NCCL_DEBUG", "NCCL_DEBUG_SUBSYS", "NCCL_DEBUG_FILE", "NCCL_VERSION"}


def nccl_settings(environ: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            (k, v)
            for k, v in environ.items()
            if k.startswith("NCCL_") and k not in _NOT_OPERATOR_SETTINGS
        )
    )


def take_inventory(environ: Mapping[str, str]) -> Inventory:
    gpus, driver, reason = read_nvml()
    visible = visible_gpus(gpus, environ.get("CUDA_VISIBLE_DEVICES"))
    if not visible and reason is None:
        reason = (
            "CUDA_VISIBLE_DEVICES hides every GPU" if gpus else "NVML reports no GPU on this node"
        )
    return Inventory(
        gpus=visible,
        driver=driver,
        hostname=socket.gethostname(),
        torch_version=_dist_version("torch"),
        nccl_wheel=nccl_wheel(),
        no_gpu_reason=reason,
        all_gpus=tuple(gpus),
        nccl_env=nccl_settings(environ),
    )
