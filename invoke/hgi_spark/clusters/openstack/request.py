"""What a plan of an OpenStack deployment asks the cloud for, read once from its settings.

Security-group rules are counted from the plan terraform makes (``rules_in_plan``), never from
the module's source: what the quota check compares is what the apply would create.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.config import Deployment

# Neutron gives every new security group two egress rules (IPv4 and IPv6); they count in the quota.
DEFAULT_EGRESS_RULES = 2
SECURITY_GROUP = "openstack_networking_secgroup_v2"
SECURITY_GROUP_RULE = "openstack_networking_secgroup_rule_v2"


@dataclass(frozen=True)
class Request:
    """What a plan of the deployment asks the cloud for, read once from its settings."""

    deployment: str
    master_flavor: str
    worker_flavor: str
    workers: int
    image: str | None  # NAME/VERSION of the image definition
    glance_name: str | None  # NAME-VERSION, as Glance knows it
    network: str | None
    subnet_name: str | None
    create_network: bool
    external_network: str | None
    keypair: str
    public_key: str | None
    volume_gb: int
    allowed_cidrs: int = 1
    source: str = "deployment.yml"
    public_key_problem: str | None = None  # why ssh_public_key_file could not be read

    @property
    def servers(self) -> int:
        return self.workers + 1

    @property
    def floating_ips(self) -> int:
        return 1 if self.external_network else 0


def request_from(deployment: Deployment) -> Request:
    """What the deployment asks for, from its settings (the keys of terraform/spark/variables.tf)."""
    s = deployment.settings
    source = str(deployment.paths.definition)
    network = s.get("network") or {}
    public_key, problem = _read_public_key(s.get("ssh_public_key_file"), deployment.paths.folder)
    return Request(
        deployment=str(deployment.ref),
        master_flavor=str(s.get("master_flavor", "")),
        worker_flavor=str(s.get("worker_flavor", "")),
        workers=int(s.get("workers", 0)),
        image=str(deployment.image.ref) if deployment.image else None,
        glance_name=deployment.image.ref.glance_name if deployment.image else None,
        network=None if network.get("create") else network.get("name"),
        subnet_name=network.get("subnet_name") or None,
        create_network=bool(network.get("create")),
        external_network=s.get("external_network") or None,
        keypair=f"{deployment.ref.slug}-key",
        public_key=public_key,
        public_key_problem=problem,
        volume_gb=int(s.get("tmp_volume_gb") or 0),
        allowed_cidrs=len(s.get("allowed_cidrs") or []),
        source=source,
    )


def _read_public_key(path_text: Any, folder: Path) -> tuple[str | None, str | None]:
    """The key, or why not: a missing key file is a row of the key pair check, not a crash of status."""
    if not path_text:
        return None, "ssh_public_key_file is not set"
    path = Path(str(path_text)).expanduser()
    if not path.is_absolute():
        path = folder / path
    try:
        return path.read_text().strip(), None
    except OSError as error:
        return None, f"cannot read ssh_public_key_file {path}: {error.strerror}"


def created_in_plan(plan: Mapping[str, Any], resource_type: str) -> int:
    """How many resources of ``resource_type`` the plan (``terraform show -json``) creates."""
    return sum(
        1
        for change in plan.get("resource_changes", [])
        if change.get("type") == resource_type and "create" in (change.get("change") or {}).get("actions", [])
    )


def rules_in_plan(plan: Mapping[str, Any]) -> tuple[int, int]:
    """(security groups, rules) the plan creates; each new group brings Neutron's default egress rules."""
    groups = created_in_plan(plan, SECURITY_GROUP)
    return groups, created_in_plan(plan, SECURITY_GROUP_RULE) + groups * DEFAULT_EGRESS_RULES
