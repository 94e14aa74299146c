"""What a run shows in the terminal: the report header (profile, nodes, ranks) and, at the
end, the measured busbw next to each floor and the run's certification verdict."""

from __future__ import annotations

from ..fleet.summary import table_lines
from ..judge import properties
from ..judge.certify import Certification
from ..runs import DEFAULT
from ..session.session import FabricSession
from ..units import format_size


def header_lines(session: FabricSession) -> list[str]:
    world, inv = session.world, session.world.inventory
    profile = f"{world.profile.name} ({world.profile.file})" if world.profile else "none"
    gpus = f"{len(inv.gpus)} × {inv.gpu_model} (driver {inv.driver})" if inv.gpus else "none"
    lines = [f"gpufabric: instance {profile} [{world.profile_reason}]"]
    if session.replay_of is not None:
        lines.append(
            f"gpufabric: replay of {session.replay_of}: {world.nranks} ranks on "
            f"{world.nnodes} node(s), GPUs {gpus if inv.known else 'not recorded'}"
        )
        return lines
    nccl = f", NCCL {inv.nccl_wheel}" if inv.nccl_wheel else ""
    where = "" if len(world.nodes) == 1 else f" on {len(world.nodes)} nodes"
    lines.append(
        f"gpufabric: launcher {session.launcher.name}, backend {world.backend}, "
        f"{world.nranks} ranks{where}, torch {inv.torch_version}{nccl}, GPUs {gpus}"
    )
    return lines


def summary_lines(session: FabricSession, certification: Certification | None) -> list[str]:
    """One line per bandwidth test (measured busbw next to its floor), where the evidence
    is, and the verdict."""
    lines = []
    for record in session.records.tests:
        measured = properties.read(record.properties)
        if measured is None or measured.busbw_gbps is None:
            continue
        floor = measured.threshold_gbps
        against = f"  floor {floor:>8g}" if floor is not None else ""
        label = f"{measured.collective.value} {format_size(measured.nbytes)}"
        if measured.run != DEFAULT:
            label = f"{measured.run} {label}"
        lines.append(
            f"{record.outcome.upper():7} {label:35} busbw {measured.busbw_gbps:>8.1f} GB/s{against}"
        )
    if session.fleet_result is not None:
        lines += table_lines(session.fleet_result)
    lines += [f"gpufabric: {note}" for note in session.notes]
    if session.replay_of is not None:
        lines.append(f"judged the recorded run in {session.replay_of}")
    elif session.artifacts:
        lines.append(f"per-rank NCCL logs and output: {session.artifacts}")
    if certification is not None:
        lines += certification.lines()
    profile = session.world.profile
    if profile is not None and profile.implied:
        lines.append(f"make a profile of this node from this run: {session.floors_command()}")
    return lines
