"""Where a layout's group runs and which link class it crosses, for failure messages: its
ranks' GPUs and nodes (what the ranks reported when they joined), and the transport NCCL
chose between those ranks in the main run's communicator (P2P over NVLink, SHM when P2P is
off, the network between nodes)."""

from __future__ import annotations

from collections.abc import Sequence

from ..launch.protocol import RankPool

Group = tuple[int, ...]


def where_of(pool: RankPool, ranks: Group, machines: Sequence[str] | None = None) -> str:
    """"GPUs 0, 1 on vm"; in pods, with the node each pod is on ("on pod-a, pod-b (node
    n1)"), from ``machines``: the launcher's node of each rank (Launcher.rank_nodes)."""
    hello = {h.rank: h for h in pool.hello}
    names: dict[str, str] = {}  # NCCL node (in Kubernetes a pod's host name) -> its node
    for r in ranks:
        if r in hello:
            name = hello[r].node or hello[r].host
            names.setdefault(name, machines[r] if machines and r < len(machines) else name)
    under = set(names.values())
    if under == set(names):  # no pods: the nodes themselves
        nodes = ", ".join(names)
    elif len(under) == 1:  # pods of one node
        nodes = f"{', '.join(names)} (node {under.pop()})"
    else:
        nodes = ", ".join(f"{name} (node {machine})" for name, machine in names.items())
    devices = [hello[r].local_rank for r in ranks if r in hello]
    if pool.spec.backend == "nccl" and None not in devices:
        return f"GPUs {', '.join(map(str, devices))} on {nodes}"
    return f"on {nodes}"


def group_links(pool: RankPool, groups: Sequence[Group], backend: str) -> dict[Group, str]:
    if backend != "nccl":
        return dict.fromkeys(groups, "gloo over TCP")
    log = pool.nccl_log()
    hello = {h.rank: h for h in pool.hello}
    links: dict[Group, str] = {}
    for group in groups:
        members = set(group)
        seen = sorted({c.detail for c in log.connections
                       if c.src in members and c.dst in members and c.src != c.dst})  # fmt: skip
        nodes = {hello[r].node for r in group if r in hello}
        if not seen:
            links[group] = ("the network between nodes" if len(nodes) > 1
                            else "a link the main run's NCCL log does not show")  # fmt: skip
        elif all(s.startswith("P2P") for s in seen):
            links[group] = f"NVLink ({', '.join(seen)})"
        elif any(s.startswith("NET") for s in seen):
            links[group] = f"the network ({', '.join(seen)})"
        else:
            links[group] = ", ".join(seen)  # SHM: through host memory, P2P off
    return links
