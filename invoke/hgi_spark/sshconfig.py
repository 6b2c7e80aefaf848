"""A ``~/.ssh/config`` entry for a deployment's master, with its host key pinned.

The host keys come from the master's console log, where cloud-init prints them between
``-----BEGIN SSH HOST KEY KEYS-----`` and ``-----END SSH HOST KEY KEYS-----`` at first boot
(``ssh.emit_keys_to_console`` in terraform/modules/cloud-init). They reach us through Nova, over
the authenticated API, not over the network path ssh would trust on first use; so the entry says
``StrictHostKeyChecking yes`` against a known_hosts file written here, never ``no``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError, NotFoundError
from .files import write_atomic
from .layout import Repository

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
    lines = [
        f"# {deployment}: the master {spot.server}; host key pinned from its console log",
        f"Host {spot.alias}",
        f"    HostName {spot.host}",
        f"    User {spot.user}",
        f"    Port {spot.port}",
    ]
    if spot.identity_file:
        lines += [f"    IdentityFile {spot.identity_file}", "    IdentitiesOnly yes"]
    lines += [
        f"    HostKeyAlias {spot.alias}",
        f"    UserKnownHostsFile {known_hosts}",
        "    StrictHostKeyChecking yes",
    ]
    return "\n".join(lines) + "\n"


def write_known_hosts(path: Path, alias: str, keys: list[HostKey]) -> Path:
    """Write the pinned keys atomically, 0600 in a 0700 folder (the deployment's secrets/)."""
    text = "".join(key.known_hosts_line(alias) + "\n" for key in keys)
    return write_atomic(path, text, mode=0o600, folder_mode=0o700)


def pin(outputs: Mapping[str, Any], read_console: Callable[[str], str], secrets_dir: Path, *, deployment: str) -> str:
    """Outputs -> the master's console log -> known_hosts in ``secrets_dir`` -> the ``Host`` entry."""
    spot = target(outputs)
    keys = host_keys(read_console(spot.server), server=spot.server)
    known_hosts = write_known_hosts(secrets_dir / "known_hosts", spot.alias, keys)
    return render(spot, known_hosts, deployment=deployment)


def ssh_config(name: str | None, repo: Repository | None = None) -> str:
    """The entry for deployment ``name``: its outputs, and Nova's console log of its master."""
    from . import cloud, config, credentials, workflow

    deployment = config.load_deployment(name, repo)
    outputs = workflow.outputs(name, repo)
    target(outputs)  # no master yet: say so before asking for credentials
    connection = cloud.connect(credentials.openstack_environment())
    return pin(
        outputs,
        lambda server: cloud.console_log(connection, server),
        deployment.paths.secrets_dir,
        deployment=str(deployment.ref),
    )
