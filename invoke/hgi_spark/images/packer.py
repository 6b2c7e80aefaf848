"""The only place that runs packer: finding it, its version, init/validate/build, and its var file.

Debian's packer 1.6.6 has the openstack builder built in and neither ``packer init`` nor
``required_plugins``; newer packer needs both. The plugin requirements therefore live in
``packer/plugins/`` (a folder 1.6.6 never reads) and ``init`` runs only on packer >= 1.7.
Packer authenticates itself from the OS_* variables we hand it; nothing else of the caller's
OpenStack environment leaks in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.config import Image
from hgi_spark.core.errors import ToolError

INSTALL_HINT = "install it with `apt-get install packer` (Debian), or set PACKER to its path"
INIT_SINCE = (1, 7, 0)


@dataclass(frozen=True)
class Packer:
    """One packer binary and its version."""

    path: str
    version: tuple[int, int, int]

    @property
    def has_init(self) -> bool:
        return self.version >= INIT_SINCE

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))


def find(environ: Mapping[str, str] | None = None) -> Packer:
    """$PACKER or ``packer`` on PATH, with its version; a missing binary is one line saying how to install it."""
    environ = os.environ if environ is None else environ
    wanted = environ.get("PACKER") or "packer"
    path = shutil.which(wanted, path=environ.get("PATH"))
    if path is None:
        raise ToolError(f"packer not found ({wanted})", fix=INSTALL_HINT)
    try:
        result = subprocess.run([path, "version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as error:
        raise ToolError(f"cannot run {path}: {error.strerror}", fix=INSTALL_HINT) from None
    return Packer(path, parse_version(result.stdout + result.stderr, path))


def parse_version(output: str, path: str = "packer") -> tuple[int, int, int]:
    """``Packer v1.6.6`` (old) or ``Packer v1.11.2`` + plugin lines (new) -> (1, 6, 6)."""
    match = re.search(r"v?(\d+)\.(\d+)\.(\d+)", output)
    if not match:
        raise ToolError(f"cannot read the version of {path} from: {output.strip()[:80]!r}", fix=INSTALL_HINT)
    return int(match[1]), int(match[2]), int(match[3])


def environment(credentials: Mapping[str, str], environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The process environment without anyone's OS_* variables, plus the given credentials."""
    environ = os.environ if environ is None else environ
    env = {key: value for key, value in environ.items() if not key.startswith("OS_")}
    env.update(credentials)
    env.setdefault("CHECKPOINT_DISABLE", "1")  # no phoning home for update checks
    return env


def var_values(
    image: Image,
    *,
    glance_name: str,
    git_commit: str,
    install_env_file: Path,
    networks: Sequence[str] = (),
    cloud: str = "",
) -> dict[str, Any]:
    """The template's variables (packer/README.md) from image.yml: the one place they are mapped."""
    build = image.build
    base = build.base_image
    values: dict[str, Any] = {
        "image_name": glance_name,
        "image_version": image.ref.version,
        "software": {key: str(value) for key, value in image.software.model_dump().items()},
        "git_commit": git_commit,
        "cloud": cloud,
        "flavor": build.flavor,
        "networks": list(networks),
        "floating_ip_network": build.floating_ip_network or "",
        "security_groups": list(build.security_groups),
        "ssh_username": build.ssh_user,
        "disk_gb": build.disk_gb,
        "use_blockstorage_volume": build.use_blockstorage_volume,
        "install_env_file": str(install_env_file),
        "constraints_file": str(image.constraints_file or ""),
    }
    if base.filter:
        filters = dict(base.filter)
        tags = filters.pop("tags", [])
        values["source_image_filter"] = {key: str(value) for key, value in filters.items()}
        values["source_image_filter_tags"] = [str(tag) for tag in tags]
    else:
        values["source_image_name"] = base.name or ""
    return values


def write_var_file(values: Mapping[str, Any], path: Path) -> Path:
    """A JSON var file (``*.pkrvars.json``: packer 1.6.6 and current read it alike)."""
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
    return path


def init(packer: Packer, template: Path, env: Mapping[str, str]) -> bool:
    """``packer init packer/plugins/`` on packer >= 1.7; False (nothing run) on older ones."""
    plugins = template.parent / "plugins"
    if not packer.has_init or not plugins.is_dir():
        return False
    _run(packer, ["init", str(plugins)], env, what="packer init")
    return True


# The template's sources: one build block lists both, a run builds one (``-only``).
OPENSTACK_SOURCE = "openstack.hail-base"
QEMU_SOURCE = "qemu.hail-base"


def validate(packer: Packer, template: Path, var_file: Path, env: Mapping[str, str], *, only: str) -> None:
    """Full validation of one source: for openstack, packer also authenticates against Keystone here."""
    _run(packer, ["validate", f"-only={only}", f"-var-file={var_file}", str(template)], env, what="packer validate")


def build(packer: Packer, template: Path, var_file: Path, env: Mapping[str, str], *, only: str) -> None:
    """Build the image; packer's own output streams to the terminal."""
    _run(
        packer,
        ["build", "-color=false", "-on-error=cleanup", f"-only={only}", f"-var-file={var_file}", str(template)],
        env,
        what="packer build",
    )


def _run(packer: Packer, args: list[str], env: Mapping[str, str], *, what: str) -> None:
    """Show the exact command, run it with its output on our stderr, fail as one line."""
    argv = [packer.path, *args]
    print(f"+ {' '.join(argv)}", file=sys.stderr, flush=True)
    try:
        stream: Any = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        stream = subprocess.PIPE  # stderr is not a file (an embedding program): relay the text
    try:
        result = subprocess.run(argv, env=dict(env), stdout=stream, stderr=subprocess.STDOUT, text=True, check=False)
    except OSError as error:
        raise ToolError(f"cannot run {packer.path}: {error.strerror}", fix=INSTALL_HINT) from None
    if result.stdout:
        sys.stderr.write(result.stdout)
    if result.returncode != 0:
        raise ToolError(
            f"{what} failed with exit code {result.returncode} (packer {packer.version_text})",
            fix="read packer's output above",
        )
