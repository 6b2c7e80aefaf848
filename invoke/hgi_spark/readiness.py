"""Is each OpenStack node configured? The ready line cloud-init prints to its console log says so.

cloud-init runs ``run-node`` and then prints ``<marker> role=ROLE name=NAME`` (or
``<marker>-failed ...``) to the console; terraform's ``ready_lines`` output names the line each
node prints. ``up`` and ``update`` wait for them, ``status`` reports them. The console is read
through a callable so that this logic stays free of openstacksdk.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CloudError, HgiError

if TYPE_CHECKING:
    from .config import Deployment

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


def _ready_lines(outputs: Mapping[str, Any]) -> dict[str, str]:
    entry = outputs.get("ready_lines") or {}
    value = entry.get("value", entry) if isinstance(entry, Mapping) else {}
    return {str(k): str(v) for k, v in (value or {}).items()}


def _console_reader(deployment: Deployment) -> Callable[[str], str]:
    from . import cloud, credentials

    connection = cloud.connect(credentials.openstack_environment(repo=deployment.repo))
    return lambda name: cloud.console_log(connection, name)


def after_apply(deployment: Deployment, outputs: Mapping[str, Any], say: Callable[[str], None]) -> None:
    """The profile hook run after ``up``/``update``: wait for every node's ready line."""
    lines = _ready_lines(outputs)
    timeout = deployment.wrapper.wait_ready_s
    if not lines or timeout == 0:
        return
    wait_until_ready(lines, _console_reader(deployment), timeout_s=timeout, say=say)


def status_rows(deployment: Deployment, outputs: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One row summarising the nodes' readiness, and one per node that is not ready."""
    lines = _ready_lines(outputs)
    if not lines:
        return []
    try:
        states = node_states(lines, _console_reader(deployment))
    except HgiError as error:
        return [("nodes", f"not checked: {error.problem}")]
    ready = sum(1 for s in states if s.state == READY)
    rows = [("nodes", f"{ready} of {len(states)} configured")]
    rows.extend((f"node {s.name}", s.state + (f": {s.detail}" if s.detail else "")) for s in states if s.state != READY)
    return rows
