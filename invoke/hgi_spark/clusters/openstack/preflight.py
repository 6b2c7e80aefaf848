"""Pre-flight: ask the cloud, read-only, whether a plan of this deployment can succeed.

A plan that fails half-way through an apply on a shared cloud leaves half a cluster behind, so
before planning (and on demand, and for ``status``) the checks here compare what the plan asks for
(request.py) with what the project has, asked through cloud/project.py as plain data: flavors
(whose vCPUs and RAM the Spark sizing uses), the image and whether this project may use it,
networks and their route to the external network, the key pair, and the quotas for what the plan
would add. Each check gives rows of the report (report.py); one failing check never hides others.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from hgi_spark.cloud.project import Forbidden, Project
from hgi_spark.clusters.openstack.report import FAIL, NOT_CHECKED, OK, Check, Report
from hgi_spark.clusters.openstack.request import Request, rules_in_plan
from hgi_spark.core.errors import CloudError, HgiError
from hgi_spark.core.layout import ImageRef

# The metadata key the naming module gives every node: how an update finds what is already there.
DEPLOYMENT_METADATA = "hgi-spark-deployment"


def image_command(request: Request, task: str) -> str:
    """The image task a fix asks for, as the user types it."""
    return ImageRef.parse(request.image).command(task) if request.image else task


def deployment_tags(deployment: str) -> list[str]:
    """The Neutron tags the root module puts on every resource (naming module: no '/' in a tag)."""
    name, owner = deployment.split("/", 1)
    return [f"hgi-spark-name={name}", f"hgi-spark-owner={owner}"]


class Probe:
    """The checks of one request against one project; the project's answers are kept for the run."""

    def __init__(self, project: Project, request: Request, plan: Mapping[str, Any] | None = None) -> None:
        self.project = project
        self.request = request
        self.plan = plan  # terraform's plan (show -json), once there is one: what it creates is counted
        self.flavors: dict[str, Any] = {}
        self._servers: list[Any] | None = None
        self._tagged: list[Any] | None = None

    def flavor_checks(self) -> list[Check]:
        rows = []
        for role, name in (("master", self.request.master_flavor), ("worker", self.request.worker_flavor)):
            label = f"flavor ({role})"
            flavor = self.project.flavor(name) if name else None
            if flavor is None:
                known = ", ".join(self.project.flavor_names()) or "none"
                rows.append(
                    Check(
                        label,
                        FAIL,
                        f"no flavor '{name}' visible to this project",
                        fix=f"set {role}_flavor in {self.request.source} to one of: {known}",
                    )
                )
                continue
            self.flavors[role] = flavor
            rows.append(Check(label, OK, f"{flavor.name}: {flavor.vcpus} vCPUs, {flavor.ram_mb} MiB RAM"))
        return rows

    def image_check(self) -> list[Check]:
        r = self.request
        label = "image"
        if not r.glance_name:
            return [Check(label, NOT_CHECKED, "the deployment names no image")]
        visible = self.project.images(r.glance_name)
        if not visible:
            for status in ("pending", "rejected"):
                if self.project.images(r.glance_name, member_status=status):
                    return [
                        Check(
                            label,
                            FAIL,
                            f"{r.glance_name} is shared with this project but {status}, not accepted",
                            fix=f"run: {image_command(r, 'accept')}",
                        )
                    ]
            return [
                Check(
                    label,
                    FAIL,
                    f"no image {r.glance_name} visible to this project",
                    fix=f"build it ({image_command(r, 'build')}) or have its owner share it "
                    f"({image_command(r, 'share --with <this project>')})",
                )
            ]
        active = [i for i in visible if i.status == "active"]
        if not active:
            states = ", ".join(sorted({i.status for i in visible}))
            return [
                Check(
                    label,
                    FAIL,
                    f"{r.glance_name} exists but is {states}, not active",
                    fix=f"wait for the upload to finish, or rebuild: {image_command(r, 'build --force')}",
                )
            ]
        image = active[0]
        how = self._usable_as(image)
        if how is None:
            return [
                Check(
                    label,
                    FAIL,
                    f"{r.glance_name} ({image.id}) is not shared with this project",
                    fix=f"ask its owner to run: {image_command(r, 'share --with <this project>')}",
                )
            ]
        more = f"; {len(active)} active images carry this name" if len(active) > 1 else ""
        return [Check(label, OK, f"{r.glance_name}: active, {how}{more}")]

    def _usable_as(self, image: Any) -> str | None:
        if image.owner == self.project.id:
            return "own"
        if image.visibility in ("public", "community"):
            return str(image.visibility)
        return "shared, accepted" if self.project.member_status(image.id) == "accepted" else None

    def network_checks(self) -> list[Check]:
        r = self.request
        rows = []
        network = None
        if r.create_network:
            rows.append(Check("network", OK, "created by the plan (network.create: true)"))
        else:
            network = self.project.network(r.network) if r.network else None
            if network is None:
                rows.append(
                    Check(
                        "network",
                        FAIL,
                        f"no network '{r.network}' visible to this project",
                        fix=f"set network.name in {r.source} to an existing network, "
                        "or network.create: true (with network.cidr) to have the plan create one",
                    )
                )
            else:
                rows.append(Check("network", OK, f"{network.name} ({network.id})"))
        if not r.external_network:
            rows.append(Check("external network", NOT_CHECKED, "no floating IP asked for"))
            return rows
        external = self.project.network(r.external_network)
        if external is None or not external.external:
            known = ", ".join(self.project.external_network_names())
            what = "not external" if external is not None else "not found"
            rows.append(
                Check(
                    "external network",
                    FAIL,
                    f"'{r.external_network}' is {what}",
                    fix=f"set external_network in {r.source} to one of: {known or 'none (ask the cloud admins)'}",
                )
            )
            return rows
        rows.append(Check("external network", OK, f"{external.name} ({external.id})"))
        if network is not None:
            rows.append(self._route_check(network.id, external))
        return rows

    def _route_check(self, network_id: str, external: Any) -> Check:
        """An existing subnet must reach the external network through a router, or the floating IP fails late."""
        subnets = self.project.subnets(network_id)
        wanted = [s for s in subnets if not self.request.subnet_name or s.name == self.request.subnet_name]
        if not wanted:
            return Check(
                "route to external",
                FAIL,
                f"network '{self.request.network}' has no IPv4 subnet"
                + (f" called '{self.request.subnet_name}'" if self.request.subnet_name else ""),
                fix=f"set network.subnet_name in {self.request.source} to one of its subnets",
            )
        subnet = wanted[0]
        if self.project.routed_to(subnet.id, external.id):
            return Check(
                "route to external", OK, f"{subnet.name or subnet.id} ({subnet.cidr}) has a router to {external.name}"
            )
        return Check(
            "route to external",
            FAIL,
            f"subnet {subnet.name or subnet.id} ({subnet.cidr}) has no router with a gateway on {external.name}: "
            "the master's floating IP would fail",
            fix="add the subnet to a router whose gateway is the external network, "
            f"or set network.create: true in {self.request.source}",
        )

    def keypair_check(self) -> list[Check]:
        r = self.request
        if r.public_key_problem:
            return [
                Check(
                    "key pair",
                    FAIL,
                    r.public_key_problem,
                    fix=f"point ssh_public_key_file in {r.source} at your OpenSSH public key "
                    "(ssh-keygen -t ed25519 makes one)",
                )
            ]
        existing = self.project.keypair(r.keypair)
        if existing is None:
            return [Check("key pair", OK, f"{r.keypair}: free, created by the plan")]
        if r.public_key and _key_body(existing.public_key) == _key_body(r.public_key):
            return [Check("key pair", OK, f"{r.keypair}: exists with this public key")]
        return [
            Check(
                "key pair",
                FAIL,
                f"{r.keypair} already holds another public key ({existing.fingerprint})",
                fix=f"point ssh_public_key_file in {r.source} at the key it holds, or, if the old key pair "
                f"is yours and unused, delete it: openstack keypair delete {r.keypair}",
            )
        ]

    def existing_servers(self) -> list[Any]:
        """This deployment's servers (an update replaces or keeps them: their usage is not new)."""
        if self._servers is None:
            self._servers = self.project.servers_with_metadata(DEPLOYMENT_METADATA, self.request.deployment)
        return self._servers

    def tagged(self) -> list[Any]:
        """This deployment's Neutron resources (the root module tags them with its name and owner)."""
        if self._tagged is None:
            self._tagged = self.project.tagged(deployment_tags(self.request.deployment))
        return self._tagged

    def compute_quota_checks(self) -> list[Check]:
        r = self.request
        if set(self.flavors) != {"master", "worker"}:
            return [Check(name, NOT_CHECKED, "needs both flavors") for name in ("instances", "cores", "RAM (MiB)")]
        master, worker = self.flavors["master"], self.flavors["worker"]
        existing = self.existing_servers()
        used_here = {
            "instances": len(existing),
            "cores": sum(s.vcpus for s in existing),
            "ram": sum(s.ram_mb for s in existing),
        }
        wanted = {
            "instances": r.servers,
            "cores": master.vcpus + r.workers * worker.vcpus,
            "ram": master.ram_mb + r.workers * worker.ram_mb,
        }
        limits = self.project.compute_limits()
        quota = {"instances": limits.instances, "cores": limits.cores, "ram": limits.ram_mb}
        formula = {
            "instances": f"1 master + {r.workers} workers",
            "cores": f"{master.vcpus} + {r.workers} × {worker.vcpus} vCPUs",
            "ram": f"{master.ram_mb} + {r.workers} × {worker.ram_mb} MiB",
        }
        label = {"instances": "instances", "cores": "cores", "ram": "RAM (MiB)"}
        rows = []
        for key in ("instances", "cores", "ram"):
            limit, used = quota[key]
            note = formula[key]
            if used_here[key]:
                note += f", less {used_here[key]} this deployment already uses"
            rows.append(
                quota_row(
                    label[key],
                    wanted[key] - used_here[key],
                    limit,
                    used,
                    note,
                    "compute",
                    "fewer workers or smaller flavors",
                )
            )
        return rows

    def network_quota_checks(self) -> list[Check]:
        """Neutron's quota against what the plan adds, less what this deployment already has."""
        r = self.request
        plan = self.plan
        quota = self.project.network_quota()
        tagged = self.tagged()
        count = {
            kind: sum(1 for t in tagged if t.kind == kind)
            for kind in ("network", "floating IP", "port", "security group")
        }
        created = 1 if r.create_network and not count["network"] else 0
        rows = [
            quota_row(
                "floating IPs", r.floating_ips - count["floating IP"], *quota["floating_ips"], "the master's", "network"
            ),
            quota_row(
                "ports",
                r.servers - count["port"] + created,
                *quota["ports"],
                "one per server (+ the router's)",
                "network",
            ),
        ]
        if plan is None:
            for label in ("security groups", "security group rules"):
                rows.append(Check(label, NOT_CHECKED, "counted from the plan terraform makes, before it is applied"))
        else:
            groups, rules = rules_in_plan(plan)
            rows.append(
                quota_row("security groups", groups, *quota["security_groups"], "external and internal", "network")
            )
            rows.append(
                quota_row(
                    "security group rules",
                    rules,
                    *quota["security_group_rules"],
                    "the plan's, with Neutron's egress rules",
                    "network",
                )
            )
        if r.create_network:
            for label, key, note in (
                ("networks", "networks", "the deployment's own network"),
                ("subnets", "subnets", "its subnet"),
                ("routers", "routers", "its router"),
            ):
                rows.append(quota_row(label, created, *quota[key], note, "network"))
        return rows

    def volume_quota_checks(self) -> list[Check]:
        r = self.request
        if not r.volume_gb:
            return []
        if not self.project.has_block_storage():
            return [Check("volumes", NOT_CHECKED, f"{r.volume_gb} GB asked; this cloud has no block-storage endpoint")]
        quota = self.project.volume_quota()
        existing = 1 if self.project.volumes_with_metadata(DEPLOYMENT_METADATA, r.deployment) else 0
        less = "a smaller tmp_volume_gb, or 0 for none"
        note = "the master's shared tmp volume"
        return [
            quota_row("volumes", 1 - existing, *quota["volumes"], note, "volume", less),
            quota_row("volume GB", r.volume_gb * (1 - existing), *quota["gigabytes"], note, "volume", less),
            quota_row("GB per volume", r.volume_gb, quota["per_volume_gigabytes"][0], 0, note, "volume", less),
        ]


def _key_body(public_key: str | None) -> str:
    """Type and base64 of an OpenSSH public key (the comment does not matter)."""
    return " ".join((public_key or "").split()[:2])


def quota_row(
    label: str, needed: int, limit: Any, used: Any, note: str, service: str, less: str = "fewer workers"
) -> Check:
    needed = max(0, int(needed))
    limit = -1 if limit is None else int(limit)
    if limit < 0:
        return Check(label, OK, f"{note}; unlimited", needed=str(needed), available="unlimited")
    available = max(0, limit - int(used or 0))
    if needed <= available:
        return Check(label, OK, note, needed=str(needed), available=str(available))
    return Check(
        label,
        FAIL,
        f"needs {needed}, only {available} of {limit} left ({note})",
        needed=str(needed),
        available=str(available),
        fix=f"ask the cloud admins for a larger {service} quota, or ask for less: {less}",
    )


# --- running them ---------------------------------------------------------------------------------------

STEPS: tuple[tuple[str, Callable[[Probe], list[Check]]], ...] = (
    ("flavors", Probe.flavor_checks),
    ("image", Probe.image_check),
    ("networks", Probe.network_checks),
    ("key pair", Probe.keypair_check),
    ("compute quota", Probe.compute_quota_checks),
    ("network quota", Probe.network_quota_checks),
    ("volume quota", Probe.volume_quota_checks),
)
# What ``status`` shows of the same checks: what exists, not what a new plan would need.
STATUS_STEPS = ("flavors", "image", "networks", "key pair")


def run(
    request: Request,
    connect: Callable[[], Project],
    describe: str,
    *,
    steps: Iterable[str] | None = None,
    plan: Mapping[str, Any] | None = None,
) -> Report:
    """Connect and run the checks; never raises for what a check finds (a 403 is 'not checked')."""
    began = time.monotonic()
    report = Report(request.deployment)
    wanted = [(name, step) for name, step in STEPS if steps is None or name in steps]
    try:
        project = connect()
    except HgiError as error:
        report.checks.append(Check("credentials", FAIL, error.problem, fix=error.fix or ""))
        report.checks += [Check(name, NOT_CHECKED, "no connection") for name, _ in wanted]
        report.seconds = time.monotonic() - began
        return report
    report.checks.append(Check("credentials", OK, describe))
    probe = Probe(project, request, plan)
    for name, step in wanted:
        report.checks += guarded(name, lambda step=step: step(probe))
    report.flavors = {role: {"name": f.name, "vcpus": f.vcpus, "ram_mb": f.ram_mb} for role, f in probe.flavors.items()}
    report.seconds = time.monotonic() - began
    return report


def guarded(name: str, step: Callable[[], list[Check]]) -> list[Check]:
    """A step's rows; what the cloud refuses to say is 'not checked', what fails is FAIL: one row each."""
    try:
        return step()
    except Forbidden as error:
        return [Check(name, NOT_CHECKED, error.problem, fix="ask the cloud admins, or check it in Horizon")]
    except CloudError as error:
        return [Check(name, FAIL, error.problem)]
