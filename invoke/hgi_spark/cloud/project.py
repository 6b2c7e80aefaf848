"""Read-only questions to one OpenStack project (Nova, Neutron, Cinder, Glance), answered as plain data.

The pre-flight checks, status and the orphan search ask through a :class:`Project`, so they never
touch openstacksdk objects or exceptions: a refusal by the cloud's policy is :class:`Forbidden`,
any other failure of the cloud a :class:`~hgi_spark.core.errors.CloudError`, one line each.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import keystoneauth1.exceptions as ksa
import openstack.connection
import openstack.exceptions as sdk

from hgi_spark.core.errors import CloudError, first_line

T = TypeVar("T")


class Forbidden(CloudError):
    """The cloud's policy does not let this user read it: unknown, which is not the same as failing."""


def _asked(what: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Turn the SDK's failures of one question into our errors, naming the question."""

    def decorate(function: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            try:
                return function(*args, **kwargs)
            except sdk.ForbiddenException as error:
                raise Forbidden(f"{what}: this user may not read it ({first_line(error)})") from None
            except (sdk.SDKException, ksa.ClientException) as error:
                raise CloudError(f"{what}: the cloud answered: {first_line(error)}") from None

        return wrapper

    return decorate


@dataclass(frozen=True)
class Flavor:
    id: str
    name: str
    vcpus: int
    ram_mb: int


@dataclass(frozen=True)
class Network:
    id: str
    name: str
    external: bool


@dataclass(frozen=True)
class Subnet:
    id: str
    name: str
    cidr: str
    network_id: str


@dataclass(frozen=True)
class Keypair:
    name: str
    public_key: str
    fingerprint: str


@dataclass(frozen=True)
class Image:
    id: str
    name: str
    status: str
    visibility: str
    owner: str


@dataclass(frozen=True)
class Server:
    id: str
    name: str
    status: str
    vcpus: int
    ram_mb: int
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ComputeLimits:
    """(limit, used) pairs; a limit of -1 is unlimited."""

    instances: tuple[int, int]
    cores: tuple[int, int]
    ram_mb: tuple[int, int]


@dataclass(frozen=True)
class Tagged:
    """A Neutron or Cinder resource that carries the deployment's tags or metadata."""

    kind: str  # server, port, network, subnet, router, security group, floating IP, volume
    id: str
    name: str


class Project:
    """One project of the cloud, through one authenticated connection."""

    def __init__(self, connection: openstack.connection.Connection) -> None:
        self.connection = connection
        self.id = str(connection.current_project_id)

    # --- compute ------------------------------------------------------------------------------

    @_asked("flavors")
    def flavor(self, name: str) -> Flavor | None:
        found = _find(self.connection.compute.find_flavor, name)
        return None if found is None else Flavor(found.id, found.name, int(found.vcpus), int(found.ram))

    @_asked("flavors")
    def flavor_names(self) -> list[str]:
        return sorted(f.name for f in self.connection.compute.flavors())

    @_asked("key pairs")
    def keypair(self, name: str) -> Keypair | None:
        found = _find(self.connection.compute.find_keypair, name)
        return None if found is None else Keypair(found.name, found.public_key or "", found.fingerprint or "")

    @_asked("servers")
    def servers_with_metadata(self, key: str, value: str) -> list[Server]:
        """Servers whose Nova metadata ``key`` is ``value``, with their flavor's size."""
        found = []
        for server in self.connection.compute.servers(details=True):
            metadata = dict(server.metadata or {})
            if metadata.get(key) != value:
                continue
            vcpus, ram = self._server_size(server)
            found.append(Server(server.id, server.name, str(server.status), vcpus, ram, metadata))
        return found

    def _server_size(self, server: Any) -> tuple[int, int]:
        """vCPUs and RAM of a server's flavor (embedded since compute microversion 2.47)."""
        flavor = server.flavor
        vcpus, ram = getattr(flavor, "vcpus", None), getattr(flavor, "ram", None)
        if vcpus is None or ram is None:
            full = self.connection.compute.get_flavor(flavor.id)
            vcpus, ram = full.vcpus, full.ram
        return int(vcpus), int(ram)

    @_asked("compute quota")
    def compute_limits(self) -> ComputeLimits:
        limits = self.connection.compute.get_limits().absolute
        return ComputeLimits(
            (int(limits.instances), int(limits.instances_used)),
            (int(limits.total_cores), int(limits.total_cores_used)),
            (int(limits.total_ram), int(limits.total_ram_used)),
        )

    @_asked("console log")
    def console_log(self, server_name: str) -> str | None:
        """A server's console output (cloud-init prints host keys and the ready line there); None if no server."""
        server = _find(self.connection.compute.find_server, server_name)
        if server is None:
            return None
        return str(self.connection.compute.get_server_console_output(server).get("output") or "")

    # --- images ---------------------------------------------------------------------------------

    @_asked("images")
    def images(self, name: str, *, member_status: str | None = None) -> list[Image]:
        """Images called ``name``: the visible ones, or those shared with this project in a member status."""
        query: dict[str, Any] = {"name": name}
        if member_status:
            query.update(visibility="shared", member_status=member_status)
        return [
            Image(i.id, i.name or "", str(i.status), str(i.visibility), str(i.owner_id or i.owner or ""))
            for i in self.connection.image.images(**query)
        ]

    @_asked("image members")
    def member_status(self, image_id: str) -> str | None:
        """This project's member status of an image shared with it (None: not a member)."""
        try:
            return str(self.connection.image.get_member(self.id, image_id).status)
        except sdk.NotFoundException:
            return None

    # --- network --------------------------------------------------------------------------------

    @_asked("networks")
    def network(self, name: str) -> Network | None:
        found = _find(self.connection.network.find_network, name)
        return None if found is None else Network(found.id, found.name, bool(found.is_router_external))

    @_asked("networks")
    def external_network_names(self) -> list[str]:
        return sorted(n.name for n in self.connection.network.networks(is_router_external=True))

    @_asked("subnets")
    def subnets(self, network_id: str) -> list[Subnet]:
        return [
            Subnet(s.id, s.name or "", str(s.cidr), str(s.network_id))
            for s in self.connection.network.subnets(network_id=network_id, ip_version=4)
        ]

    @_asked("routers")
    def routed_to(self, subnet_id: str, external_network_id: str) -> bool:
        """Whether a router with a gateway on the external network has an interface on the subnet."""
        for port in self.connection.network.ports(device_owner="network:router_interface"):
            if not any(ip.get("subnet_id") == subnet_id for ip in port.fixed_ips or []):
                continue
            router = self.connection.network.get_router(port.device_id)
            gateway = router.external_gateway_info or {}
            if gateway.get("network_id") == external_network_id:
                return True
        return False

    @_asked("network quota")
    def network_quota(self) -> dict[str, tuple[int, int]]:
        """(limit, used + reserved) per Neutron resource."""
        quota = self.connection.network.get_quota(self.id, details=True)
        result = {}
        for name in (
            "floating_ips",
            "security_groups",
            "security_group_rules",
            "ports",
            "networks",
            "subnets",
            "routers",
        ):
            detail = getattr(quota, name) or {}
            limit = detail.get("limit", -1)
            result[name] = (
                -1 if limit is None else int(limit),
                int(detail.get("used") or 0) + int(detail.get("reserved") or 0),
            )
        return result

    @_asked("network resources")
    def tagged(self, tags: Iterable[str]) -> list[Tagged]:
        """Every Neutron resource of this project carrying all ``tags``."""
        wanted = list(tags)
        network = self.connection.network
        found: list[Tagged] = []
        for kind, listing in (
            ("network", network.networks),
            ("subnet", network.subnets),
            ("router", network.routers),
            ("port", network.ports),
            ("security group", network.security_groups),
            ("floating IP", network.ips),
        ):
            for item in listing(project_id=self.id, tags=wanted):
                name = getattr(item, "name", None) or getattr(item, "floating_ip_address", None) or ""
                found.append(Tagged(kind, item.id, str(name)))
        return found

    @_asked("security group rules")
    def security_group_rules(self, group_ids: Iterable[str]) -> int:
        return sum(len(self.connection.network.get_security_group(g).security_group_rules or []) for g in group_ids)

    # --- volumes --------------------------------------------------------------------------------

    def has_block_storage(self) -> bool:
        try:
            self.connection.session.get_endpoint(
                service_type="block-storage", interface=self.connection.config.get_interface()
            )
        except ksa.EndpointNotFound:
            return False
        return True

    @_asked("volume quota")
    def volume_quota(self) -> dict[str, tuple[int, int]]:
        """(limit, used + reserved) of volumes and gigabytes, and the per-volume GB limit as (limit, 0)."""
        quota = self.connection.block_storage.get_quota_set(self.id, usage=True)
        usage, reserved = quota.usage or {}, quota.reservation or {}
        return {
            "volumes": (int(quota.volumes), int(usage.get("volumes", 0)) + int(reserved.get("volumes", 0))),
            "gigabytes": (int(quota.gigabytes), int(usage.get("gigabytes", 0)) + int(reserved.get("gigabytes", 0))),
            "per_volume_gigabytes": (int(quota.per_volume_gigabytes), 0),
        }

    @_asked("volumes")
    def volumes_with_metadata(self, key: str, value: str) -> list[Tagged]:
        return [
            Tagged("volume", v.id, v.name or "")
            for v in self.connection.block_storage.volumes(details=True)
            if (v.metadata or {}).get(key) == value
        ]


def _find(find: Callable[..., Any], name: str) -> Any:
    """A resource by name or id, or None (the SDK's own ``ignore_missing=True`` is deprecated)."""
    try:
        return find(name, ignore_missing=False)
    except sdk.NotFoundException:
        return None
