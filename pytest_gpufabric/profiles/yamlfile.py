"""Load YAML while remembering the line of every mapping key, so that a validator can say
``file:line: key: problem`` instead of just "invalid"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlError(Exception):
    """A file that cannot be read or parsed; ``str()`` is ``file:line: problem``."""


class LineMap(dict[str, Any]):
    """A mapping from a YAML file; ``lines[key]`` is the 1-based line where ``key`` stands."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.line)


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LineMap:
    loader.flatten_mapping(node)
    result = LineMap(node.start_mark.line + 1)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        value = loader.construct_object(value_node, deep=True)
        line = key_node.start_mark.line + 1
        if isinstance(value, LineMap):
            value.line = line  # "key missing here" points at the key that opens the mapping
        result[key] = value
        result.lines[key] = line
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml(path: Path) -> Any:
    """Parse ``path``; mappings come back as :class:`LineMap`. Errors name the file and line."""
    if path.exists() and not path.is_file():  # a FIFO would block the run forever
        raise YamlError(f"{path}: not a regular file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError:
        raise YamlError(f"{path}: not a UTF-8 text file") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader derives from SafeLoader
    except RecursionError:
        raise YamlError(f"{path}: nested too deeply to be a profile") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(f"{path}{line}: {problem}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(f"{path}: invalid YAML: {exc}") from exc
