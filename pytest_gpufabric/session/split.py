"""The split-cost comparison as the session sees it (runs.SPLIT_RUN, judge/topology.py): its
cases, the demands it answers for certification, and why a run cannot show it."""

from __future__ import annotations

from ..judge.certify import Demand
from ..judge.judgement import Skip
from ..profiles.model import Profile
from ..units import format_size
from .cases import SPLIT_COLLECTIVES, SplitCase, split_case
from .world import World


def split_cases(profile: Profile | None, backend: str) -> list[SplitCase]:
    return [split_case(c, profile, backend) for c in SPLIT_COLLECTIVES]


def split_skip(world: World) -> tuple[str, Skip] | None:
    """Why this run cannot compare (and whether that keeps it from being certified), or None."""
    profile = world.profile
    asked = Skip.NO_EVIDENCE if profile is not None and profile.split else Skip.NOT_ASKED
    if world.nranks == 0:
        return "no rank in the recording", asked
    if world.nranks < 2:
        return "1 rank: nothing to split", Skip.NOT_APPLICABLE
    if world.nnodes > 1:
        return (
            f"the main run already spans {world.nnodes} NCCL nodes (pods, hosts or NCCL_HOSTID "
            "groups), so its ranks talk between hosts already; run with one pod per node (all "
            "its GPUs in one pod) to compare",
            Skip.NOT_APPLICABLE,
        )
    if profile is None or profile.split is None:
        return None  # compared and reported, not judged
    if world.inventory_problem:
        return f"node does not match the profile: {world.inventory_problem}", asked
    if world.nranks != profile.ranks:
        return (
            f"bandwidth.split of {profile.name} holds for {profile.ranks} ranks; this run has "
            f"{world.nranks}",
            asked,
        )
    return None


def split_demands(profile: Profile, world: World) -> list[Demand]:
    """The profile's bandwidth.split, one demand per collective, where this run can show it."""
    limit = profile.split
    skip = split_skip(world)
    if limit is None or (skip is not None and skip[1] is Skip.NOT_APPLICABLE):
        return []
    return [
        Demand(
            case.key,
            f"cost of splitting {case.collective.value} {format_size(case.nbytes)} into one "
            f"NCCL host per rank <= {limit.max_slowdown:g}× (bandwidth.split, {limit.where})",
        )
        for case in split_cases(profile, world.backend)
    ]
