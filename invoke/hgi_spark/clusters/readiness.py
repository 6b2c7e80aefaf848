"""Is each node of a cloud or VM cluster configured? The ready line on its console says so.

cloud-init runs ``run-node`` and then prints ``<marker> role=ROLE name=NAME`` (or
``<marker>-failed ...``) to the console; terraform's ``ready_lines`` output names the line each
node prints. ``up`` and ``update`` wait for them, ``status`` reports them. The console is read
through a callable (Nova's console output, or a VM's serial console file), so this logic stays
free of openstacksdk.

A console keeps only its recent output (Nova: the last 100 KiB), so after weeks of logging or a
reboot the ready line of a long-running node is gone: the nodes seen ready are remembered by
their server id (``ReadyRecord``), and an ``update`` waits only for the nodes it created.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.errors import CloudError, HgiError
from hgi_spark.core.files import write_atomic

READY, FAILED, WAITING, UNKNOWN = "ready", "failed", "waiting", "unknown"


@dataclass(frozen=True)
class NodeState:
    name: str
    state: str
    detail: str = ""


def failed_line(ready_line: str) -> str:
    """The line cloud-init prints instead when run-node fails: the marker with '-failed'."""
    marker, _, rest = ready_line.partition(" ")
    return f"{marker}-failed {rest}"


def node_states(ready_lines: Mapping[str, str], read_console: Callable[[str], str]) -> list[NodeState]:
    """One state per node, read once from each console log."""
    states = []
    for name in sorted(ready_lines):
        try:
            log = read_console(name)
        except HgiError as error:
            states.append(NodeState(name, UNKNOWN, error.problem))
            continue
        if ready_lines[name] in log:
            states.append(NodeState(name, READY))
        elif failed_line(ready_lines[name]) in log:
            states.append(NodeState(name, FAILED, "run-node failed: see the node's console log"))
        else:
            states.append(NodeState(name, WAITING))
    return states


def wait_until_ready(
    ready_lines: Mapping[str, str],
    read_console: Callable[[str], str],
    *,
    timeout_s: float,
    interval_s: float = 10.0,
    say: Callable[[str], None] = lambda _text: None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[NodeState]:
    """Poll the nodes not yet ready until all are; a failed node or the timeout stops with a CloudError."""
    deadline = clock() + timeout_s
    pending = dict(ready_lines)
    done: dict[str, NodeState] = {}
    while True:
        for node in node_states(pending, read_console):
            if node.state == FAILED:
                raise CloudError(
                    f"node {node.name} failed to configure itself ({node.detail})",
                    fix=f"openstack console log show {node.name}",
                )
            if node.state == READY:
                done[node.name] = node
                del pending[node.name]
        if not pending:
            say(f"all {len(done)} nodes are configured")
            return [done[name] for name in sorted(done)]
        if clock() >= deadline:
            names = ", ".join(sorted(pending)[:5]) + (f" (+{len(pending) - 5} more)" if len(pending) > 5 else "")
            raise CloudError(
                f"{len(pending)} of {len(ready_lines)} nodes not configured after {timeout_s:.0f} s: {names}",
                fix="the cluster is up but not ready: check again with 'status'; raise terraform.wait_ready_s "
                "in the deployment YAML if nodes are only slow",
            )
        say(f"waiting for {len(pending)} of {len(ready_lines)} nodes to report ready")
        sleep(interval_s)


def ready_lines(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The ``ready_lines`` output (``terraform output -json`` shape or plain values)."""
    entry = outputs.get("ready_lines") or {}
    value = entry.get("value", entry) if isinstance(entry, Mapping) else {}
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class ReadyRecord:
    """The nodes seen ready, by name, with the id of the server (or VM) that was: a file per deployment."""

    path: Path

    def read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def remember(self, ids: Mapping[str, str]) -> None:
        write_atomic(self.path, json.dumps(dict(sorted(ids.items())), indent=2) + "\n", mode=0o644)

    def pending(self, lines: Mapping[str, str], ids: Mapping[str, str]) -> dict[str, str]:
        """The ready lines of nodes not seen ready as the server they are now."""
        seen = self.read()
        return {name: line for name, line in lines.items() if not ids.get(name) or seen.get(name) != ids.get(name)}


def wait_for_new_nodes(
    lines: Mapping[str, str],
    ids: Mapping[str, str],
    record: ReadyRecord,
    read_console: Callable[[str], str],
    *,
    timeout_s: float,
    say: Callable[[str], None],
    interval_s: float = 10.0,
) -> list[NodeState]:
    """Wait for the nodes that were not ready before; remember every node ready afterwards."""
    pending = record.pending(lines, ids)
    if len(pending) < len(lines):
        say(f"{len(lines) - len(pending)} of {len(lines)} nodes were ready before: not waiting for them")
    states = (
        wait_until_ready(pending, read_console, timeout_s=timeout_s, say=say, interval_s=interval_s) if pending else []
    )
    record.remember({name: ids[name] for name in lines if ids.get(name)})
    return states
