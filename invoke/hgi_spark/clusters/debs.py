"""Debian packages for nodes that have no apt mirror: resolved and downloaded on this machine, against
the master's own apt sources and its image's dpkg status, then pushed to the nodes with the wheels.

Nodes on a private network (and the VM cluster's VMs) reach no Debian mirror, and the image keeps no
package lists. So apt runs here, in a private root (its own lists, cache, sources and status under
the cache dir): the sources are the node's, the status is the node's, the architecture is the
node's. What apt downloads is then exactly what that node lacks, dependencies included, at the
versions its sources serve; the node installs those files with its own apt, offline. Keyrings the
node's sources name (``Signed-By``) are read from this machine (Debian's archive keyring).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hgi_spark.core.errors import ConfigError, ToolError
from hgi_spark.core.layout import cache_dir

#: What a node says of its apt (read by ``NodeApt.parse``): the image's dpkg status where run-node kept
#: it at the first boot (``STATE_DIR/image-dpkg-status``), so the .debs are those a new node needs.
_FACTS = """set -u
echo "@@ architecture $(dpkg --print-architecture)"
for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -r "$file" ] || continue
  echo "@@ file ${{file##*/}}"
  cat "$file"
done
echo "@@ status"
cat {kept} 2>/dev/null || cat /var/lib/dpkg/status
"""


def facts_script(state_dir: str) -> str:
    """The read-only script that tells a node's architecture, apt sources and image's dpkg status."""
    return _FACTS.format(kept=shlex.quote(f"{state_dir}/image-dpkg-status"))


_APT_TIMEOUT_S = 300
_FILE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+\.(list|sources)$")


@dataclass(frozen=True)
class NodeApt:
    """A node's apt as its facts script said: architecture, sources files (name -> text), status."""

    architecture: str
    sources: dict[str, str]
    status: str

    @classmethod
    def parse(cls, text: str) -> NodeApt:
        architecture, sources, status = "", {}, []
        current: list[str] | None = None
        for line in text.splitlines():
            if line.startswith("@@ architecture "):
                architecture, current = line.split(" ", 2)[2].strip(), None
            elif line.startswith("@@ file "):
                current = sources.setdefault(line.split(" ", 2)[2].strip(), [])
            elif line == "@@ status":
                current = status
            elif current is not None:
                current.append(line)
        if not architecture or not status:
            raise ToolError("the master did not say its apt architecture and dpkg status")
        return cls(architecture, {name: "\n".join(lines) + "\n" for name, lines in sources.items()}, "\n".join(status))

    def installed(self) -> set[str]:
        """Names the node's dpkg has installed."""
        found, name = set(), ""
        for line in self.status.splitlines():
            if line.startswith("Package: "):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("Status: ") and line.endswith(" installed") and name:
                found.add(name)
        return found

    def sources_key(self) -> str:
        document = {"architecture": self.architecture, "sources": self.sources}
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Debs:
    """The .deb files one request needs on a node like the one asked, and the names asked for."""

    folder: Path
    requested: tuple[str, ...]

    def files(self) -> list[Path]:
        return sorted(self.folder.glob("*.deb"))


def _apt_options(root: Path, status: Path, architecture: str) -> list[str]:
    etc = root / "etc"
    settings = {
        "Dir::Etc::SourceList": etc / "sources.list",
        "Dir::Etc::SourceParts": etc / "sources.list.d",
        "Dir::Etc::Preferences": etc / "preferences",
        "Dir::Etc::PreferencesParts": etc / "preferences.d",
        "Dir::State": root / "state",
        "Dir::State::status": status,
        "Dir::Cache": root / "cache",
        "APT::Architecture": architecture,
        "APT::Architectures::": architecture,
        "Debug::NoLocking": "true",  # a private root: no other apt shares it
        "APT::Get::List-Cleanup": "true",
    }
    if os.geteuid() == 0:
        settings["APT::Sandbox::User"] = "root"  # _apt could not write the private root
    options = []
    for name, value in settings.items():
        options += ["-o", f"{name}={value}"]
    return options


def _private_root(apt: NodeApt, where: str) -> Path:
    """The private apt root for these sources (resolve refreshes its lists)."""
    root = cache_dir() / "apt" / apt.sources_key()
    etc = root / "etc"
    for folder in (
        etc / "sources.list.d",
        etc / "preferences.d",
        root / "state" / "lists" / "partial",
        root / "cache" / "archives" / "partial",
    ):
        folder.mkdir(parents=True, exist_ok=True)
    for name, text in apt.sources.items():
        if not _FILE_NAME.match(name):
            continue
        for keyring in re.findall(r"(?im)^\s*Signed-By:\s*(/\S+)|\[[^]]*signed-by=(/[^]\s]+)", text):
            path = next(part for part in keyring if part)
            if not Path(path).is_file():
                raise ToolError(
                    f"the master's apt sources ({name}) are signed by {path}, which this machine lacks",
                    fix=f"install the keyring here (apt-get install debian-archive-keyring) to resolve {where}",
                )
        target = etc / "sources.list" if name == "sources.list" else etc / "sources.list.d" / name
        target.write_text(text, encoding="utf-8")
    return root


def _apt_get(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    try:
        return subprocess.run(
            ["apt-get", "-q", *argv], capture_output=True, text=True, env=env, timeout=_APT_TIMEOUT_S, check=False
        )
    except FileNotFoundError as error:
        raise ToolError(f"{what}: apt-get not found", fix="run this from a Debian or Ubuntu machine") from error
    except subprocess.TimeoutExpired as error:
        raise ToolError(f"{what}: apt-get did not finish within {_APT_TIMEOUT_S} s") from error


def _apt_reason(stderr: str) -> str:
    errors = [line.removeprefix("E: ").strip() for line in stderr.splitlines() if line.startswith("E: ")]
    return errors[0] if errors else (stderr.strip().splitlines() or ["apt-get failed"])[-1]


def resolve(apt: NodeApt, names: Sequence[str], *, where: str, say: Callable[[str], None]) -> Debs:
    """The .debs of ``names`` the node lacks, with the dependencies it lacks: downloaded once per
    request (the names, the node's sources and status), then read from the cache."""
    missing = sorted(set(names) - apt.installed())
    document = {"names": missing, "sources": apt.sources_key(), "status": apt.status}
    key = hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]
    folder = cache_dir() / "debs" / key
    if (folder / "requested.json").is_file():
        return Debs(folder, tuple(json.loads((folder / "requested.json").read_text(encoding="utf-8"))))
    root = _private_root(apt, where)
    folder.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=folder.parent))
    try:
        if missing:
            status = build / "status"
            status.write_text(apt.status + "\n", encoding="utf-8")
            options = _apt_options(root, status, apt.architecture)
            say(f"resolving {', '.join(missing)} for the nodes' Debian ({apt.architecture}) from their apt sources")
            updated = _apt_get([*options, "update"], "reading the nodes' apt sources")
            if updated.returncode:
                raise ToolError(f"apt-get update for the nodes' sources failed: {_apt_reason(updated.stderr)}")
            (build / "partial").mkdir()
            fetched = _apt_get(
                [
                    *options,
                    "-o",
                    f"Dir::Cache::archives={build}",
                    "--download-only",
                    "--no-install-recommends",
                    "--yes",
                    "install",
                    *missing,
                ],
                "downloading Debian packages",
            )
            if fetched.returncode:
                raise ConfigError(
                    f"{', '.join(missing)} cannot be installed on the nodes: {_apt_reason(fetched.stderr)}; "
                    "nothing was installed",
                    file=where,
                    key="extra_system_packages",
                    fix="use names the nodes' Debian release has (apt-cache policy NAME on a node)",
                )
            shutil.rmtree(build / "partial", ignore_errors=True)
            status.unlink()
            for leftover in build.glob("lock"):
                leftover.unlink()
        (build / "requested.json").write_text(json.dumps(missing) + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(build, folder)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    return Debs(folder, tuple(missing))
