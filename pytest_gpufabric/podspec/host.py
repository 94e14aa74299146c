"""Rules on what the pod gets from its node: IPC_LOCK, privileged, /dev/shm and hostIPC."""

from __future__ import annotations

from .context import DEFAULT_SHM_MIN_GIB, Check
from .findings import cite
from .pod import SHM, Container
from .quantity import GIB, gib, parse_quantity
from .source import Y

# containerd's CRI plugin gives a hostIPC pod the node's /dev/shm only when no volume is
# mounted there (internal/cri/server/container_create_linux.go: isInCRIMounts(devShm, ...)).
_CRI_SHM = "containerd mounts the node's /dev/shm into hostIPC pods only where no volume is"


def check_ipc_lock(check: Check) -> None:
    """ipc-lock: RDMA registers (pins) memory; without IPC_LOCK that is capped by memlock."""
    profile = check.profile
    if profile is None or check.rdma_kind is None:
        return
    expected = profile.host.memlock_unlimited or profile.host.rdma_kind
    source = f" ({cite(expected)})" if expected else ""
    for container in check.pod.device_containers:
        added = container.node.at("securityContext", "capabilities", "add")
        names = {
            (i.text or "").upper().removeprefix("CAP_") for i in (added.items() if added else [])
        }
        if names & {"IPC_LOCK", "ALL"} or container.privileged:
            continue
        check.add(
            "error",
            "ipc-lock",
            f"no IPC_LOCK capability: {check.rdma_kind.upper()} registers (pins) NCCL's "
            "buffers, which the container's memlock limit caps without IPC_LOCK; memory "
            f"registration fails or NCCL runs out of registrable memory{source}",
            container.missing_line("securityContext", "capabilities", "add"),
            "add securityContext.capabilities.add: [IPC_LOCK] to the container",
            container,
        )


def check_privileged(check: Check) -> None:
    """privileged: more than RDMA and GPUs need; device plugins inject the devices."""
    for container in check.pod.containers:
        value = container.privileged
        if value is None:
            continue
        check.add(
            "warning",
            "privileged",
            "privileged: true gives the container every device and capability of the node, "
            "while NCCL needs only the GPUs and NICs the device plugins inject and IPC_LOCK; "
            "it also sees every GPU of the node, whatever its nvidia.com/gpu limit says",
            value.line,
            "drop privileged and add securityContext.capabilities.add: [IPC_LOCK]; request the "
            "devices as resources (nvidia.com/gpu, vpc.amazonaws.com/efa or the HCA resource)",
            container,
        )


def _shm_mount(container: Container) -> Y | None:
    mounts = container.node.get("volumeMounts")
    for mount in mounts.items() if mounts is not None else []:
        if (mount.text_of("mountPath") or "").rstrip("/") == SHM:
            return mount
    return None


def _shm_minimum(check: Check) -> tuple[float, str]:
    expected = check.profile.host.shm_min_gib if check.profile else None
    if expected is not None:
        return expected.number, cite(expected)
    return DEFAULT_SHM_MIN_GIB, "the default of this tool (NCCL's guide: --shm-size=1g)"


def _check_size(check: Check, container: Container, empty_dir: Y) -> None:
    minimum, source = _shm_minimum(check)
    size = empty_dir.get("sizeLimit")
    if size is None:
        check.add(
            "info",
            "shm-unbounded",
            "the /dev/shm emptyDir has no sizeLimit: the kubelet sizes the tmpfs to the pod's "
            "memory limit or the node's allocatable memory (SizeMemoryBackedVolumes, on since "
            "1.22), and what is written there counts as the pod's memory",
            empty_dir.line,
            f"set sizeLimit (at least {minimum:g}Gi, {source}) so a leak in /dev/shm cannot "
            "take the node's memory",
            container,
        )
        return
    nbytes = parse_quantity(size.text)
    if nbytes is None:
        check.add(
            "warning",
            "shm-size",
            f"sizeLimit {size.text!r} is not a quantity: the API server rejects the pod",
            size.line,
            f"write it as a quantity, for example {max(minimum, 1):g}Gi",
            container,
        )
    elif nbytes < minimum * GIB:
        check.add(
            "error",
            "shm-size",
            f"/dev/shm sizeLimit {size.text} ({gib(nbytes)}) is below the minimum of "
            f"{minimum:g} GiB ({source}): NCCL's SHM segments and DataLoader workers fail "
            "with 'No space left on device' or a bus error",
            size.line,
            f"set sizeLimit to at least {minimum:g}Gi",
            container,
        )
    limit = container.limit("memory")
    limit_bytes = parse_quantity(limit.text) if limit is not None else None
    if limit is not None and nbytes and limit_bytes is not None and limit_bytes < nbytes:
        check.add(
            "warning",
            "shm-memory",
            f"/dev/shm may hold {size.text} but the container's memory limit is {limit.text}: "
            "pages in a memory-backed emptyDir count against the limit, so the container is "
            "OOM-killed before /dev/shm is full",
            limit.line,
            "raise the memory limit above sizeLimit plus what the processes need, or lower "
            "sizeLimit",
            container,
        )


def _check_volume(check: Check, container: Container, mount: Y) -> None:
    name = mount.text_of("name") or ""
    volume = check.pod.volume(name)
    if volume is None:
        check.add(
            "error",
            "pod-shape",
            f"volumeMount {name!r} at /dev/shm names no volume of the pod: the API server "
            "rejects it",
            mount.start_line,
            f"add a volume {name!r}: emptyDir: {{medium: Memory, sizeLimit: 64Gi}}",
            container,
        )
        return
    empty_dir = volume.get("emptyDir")
    host_path = volume.at("hostPath", "path")
    if empty_dir is not None:
        medium = empty_dir.text_of("medium") if empty_dir.is_map else None
        if medium != "Memory":
            check.add(
                "warning",
                "shm-medium",
                f"the /dev/shm volume {name!r} is an emptyDir on the node's disk "
                f"(medium {medium or 'unset'}), not a tmpfs: NCCL's SHM transport and "
                "pinned staging go through disk-backed files",
                (empty_dir.get("medium") or empty_dir).line,
                "set emptyDir.medium: Memory",
                container,
            )
        else:
            _check_size(check, container, empty_dir)
    elif host_path is not None and (host_path.text or "").rstrip("/") == SHM:
        check.add(
            "info",
            "shm-medium",
            "/dev/shm is the node's own /dev/shm (hostPath), shared with every pod that mounts "
            "it; its size is the node's and is not checked here",
            host_path.line,
            "prefer an emptyDir with medium: Memory and a sizeLimit per pod",
            container,
        )
    else:
        check.add(
            "warning",
            "shm-medium",
            f"the /dev/shm volume {name!r} is not a memory-backed emptyDir: NCCL expects a "
            "tmpfs there",
            volume.start_line,
            "use emptyDir: {medium: Memory, sizeLimit: 64Gi}",
            container,
        )


def check_shm(check: Check) -> None:
    """shm-missing / shm-medium / shm-size / shm-unbounded / shm-memory, per NCCL container."""
    if not check.gpu_pod:
        return
    host_ipc = check.pod.flag("hostIPC")
    for container in check.pod.device_containers:
        mount = _shm_mount(container)
        if mount is not None:
            _check_volume(check, container, mount)
        elif host_ipc is not None:
            check.add(
                "info",
                "shm-missing",
                f"no volume at /dev/shm; with hostIPC: true the container gets the node's "
                f"/dev/shm ({_CRI_SHM}), whose size is not checked here",
                host_ipc.line,
                "mount an emptyDir (medium: Memory, sizeLimit) at /dev/shm to size it per pod",
                container,
            )
        else:
            minimum, source = _shm_minimum(check)
            check.add(
                "error",
                "shm-missing",
                "no volume at /dev/shm: the container runtime's default is a 64 MiB tmpfs, "
                f"below the minimum of {minimum:g} GiB ({source}); NCCL fails with 'No space "
                "left on device' or a bus error once its SHM segments outgrow it",
                container.missing_line("volumeMounts"),
                "mount an emptyDir at /dev/shm: volumes: [{name: dshm, emptyDir: {medium: "
                "Memory, sizeLimit: 64Gi}}] and volumeMounts: [{name: dshm, mountPath: /dev/shm}]",
                container,
            )


def check_host_ipc(check: Check) -> None:
    """host-ipc / shm-hostipc: hostIPC matters only when pods share a node's GPUs."""
    if check.profile is None or check.gpus == 0:
        return
    host_ipc = check.pod.flag("hostIPC")
    if check.split and host_ipc is None:
        check.add(
            "warning",
            "host-ipc",
            f"the pod holds {check.gpus} of the {check.profile.gpu_count} GPUs of its node but "
            "not hostIPC: true: pods of one node cannot share NCCL's SHM segments or cuMem "
            "IPC handles, so nothing but the network joins them",
            check.pod.line,
            "give the pod all GPUs of the node; otherwise set spec.hostIPC: true (and the same "
            "NCCL_HOSTID in the pods of one node)",
        )
    elif not check.split and host_ipc is not None:
        check.add(
            "info",
            "host-ipc",
            f"hostIPC: true, but the pod holds all {check.profile.gpu_count} GPUs of its node, "
            "so its ranks need no IPC with other pods; hostIPC shares the node's IPC namespace "
            "with every other hostIPC pod",
            host_ipc.line,
            "drop hostIPC",
        )
    elif check.split and host_ipc is not None:
        mounted = [c for c in check.pod.device_containers if _shm_mount(c) is not None]
        for container in mounted:
            mount = _shm_mount(container)
            check.add(
                "info",
                "shm-hostipc",
                "hostIPC: true shares the node's IPC namespace, but the volume mounted at "
                f"/dev/shm (line {mount.start_line if mount else '?'}) hides the node's "
                f"/dev/shm ({_CRI_SHM}): NCCL's SHM segments, files in /dev/shm, are not "
                "shared with the other pods of the node",
                host_ipc.line,
                "for SHM between the pods of a node, drop the /dev/shm volume (they then share "
                "the node's /dev/shm) and give them the same NCCL_HOSTID; better, give one pod "
                "all GPUs of the node",
                container,
            )
