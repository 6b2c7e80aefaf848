"""The Cluster interface: what differs per kind of cluster, asked by the workflow and never by name.

One class per root module (``terraform/NAME/``) implements it: OpenStack servers, qemu VMs, or
processes on this machine. The workflow holds one instance per run and passes it what it already
has (the loaded deployment, the purpose of a plan, the skip flag, the state, the outputs), so
nothing is loaded or computed twice, and no cluster module ever imports the workflow.

Check, then act: ``check`` runs before a plan and may refuse it (never a destroy plan), ``prepare``
makes what an apply will need (never for a destroy plan), ``check_plan`` reads the plan terraform
made before it is recorded, ``wait_ready`` runs after an apply. ``status_rows``, ``submit`` and
``ssh_config`` are read-only or act on a running cluster; ``nodes``, ``diagnose``, ``install`` and
``idle`` are the day-2 operations, answered by the kinds that have them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from hgi_spark.clusters.diagnose import Archive
from hgi_spark.clusters.health import ClusterHealth
from hgi_spark.core.config import Deployment, Image
from hgi_spark.core.errors import ConfigError, UsageError

Purpose = Literal["up", "update", "destroy"]
PURPOSES: tuple[Purpose, ...] = ("up", "update", "destroy")
Say = Callable[[str], None]
Rows = list[tuple[str, str]]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class Cluster:
    """The generic kind: a provider-free module with no nodes of ours (the toy modules of the tests).

    Every method has a harmless default, so a kind implements only what it has; the day-2
    operations say plainly that this kind has none.
    """

    #: Plan and apply talk to OpenStack: credentials are loaded and passed to terraform.
    needs_cloud = False

    def __init__(self, deployment: Deployment, say: Say = _stderr) -> None:
        self.deployment = deployment
        self.say = say

    @property
    def kind(self) -> str:
        return self.deployment.ref.name

    def command(self, task: str) -> str:
        """What a user types for ``task`` on this deployment (for fixes in messages)."""
        return self.deployment.ref.command(task)

    @property
    def image(self) -> Image:
        """The image definition the nodes run (versions, application user, layout); one line if unset."""
        if self.deployment.image is None:
            raise ConfigError(
                f"a {self.kind} cluster needs 'image: NAME/VERSION' (what its nodes run)",
                file=self.deployment.paths.definition,
                key="image",
                fix=f"set image: hail-base/1.0.0 (deployments/{self.kind}/defaults.yml does)",
            )
        return self.deployment.image

    @property
    def app_user(self) -> str:
        """Who jobs and notebooks run as on the nodes: the image definition's application user."""
        return self.image.app_user.name

    # --- before terraform ------------------------------------------------------------------

    def extra_tfvars(self, state: Mapping[str, Any] | None) -> Mapping[str, Any]:
        """Values only the wrapper knows (each a variable of the root module); no side effects."""
        return {}

    def check(self, purpose: Purpose, state: Mapping[str, Any] | None, *, skip: bool = False) -> None:
        """Checks before a plan for ``purpose``; raise to refuse. A destroy plan is never refused."""

    def prepare(self, purpose: Purpose) -> None:
        """Make what an apply for ``purpose`` will need (installs, secrets); nothing for destroy."""

    def check_plan(self, purpose: Purpose, plan: Mapping[str, Any]) -> None:
        """Read the plan terraform made (``show -json``) before it is recorded; raise to refuse it."""

    def terraform_env(self) -> Mapping[str, str]:
        """Environment terraform needs: the cloud's credentials for kinds that need a cloud, loaded
        (and perhaps prompted for) only when a plan or an apply runs."""
        if not self.needs_cloud:
            return {}
        from hgi_spark.cloud import credentials

        return credentials.openstack_environment(repo=self.deployment.repo)

    # --- after an apply --------------------------------------------------------------------

    def wait_ready(self, outputs: Mapping[str, Any], state: Mapping[str, Any] | None) -> None:
        """Wait until every node says it is configured (kinds that can tell)."""

    # --- read-only -------------------------------------------------------------------------

    def status_rows(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> Rows:
        """Extra ``status`` rows about the cluster itself (processes, nodes, the cloud)."""
        return []

    def output_rows(self) -> Rows:
        """Rows printed with the outputs (e.g. the TLS certificate's fingerprint)."""
        return []

    def health(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> ClusterHealth:
        """Per-node health for ``status --nodes``: services, registration, disk, applications, kernels."""
        raise self._not_here("per-node status")

    def diagnose(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], archive: Archive) -> None:
        """Put every node's logs, configuration and state into ``archive`` (it masks the secrets)."""
        raise self._not_here("diagnose")

    def up_since(self, state: Mapping[str, Any] | None) -> datetime | None:
        """When the cluster's master came up (the start of idleness when nothing ran since)."""
        return None

    # --- acting on a running cluster -------------------------------------------------------

    def finish(self, purpose: Purpose, state: Mapping[str, Any] | None) -> None:
        """After a plan for ``purpose`` was applied: what terraform cannot remove (a killed apply's leftovers)."""

    def strays(self, state: Mapping[str, Any] | None) -> list[str]:
        """What runs for this deployment without being in the state (a killed apply's), by name."""
        return []

    def submit(
        self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], script: str, args: Sequence[str]
    ) -> int:
        """Run a Python script on the cluster with spark-submit; returns its exit code."""
        raise self._not_here("submit")

    def ssh_config(self, outputs: Mapping[str, Any]) -> str:
        """A ``~/.ssh/config`` entry for the master, its host key pinned."""
        raise self._not_here("ssh-config")

    def install(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> Any:
        """The YAML's extra packages onto the running cluster now (clusters/extras.py): an
        ``InstallReport`` with one line per node; a failing node does not stop the others."""
        raise self._not_here("install")

    def _not_here(self, what: str) -> UsageError:
        return UsageError(f"deployments of terraform/{self.kind}/ have no {what}")
