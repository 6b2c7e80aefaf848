"""https on a cluster's master: the user's certificate, or the deployment's own self-signed one,
and plain http only when the YAML says ``plain_http: true``. Shared by every kind with an nginx
reached over a network (OpenStack, VMs); the local cluster listens on loopback only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hgi_spark.core import secrets
from hgi_spark.core.config import Deployment

Rows = list[tuple[str, str]]


def self_signed(deployment: Deployment) -> bool:
    """https with the deployment's own certificate: no ``tls:`` in the YAML, and no plain_http."""
    settings = deployment.settings
    return not settings.get("plain_http") and not settings.get("tls")


def certificate(deployment: Deployment) -> Path | None:
    """The certificate nginx serves (None: plain http)."""
    settings = deployment.settings
    if settings.get("plain_http"):
        return None
    if settings.get("tls"):
        return Path(str(settings["tls"]["certificate_file"])).expanduser()
    return secrets.TlsFiles.of(deployment.paths).certificate_file


def prepare(deployment: Deployment) -> None:
    """Make the self-signed certificate once, before the first plan that needs it."""
    if self_signed(deployment):
        secrets.ensure_self_signed(deployment.paths, f"{deployment.ref.slug}-master")


def tfvars(deployment: Deployment) -> dict[str, Any]:
    """The ``tls`` variable when the wrapper's own certificate is used (the YAML's wins otherwise)."""
    if self_signed(deployment):
        return {"tls": secrets.TlsFiles.of(deployment.paths).as_variable()}
    return {}


def warn(deployment: Deployment, say: Callable[[str], None]) -> None:
    """Said on every plan: a password crossing the network in clear text is a choice to see."""
    if deployment.settings.get("plain_http"):
        say("WARNING: plain_http: true: the Jupyter password and every page cross the network unencrypted")


def rows(deployment: Deployment) -> Rows:
    """The certificate's fingerprint, to compare with what the browser shows."""
    found = certificate(deployment)
    if found is None:
        return [("tls", "none: plain http (plain_http: true)")]
    if not found.is_file():
        return [("tls", f"no certificate yet ({found})")]
    return [("tls certificate", f"SHA-256 {secrets.fingerprint(found)}")]


def pinned(deployment: Deployment) -> str:
    """The certificate file to check the master's https against ("" when there is none to pin)."""
    found = certificate(deployment) if self_signed(deployment) else None
    return str(found) if found is not None and found.is_file() else ""


def site(outputs: Mapping[str, Any]) -> str:
    """The master's web address (scheme, host, port) from the outputs; "" when not up."""
    url = str((outputs.get("jupyter_url") or {}).get("value") or "")
    return url.split("/jupyter/")[0] if url else ""
