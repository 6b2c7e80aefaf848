"""The local cluster's Hail environment: a venv with the image's versions, installed once per
digest of those versions and constraints, shared by every local deployment, published atomically.

A deployment with extra Python packages gets a prefix of its own kind: the same venv plus the exact
set its request resolved to (clusters/extras.py), that set in the digest, so the shared prefix is
never modified and a running cluster moves onto the new one only when its nodes restart.

The installing is done by packer/scripts/install-hail-env, the installer images use too: the same
pins, the same check of them, the same pip options.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hgi_spark.core.config import Image
from hgi_spark.core.errors import ConfigError, ToolError
from hgi_spark.core.layout import cache_dir

PREFIX_ENV = "HGI_SPARK_PREFIX"  # use (or install into) exactly this prefix
STAMP = ".hgi-spark-prefix.json"  # written last: a prefix without it is not installed


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class PrefixSpec:
    """What goes into a prefix: the image's versions and pip constraints; its digest names it."""

    python: str
    packages: tuple[str, ...]
    constraints: Path | None
    installer: Path  # not in the digest: a prefix is defined by what it holds, not how it was made
    extras: tuple[str, ...] = ()  # NAME==VERSION beyond the image's (clusters/extras.py)
    find_links: Path | None = None  # a wheelhouse to install from (not in the digest either)

    @classmethod
    def of(cls, image: Image) -> PrefixSpec:
        s = image.software
        return cls(
            python=s.python,
            packages=(f"hail=={s.hail}", f"pyspark=={s.pyspark}", f"jupyterlab=={s.jupyterlab}"),
            constraints=image.constraints_file,
            installer=image.paths.repo.packer_dir / "scripts" / "install-hail-env",
        )

    @property
    def digest(self) -> str:
        constraints = self.constraints.read_bytes() if self.constraints else b""
        document: dict[str, object] = {
            "python": self.python,
            "packages": list(self.packages),
            "constraints": hashlib.sha256(constraints).hexdigest(),
        }
        if self.extras:  # absent when empty: the image's own prefix keeps its digest
            document["extras"] = sorted(self.extras)
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def prefix_path(spec: PrefixSpec) -> Path:
    """Where the prefix for ``spec`` is (or will be): $HGI_SPARK_PREFIX, or the cache keyed by digest;
    a prefix with extras beside the one it extends, never in its place."""
    if os.environ.get(PREFIX_ENV):
        named = Path(os.environ[PREFIX_ENV]).expanduser().absolute()
        return named.with_name(f"{named.name}-extras-{spec.digest}") if spec.extras else named
    return cache_dir() / f"prefix-{spec.digest}"


def prefix_installed(path: Path, spec: PrefixSpec) -> bool:
    try:
        stamp = json.loads((path / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("digest") == spec.digest and (path / "bin" / "python").exists()


def _python_for(version: str) -> str:
    """An interpreter of the image's Python version, to create the prefix's venv with."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found:
        return found
    raise ToolError(
        f"Python {version} (the image's version) not found",
        fix=f"install it with: apt-get install python{version} python{version}-venv",
    )


def _reason(log: Path) -> str:
    """The installer's own one-line error, when it gave one (pip's reasons stay in the log)."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if ": error: " in line]
    return f": {lines[-1].split(': error: ', 1)[1]}" if lines else ""


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer per prefix at a time (two deployments brought up together share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_prefix(spec: PrefixSpec, *, say: Callable[[str], None] | None = None) -> Path:
    """Install hail, pyspark and jupyterlab once; later calls return at once.

    The venv is built in a temporary folder beside the target and published by renaming a
    symlink over the target name, so a prefix is either complete or absent (a venv cannot be
    moved after it is made: its scripts name their own path).
    """
    target = prefix_path(spec)
    if prefix_installed(target, spec):
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if prefix_installed(target, spec):
            return target
        if target.exists() and not target.is_symlink():
            raise ConfigError(
                f"{target} exists but is not a complete Hail prefix",
                fix=f"remove it, or point {PREFIX_ENV} elsewhere",
            )
        python = _python_for(spec.python)
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        log = target.parent / f"{target.name}.install.log"
        shown = ", ".join([*spec.packages, *spec.extras])
        (say or _stderr)(f"installing {shown} into {target} (once; about a minute; log: {log})")
        try:
            with open(log, "w") as out:
                argv = [
                    "bash",
                    str(spec.installer),
                    *("--venv", str(build), "--python", spec.python, "--interpreter", python),
                    *("--constraints", str(spec.constraints or os.devnull)),
                    *(("--find-links", str(spec.find_links)) if spec.find_links else ()),
                    *spec.packages,
                    *spec.extras,
                ]
                print("$ " + " ".join(argv), file=out, flush=True)
                if subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                    raise ToolError(f"installing the Hail prefix into {build} failed{_reason(log)}", file=log)
            stamp = {
                "digest": spec.digest,
                "packages": list(spec.packages),
                "python": spec.python,
                "extras": list(spec.extras),
            }
            (build / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
            link = target.parent / f".{target.name}.link"
            link.unlink(missing_ok=True)
            link.symlink_to(build.name)
            old = target.resolve() if target.is_symlink() else None
            os.replace(link, target)
            # The prefix it replaces is removed only when it is one of ours (built here, by this code).
            if old is not None and old.parent == build.parent and old.name.startswith(f".{target.name}-"):
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return target


def extras_of(path: Path) -> tuple[str, ...]:
    """The extra packages a prefix holds, from its stamp (none for the image's own prefix)."""
    try:
        stamp = json.loads((path / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ()
    return tuple(stamp.get("extras") or ())
