"""Every node of a cloud or VM cluster over ssh, at once: its services and shared tmp, its logs.

One ssh per node, all in parallel (at most ``PARALLEL`` at a time), each bounded: ssh's own
``ConnectTimeout`` and server-alive probes, and a deadline for the whole answer after which the
ssh (and the jump ssh it started) is killed by its process group. A node that does not answer is a
finding, never a hang. The master is reached at its public address, a worker through the master
(``ProxyJump``), every host key pinned from the node's console (remote.py); the entries are the
ones ``ssh-config`` prints, in a temporary file with the batch options on top.

What runs on a node is one read-only bash script on ssh's stdin, as the image's user: the baked
``run-node --status`` (the one place that knows a node's services), the units outside ``hgi-*``
that a system node needs (nginx and the NFS server on the master, the NFS mount on a worker),
``df`` of the shared tmp; for ``diagnose``, the same files the local cluster's diagnose collects,
framed and base64-encoded so any byte survives. Paths come from the deployment's ``node_paths``.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shlex
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.clusters import health, remote
from hgi_spark.clusters.diagnose import LOG_TAIL_BYTES
from hgi_spark.core.config import Image

PARALLEL = 8
CONNECT_TIMEOUT_S = 10
STATUS_TIMEOUT_S = 40.0  # one node's whole status answer, connection included
DIAGNOSE_TIMEOUT_S = 180.0  # one node's files
#: A system node's services besides run-node's: a name missing from systemctl's answer is missing.
SYSTEM_SERVICES = {"master": ("spark-master", "jupyter"), "worker": ("spark-worker",)}
#: Oneshot units: done is their normal end; only a failure is shown.
ONESHOTS = {"spark-grow-tmp"}
APPLICATIONS_KEPT = 3  # executors' output of the most recent applications, as the local diagnose


@dataclass(frozen=True)
class NodePaths:
    """Where a node keeps things and where run-node is: the image definition's ``layout``."""

    state_dir: str
    hail_tmp_dir: str
    etc_dir: str
    run_node: str

    @classmethod
    def of(cls, image: Image) -> NodePaths:
        layout = image.layout
        return cls(layout.state_dir, layout.hail_tmp_dir, layout.etc_dir, f"{layout.node_scripts_dir}/run-node")

    @property
    def env_file(self) -> str:
        """The node environment cloud-init writes (terraform/spark/modules/cluster: etc_dir/node.env)."""
        return f"{self.etc_dir}/node.env"


@dataclass(frozen=True)
class Answer:
    """What one node's ssh brought back, or why nothing came."""

    node: remote.Node
    ok: bool
    stdout: str = ""
    problem: str = ""


# --- ssh to every node ------------------------------------------------------------------------------


def ssh_config(outputs: Mapping[str, Any], known_hosts: Path, *, port: int, deployment: str) -> str:
    """Batch options for every host (the jump ssh reads them too), then the ``ssh-config`` entries of
    the master and of each worker whose keys are pinned."""
    spot = remote.target(outputs)
    head = [
        "BatchMode yes",
        f"ConnectTimeout {CONNECT_TIMEOUT_S}",
        "ServerAliveInterval 5",
        "ServerAliveCountMax 3",
        "LogLevel ERROR",
        "",
    ]
    parts = ["\n".join(head), remote.render(spot, known_hosts, deployment=deployment)]
    for worker in remote.nodes(outputs)[1:]:
        if remote.pinned_keys(known_hosts, worker.name):
            parts.append(remote.render_worker(spot, worker, port, known_hosts))
    return "\n".join(parts)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


#: How ssh says it failed before a session opened (so the script never ran): a loaded sshd missing the
#: banner deadline (four emulated VMs on two cores did that to the workers' jumps), or a refused or
#: dropped connection. Only these are asked again, and only for an idempotent script.
_BEFORE_SESSION = re.compile(
    r"banner exchange|kex_exchange_identification|Connection (refused|reset|closed|timed out)|"
    r"channel \d+: open failed|stdio forwarding failed"
)


def run_on(
    config: Path, node: remote.Node, script: str, timeout_s: float, *, reconnects: int = 0, pause_s: float = 5.0
) -> Answer:
    """``bash -s`` on one node with ``script`` on stdin, all within ``timeout_s``. ``reconnects``: how
    often a connection that failed before a session opened is tried again, ``pause_s`` apart (for an
    idempotent change such as install); a read such as status asks once and says why not."""
    deadline = time.monotonic() + timeout_s
    answer = _run_once(config, node, script, timeout_s)
    for _ in range(reconnects):
        left = deadline - time.monotonic() - pause_s
        if answer.ok or answer.stdout or not _BEFORE_SESSION.search(answer.problem) or left < CONNECT_TIMEOUT_S:
            break
        time.sleep(pause_s)
        answer = _run_once(config, node, script, left)
    return answer


def _run_once(config: Path, node: remote.Node, script: str, timeout_s: float) -> Answer:
    """One ssh. Its process group (the jump ssh with it) is killed once it ends or at the deadline: a
    jump whose far end never closes (a silent worker) would otherwise hold the pipes open."""
    process = subprocess.Popen(
        ["ssh", "-F", str(config), node.name, "bash -s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    assert process.stdin and process.stdout and process.stderr
    read: dict[str, str] = {}

    def feed() -> None:
        with contextlib.suppress(OSError):  # ssh gone before it read everything: its exit says why
            process.stdin.write(script)
            process.stdin.close()

    def drain(name: str, stream: Any) -> None:
        read[name] = stream.read()

    threads = [
        threading.Thread(target=feed, daemon=True),
        threading.Thread(target=drain, args=("stdout", process.stdout), daemon=True),
        threading.Thread(target=drain, args=("stderr", process.stderr), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        process.wait(timeout=timeout_s)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for thread in threads[1:]:
        thread.join(timeout=5)
    stdout, stderr = read.get("stdout", ""), read.get("stderr", "")
    if timed_out:
        return Answer(node, False, problem=f"no answer over ssh within {timeout_s:.0f} s")
    if process.returncode == 255:
        return Answer(node, False, stdout=stdout, problem=_last_line(stderr) or "ssh failed (exit 255)")
    return Answer(node, True, stdout=stdout)


#: Why a node is not asked: ssh would refuse a host whose key was never pinned.
_NOT_PINNED = "its host key is not pinned (run the deployment's ssh-config task once the node is up)"


@contextlib.contextmanager
def _config_file(outputs: Mapping[str, Any], known_hosts: Path, *, port: int, deployment: str) -> Iterator[Path]:
    """``ssh_config`` in a private temporary file, gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="hgi-ssh-") as folder:
        config = Path(folder) / "config"
        config.write_text(ssh_config(outputs, known_hosts, port=port, deployment=deployment), encoding="utf-8")
        yield config


def ask(
    outputs: Mapping[str, Any],
    known_hosts: Path,
    node: remote.Node,
    script: str,
    *,
    port: int,
    deployment: str,
    timeout_s: float = STATUS_TIMEOUT_S,
    reconnects: int = 0,
) -> Answer:
    """``script`` on one node; ``reconnects``: see run_on."""
    if not remote.pinned_keys(known_hosts, node.name):
        return Answer(node, False, problem=_NOT_PINNED)
    with _config_file(outputs, known_hosts, port=port, deployment=deployment) as config:
        return run_on(config, node, script, timeout_s, reconnects=reconnects)


def fan_out(
    outputs: Mapping[str, Any],
    known_hosts: Path,
    script: Callable[[remote.Node], str],
    *,
    port: int,
    deployment: str,
    timeout_s: float,
    say: Callable[[str], None] | None = None,
    reconnects: int = 0,
) -> list[Answer]:
    """``script(node)`` on every node at once; answers in node order. A worker whose host key is not
    pinned is not asked (ssh would refuse it): its answer says so. ``reconnects``: see run_on."""
    found = remote.nodes(outputs)
    if not found:
        return []
    missing = [n for n in found[1:] if not remote.pinned_keys(known_hosts, n.name)]
    if not remote.pinned_keys(known_hosts, found[0].name):
        missing.insert(0, found[0])
    asked = [n for n in found if n not in missing]
    with _config_file(outputs, known_hosts, port=port, deployment=deployment) as config:

        def one(node: remote.Node) -> Answer:
            answer = run_on(config, node, script(node), timeout_s, reconnects=reconnects)
            if say:
                say(f"{node.name}: {'answered' if answer.ok else answer.problem}")
            return answer

        with ThreadPoolExecutor(max_workers=max(1, min(PARALLEL, len(asked)))) as pool:
            answers = {a.node.name: a for a in pool.map(one, asked)}
    answers.update({n.name: Answer(n, False, problem=_NOT_PINNED) for n in missing})
    return [answers[n.name] for n in found]


# --- status -----------------------------------------------------------------------------------------

# Sections start with "@@ NAME"; run-node's exit code is said after its output.
_STATUS = """set -u
role={role}
env_file={env_file}
tmp={tmp}
echo "@@ status"
timeout 20 {run_node} --role "$role" --env-file "$env_file" --status 2>&1
echo "@@ status-exit $?"
mode="$(sed -n "s/^NODE_MODE=['\\"]*\\([a-z]*\\).*/\\1/p" "$env_file" 2>/dev/null)"
echo "@@ mode $mode"
echo "@@ extra"
if [ "$mode" = system ]; then
  if [ "$role" = master ]; then
    echo "nginx $(systemctl is-active nginx 2>/dev/null)"
    if grep -q '^NFS_EXPORT_CIDR=.' "$env_file"; then
      echo "nfs-server $(systemctl is-active nfs-server 2>/dev/null)"
    fi
  elif timeout 5 mountpoint -q "$tmp"; then
    echo "nfs-mount mounted"
  else
    echo "nfs-mount not-mounted"
  fi
fi
echo "@@ tmp"
timeout 10 df -P -B1 "$tmp" 2>&1 | tail -n 1
echo "@@ extras"
cat {extras_record} 2>/dev/null
"""


def status_script(node: remote.Node, paths: NodePaths) -> str:
    """The read-only script that reports one node's services and shared tmp."""
    q = shlex.quote
    return _STATUS.format(
        role=q(node.role),
        env_file=q(paths.env_file),
        tmp=q(paths.hail_tmp_dir),
        run_node=q(paths.run_node),
        extras_record=q(f"{paths.state_dir}/{health.EXTRAS_RECORD}"),
    )


def sections(text: str) -> dict[str, list[str]]:
    """``@@ NAME [value]`` headers and the lines under each; a header's value is its first line."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@ "):
            name, _, value = line[3:].partition(" ")
            current = found.setdefault(name, [value] if value else [])
        elif current is not None:
            current.append(line)
    return found


_UNIT = re.compile(r"^\S{0,2}\s*hgi-(?P<name>[\w@.-]+?)\.service(?:\s|$)")
_ACTIVE = re.compile(r"^\s*Active:\s+(?P<state>[\w-]+)(?:\s+\((?P<sub>[^)]*)\))?")
_MAIN_PID = re.compile(r"^\s*Main PID:\s+(?P<pid>\d+)")


def parse_systemctl(text: str) -> list[health.Process]:
    """The ``hgi-*`` units of a system node's ``run-node --status`` (``systemctl status 'hgi-*'``)."""
    units: list[dict[str, Any]] = []
    for line in text.splitlines():
        unit = _UNIT.match(line)
        if unit:
            units.append({"name": unit.group("name"), "state": "unknown", "pid": None})
        elif units and (active := _ACTIVE.match(line)):
            state, sub = active.group("state"), active.group("sub") or ""
            shown = f"{state} ({sub})" if sub else state
            units[-1]["state"] = "running" if shown == "active (running)" else shown
        elif units and (main := _MAIN_PID.match(line)):
            units[-1]["pid"] = int(main.group("pid"))
    found = []
    for unit in units:
        if unit["name"] in ONESHOTS and not unit["state"].startswith("failed"):
            continue
        pid = unit["pid"] if unit["state"] == "running" else None
        found.append(health.Process(unit["name"], unit["state"], pid))
    return found


def _tmp(lines: Sequence[str]) -> str:
    fields = (lines[-1] if lines else "").split()
    if len(fields) >= 6 and fields[1].isdigit() and fields[3].isdigit():
        return health.tmp_space(int(fields[3]), int(fields[1]))
    return f"shared tmp: {' '.join(fields) or 'df did not answer'}"


def services_of(node: remote.Node, found: Mapping[str, list[str]]) -> dict[str, str]:
    """Service -> state: run-node's, a system node's other units, or what run-node said instead."""
    text = "\n".join(found.get("status", []))
    system = (found.get("mode") or [""])[0] == "system"
    processes = parse_systemctl(text) if system else health.parse_status(text)
    services = {p.name: p.shown() for p in processes}
    if system:
        for name in SYSTEM_SERVICES.get(node.role, ()):
            services.setdefault(name, "missing (no such unit)")
    for line in found.get("extra", []):
        name, _, state = line.partition(" ")
        if name:
            services[name] = "running" if state in ("active", "mounted") else state or "unknown"
    if not services:
        said = _last_line(text) or f"no answer (exit {(found.get('status-exit') or ['?'])[0]})"
        services["run-node"] = f"error: {said}"
    return services


def node_health(answer: Answer, view: health.MasterView, worker_ui_port: int | str) -> health.NodeHealth:
    """One node's row, in the local cluster's shape: services, registration, shared tmp."""
    node = answer.node
    registered = ""
    if node.role == "worker":
        registered = health.registration(view, f"http://{node.address}:{worker_ui_port}")
    if not answer.ok:
        return health.NodeHealth(node.name, node.role, False, {}, registered, "", answer.problem)
    found = sections(answer.stdout)
    return health.NodeHealth(
        node.name,
        node.role,
        True,
        services_of(node, found),
        registered,
        _tmp(found.get("tmp", [])),
        extras=health.extras_shown("\n".join(found.get("extras", []))),
    )


def cluster_health(
    outputs: Mapping[str, Any],
    known_hosts: Path,
    settings: Mapping[str, Any],
    view: health.MasterView,
    *,
    deployment: str,
    paths: NodePaths,
) -> list[health.NodeHealth]:
    """Every node's health over ssh, in node order (``status --nodes``)."""
    ports = settings.get("ports") or {}
    answers = fan_out(
        outputs,
        known_hosts,
        lambda node: status_script(node, paths),
        port=int(ports.get("ssh", 22)),
        deployment=deployment,
        timeout_s=STATUS_TIMEOUT_S,
    )
    return [node_health(a, view, ports.get("spark_worker_ui", "")) for a in answers]


# --- diagnose ---------------------------------------------------------------------------------------

# Each file as "@@file NAME SIZE" and its last TAIL bytes in base64 on one line; a command's output
# the same way (SIZE 0); "@@unreadable NAME PATH" when a file cannot be read.
_COLLECT = """set -u
role={role}
env_file={env_file}
state={state}
tmp={tmp}
tail_bytes={tail}
# Logs only root or adm may read (cloud-init's, nginx's, the journal): read with sudo when the
# image's user may (a cloud image's default user can), by their listed paths only.
as_root=()
if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then as_root=(sudo -n); fi
emit() {{
  local reader=()
  [ -r "$2" ] || reader=("${{as_root[@]}}")
  if [ -e "$2" ] && {{ [ -r "$2" ] || [ "${{#reader[@]}}" -gt 0 ]; }}; then
    printf '@@file %s %s\\n' "$1" "$("${{reader[@]}}" stat -c %s "$2" 2>/dev/null || echo 0)"
    "${{reader[@]}}" tail -c "$tail_bytes" "$2" | base64 -w 0
    echo
  elif [ -e "$2" ]; then
    printf '@@unreadable %s %s\\n' "$1" "$2"
  fi
}}
emit_command() {{
  local name="$1"
  shift
  printf '@@file %s 0\\n' "$name"
  {{ timeout 20 "$@" 2>&1 | tail -c "$tail_bytes"; }} | base64 -w 0
  echo
}}
for f in "$state"/logs/*; do [ -f "$f" ] && emit "logs/${{f##*/}}" "$f"; done
if [ -d "$state/conf" ]; then
  find "$state/conf" -type f 2>/dev/null | sort | while IFS= read -r f; do emit "conf/${{f#"$state"/conf/}}" "$f"; done
fi
find "$state/work" -maxdepth 1 -name 'app-*' -printf '%T@ %p\\n' 2>/dev/null | sort -rn | head -n {apps} \\
  | cut -d' ' -f2- | while IFS= read -r app; do
  for f in "$app"/*/std*; do [ -f "$f" ] && emit "work/${{app##*/}}/$(basename "$(dirname "$f")")/${{f##*/}}" "$f"; done
done
emit node.env "$env_file"
emit ready "$state/ready"
emit cloud-init-output.log /var/log/cloud-init-output.log
for f in /var/log/nginx/*.log; do [ -f "$f" ] && emit "nginx/${{f##*/}}" "$f"; done
emit_command processes.txt {run_node} --role "$role" --env-file "$env_file" --status
if command -v journalctl >/dev/null && [ -d /run/systemd/system ]; then
  emit_command journal.txt "${{as_root[@]}}" journalctl --no-pager --lines=2000 \\
    --unit='hgi-*' --unit=nginx --unit=nfs-server
fi
# shellcheck disable=SC2016 # expanded by that sh, with the shared tmp as $0
emit_command state.txt sh -c 'echo "# df -h"; timeout 10 df -h; echo; echo "# free -m"; free -m; echo;
  echo "# mounts"; grep -v -e cgroup -e proc -e sysfs /proc/mounts; echo; echo "# NFS exports";
  cat /var/lib/nfs/etab 2>/dev/null; echo; echo "# NFS mounts"; grep -w nfs4 /proc/mounts; echo;
  echo "# shared tmp"; timeout 10 df -h "$0"; echo; echo "# uptime"; uptime' "$tmp"
"""


def collect_script(node: remote.Node, paths: NodePaths) -> str:
    """The read-only script that sends one node's logs, configuration and state back."""
    q = shlex.quote
    return _COLLECT.format(
        role=q(node.role),
        env_file=q(paths.env_file),
        state=q(paths.state_dir),
        tmp=q(paths.hail_tmp_dir),
        run_node=q(paths.run_node),
        tail=LOG_TAIL_BYTES,
        apps=APPLICATIONS_KEPT,
    )


def files(text: str) -> Iterable[tuple[str, str]]:
    """(name, text) of each framed file in a collect answer; an unreadable one says so."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        parts = line.split(" ", 2)
        if parts[0] == "@@file" and len(parts) == 3:
            data = base64.b64decode(lines[index + 1] if index + 1 < len(lines) else "", validate=False)
            size = int(parts[2]) if parts[2].isdigit() else 0
            cut = f"[... {size - LOG_TAIL_BYTES} earlier bytes left out ...]\n" if size > LOG_TAIL_BYTES else ""
            yield _safe(parts[1]), cut + data.decode("utf-8", errors="replace")
        elif parts[0] == "@@unreadable" and len(parts) == 3:
            yield _safe(parts[1]) + ".unreadable", f"{parts[2]}: not readable by the ssh user\n"


def _safe(name: str) -> str:
    """A name from a node kept inside its folder of the archive."""
    return "/".join(part for part in name.split("/") if part not in ("", ".", ".."))


def collect(
    outputs: Mapping[str, Any],
    known_hosts: Path,
    settings: Mapping[str, Any],
    archive: Any,
    *,
    deployment: str,
    say: Callable[[str], None],
    paths: NodePaths,
) -> None:
    """Every node's files into ``archive`` under ``nodes/NAME/`` (the local diagnose's layout); a node
    that does not answer is named in the summary and the others go on."""
    started = time.monotonic()
    say(f"diagnose: asking {len(remote.nodes(outputs))} node(s) over ssh")
    answers = fan_out(
        outputs,
        known_hosts,
        lambda node: collect_script(node, paths),
        port=int((settings.get("ports") or {}).get("ssh", 22)),
        deployment=deployment,
        timeout_s=DIAGNOSE_TIMEOUT_S,
        say=lambda text: say(f"diagnose: {text}"),
    )
    for answer in answers:
        base = f"nodes/{answer.node.name}"
        if not answer.ok:
            archive.add_text(f"{base}/UNREACHABLE.txt", answer.problem + "\n")
            archive.summary.append(f"{answer.node.name}: not reached over ssh: {answer.problem}")
            continue
        count = 0
        for name, text in files(answer.stdout):
            archive.add_text(f"{base}/{name}", text)
            count += 1
        archive.summary.append(f"{answer.node.name}: {count} files over ssh")
    say(f"diagnose: nodes answered in {time.monotonic() - started:.1f} s")


# --- what the cluster classes call ------------------------------------------------------------------


def pin_missing(outputs: Mapping[str, Any], read_console: Callable[[str], str], known_hosts: Path) -> None:
    """Pin the keys of any node that has none yet (a cluster made before workers were pinned); a node
    whose console shows none stays unpinned, and its row says so."""
    from hgi_spark.core.errors import HgiError

    with contextlib.suppress(HgiError):
        remote.pin(outputs, read_console, known_hosts)
    with contextlib.suppress(HgiError):
        remote.pin_workers(outputs, read_console, known_hosts)


def every_node(
    deployment: Any,
    paths: NodePaths,
    outputs: Mapping[str, Any],
    view: health.MasterView,
    read_console: Callable[[str], str],
) -> list[health.NodeHealth]:
    """``status --nodes`` of a cloud or VM cluster: each node over ssh, its keys pinned first if need be."""
    if not remote.nodes(outputs):
        return []
    known_hosts = deployment.paths.known_hosts
    pin_missing(outputs, read_console, known_hosts)
    return cluster_health(outputs, known_hosts, deployment.settings, view, deployment=str(deployment.ref), paths=paths)


def diagnose_nodes(
    deployment: Any,
    paths: NodePaths,
    outputs: Mapping[str, Any],
    archive: Any,
    read_console: Callable[[str], str],
    say: Callable[[str], None],
) -> None:
    """``diagnose`` of a cloud or VM cluster: each node's files over ssh into the archive."""
    if not remote.nodes(outputs):
        archive.summary.append("nodes: none (the deployment is not up)")
        return
    known_hosts = deployment.paths.known_hosts
    pin_missing(outputs, read_console, known_hosts)
    collect(outputs, known_hosts, deployment.settings, archive, deployment=str(deployment.ref), say=say, paths=paths)
