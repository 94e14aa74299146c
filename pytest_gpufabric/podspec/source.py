"""Read a manifest file into YAML nodes that keep their line numbers.

PyYAML's composed nodes (``yaml.compose_all``) carry ``start_mark.line``; :class:`Y` wraps
one node so the rules can walk ``spec.containers[0].resources`` and still say which line of
the file a finding is about. Nothing is converted to Python objects, so a quantity such as
``"4"`` or ``4`` stays the text the user wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"


class PodspecError(ValueError):
    """A file the linter cannot read; ``str()`` is one line: ``file[:line]: problem``."""


class Y:
    """One YAML node; ``line`` is the 1-based line of the key that holds it (if any)."""

    __slots__ = ("key_line", "node")

    def __init__(self, node: yaml.Node, key_line: int | None = None) -> None:
        self.node = node
        self.key_line = key_line

    @property
    def line(self) -> int:
        """The key's line (``resources:``), else where the node starts (a list item)."""
        return self.key_line or self.node.start_mark.line + 1

    @property
    def start_line(self) -> int:
        return self.node.start_mark.line + 1

    @property
    def is_map(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    @property
    def is_seq(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def pairs(self) -> list[tuple[str, Y]]:
        """The mapping's entries in file order (keys as text); [] for anything else."""
        if not isinstance(self.node, yaml.MappingNode):
            return []
        out = []
        for key, value in self.node.value:
            if isinstance(key, yaml.ScalarNode):
                out.append((str(key.value), Y(value, key.start_mark.line + 1)))
        return out

    def get(self, key: str) -> Y | None:
        """The value under ``key``; the last one wins, as in the API server's decoder."""
        found = None
        for name, value in self.pairs():
            if name == key:
                found = value
        return found

    def at(self, *path: str) -> Y | None:
        node: Y | None = self
        for key in path:
            node = node.get(key) if node is not None else None
        return node

    def items(self) -> list[Y]:
        if not isinstance(self.node, yaml.SequenceNode):
            return []
        return [Y(item) for item in self.node.value]

    @property
    def text(self) -> str | None:
        """A scalar's text as written; None for null, a mapping or a list."""
        if not isinstance(self.node, yaml.ScalarNode) or self.node.tag == _NULL:
            return None
        return str(self.node.value)

    @property
    def flag(self) -> bool:
        """True for a YAML true (``true``, ``True``, ``yes``, ``on``)."""
        node = self.node
        return (
            isinstance(node, yaml.ScalarNode)
            and node.tag == _BOOL
            and str(node.value).lower() in ("true", "yes", "on")
        )

    def value(self) -> Any:
        """The node as Python data (dicts, lists, scalars), as yaml.safe_load gives it."""
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_document(self.node)
        finally:
            loader.dispose()

    def text_of(self, key: str) -> str | None:
        value = self.get(key)
        return value.text if value is not None else None


def _first_content_line(text: str) -> str:
    for raw in text.splitlines():
        if raw.strip() and not raw.lstrip().startswith("#"):
            return raw
    return ""


def _hint(problem: str, text: str) -> str:
    """Why a pasted fragment fails: its first key is indented, so its parent line is gone."""
    first = _first_content_line(text)
    if problem.startswith("expected '<document start>'") and first[:1] in (" ", "\t"):
        return (
            f" (the first line {first.strip()!r} is indented under no key:"
            " the line above it, such as 'metadata:', looks cut off)"
        )
    return ""


def load_documents(path: Path) -> list[Y]:
    """Every non-empty YAML document in ``path``; :class:`PodspecError` when unreadable."""
    if not path.exists():
        raise PodspecError(f"{path}: no such file")
    if not path.is_file():  # a FIFO would block forever
        raise PodspecError(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PodspecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PodspecError(f"{path}: not a UTF-8 text file") from None
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise PodspecError(
            f"{path}{line}: not valid YAML: {problem}{_hint(problem, text)}"
        ) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise PodspecError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return [Y(node) for node in nodes if node is not None]
