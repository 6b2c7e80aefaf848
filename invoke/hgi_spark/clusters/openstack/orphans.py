"""Which place of terraform/spark/ an OpenStack orphan would take: its resource address, or why none.

A resource is the deployment's by its tags or metadata (found as ``status`` finds strays); its
role comes from the end of its name, as terraform/modules/naming makes names (PREFIX-master,
PREFIX-worker-001, PREFIX-network ...): the prefix is already known from the tags. A place is free
when the configuration has it (a worker within ``workers``, a network only with ``network.create``,
a tmp volume only with ``tmp_volume_gb``) and the state holds nothing there. Some resources cannot
be adopted as a whole: a router's interface and a security group's rules are resources of their
own that the wrapper cannot match to the module's keys; those orphans are deleted instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from hgi_spark.cloud.project import Tagged
from hgi_spark.clusters.openstack import preflight
from hgi_spark.clusters.orphans import Orphan, state_addresses

# Neutron gives every new security group two egress rules (IPv4, IPv6); the module adds none of those.
DEFAULT_RULES = 2

# (kind, name suffix, address; {n} is the worker index), as terraform/spark/main.tf declares them.
PLACES: tuple[tuple[str, str, str], ...] = (
    ("server", r"-master", "openstack_compute_instance_v2.master"),
    ("server", r"-worker-(\d{3})", "openstack_compute_instance_v2.worker[{n}]"),
    ("port", r"-master", "openstack_networking_port_v2.master"),
    ("port", r"-worker-(\d{3})", "openstack_networking_port_v2.worker[{n}]"),
    ("network", r"-network", "openstack_networking_network_v2.this[0]"),
    ("subnet", r"-subnet", "openstack_networking_subnet_v2.this[0]"),
    ("security group", r"-external", "openstack_networking_secgroup_v2.external"),
    ("security group", r"-internal", "openstack_networking_secgroup_v2.internal"),
    ("floating IP", r"", "openstack_networking_floatingip_v2.master"),  # named by its address
    ("volume", r"-master-tmp", "openstack_blockstorage_volume_v3.master_tmp[0]"),
)


def tagged_resources(project: Any, deployment: str) -> list[Tagged]:
    """Every resource of the project carrying the deployment's tags (Neutron) or metadata (Nova, Cinder)."""
    found = list(project.tagged(preflight.deployment_tags(deployment)))
    found += [
        Tagged("server", s.id, s.name) for s in project.servers_with_metadata(preflight.DEPLOYMENT_METADATA, deployment)
    ]
    if project.has_block_storage():  # a cloud without Cinder has no volumes to look at
        found += project.volumes_with_metadata(preflight.DEPLOYMENT_METADATA, deployment)
    return found


def _configured(address: str, settings: Mapping[str, Any]) -> str:
    """Why the configuration has no such place ("" when it has)."""
    workers = int(settings.get("workers") or 0)
    found = re.search(r"\.worker\[(\d+)\]$", address)
    if found and int(found.group(1)) >= workers:
        return f"worker {int(found.group(1)) + 1} is beyond workers: {workers}"
    if ".this[0]" in address and not (settings.get("network") or {}).get("create"):
        return "the deployment uses an existing network (network.create: false)"
    if "master_tmp" in address and not settings.get("tmp_volume_gb"):
        return "the deployment has no tmp volume (tmp_volume_gb: 0)"
    return ""


def place(
    tagged: Iterable[Tagged],
    state: Mapping[str, Any] | None,
    settings: Mapping[str, Any],
    rules: Mapping[str, int] | None = None,
) -> list[Orphan]:
    """The resources the state does not hold, each with its free place in the module or why it has none.

    ``rules``: security group id -> its number of rules (a group with rules of its own is deleted).
    """
    held = state_addresses(state)
    known = set(held.values())
    taken: dict[str, str] = {}
    orphans = []
    for item in tagged:
        if item.id in known:
            continue
        address, why = _address(item)
        if address and address in held:
            address, why = None, f"{address} is in the state already ({held[address]}): this one is a duplicate"
        elif address and address in taken:
            address, why = None, f"{address} is taken by {taken[address]} found first: this one is a duplicate"
        elif address and (why := _configured(address, settings)):
            address = None
        elif address and item.kind == "security group" and (rules or {}).get(item.id, 0) > DEFAULT_RULES:
            address, why = None, f"its {rules[item.id]} rules cannot be adopted with it"  # type: ignore[index]
        if address:
            taken[address] = item.id
        orphans.append(Orphan(item.kind, item.id, item.name, address, why))
    return orphans


def _address(item: Tagged) -> tuple[str | None, str]:
    if item.kind == "router":
        return None, "its interface on the subnet cannot be adopted with it"
    for kind, suffix, address in PLACES:
        if kind != item.kind:
            continue
        found = re.search(suffix + "$", item.name or "")
        if found:
            number = int(found.group(1)) - 1 if found.groups() else 0
            return address.format(n=number), ""
    return None, f"no {item.kind} of the module is named like '{item.name}'"
