"""The install scripts' input: an env file generated from an image definition.

``packer/scripts/install-node`` hard-codes no version and no path; it reads them from this env file
(``KEY=VALUE`` lines, no quoting, no shell), which packer uploads beside it. Versions come from
``image.yml`` (``software:``), the application user from ``deployments/defaults.yml``
(``app_user``), and the image's fixed layout from ``IMAGE_LAYOUT`` below, its one home.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hgi_spark.core import yamlio
from hgi_spark.core.config import Image
from hgi_spark.core.errors import ConfigError
from hgi_spark.core.files import display, write_atomic
from hgi_spark.core.layout import Repository

# Where things live on the image. The node run scripts receive the same paths through their
# environment (terraform/modules/spark-node/README.md): HAIL_HOME is /opt/hail on the image.
IMAGE_LAYOUT: dict[str, str] = {
    "HAIL_HOME": "/opt/hail",
    "HAIL_VENV": "/opt/hail/venv",
    "HAIL_TMP_DIR": "/opt/hail/tmp",
    "NODE_SCRIPTS_DIR": "/opt/hgi-spark/node",
    "HGI_ETC_DIR": "/etc/hgi-spark",
    "PROFILE_DIR": "/etc/profile.d",
}

# env key -> key under `software:` in image.yml
SOFTWARE_KEYS: dict[str, str] = {
    "JAVA_VERSION": "java",
    "PYTHON_VERSION": "python",
    "HAIL_VERSION": "hail",
    "PYSPARK_VERSION": "pyspark",
    "JUPYTERLAB_VERSION": "jupyterlab",
}

# The same character set install-node accepts: values are never quoted nor evaluated.
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9._/:+@-]+$")


def repository_commit(root: Path) -> str:
    """The commit images are built from, with ``+dirty`` when the work tree has changes."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def app_user(repo: Repository) -> str:
    """The application user, from its one home: ``app_user`` in deployments/defaults.yml."""
    defaults = repo.deployments_dir / "defaults.yml"
    data: dict[str, Any] = yamlio.load(defaults).data if defaults.is_file() else {}
    user = data.get("app_user")
    if not isinstance(user, str) or not user:
        raise ConfigError("no application user", file=defaults, key="app_user", fix="set app_user: hgi (the default)")
    return user


def install_env(image: Image, *, commit: str | None = None) -> dict[str, str]:
    """Everything install-node needs, as strings, checked so that the script never sees a bad value."""
    repo = image.paths.repo
    software = image.software.model_dump()
    env: dict[str, str] = {
        "HGI_IMAGE_NAME": image.ref.name,
        "HGI_IMAGE_VERSION": image.ref.version,
        "HGI_GIT_COMMIT": commit if commit is not None else repository_commit(repo.root),
        **{env_key: str(software[key]) for env_key, key in SOFTWARE_KEYS.items()},
        "APP_USER": app_user(repo),
        **IMAGE_LAYOUT,
    }
    for key, value in env.items():
        if not _SAFE_VALUE.match(value):
            yaml_key = f"software.{SOFTWARE_KEYS[key]}" if key in SOFTWARE_KEYS else key
            raise ConfigError(
                f"value '{value}' has characters the install script refuses",
                file=image.paths.definition,
                key=yaml_key,
                fix="use letters, digits and . _ / : + @ -",
            )
    _check_constraints(image, software)
    return env


def _check_constraints(image: Image, software: Mapping[str, Any]) -> None:
    """image.yml and constraints.txt must agree on hail, pyspark and jupyterlab, or pip cannot resolve."""
    if image.constraints_file is None:
        return
    pins = read_pins(image.constraints_file)
    for name in ("hail", "pyspark", "jupyterlab"):
        pinned = pins.get(name)
        if pinned is not None and pinned != str(software[name]):
            raise ConfigError(
                f"{name} {software[name]} asked for, but {image.constraints_file.name} pins {name}=={pinned}",
                file=image.paths.definition,
                key=f"software.{name}",
                fix="make image.yml and constraints.txt agree",
            )


def read_pins(constraints: Path) -> dict[str, str]:
    """``name==version`` lines of a pip constraints file, names lower-cased."""
    pins: dict[str, str] = {}
    for line in constraints.read_text().splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def render_install_env(env: Mapping[str, str], *, source: str = "") -> str:
    """The env file's text: a header saying where it comes from, then sorted KEY=VALUE lines."""
    header = "# Generated by hgi_spark.provisioning for packer/scripts/install-node: do not edit."
    if source:
        header += f"\n# Source: {source}"
    return header + "\n" + "".join(f"{key}={env[key]}\n" for key in sorted(env))


def write_install_env(image: Image, path: Path, *, commit: str | None = None) -> Path:
    """Write the env file for ``image`` atomically; nothing is written when the image is invalid."""
    env = install_env(image, commit=commit)
    source = display(image.paths.definition, image.paths.repo.root)
    text = render_install_env(env, source=source)
    return write_atomic(path, text, mode=0o644)
