"""The nodes of a cloud or VM cluster over ssh: their host keys pinned, the ssh entries, submit.

The host keys come from the master's console log, where cloud-init prints them between
``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----`` at first boot
(``ssh.emit_keys_to_console`` in terraform/modules/cloud-init). They reach us through Nova's
authenticated API (or the VM's serial console file), not over the network path ssh would trust on
first use; so every ssh here says ``StrictHostKeyChecking yes`` against the known_hosts file
pinned at the first ``up``, never ``no``. A console keeps only its last output (Nova: 100 KiB), so
the keys are pinned once, when the node first reports ready, and kept.

Workers have no public address: ssh reaches them through the master (``ProxyJump``), each under
its server name with its own keys pinned from its own console, in the same known_hosts file.

``submit`` sends a local script on ssh's stdin to the master, where it runs as the application
user in that user's login environment (``sudo --login --user=APP_USER``: /etc/profile.d gives it
the same spark-defaults.conf as pyspark and JupyterLab), so the driver and the executors write
the shared tmp folder as the same user.
"""

from __future__ import annotations

import re
import secrets
import shlex
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.errors import ConfigError, HgiError, NotFoundError, RefusedError
from hgi_spark.core.files import write_atomic

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
# Key types sshd generates on the image; ssh-dss is refused by current OpenSSH anyway.
_KEY = re.compile(
    r"(?P<type>ssh-ed25519|ecdsa-sha2-nistp(?:256|384|521)|ssh-rsa|sk-ssh-ed25519@openssh\.com)"
    r"\s+(?P<key>AAAA[0-9A-Za-z+/]+={0,3})(?:\s|$)"
)


@dataclass(frozen=True)
class HostKey:
    """One public host key: its type and base64 blob."""

    type: str
    key: str

    def known_hosts_line(self, alias: str) -> str:
        return f"{alias} {self.type} {self.key}"


@dataclass(frozen=True)
class Target:
    """Where the master is, from the root module's ``ssh`` output."""

    alias: str
    host: str
    user: str
    port: int
    identity_file: str
    server: str


def host_keys(console: str, *, server: str) -> list[HostKey]:
    """The host keys of the last block in a console log (a rebuilt server prints a new one)."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    for line in console.splitlines():
        if BEGIN in line:
            current = []
        elif END in line and current is not None:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    keys = []
    for line in blocks[-1] if blocks else []:
        match = _KEY.search(line)
        if match:
            keys.append(HostKey(match.group("type"), match.group("key")))
    if not keys:
        raise NotFoundError(
            f"the console log of {server} shows no SSH host keys yet",
            fix="wait until the node has booted (`deployment ... status`), then run ssh-config again",
        )
    return keys


def target(outputs: Mapping[str, Any]) -> Target:
    """The master's address and login from terraform outputs (``terraform output -json`` shape)."""
    entry = outputs.get("ssh")
    if not entry or not isinstance(entry.get("value"), Mapping):
        raise NotFoundError(
            "the deployment has no `ssh` output", fix="run `deployment ... up` first (ssh-config needs a master)"
        )
    value = entry["value"]
    try:
        return Target(
            alias=str(value["alias"]),
            host=str(value["host"]),
            user=str(value["user"]),
            port=int(value["port"]),
            identity_file=str(value.get("identity_file") or ""),
            server=str(value["server"]),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"the `ssh` output lacks {error}", fix="update the deployment (plan, then update)") from None


def render(spot: Target, known_hosts: Path, *, deployment: str) -> str:
    """The ``Host`` entry; ``HostKeyAlias`` ties the pinned key to the alias, not to the address."""
    comment = f"# {deployment}: the master {spot.server}; host key pinned from its console log"
    return _host_entry(comment, spot.alias, spot.host, spot.port, spot, known_hosts)


def _host_entry(comment: str, alias: str, address: str, port: int, spot: Target, known_hosts: Path, *extra: str) -> str:
    """One ``Host`` entry with its key pinned under ``alias`` (the master's and the workers' alike)."""
    lines = [comment, f"Host {alias}", f"    HostName {address}", f"    User {spot.user}", f"    Port {port}"]
    lines += [f"    {option}" for option in extra]
    if spot.identity_file:
        lines += [f"    IdentityFile {spot.identity_file}", "    IdentitiesOnly yes"]
    lines += [f"    HostKeyAlias {alias}", f"    UserKnownHostsFile {known_hosts}", "    StrictHostKeyChecking yes"]
    return "\n".join(lines) + "\n"


def write_known_hosts(path: Path, alias: str, keys: list[HostKey]) -> Path:
    """Replace the keys of ``alias`` atomically (other nodes' stay), 0600 in a 0700 folder (secrets/)."""
    try:
        kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.split()[:1] != [alias]]
    except OSError:
        kept = []
    text = "".join(line + "\n" for line in [*kept, *(key.known_hosts_line(alias) for key in keys)])
    return write_atomic(path, text, mode=0o600, folder_mode=0o700)


def pinned_keys(known_hosts: Path, alias: str) -> list[HostKey]:
    """The keys already pinned for ``alias`` (empty when none)."""
    try:
        lines = known_hosts.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    keys = []
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == alias:
            keys.append(HostKey(parts[1], parts[2]))
    return keys


def pin(
    outputs: Mapping[str, Any], read_console: Callable[[str], str], known_hosts: Path, *, refresh: bool = False
) -> Path:
    """The master's keys from its console into ``known_hosts``, unless they are pinned already."""
    spot = target(outputs)
    if not refresh and pinned_keys(known_hosts, spot.alias):
        return known_hosts
    keys = host_keys(read_console(spot.server), server=spot.server)
    return write_known_hosts(known_hosts, spot.alias, keys)


def entry(outputs: Mapping[str, Any], read_console: Callable[[str], str], known_hosts: Path, *, deployment: str) -> str:
    """The ``Host`` entry for the master, its keys pinned (read from the console only the first time)."""
    spot = target(outputs)
    return render(spot, pin(outputs, read_console, known_hosts), deployment=deployment)


# --- the workers, through the master ---------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A node as the outputs name it: its server name (the ssh alias), role and private address."""

    name: str
    role: str
    address: str


def nodes(outputs: Mapping[str, Any]) -> list[Node]:
    """The master, then every worker in order, from ``master_name``/``worker_names`` and their addresses."""
    value = {k: (v or {}).get("value") for k, v in outputs.items() if isinstance(v, Mapping)}
    master = str(value.get("master_name") or "")
    if not master:
        return []
    found = [Node(master, "master", str(value.get("master_private_ip") or ""))]
    addresses = list(value.get("worker_private_ips") or [])
    for index, name in enumerate(value.get("worker_names") or []):
        found.append(Node(str(name), "worker", str(addresses[index]) if index < len(addresses) else ""))
    return found


def render_worker(spot: Target, worker: Node, port: int, known_hosts: Path) -> str:
    """A worker's ``Host`` entry: its private address reached through the master's entry (``ProxyJump``)."""
    comment = f"# the worker {worker.name}, through the master; host key pinned from its console log"
    return _host_entry(comment, worker.name, worker.address, port, spot, known_hosts, f"ProxyJump {spot.alias}")


def pin_workers(
    outputs: Mapping[str, Any], read_console: Callable[[str], str], known_hosts: Path, *, refresh: bool = False
) -> dict[str, str]:
    """Each worker's keys from its console, unless pinned already (``refresh``: whenever the console
    shows them, as a re-created worker's does); returns why a worker has none pinned, by name."""
    problems: dict[str, str] = {}
    for worker in nodes(outputs)[1:]:
        pinned = pinned_keys(known_hosts, worker.name)
        if pinned and not refresh:
            continue
        try:
            keys = host_keys(read_console(worker.name), server=worker.name)
        except HgiError as error:
            if not pinned:
                problems[worker.name] = error.problem
            continue
        write_known_hosts(known_hosts, worker.name, keys)
    return problems


def worker_entries(
    outputs: Mapping[str, Any], read_console: Callable[[str], str], known_hosts: Path, *, port: int
) -> str:
    """The workers' entries (after the master's), their keys pinned; a worker without keys yet is a comment."""
    spot = target(outputs)
    problems = pin_workers(outputs, read_console, known_hosts)
    parts = []
    for worker in nodes(outputs)[1:]:
        if worker.name in problems:
            parts.append(f"# {worker.name}: no host key pinned yet ({problems[worker.name]})\n")
        else:
            parts.append(render_worker(spot, worker, port, known_hosts))
    return "".join("\n" + part for part in parts)


# --- submit -----------------------------------------------------------------------------------------

# What the application user's login shell on the master reads on its stdin (``bash -s``): the
# script in a temporary file (a here-document with a delimiter it cannot contain), spark-submit of
# it with its arguments, the driver's full log in a file whose path is said at the end. Nothing is
# passed on sudo's command line but "bash -s": sudo --login escapes a command's characters.
_SUBMIT = """set -u
cd "$HOME"
f="$(mktemp --suffix=.py)"
trap 'rm -f "$f"' EXIT
cat >"$f" <<'{end}'
{script}
{end}
mkdir -p "$HOME/submit-logs"
log="$HOME/submit-logs/submit-$(date -u +%Y%m%dT%H%M%SZ).log"
code=0
HGI_DRIVER_LOG="$log" spark-submit "$f"{args} </dev/null || code=$?
echo "driver log on the master: $log" >&2
exit "$code"
"""


def ssh_argv(spot: Target, known_hosts: Path, remote: str, *, batch: bool = True) -> list[str]:
    """ssh to the master trusting only the pinned key; ``remote`` is the command line run there."""
    if not known_hosts.is_file():
        raise RefusedError(
            f"the master's host key is not pinned yet ({known_hosts} is missing)",
            fix="run the deployment's ssh-config task (it pins the key from the console log)",
        )
    argv = ["ssh", "-p", str(spot.port), "-o", "StrictHostKeyChecking=yes"]
    if batch:
        argv += ["-o", "BatchMode=yes"]
    argv += ["-o", f"HostKeyAlias={spot.alias}", "-o", f"UserKnownHostsFile={known_hosts}"]
    argv += ["-o", "ConnectTimeout=20", "-o", "ServerAliveInterval=30"]
    if spot.identity_file:
        argv += ["-i", spot.identity_file, "-o", "IdentitiesOnly=yes"]
    return [*argv, f"{spot.user}@{spot.host}", remote]


def as_app_user(app_user: str) -> str:
    """The command the ssh user runs: a shell of the application user, logged in, reading stdin."""
    return f"sudo -n --login --user={shlex.quote(app_user)} bash -s"


def submit_argv(outputs: Mapping[str, Any], known_hosts: Path, app_user: str) -> list[str]:
    """The ssh argv that runs, as the application user, the shell script ``submit_input`` makes."""
    return ssh_argv(target(outputs), known_hosts, as_app_user(app_user))


def submit_input(script: str, args: Sequence[str]) -> str:
    """The shell script for the application user's ``bash -s``: the Python script and spark-submit."""
    end = f"HGI_SPARK_SCRIPT_{secrets.token_hex(8)}"
    return _SUBMIT.format(end=end, script=script.rstrip("\n"), args="".join(" " + shlex.quote(a) for a in args))


def submit(
    outputs: Mapping[str, Any], known_hosts: Path, app_user: str, script: str | Path, args: Sequence[str] = ()
) -> int:
    """Run a local Python script on the master with spark-submit; returns the remote exit code."""
    path = Path(script).expanduser()
    if not path.is_file():
        raise NotFoundError(f"no such script: {script}")
    argv = submit_argv(outputs, known_hosts, app_user)
    text = submit_input(path.read_text(encoding="utf-8"), args)
    return subprocess.run(argv, input=text, text=True, check=False).returncode
