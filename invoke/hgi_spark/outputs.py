"""Terraform outputs for people (a table, secrets masked) and for scripts (JSON)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

MASK = "(sensitive)"


def values(outputs: Mapping[str, Mapping[str, Any]], *, show_secrets: bool = False) -> dict[str, Any]:
    """``terraform output -json`` (or a state's ``outputs``) to name -> value, secrets masked."""
    return {
        name: (MASK if entry.get("sensitive") and not show_secrets else entry.get("value"))
        for name, entry in sorted(outputs.items())
    }


def as_json(outputs: Mapping[str, Mapping[str, Any]], *, show_secrets: bool = False) -> str:
    return json.dumps(values(outputs, show_secrets=show_secrets), indent=2, sort_keys=True)


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def table(rows: Sequence[tuple[str, str]], *, headers: tuple[str, str] | None = None) -> str:
    """Two aligned columns; multi-line values continue under the value column."""
    if not rows and not headers:
        return ""
    everything = [*([headers] if headers else []), *rows]
    width = max(len(label) for label, _ in everything)
    lines = []
    if headers:
        lines.append(f"{headers[0]:<{width}}  {headers[1]}")
        lines.append(f"{'-' * width}  {'-' * max(5, len(headers[1]))}")
    for label, value in rows:
        first, *rest = str(value).splitlines() or [""]
        lines.append(f"{label:<{width}}  {first}".rstrip())
        lines.extend(f"{'':<{width}}  {line}".rstrip() for line in rest)
    return "\n".join(lines)


def as_table(outputs: Mapping[str, Mapping[str, Any]], *, show_secrets: bool = False) -> str:
    shown = values(outputs, show_secrets=show_secrets)
    if not shown:
        return "(no outputs)"
    return table([(name, _text(value)) for name, value in shown.items()], headers=("output", "value"))
