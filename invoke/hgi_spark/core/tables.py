"""Tables for people: terraform outputs (nodes first, then the URLs; secrets masked), status rows;
and the same outputs as JSON for scripts."""

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


# Outputs people look for, in this order, after the nodes.
FIRST = ("jupyter_url", "spark_ui_url", "ssh_command", "profile", "spark_master_url", "runtime_dir")


def nodes(outputs: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(name, role, address) of every node the outputs describe, master first."""
    shown = values(outputs, show_secrets=True)
    listed = shown.get("nodes")
    if isinstance(listed, Mapping):
        rows = []
        for key, node in listed.items():
            node = node if isinstance(node, Mapping) else {}
            address = node.get("address") or node.get("state_dir") or ""
            rows.append((str(node.get("name") or key), str(node.get("role") or ""), str(address)))
        return sorted(rows, key=lambda r: (r[1] != "master", r[0]))
    if shown.get("master_name"):
        rows = [("" + str(shown["master_name"]), "master", str(shown.get("master_private_ip") or ""))]
        addresses = list(shown.get("worker_private_ips") or [])
        for index, name in enumerate(shown.get("worker_names") or []):
            rows.append((str(name), "worker", str(addresses[index]) if index < len(addresses) else ""))
        return rows
    return []


def outputs_text(
    outputs: Mapping[str, Mapping[str, Any]], *, show_secrets: bool = False, extra: Sequence[tuple[str, str]] = ()
) -> str:
    """The outputs once, readable: one row per node, then the URLs and the rest (scalars only)."""
    if not outputs:
        return "(no outputs)"
    lines = []
    found = nodes(outputs)
    if found:
        width = max(len(n) for n, _, _ in found)
        lines.append(f"{'node':<{width}}  {'role':<6}  address")
        lines.extend(f"{name:<{width}}  {role:<6}  {address}".rstrip() for name, role, address in found)
        lines.append("")
    shown = values(outputs, show_secrets=show_secrets)
    rows = [(key, _text(shown[key])) for key in FIRST if shown.get(key) not in (None, "")]
    structured = []
    for key, value in shown.items():
        if key in FIRST or key in ("nodes", "master_name", "worker_names", "master_private_ip", "worker_private_ips"):
            continue
        if isinstance(value, dict | list):
            structured.append(key)
        elif value not in (None, ""):
            rows.append((key, _text(value)))
    rows.extend(extra)
    rows.append(("password", "the deployment's 'password' task shows it"))
    lines.append(table(rows))
    if structured:
        lines.append(f"(also: {', '.join(structured)}: see outputs --json)")
    return "\n".join(lines)
