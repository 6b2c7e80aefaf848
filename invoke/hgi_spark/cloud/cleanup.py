"""Deleting resources of one project by kind and id, in the order OpenStack allows, for the
reviewed orphan deletion (deploy/orphans.py): servers first (they hold ports and volumes), then
floating IPs, volumes, routers (their interfaces first), ports, subnets, networks, security groups.

Each deletion is one line said before it starts; one already gone counts as deleted; the first
refusal stops the rest, named with the cloud's answer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

import keystoneauth1.exceptions as ksa
import openstack.exceptions as sdk

from hgi_spark.core.errors import CloudError, first_line

ORDER = ("server", "floating IP", "volume", "router", "port", "subnet", "network", "security group")
WAIT_S = 300


def ordered(items: Iterable[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """(kind, id, name) in the order they can be deleted; unknown kinds are refused up front."""
    found = list(items)
    unknown = sorted({kind for kind, _, _ in found if kind not in ORDER})
    if unknown:
        raise CloudError(f"cannot delete a {', '.join(unknown)}: the wrapper deletes only {', '.join(ORDER)}")
    return sorted(found, key=lambda item: ORDER.index(item[0]))


def delete(project: object, items: Sequence[tuple[str, str, str]], say: Callable[[str], None]) -> list[str]:
    """Delete each (kind, id, name) and wait until it is gone; returns what was deleted, as lines."""
    connection = project.connection  # type: ignore[attr-defined]
    done = []
    for kind, ident, name in ordered(items):
        shown = f"{kind} {name or '-'} ({ident})"
        say(f"deleting {shown}")
        try:
            _delete(connection, kind, ident)
        except sdk.NotFoundException:
            pass
        except (sdk.SDKException, ksa.ClientException) as error:
            raise CloudError(
                f"deleting {shown}: the cloud answered: {first_line(error)}",
                fix=f"{len(done)} deleted before it; check it in the cloud, then plan the deletion again",
            ) from None
        done.append(shown)
    return done


def _delete(connection: object, kind: str, ident: str) -> None:
    compute, network, volumes = connection.compute, connection.network, connection.block_storage  # type: ignore[attr-defined]
    if kind == "server":
        compute.delete_server(ident)
        _wait_gone(lambda: compute.get_server(ident), kind, ident)
    elif kind == "floating IP":
        network.delete_ip(ident)
    elif kind == "volume":
        volumes.delete_volume(ident)
        _wait_gone(lambda: volumes.get_volume(ident), kind, ident)
    elif kind == "router":
        for port in network.ports(device_id=ident, device_owner="network:router_interface"):
            network.remove_interface_from_router(ident, port_id=port.id)
        network.delete_router(ident)
    elif kind == "port":
        network.delete_port(ident)
    elif kind == "subnet":
        network.delete_subnet(ident)
    elif kind == "network":
        network.delete_network(ident)
    elif kind == "security group":
        network.delete_security_group(ident)


def _wait_gone(get: Callable[[], object], kind: str, ident: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            get()
        except sdk.NotFoundException:
            return
        time.sleep(1)
    raise CloudError(f"{kind} {ident} is still there {WAIT_S} s after its deletion was accepted")
