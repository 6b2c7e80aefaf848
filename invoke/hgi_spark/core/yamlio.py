"""Read YAML definitions with positions, so every error can name file:line:column."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

Position = tuple[int, int]


@dataclass
class YamlDocument:
    """A parsed mapping and where each key path was written (1-based line and column)."""

    path: Path
    data: dict[str, Any]
    positions: dict[tuple[str | int, ...], Position] = field(default_factory=dict)

    def where(self, key_path: tuple[str | int, ...]) -> str:
        """``file:line:column`` of the deepest written prefix of key_path, or just the file."""
        for end in range(len(key_path), 0, -1):
            position = self.positions.get(tuple(key_path[:end]))
            if position:
                return f"{self.path}:{position[0]}:{position[1]}"
        return str(self.path)


def _positions(node: yaml.Node, prefix: tuple, into: dict) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*prefix, key_node.value)
            into[key] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            _positions(value_node, key, into)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            key = (*prefix, index)
            into[key] = (item.start_mark.line + 1, item.start_mark.column + 1)
            _positions(item, key, into)


def load(path: Path, *, display: str | None = None) -> YamlDocument:
    """Parse one YAML file that must hold a mapping (an empty file is an empty mapping)."""
    shown = Path(display) if display else path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the file: {error.strerror}", file=shown) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{shown}:{mark.line + 1}:{mark.column + 1}" if mark else str(shown)
        problem = error.problem or error.context or "invalid YAML"
        raise ConfigError(f"malformed YAML: {problem}", file=where, fix="fix the syntax at that position") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"malformed YAML: {error}", file=shown) from None
    if data is None:
        return YamlDocument(shown, {})
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected a mapping of keys at the top level, got {type(data).__name__}",
            file=shown,
            fix="write 'key: value' lines",
        )
    positions: dict = {}
    _positions(node, (), positions)
    return YamlDocument(shown, data, positions)


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge mappings, nearest wins; lists and scalars are replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged
