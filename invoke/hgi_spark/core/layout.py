"""Where things live in the repository: definitions, root modules, and each deployment's own folder.

A deployment ``NAME/OWNER`` is defined in ``deployments/NAME/OWNER/deployment.yml`` and run by the
root module ``terraform/NAME/``; everything generated for it stays in its own folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, NotFoundError, UsageError
from .files import display

_SEGMENT = r"[a-z0-9][a-z0-9_.-]*"
_DEPLOYMENT_RE = re.compile(rf"^(?P<name>{_SEGMENT})/(?P<owner>{_SEGMENT})$")
_IMAGE_RE = re.compile(rf"^(?P<name>{_SEGMENT})/(?P<version>\d+\.\d+\.\d+)$")


CACHE_ENV = "HGI_SPARK_CACHE"  # the cache folder (prefixes, images, wheels), default ~/.cache/hgi-spark


def cache_dir() -> Path:
    """Where expensive things are kept across runs, each keyed by the digest of its inputs."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hgi-spark"


def repository_root() -> Path:
    """The checkout this library belongs to (this file is invoke/hgi_spark/core/layout.py in it)."""
    return Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Repository:
    """The layout of one checkout; tests point it at a temporary tree."""

    root: Path

    @classmethod
    def default(cls) -> Repository:
        return cls(Path(os.environ.get("HGI_REPOSITORY", repository_root())))

    @property
    def deployments_dir(self) -> Path:
        return self.root / "deployments"

    @property
    def images_dir(self) -> Path:
        return self.root / "images"

    @property
    def terraform_dir(self) -> Path:
        return self.root / "terraform"

    @property
    def packer_dir(self) -> Path:
        return self.root / "packer"

    def deployments(self) -> list[str]:
        """Every defined deployment as NAME/OWNER, sorted."""
        return sorted(
            f"{p.parent.parent.name}/{p.parent.name}" for p in self.deployments_dir.glob("*/*/deployment.yml")
        )

    def images(self) -> list[str]:
        """Every defined image as NAME/VERSION, sorted."""
        return sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in self.images_dir.glob("*/*/image.yml"))


@dataclass(frozen=True)
class DeploymentRef:
    """A deployment named NAME/OWNER; NAME also names its root module."""

    name: str
    owner: str

    @classmethod
    def parse(cls, text: str | None) -> DeploymentRef:
        if not text:
            raise UsageError(
                "no deployment given",
                fix="call as: bash invoke.sh deployment NAME/OWNER TASK, or pass --name NAME/OWNER",
            )
        match = _DEPLOYMENT_RE.match(text)
        if not match:
            raise UsageError(
                f"malformed deployment name '{text}': expected NAME/OWNER",
                fix="lower-case letters, digits, '-', '_' or '.', e.g. spark/ld14",
            )
        return cls(match["name"], match["owner"])

    def __str__(self) -> str:
        return f"{self.name}/{self.owner}"

    def command(self, task: str) -> str:
        """The command line a user types for ``task`` on this deployment (fixes in messages)."""
        return f"bash invoke.sh deployment {self} {task}"

    @property
    def slug(self) -> str:
        """The prefix of every cloud resource name, e.g. ``spark-ld14``.

        The same rule as terraform/modules/naming: '_' and '.' become '-' (Nova and DNS names).
        """
        return f"{re.sub(r'[_.]', '-', self.name)}-{re.sub(r'[_.]', '-', self.owner)}"


@dataclass(frozen=True)
class ImageRef:
    """An image definition named NAME/VERSION; Glance knows it as NAME-VERSION."""

    name: str
    version: str

    @classmethod
    def parse(cls, text: str | None, *, source: str | None = None) -> ImageRef:
        if not text:
            raise UsageError(
                "no image given",
                fix="pass --name NAME/VERSION, or call as: bash invoke.sh image NAME/VERSION TASK",
            )
        match = _IMAGE_RE.match(text)
        if not match:
            error = UsageError if source is None else _config_error
            raise error(
                f"malformed image name '{text}': expected NAME/VERSION with VERSION as X.Y.Z",
                fix="e.g. hail-base/1.0.0",
                file=source,
            )
        return cls(match["name"], match["version"])

    def __str__(self) -> str:
        return f"{self.name}/{self.version}"

    def command(self, task: str) -> str:
        """The command line a user types for ``task`` on this image (fixes in messages)."""
        return f"bash invoke.sh image {self} {task}"

    @property
    def glance_name(self) -> str:
        return f"{self.name}-{self.version}"


def _config_error(problem: str, *, fix: str, file: str | None) -> Exception:
    return ConfigError(problem, fix=fix, file=file, key="image")


@dataclass(frozen=True)
class DeploymentPaths:
    """Every file of one deployment: its definition and what is generated for it (git-ignored)."""

    repo: Repository
    ref: DeploymentRef

    @property
    def folder(self) -> Path:
        return self.repo.deployments_dir / self.ref.name / self.ref.owner

    @property
    def definition(self) -> Path:
        return self.folder / "deployment.yml"

    @property
    def layers(self) -> list[Path]:
        """The YAML layers, farthest first: the nearest one wins when merged."""
        return [
            self.repo.deployments_dir / "defaults.yml",
            self.repo.deployments_dir / self.ref.name / "defaults.yml",
            self.definition,
        ]

    @property
    def root_module(self) -> Path:
        return self.repo.terraform_dir / self.ref.name

    @property
    def tfvars(self) -> Path:
        return self.folder / "terraform.tfvars.json"

    @property
    def data_dir(self) -> Path:
        """terraform's data dir (TF_DATA_DIR), so two deployments never share providers or backend."""
        return self.folder / ".terraform"

    @property
    def state(self) -> Path:
        return self.folder / "terraform.tfstate"

    @property
    def lock(self) -> Path:
        return self.folder / ".lock"

    @property
    def secrets_dir(self) -> Path:
        return self.folder / "secrets"

    @property
    def runtime_dir(self) -> Path:
        """Where a local or VM cluster keeps pid files, logs, disks and its shared tmp directory."""
        return self.folder / "runtime"

    @property
    def known_hosts(self) -> Path:
        """The master's host keys, pinned at the first ``up`` (ssh-config and submit trust only them)."""
        return self.secrets_dir / "known_hosts"

    def plan_file(self, purpose: str) -> Path:
        return self.folder / f"{purpose}.tfplan"

    def plan_record(self, purpose: str) -> Path:
        return self.folder / f"{purpose}.tfplan.json"

    def require_exists(self) -> None:
        if not self.definition.is_file():
            known = ", ".join(self.repo.deployments()) or "none"
            raise NotFoundError(
                f"unknown deployment '{self.ref}': {display(self.definition, self.repo.root)} does not exist",
                fix=f"defined deployments: {known}",
            )
        if not self.root_module.is_dir():
            raise NotFoundError(
                f"no root module for deployments called '{self.ref.name}': "
                f"{display(self.root_module, self.repo.root)}/ does not exist",
                fix="deployments/NAME/... runs terraform/NAME/",
            )


@dataclass(frozen=True)
class ImagePaths:
    """The files of one image definition."""

    repo: Repository
    ref: ImageRef

    @property
    def folder(self) -> Path:
        return self.repo.images_dir / self.ref.name / self.ref.version

    @property
    def definition(self) -> Path:
        return self.folder / "image.yml"

    @property
    def layers(self) -> list[Path]:
        return [self.repo.images_dir / self.ref.name / "defaults.yml", self.definition]

    @property
    def template(self) -> Path:
        return self.repo.packer_dir / f"{self.ref.name}.pkr.hcl"

    def require_exists(self) -> None:
        if not self.definition.is_file():
            known = ", ".join(self.repo.images()) or "none"
            raise NotFoundError(
                f"unknown image '{self.ref}': {display(self.definition, self.repo.root)} does not exist",
                fix=f"defined images: {known}",
            )
