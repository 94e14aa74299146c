"""The session's fleet run (``--gpufabric-fleet``): which nodes it covers, or why it cannot
run here, and its one result (fleet/run.py), shared by the isolation test and every node's."""

from __future__ import annotations

import os
from pathlib import Path

from ..fleet.planner import Planner
from ..fleet.record import find, nodes_of, replay
from ..fleet.run import FleetNode, FleetResult, FleetRun, emulated_nodes
from ..launch.protocol import Launcher
from ..settings import Settings
from .world import World


def fleet_nodes(
    settings: Settings, world: World, launcher: Launcher
) -> tuple[list[FleetNode], str]:
    """(the fleet's nodes, "") or ([], why fleet mode does not run on this launcher)."""
    if settings.replay.value is not None:
        record = find(settings.replay.value)
        if record is None:
            return [], f"no fleet run in the recording {settings.replay.value}"
        return nodes_of(record), ""
    if launcher.name != "local":
        return [], (f"fleet mode runs over the local launcher's emulated nodes so far; pools on "
                    f"some of the {launcher.name} launcher's nodes are not built yet")  # fmt: skip
    count = settings.emulate_nodes.value
    if count < 2:
        return [], "fleet mode needs nodes: --gpufabric-emulate-nodes N (N >= 2) on one host"
    if world.nranks % count:
        return [], f"{world.nranks} ranks do not split evenly into {count} emulated nodes"
    return emulated_nodes(world.nranks, count), ""


def run_fleet(
    settings: Settings, world: World, launcher: Launcher, nodes: list[FleetNode], directory: Path
) -> FleetResult:
    if settings.replay.value is not None:
        record = find(settings.replay.value)
        if record is None:  # fleet_nodes said so first
            raise ValueError(f"no fleet run in the recording {settings.replay.value}")
        return replay(record)
    run = FleetRun(
        launcher,
        nodes,
        backend=world.backend,
        dtype=world.dtype,
        directory=directory,
        startup_timeout=settings.startup_timeout.value,
        job_timeout=settings.timeout.value,
        environ=os.environ,
    )
    return run.run(Planner([n.name for n in nodes]))
