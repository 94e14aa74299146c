"""Rules on the devices a pod asks for: GPUs, EFA/IB NICs, and how they are requested."""

from __future__ import annotations

from .context import Check
from .findings import cite, cite_gpu_count
from .pod import EFA, GPU

# NCCL's host hash is hostname + boot id (NVIDIA/nccl src/misc/utils.cc getHostHash), and
# every pod has its own hostname: pods of one node are different NCCL nodes.
_SPLIT_WHY = (
    "NCCL treats each pod as a node of its own (its host hash includes the pod's own "
    "hostname), so "
    "ranks in different pods of one node talk through the network, not NVLink "
    "(tests/data/seeds/000: 4 pods × 1 GPU ran via NET/Libfabric/0/GDRDMA)"
)


def check_gpus(check: Check) -> None:
    """gpu-count: the pod's GPUs against gpu.count of the instance."""
    profile, pod = check.profile, check.pod
    if profile is None or not pod.containers:
        return
    gpus, node = check.gpus, profile.gpu_count
    source = cite_gpu_count(profile)
    first = next((c for c in pod.containers if c.gpu_line), None)
    line = first.gpu_line if first and first.gpu_line else 0
    if gpus == 0 and node > 0:
        main = pod.containers[0]
        check.add(
            "error",
            "gpu-count",
            f"no {GPU} limit in any container (nor a DRA GPU claim): the pod gets none of "
            f"the {node} GPUs of a {profile.name} ({source})",
            main.missing_line("resources", "limits"),
            f"add resources.limits {GPU}: {node!r} to the container that runs the ranks",
            main,
        )
    elif gpus > node:
        check.add(
            "error",
            "gpu-count",
            f"the pod asks for {gpus} GPUs, a {profile.name} has {node} ({source}): "
            "no node can run it, it stays Pending (Insufficient nvidia.com/gpu)",
            line or pod.line,
            f"ask for at most {node} GPUs per pod; spread more ranks over more pods/nodes",
        )
    elif gpus < node:
        check.add(
            "warning",
            "gpu-count",
            f"the pod asks for {gpus} of the {node} GPUs of a {profile.name} ({source}): the "
            f"node is split into pods. {_SPLIT_WHY}",
            line or pod.line,
            f"give one pod all {node} GPUs of its node and start one rank per GPU inside it "
            f"(torchrun --nproc-per-node={node}), so every peer on the node is P2P over NVLink",
        )


def _nic_share(check: Check, devices: int) -> float:
    """The NICs that belong with this pod's GPUs: NICs are spread evenly over the GPUs."""
    node_gpus = check.profile.gpu_count if check.profile else 0
    return devices * check.gpus / node_gpus if node_gpus else float(devices)


def check_efa(check: Check) -> None:
    """rdma-devices on EFA instances: vpc.amazonaws.com/efa (or an EFA DRA claim)."""
    profile, pod = check.profile, check.pod
    expected = profile.host.rdma_devices if profile else None
    if profile is None or expected is None or check.rdma_kind != "efa" or not pod.containers:
        return
    devices, source = expected.integer, cite(expected)
    efa = pod.device_count("efa", devices)
    first = next((c for c in pod.containers if c.efa_line), None)
    line = first.efa_line if first and first.efa_line else 0
    share = _nic_share(check, devices)
    if efa == 0:
        main = pod.device_containers[0]
        check.add(
            "error",
            "rdma-devices",
            f"no {EFA} limit (nor an EFA DRA claim): the pod sees none of the {devices} EFA "
            f"devices of a {profile.name} ({source}); aws-ofi-nccl finds no EFA provider and "
            "NCCL falls back to NET/Socket over the pod's ENI (TCP), many times slower",
            main.missing_line("resources", "limits"),
            f"add resources.limits {EFA}: {round(share) or 1!r} (the EFA devices of this "
            "pod's share of the node) next to nvidia.com/gpu",
            main,
        )
    elif efa > devices:
        check.add(
            "error",
            "rdma-devices",
            f"the pod asks for {efa} EFA devices, a {profile.name} has {devices} ({source}): "
            "it stays Pending (Insufficient vpc.amazonaws.com/efa)",
            line or pod.line,
            f"ask for at most {devices}",
        )
    elif check.gpus > profile.gpu_count:
        return  # gpu-count reports the pod as unschedulable; a NIC share means nothing
    elif check.split and efa > share:
        fits = devices // efa
        check.add(
            "warning",
            "rdma-devices",
            f"the pod asks for {efa} of the {devices} EFA devices ({source}) with "
            f"{check.gpus} of {profile.gpu_count} GPUs, more than its GPUs' share "
            f"({share:g}): only {fits} such {'pods fit' if fits > 1 else 'pod fits'} on a "
            f"node, the other {profile.gpu_count - fits * check.gpus} GPUs get no EFA device",
            line or pod.line,
            f"ask for {share:g} EFA devices per {check.gpus} GPUs so the rest of the node can "
            f"have the others, or give the pod all {profile.gpu_count} GPUs",
        )
    elif efa < share:
        check.add(
            "warning",
            "rdma-devices",
            f"the pod asks for {efa} EFA devices for {check.gpus} GPUs; their share of a "
            f"{profile.name} is {share:g} ({source}): inter-node bandwidth drops to about "
            f"{efa / share:.0%} of what the node can do",
            line or pod.line,
            f"ask for {share:g} EFA devices",
        )


def check_ib(check: Check) -> None:
    """rdma-devices on IB instances: any HCA resource, an RDMA DRA claim, or /dev/infiniband
    from the host. Counts are not compared: a shared-device plugin gives every HCA for 1."""
    profile, pod = check.profile, check.pod
    expected = profile.host.rdma_kind if profile else None
    if profile is None or expected is None or check.rdma_kind != "ib" or not pod.containers:
        return
    if pod.device_count("rdma", 1) or any(c.efa for c in pod.containers):
        return
    volumes = pod.spec.get("volumes")
    for volume in volumes.items() if volumes is not None else []:
        if (volume.at("hostPath", "path") or volume).text == "/dev/infiniband":
            return
    if any(c.privileged for c in pod.containers):
        return  # a privileged container sees /dev/infiniband (the privileged rule says more)
    main = pod.device_containers[0]
    check.add(
        "error",
        "rdma-devices",
        f"no InfiniBand HCA resource (rdma/..., nvidia.com/hostdev, an SR-IOV resource or an "
        f"RDMA DRA claim): the pod sees no /dev/infiniband device of a {profile.name} "
        f"({cite(expected)}); NCCL's IB transport finds no HCA and falls back to NET/Socket",
        main.missing_line("resources", "limits"),
        "add the HCA resource your cluster's RDMA device plugin exposes (for example "
        "rdma/rdma_shared_device_a: 1, or nvidia.com/hostdev per GPU)",
        main,
    )


def check_requests(check: Check) -> None:
    """resource-requests: device resources are not overcommitted, so the API server wants
    a limit, and requests equal to it (k8s: "Limit must be set for non overcommitable")."""
    for container in check.pod.containers:
        requests = container.node.at("resources", "requests")
        for name, value in requests.pairs() if requests is not None else []:
            if "/" not in name or name.startswith(("kubernetes.io/", "hugepages-")):
                continue  # cpu, memory: overcommittable
            limit = container.limit(name)
            if limit is None:
                check.add(
                    "error",
                    "resource-requests",
                    f"requests {name}: {value.text} without a limit: the API server rejects "
                    "the pod (device resources must be set in limits)",
                    value.line,
                    f"move {name} to resources.limits (requests default to the limit)",
                    container,
                )
            elif limit.text != value.text:
                check.add(
                    "error",
                    "resource-requests",
                    f"requests {name}: {value.text} but limits {limit.text}: the API server "
                    "rejects the pod (device requests must equal their limit)",
                    value.line,
                    f"drop requests {name}, or set it equal to the limit",
                    container,
                )


def check_claims(check: Check, unresolved: list[str]) -> None:
    """dra-claim: a claim the file does not hold cannot be counted."""
    pod = check.pod
    for name in sorted(set(unresolved)):
        check.add(
            "info",
            "dra-claim",
            f"resource claim {name!r} (spec.resourceClaims) is not in this file: the devices "
            "it gives were not counted (GPU and NIC counts above may be short)",
            pod.claims_line or pod.line,
            "put the ResourceClaim/ResourceClaimTemplate in the same file (--- separated) "
            "to have it checked",
        )
