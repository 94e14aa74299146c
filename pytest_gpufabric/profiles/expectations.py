"""The ``nccl`` and ``host`` sections of a profile: every expectation is checked against its
rule and needs a source."""

from __future__ import annotations

from collections.abc import Callable

from .checker import Checker
from .keys import (
    HOST_KEYS,
    HOST_PARTS,
    NCCL_INTRA_KEYS,
    NCCL_KEYS,
    NCCL_NETWORK_KEYS,
    P2P_CAPABILITIES,
    TOPOLOGY_DISTANCES,
)
from .model import KNOWN_PLUGINS, TRANSPORTS, Expectation
from .yamlfile import LineMap

Rule = tuple[Callable[[object], bool], str]  # a value check and how to describe a good value


def _one_of(*allowed: str) -> Rule:
    return (lambda v: v in allowed), f"one of {', '.join(allowed)}"


BOOLEAN: Rule = (lambda v: isinstance(v, bool)), "true or false"
COUNT: Rule = (
    (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0),
    "an integer >= 0",
)
NUMBER: Rule = (
    (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0),
    "a number >= 0",
)
WORD: Rule = (lambda v: isinstance(v, str) and bool(v.strip())), "a non-empty string"
NAMES: Rule = (
    (lambda v: isinstance(v, list) and bool(v) and all(isinstance(i, str) and i for i in v)),
    "a non-empty list of names",
)


def _capabilities(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(v in P2P_CAPABILITIES for v in value)


CAPABILITIES: Rule = _capabilities, f"a list of {', '.join(P2P_CAPABILITIES)}"


class _Expectations:
    """Reads the expectation keys of one profile section (nccl, host): every value is checked
    and needs a source from this file, its sub-section's or the section's. ``null`` removes
    an inherited expectation."""

    def __init__(self, check: Checker, section: LineMap, name: str) -> None:
        self.check = check
        self.name = name
        self.default_source = check.text(section, "source", f"{name}.source", required=False)
        self.found: dict[str, Expectation | None] = {}

    def take(
        self, part: LineMap, prefix: str, key: str, rule: Rule, *, as_name: str | None = None
    ) -> None:
        if key not in part:
            return
        value, full = part[key], f"{prefix}.{key}"
        if value is None:
            self.found[as_name or key] = None
            return
        valid, describe = rule
        if not valid(value):
            self.check.problem(part.line_of(key), full, f"must be {describe}, got {value!r}")
            return
        source = (
            self.check.text(part, "source", f"{prefix}.source", required=False)
            or self.default_source
        )
        if source is None:
            self.check.problem(
                part.line_of(key),
                full,
                f"no source: give {self.name}.source or a source in this section",
            )
            return
        if isinstance(value, list):
            value = tuple(value)
        self.found[as_name or key] = Expectation(
            full, value, self.check.path, part.line_of(key), source
        )

    def part(self, section: LineMap, key: str, allowed: tuple[str, ...]) -> LineMap | None:
        part = self.check.mapping(section, key, f"{self.name}.{key}", required=False)
        if part is not None:
            self.check.unknown_keys(part, ("source", *allowed), f"{self.name}.{key}.")
        return part


def parse_nccl(check: Checker, section: LineMap) -> dict[str, Expectation | None]:
    check.unknown_keys(section, NCCL_KEYS, "nccl.")
    exp = _Expectations(check, section, "nccl")
    if intra := exp.part(section, "intra_node", NCCL_INTRA_KEYS):
        exp.take(intra, "nccl.intra_node", "transport", _one_of(*TRANSPORTS))
        exp.take(intra, "nccl.intra_node", "path", (WORD[0], "a path type such as NVL, PIX, PXB"))
        exp.take(intra, "nccl.intra_node", "p2p_read", BOOLEAN)
        exp.take(intra, "nccl.intra_node", "nvls", BOOLEAN)
        exp.take(intra, "nccl.intra_node", "channels", COUNT)
    if network := exp.part(section, "network", NCCL_NETWORK_KEYS):
        exp.take(network, "nccl.network", "names", NAMES, as_name="networks")
        exp.take(network, "nccl.network", "gdr", BOOLEAN)
        exp.take(network, "nccl.network", "plugin", _one_of(*KNOWN_PLUGINS))
        exp.take(network, "nccl.network", "provider", WORD)
        exp.take(network, "nccl.network", "nics", COUNT)
        exp.take(network, "nccl.network", "protocol", _one_of("SENDRECV", "RDMA"))
    return exp.found


def parse_host(check: Checker, section: LineMap) -> dict[str, Expectation | None]:
    check.unknown_keys(section, HOST_KEYS, "host.")
    exp = _Expectations(check, section, "host")
    exp.take(section, "host", "shm_min_gib", NUMBER)
    exp.take(section, "host", "fabric_manager", BOOLEAN)
    exp.take(section, "host", "p2p", CAPABILITIES)
    exp.take(section, "host", "nic_affinity", _one_of(*TOPOLOGY_DISTANCES))
    if nvlink := exp.part(section, "nvlink", HOST_PARTS["nvlink"]):
        exp.take(nvlink, "host.nvlink", "links", COUNT, as_name="nvlink_links")
        exp.take(nvlink, "host.nvlink", "version", WORD, as_name="nvlink_version")
    if errors := exp.part(section, "nvlink_errors", HOST_PARTS["nvlink_errors"]):
        exp.take(errors, "host.nvlink_errors", "max_crc_per_s", NUMBER)
        exp.take(errors, "host.nvlink_errors", "max_replay", COUNT)
        exp.take(errors, "host.nvlink_errors", "max_recovery", COUNT)
    if pcie := exp.part(section, "pcie", HOST_PARTS["pcie"]):
        exp.take(pcie, "host.pcie", "gen", COUNT, as_name="pcie_gen")
        exp.take(pcie, "host.pcie", "width", COUNT, as_name="pcie_width")
    if rdma := exp.part(section, "rdma", HOST_PARTS["rdma"]):
        exp.take(rdma, "host.rdma", "kind", _one_of("efa", "ib"), as_name="rdma_kind")
        exp.take(rdma, "host.rdma", "devices", COUNT, as_name="rdma_devices")
        exp.take(rdma, "host.rdma", "memlock_unlimited", BOOLEAN)
        exp.take(rdma, "host.rdma", "gdr", BOOLEAN, as_name="rdma_gdr")
    return exp.found
