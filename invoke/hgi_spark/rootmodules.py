"""What the wrapper needs to know about each root module, decided once: ``terraform/NAME/`` -> Profile.

The workflow never asks ``if name == "spark"``; it asks the profile. Modules add their hooks here
(one entry in PROFILES); any other root module gets the generic profile: no cloud credentials,
no hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import local, preflight, readiness
from . import submit as remote

if TYPE_CHECKING:
    from .config import Deployment


@dataclass(frozen=True)
class Profile:
    """How a root module is run.

    needs_cloud: plan/apply talk to OpenStack, so OS_* credentials are loaded and passed to terraform.
    extra_tfvars: values the wrapper adds to terraform.tfvars.json (each must be a declared variable).
    preflight: checks before a plan (quota, image present ...); raise an HgiError to stop.
    status_rows: extra (label, value) rows for ``status``.
    submit: runs a job on the deployed cluster.
    wait_ready: after ``up``/``update``, waits until the nodes say they are configured.
    ready_rows: (label, value) rows for ``status`` about the nodes' readiness, given the outputs.
    """

    name: str
    needs_cloud: bool = False
    extra_tfvars: Callable[[Deployment], Mapping[str, Any]] | None = None
    preflight: Callable[[Deployment], None] | None = None
    status_rows: Callable[[Deployment], list[tuple[str, str]]] | None = None
    submit: Callable[..., Any] | None = None
    wait_ready: Callable[[Deployment, Mapping[str, Any], Callable[[str], None]], None] | None = None
    ready_rows: Callable[[Deployment, Mapping[str, Any]], list[tuple[str, str]]] | None = None


def _spark_tfvars(deployment: Deployment) -> dict[str, Any]:
    """The master's Jupyter password hash (the password is made once per deployment, 0600 in secrets/)."""
    from . import secrets

    secret = secrets.ensure_jupyter_password(deployment.paths)
    return {"jupyter_password_hash": secret.hash_file.read_text(encoding="utf-8").strip()}


PROFILES: dict[str, Profile] = {
    "spark": Profile(
        "spark",
        needs_cloud=True,
        extra_tfvars=_spark_tfvars,
        preflight=preflight.before_plan,
        status_rows=preflight.status_rows,
        submit=remote.over_ssh,
        wait_ready=readiness.after_apply,
        ready_rows=readiness.status_rows,
    ),
    "spark-local": Profile(
        "spark-local",
        needs_cloud=False,
        extra_tfvars=local.extra_tfvars,
        preflight=local.preflight,
        status_rows=local.status_rows,
        submit=local.submit,
    ),
}


def profile(name: str) -> Profile:
    """The profile of the root module ``terraform/<name>/`` (generic when not listed)."""
    return PROFILES.get(name) or Profile(name)


def submit(name: str | None, script: str, args: list[str]) -> int:
    """Run a Python script on the deployment's cluster through its module's ``submit`` hook."""
    from . import config
    from .errors import UsageError

    deployment = config.load_deployment(name)
    hook = profile(deployment.ref.name).submit
    if hook is None:
        raise UsageError(f"deployments of terraform/{deployment.ref.name}/ have no submit yet")
    return int(hook(deployment, script, args))
