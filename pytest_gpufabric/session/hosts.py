"""Host facts of every node of the run, read through the launcher (where the ranks run): once
before the first collective and again when the host checks run, so that NVLink error
counters are judged as increases over the run. Each reading is kept in the artifacts bundle
(``host-<when>.json``, one directory per node when the run has several), so that a replay
sees what the live run saw."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..evidence.host import HostFacts
from ..evidence.host import to_json as host_to_json
from ..evidence.node import Node
from ..evidence.node import to_json as node_to_json
from ..launch.protocol import Launcher


class Hosts:
    def __init__(self, launcher: Launcher, nodes: Sequence[Node]) -> None:
        self.launcher = launcher
        self.nodes = tuple(nodes)
        self.before: dict[str, HostFacts | None] = {}
        self.now: dict[str, HostFacts | None] = {}

    def _write(self, artifacts: Path, node: Node, name: str, data: object) -> None:
        directory = artifacts if len(self.nodes) == 1 else artifacts / "nodes" / node.name
        directory.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(json.dumps(data, indent=1, default=str) + "\n")

    def keep_nodes(self, artifacts: Path) -> None:
        """Each node as its launcher read it, for replay (node.json)."""
        for node in self.nodes:
            self._write(artifacts, node, "node.json", node_to_json(node))

    def read(self, when: str, artifacts: Path | None) -> None:
        """Read every node now; ``when`` is "before" (first collective) or "after"."""
        for node in self.nodes:
            facts = self.launcher.read_host(node, when)
            (self.before if when == "before" else self.now)[node.name] = facts
            if facts is not None and artifacts is not None:
                self._write(artifacts, node, f"host-{when}.json", host_to_json(facts, when))
