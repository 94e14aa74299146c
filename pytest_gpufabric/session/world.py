"""What a run is before any rank starts: which profile judges its nodes and why, the nodes as
their launcher read them, the backend, the number of ranks and of NCCL nodes. Every problem
is a :class:`~..settings.SettingError` (a usage error) that names its source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..evidence.inventory import Inventory
from ..evidence.node import Node
from ..launch.protocol import Launcher
from ..profiles.catalogue import Catalogue
from ..profiles.detect import DetectionError, detect, facts_of
from ..profiles.implied import implied_profile
from ..profiles.model import Profile
from ..settings import SettingError, Settings


@dataclass(frozen=True)
class World:
    profile: Profile | None
    profile_reason: str  # how it was chosen, or why there is none
    nodes: tuple[Node, ...]
    backend: str  # "nccl" or "gloo"
    nranks: int
    nnodes: int  # NCCL nodes the ranks span (one host may be split with NCCL_HOSTID)

    @property
    def inventory(self) -> Inventory:
        """The GPUs of the (first) node: the node a single-node gate judges."""
        return self.nodes[0].inventory

    @property
    def dtype(self) -> str:
        if self.profile is not None and self.profile.backend == self.backend:
            return self.profile.dtype
        return "bfloat16" if self.backend == "nccl" else "float32"

    @property
    def inventory_problem(self) -> str | None:
        """Why a node does not look like the profile's node, or None."""
        for node in self.nodes:
            problem = inventory_problem(self.profile, node.inventory)
            if problem is not None:
                return problem if len(self.nodes) == 1 else f"node {node.name}: {problem}"
        return None


def choose_profile(
    settings: Settings, catalogue: Catalogue, node: Node
) -> tuple[Profile | None, str]:
    """The profile that judges ``node`` and why it was chosen; SettingError when none fits."""
    name = settings.instance.value
    if name != "auto":
        profile = catalogue.get(name)
        if profile is None:
            raise SettingError(
                f"--gpufabric-instance: unknown instance type {name!r} (from "
                f"{settings.instance.source}); known: {', '.join(catalogue.names())}"
            )
        return profile, f"{name} from {settings.instance.source}"
    inventory = node.inventory
    if node.label is None and not inventory.known:
        raise SettingError(
            f"--gpufabric-instance auto: {inventory.origin} says nothing about the GPUs; pass "
            f"--gpufabric-instance NAME (known: {', '.join(catalogue.names())})"
        )
    if node.label is None and not inventory.gpus:
        return None, f"auto: no GPU visible ({inventory.no_gpu_reason}); gloo on CPU, no floors"
    try:
        found = detect(catalogue, facts_of(node))
    except DetectionError as exc:
        if not exc.none_fits:
            raise SettingError(str(exc)) from None
        # A GPU node no profile fits is still judged: by what its own hardware implies.
        fingerprint = f"{len(inventory.gpus)} × {inventory.gpu_model}"
        closest = f"; closest: {exc.closest}" if exc.closest else ""
        why = f"auto: no profile fits this node ({fingerprint}{closest})"
        return implied_profile(node, why), f"{why}; judged by what its hardware implies"
    return found.profile, found.how


def choose_for_all(
    settings: Settings, catalogue: Catalogue, nodes: Sequence[Node]
) -> tuple[Profile | None, str]:
    """One profile for every node of the run; nodes of different types are an error."""
    chosen = [(node, *choose_profile(settings, catalogue, node)) for node in nodes]
    names = {profile.name if profile else None for _, profile, _ in chosen}
    if len(names) > 1:
        each = "; ".join(f"{n.name}: {p.name if p else 'none'} ({why})" for n, p, why in chosen)
        raise SettingError(
            f"--gpufabric-instance {settings.instance.value}: the nodes of this run are of "
            f"different types ({each}); run one type per session"
        )
    return chosen[0][1], chosen[0][2]


def inventory_problem(profile: Profile | None, inventory: Inventory) -> str | None:
    """Why this node does not look like the profile's node, or None."""
    if profile is None or not inventory.known:
        return None
    have = f"{len(inventory.gpus)} × {inventory.gpu_model}" if inventory.gpus else "no GPU"
    want = f"{profile.gpu_count} × {profile.gpu_model}"
    if profile.gpu_count == 0:
        if not inventory.gpus:
            return None
        return f"profile {profile.name} is for a node without GPUs; this node has {have}"
    if (
        len(inventory.gpus) == profile.gpu_count
        and (inventory.gpu_model or "").lower() == profile.gpu_model.lower()
    ):
        return None
    reason = f" ({inventory.no_gpu_reason})" if not inventory.gpus else ""
    return (
        f"profile {profile.name} expects {want} ({profile.file}); "
        f"this node has {have} visible{reason}"
    )


def plan_world(settings: Settings, catalogue: Catalogue, launcher: Launcher) -> World:
    """The run's world: the launcher's nodes (read where the ranks run), the profile that
    judges them, and the ranks. A launcher that replays a recording decides the ranks."""
    detect_nodes = settings.instance.value == "auto"  # label, DMI and RDMA only for auto
    nodes = tuple(launcher.nodes(detect=detect_nodes))
    if not nodes:
        raise SettingError(f"--gpufabric-launcher: {launcher.name} found no node to run on")
    profile, reason = choose_for_all(settings, catalogue, nodes)
    recorded = launcher.shape()
    if recorded is not None:
        return World(profile, reason, nodes, recorded.backend, recorded.nranks, recorded.nodes)
    gpus = sum(len(n.inventory.gpus) for n in nodes)
    # A CPU-only profile judges gloo even where GPUs exist; otherwise GPUs mean NCCL.
    backend = "nccl" if gpus and (profile is None or profile.gpu_count > 0) else "gloo"
    if backend == "nccl":
        default_ranks = gpus
    else:
        default_ranks = profile.ranks if profile is not None and profile.gpu_count == 0 else 2
    nranks = settings.nprocs.value or default_ranks
    if backend == "nccl" and nranks > gpus:
        where = nodes[0].inventory.hostname if len(nodes) == 1 else f"{len(nodes)} nodes"
        raise SettingError(
            f"--gpufabric-nprocs: {nranks} ranks (from {settings.nprocs.source}) but only "
            f"{gpus} GPUs are visible on {where}"
        )
    emulated = settings.emulate_nodes.value
    if emulated > nranks and not settings.fleet.value:  # a fleet's nodes may share GPUs
        raise SettingError(
            f"--gpufabric-emulate-nodes: {emulated} nodes (from {settings.emulate_nodes.source}) "
            f"but only {nranks} ranks"
        )
    return World(profile, reason, nodes, backend, nranks, max(emulated, len(nodes)))
