"""One deployment, loaded and ready to run: its definition, its cluster, its terraform runner and
its state, read once per task (a state terraform could not read is one line, never a traceback)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hgi_spark import clusters
from hgi_spark.clusters.base import Cluster
from hgi_spark.core import config
from hgi_spark.core.errors import ConfigError, RefusedError
from hgi_spark.core.files import display
from hgi_spark.core.layout import DeploymentPaths, Repository
from hgi_spark.deploy import terraform as tf


class StateUnreadable(ConfigError):
    """The state file is there but is not a state terraform wrote (truncated, not JSON, too new)."""


# --- one deployment, ready to run -------------------------------------------------------------------


@dataclass
class Run:
    """A loaded, validated deployment with its cluster and its terraform runner; one per task.

    What a task needs more than once (the state, the wrapper's extra variables) is computed once
    here and handed to the cluster.
    """

    deployment: config.Deployment
    cluster: Cluster
    terraform: tf.Terraform
    echo: TextIO = field(default_factory=lambda: sys.stderr)
    _state: Any = field(default=None, repr=False)
    _state_read: bool = field(default=False, repr=False)
    _extra: Mapping[str, Any] | None = field(default=None, repr=False)

    @property
    def paths(self) -> DeploymentPaths:
        return self.deployment.paths

    def command(self, task: str) -> str:
        return self.deployment.ref.command(task)

    def display(self, path: Path) -> str:
        return display(path, self.deployment.repo.root)

    def say(self, text: str) -> None:
        print(text, file=self.echo, flush=True)

    # --- state ------------------------------------------------------------------------------

    def state(self, *, fresh: bool = False) -> dict[str, Any] | None:
        """The state as terraform last wrote it (None before the first apply); read once per run."""
        if fresh or not self._state_read:
            self._state = self._read_state()
            self._state_read = True
        return self._state

    def _read_state(self) -> dict[str, Any] | None:
        if self.terraform.backend.type != "local":
            self.terraform.require_same_backend()
            if not (self.paths.data_dir / "terraform.tfstate").is_file():
                raise RefusedError(
                    "the remote backend is not initialised for this deployment", fix=f"run: {self.command('init')}"
                )
            return self.terraform.state_pull()
        path = self.paths.state
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        return parse_state(text, self.display(path))

    # --- variables ----------------------------------------------------------------------------

    def extra_tfvars(self) -> Mapping[str, Any]:
        """The cluster's extra variables, asked once per run."""
        if self._extra is None:
            self._extra = dict(self.cluster.extra_tfvars(self.state()))
        return self._extra

    def tfvars(self) -> dict[str, Any]:
        return self.deployment.tfvars(self.extra_tfvars())

    def with_cloud_credentials(self) -> None:
        """Only kinds that talk to a cloud get (and may prompt for) credentials."""
        extra = self.cluster.terraform_env()
        if extra:
            self.terraform.env = {**self.terraform.env, **extra}


def parse_state(text: str, shown: str) -> dict[str, Any] | None:
    """A state file's JSON, or one line naming the file and how to recover it."""
    fix = f"restore {shown}.backup (the state before the last change) over it, or 'terraform state push' a good copy"
    if not text.strip():
        return None
    try:
        state = json.loads(text)
    except ValueError as error:
        raise StateUnreadable(
            f"the state is not readable JSON ({error.msg} at line {error.lineno})", file=shown, fix=fix
        ) from None
    if not isinstance(state, dict) or "version" not in state:
        raise StateUnreadable("the file is not a terraform state", file=shown, fix=fix)
    if int(state.get("version", 0)) > 4:
        raise StateUnreadable(
            f"the state is of format version {state['version']}, newer than this terraform reads",
            file=shown,
            fix=f"use the terraform that wrote it ({state.get('terraform_version', '?')})",
        )
    return state


def load(name: str | None, repo: Repository | None = None, *, echo: TextIO | None = None) -> Run:
    """Load and validate the deployment; writes nothing (a bad YAML leaves no file behind)."""
    deployment = config.load_deployment(name, repo)
    backend = tf.Backend("local")
    if deployment.wrapper.backend is not None:
        backend = tf.s3_backend(deployment.wrapper.backend.model_dump())
    echo = echo or sys.stderr
    runner = tf.Terraform(
        terraform_dir=deployment.repo.terraform_dir,
        root_module=deployment.paths.root_module,
        data_dir=deployment.paths.data_dir,
        state=deployment.paths.state,
        backend=backend,
        echo=echo,
    )

    def say(text: str) -> None:
        print(text, file=echo, flush=True)

    return Run(deployment, clusters.for_deployment(deployment, say), runner, echo)
