"""The session's fleet run (``--gpufabric-fleet``): which nodes it covers, or why it cannot
run here, and its one result (fleet/run.py), shared by the isolation test and every node's."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

from ..evidence.host import HostFacts
from ..evidence.node import Node
from ..fleet.gate import GateRules
from ..fleet.record import find, nodes_of, replay
from ..fleet.run import (
    FleetNode,
    FleetResult,
    FleetRun,
    domains_of,
    emulated_nodes,
    placed_nodes,
)
from ..launch.protocol import Launcher, NodeFleet
from ..settings import Settings
from .world import World


def fleet_nodes(
    settings: Settings, world: World, launcher: Launcher
) -> tuple[list[FleetNode], str]:
    """(the fleet's nodes, "") or ([], why fleet mode does not run here)."""
    if settings.replay.value is not None:
        record = find(settings.replay.value)
        if record is None:
            return [], f"no fleet run in the recording {settings.replay.value}"
        return nodes_of(record), ""
    if launcher.name == "local":
        count = settings.emulate_nodes.value
        if count < 2:
            return [], "fleet mode on one host needs nodes: --gpufabric-emulate-nodes N (N >= 2)"
        if world.nranks % count and count % world.nranks:
            return [], f"{world.nranks} ranks do not split evenly into {count} emulated nodes"
        return emulated_nodes(world.nranks, count), ""
    placed = launcher.rank_nodes()
    if not placed:
        return [], f"the {launcher.name} launcher does not say which node holds which rank"
    return placed_nodes(placed), ""


def run_fleet(
    settings: Settings,
    world: World,
    launcher: Launcher,
    nodes: list[FleetNode],
    rules: GateRules,
    directory: Path,
) -> FleetResult:
    if settings.replay.value is not None:
        record = find(settings.replay.value)
        if record is None:  # fleet_nodes said so first
            raise ValueError(f"no fleet run in the recording {settings.replay.value}")
        return replay(record)
    hosts = HostReadings(launcher, world.nodes)
    run = FleetRun(
        launcher,
        nodes,
        rules,
        backend=world.backend,
        directory=directory,
        startup_timeout=settings.startup_timeout.value,
        job_timeout=settings.timeout.value,
        environ=os.environ,
        read_host=hosts.read,
        domains=domains_of(launcher.node_labels) if isinstance(launcher, NodeFleet) else None,
    )
    return run.run()


class HostReadings:
    """Each node's host facts after its gate, read once (emulated nodes share one host)."""

    def __init__(self, launcher: Launcher, nodes: Sequence[Node]) -> None:
        self.launcher = launcher
        self.nodes = {n.name: n for n in nodes}
        self.facts: dict[str, HostFacts | None] = {}
        self.locks = {name: threading.Lock() for name in self.nodes}

    def read(self, fleet_node: str) -> HostFacts | None:
        name = fleet_node if fleet_node in self.nodes else next(iter(self.nodes))
        with self.locks[name]:
            if name not in self.facts:
                self.facts[name] = self.launcher.read_host(self.nodes[name], "after")
            return self.facts[name]
