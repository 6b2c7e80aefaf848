"""Pre-flight: ask the cloud, read-only, whether a plan of this deployment can succeed.

A plan that fails half-way through an apply on a shared cloud leaves half a cluster behind, so
before planning (and on demand, and for ``status``) this module checks what the plan needs:
credentials, flavors (whose vCPUs and RAM the Spark sizing uses), the image and whether this
project may use it, networks, the key pair, and the quotas for what the plan would add. Each check
gives one row (ok / FAIL / not checked, needed against available, the fix); one failing check
never hides the others.

It talks to Nova, Neutron, Glance and Cinder through the connection of ``cloud.py``; the SDK's and
keystoneauth's exceptions are all it imports of them itself.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import CloudError, CredentialsError, HgiError, UsageError

if TYPE_CHECKING:
    from .config import Deployment
    from .layout import Repository

OK = "ok"
FAIL = "FAIL"
NOT_CHECKED = "not checked"

# The metadata key the naming module gives every node: how an update finds what is already there.
DEPLOYMENT_METADATA = "hgi-spark-deployment"
# Neutron gives every new security group two egress rules (IPv4 and IPv6); they count in the quota.
DEFAULT_EGRESS_RULES = 2
# Set (to anything but 0) to skip the checks before plan/up, like --skip-preflight; said loudly.
SKIP_ENV = "HGI_SKIP_PREFLIGHT"


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One row of the report."""

    name: str
    result: str
    detail: str = ""
    needed: str = ""
    available: str = ""
    fix: str = ""


@dataclass
class Report:
    """Every check of one run, and the flavor sizes the Spark sizing will use."""

    deployment: str
    checks: list[Check] = field(default_factory=list)
    flavors: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.result == FAIL]

    @property
    def ok(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment,
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "flavors": self.flavors,
            "checks": [asdict(c) for c in self.checks],
        }

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def table(self) -> str:
        """One aligned row per check; the fix on its own line under a failing or unchecked row."""
        head = ("CHECK", "RESULT", "NEEDED", "AVAILABLE", "DETAIL")
        rows = [(c.name, c.result, c.needed, c.available, c.detail) for c in self.checks]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
        lines = []
        for row, check in zip([head, *rows], [None, *self.checks], strict=True):
            cells = [row[i].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join([*cells, row[4]]).rstrip())
            if check is not None and check.fix and check.result != OK:
                lines.append(" " * (widths[0] + 2) + f"fix: {check.fix}")
        verdict = "passed" if self.ok else f"{len(self.failures)} FAILED"
        lines.append(f"pre-flight of {self.deployment}: {verdict} ({self.seconds:.2f} s)")
        return "\n".join(lines)

    def summary(self) -> str:
        """The failures in one line, for the error that stops a plan."""
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failures)


# --- what the plan would add --------------------------------------------------------------------------


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
    create_network: bool
    external_network: str | None
    keypair: str
    public_key: str | None
    volume_gb: int
    security_groups: int
    security_group_rules: int | None  # None: could not be counted
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
    groups, rules = security_group_plan(deployment.paths.root_module, len(s.get("allowed_cidrs") or []))
    return Request(
        deployment=str(deployment.ref),
        master_flavor=str(s.get("master_flavor", "")),
        worker_flavor=str(s.get("worker_flavor", "")),
        workers=int(s.get("workers", 0)),
        image=str(deployment.image.ref) if deployment.image else None,
        glance_name=deployment.image.ref.glance_name if deployment.image else None,
        network=None if network.get("create") else network.get("name"),
        create_network=bool(network.get("create")),
        external_network=s.get("external_network") or None,
        keypair=f"{deployment.ref.slug}-key",
        public_key=public_key,
        public_key_problem=problem,
        volume_gb=int(s.get("tmp_volume_gb") or 0),
        security_groups=groups,
        security_group_rules=rules,
        source=source,
    )


def security_group_plan(root_module: Path, allowed_cidrs: int) -> tuple[int, int | None]:
    """Security groups and rules the root module creates, counted from its main.tf.

    Rules are counted per ``openstack_networking_secgroup_rule_v2`` block: one, or one per entry of
    the ``local`` map its ``for_each`` names, or (for a map built over ``setproduct(keys(local.X),
    var.allowed_cidrs)``) X's entries times the allowed CIDRs; plus Neutron's default egress
    rules of each new group. None when a block is of another shape (the row then says not checked).
    """
    import hcl2

    try:
        with (root_module / "main.tf").open() as handle:
            parsed = hcl2.load(handle)
    except (OSError, ValueError):
        return 0, None
    local: dict[str, Any] = {}
    for block in parsed.get("locals", []):
        local.update(block)
    groups, rules = 0, 0
    for block in parsed.get("resource", []):
        for kind, resources in block.items():
            kind = kind.strip('"')
            for body in resources.values():
                if kind == "openstack_networking_secgroup_v2":
                    groups += 1
                elif kind == "openstack_networking_secgroup_rule_v2":
                    count = _rule_count(body.get("for_each"), local, allowed_cidrs)
                    if count is None:
                        return groups, None
                    rules += count
    return groups, rules + groups * DEFAULT_EGRESS_RULES


def _rule_count(for_each: Any, local: Mapping[str, Any], allowed_cidrs: int) -> int | None:
    if for_each is None:
        return 1
    match = re.fullmatch(r"\$\{local\.(\w+)\}", str(for_each))
    value = local.get(match[1]) if match else None
    if isinstance(value, dict):
        return len(value)
    product = re.search(r"setproduct\(keys\(local\.(\w+)\),\s*var\.allowed_cidrs\)", str(value or ""))
    if product and isinstance(local.get(product[1]), dict):
        return len(local[product[1]]) * allowed_cidrs
    return None


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


# --- the checks -----------------------------------------------------------------------------------------


class Probe:
    """The read-only questions to one project of the cloud; answers are kept for the run."""

    def __init__(self, conn: Any, request: Request) -> None:
        self.conn = conn
        self.request = request
        self.project_id = str(conn.current_project_id)
        self.flavors: dict[str, Any] = {}
        self._existing: list[Any] | None = None

    # Each method returns its rows; an error of the cloud becomes a FAIL row of that check only.

    def flavor_checks(self) -> list[Check]:
        rows = []
        for role, name in (("master", self.request.master_flavor), ("worker", self.request.worker_flavor)):
            label = f"flavor ({role})"
            flavor = _find(self.conn.compute.find_flavor, name) if name else None
            if flavor is None:
                known = ", ".join(sorted(f.name for f in self.conn.compute.flavors())) or "none"
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
            rows.append(Check(label, OK, f"{flavor.name}: {flavor.vcpus} vCPUs, {flavor.ram} MiB RAM"))
        return rows

    def image_check(self) -> list[Check]:
        r = self.request
        label = "image"
        if not r.glance_name:
            return [Check(label, NOT_CHECKED, "the deployment names no image")]
        images = self.conn.image
        visible = list(images.images(name=r.glance_name))
        if not visible:
            for status in ("pending", "rejected"):
                waiting = list(images.images(name=r.glance_name, visibility="shared", member_status=status))
                if waiting:
                    return [
                        Check(
                            label,
                            FAIL,
                            f"{r.glance_name} is shared with this project but {status}, not accepted",
                            fix=f"run: bash invoke.sh image {r.image} accept",
                        )
                    ]
            return [
                Check(
                    label,
                    FAIL,
                    f"no image {r.glance_name} visible to this project",
                    fix=f"build it (bash invoke.sh image {r.image} build) or have its owner share it "
                    f"(bash invoke.sh image {r.image} share --with <this project>)",
                )
            ]
        active = [i for i in visible if i.status == "active"]
        if not active:
            states = ", ".join(sorted({str(i.status) for i in visible}))
            return [
                Check(
                    label,
                    FAIL,
                    f"{r.glance_name} exists but is {states}, not active",
                    fix=f"wait for the upload to finish, or rebuild: bash invoke.sh image {r.image} build --force",
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
                    fix=f"ask its owner to run: bash invoke.sh image {r.image} share --with <this project>",
                )
            ]
        more = f"; {len(active)} active images carry this name" if len(active) > 1 else ""
        return [Check(label, OK, f"{r.glance_name}: active, {how}{more}")]

    def _usable_as(self, image: Any) -> str | None:
        if image.owner_id == self.project_id:
            return "own"
        if image.visibility in ("public", "community"):
            return str(image.visibility)
        member = self.conn.image.get_member(self.project_id, image)
        return "shared, accepted" if member.status == "accepted" else None

    def network_checks(self) -> list[Check]:
        r = self.request
        rows = []
        if r.create_network:
            rows.append(Check("network", OK, "created by the plan (network.create: true)"))
        else:
            network = _find(self.conn.network.find_network, r.network)
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
        external = _find(self.conn.network.find_network, r.external_network)
        if external is None or not external.is_router_external:
            known = ", ".join(sorted(n.name for n in self.conn.network.networks(is_router_external=True)))
            what = "not external" if external is not None else "not found"
            rows.append(
                Check(
                    "external network",
                    FAIL,
                    f"'{r.external_network}' is {what}",
                    fix=f"set external_network in {r.source} to one of: {known or 'none (ask the cloud admins)'}",
                )
            )
        else:
            rows.append(Check("external network", OK, f"{external.name} ({external.id})"))
        return rows

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
        existing = _find(self.conn.compute.find_keypair, r.keypair)
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
        if self._existing is None:
            self._existing = [
                s
                for s in self.conn.compute.servers(details=True)
                if (s.metadata or {}).get(DEPLOYMENT_METADATA) == self.request.deployment
            ]
        return self._existing

    def compute_quota_checks(self) -> list[Check]:
        r = self.request
        if set(self.flavors) != {"master", "worker"}:
            return [Check(name, NOT_CHECKED, "needs both flavors") for name in ("instances", "cores", "RAM (MiB)")]
        master, worker = self.flavors["master"], self.flavors["worker"]
        existing = self.existing_servers()
        used_here = {
            "instances": len(existing),
            "cores": sum(_server_size(self.conn, s)[0] for s in existing),
            "ram": sum(_server_size(self.conn, s)[1] for s in existing),
        }
        wanted = {
            "instances": r.servers,
            "cores": master.vcpus + r.workers * worker.vcpus,
            "ram": master.ram + r.workers * worker.ram,
        }
        limits = self.conn.compute.get_limits().absolute
        quota = {
            "instances": (limits.instances, limits.instances_used),
            "cores": (limits.total_cores, limits.total_cores_used),
            "ram": (limits.total_ram, limits.total_ram_used),
        }
        formula = {
            "instances": f"1 master + {r.workers} workers",
            "cores": f"{master.vcpus} + {r.workers} × {worker.vcpus} vCPUs",
            "ram": f"{master.ram} + {r.workers} × {worker.ram} MiB",
        }
        label = {"instances": "instances", "cores": "cores", "ram": "RAM (MiB)"}
        less = "fewer workers or smaller flavors"
        rows = []
        for key in ("instances", "cores", "ram"):
            limit, used = quota[key]
            note = formula[key]
            if used_here[key]:
                note += f", less {used_here[key]} this deployment already uses"
            needed = wanted[key] - used_here[key]
            rows.append(_quota_row(label[key], needed, limit, used, note, "compute", less))
        return rows

    def network_quota_checks(self) -> list[Check]:
        """Neutron's quota against what the plan adds, less what this deployment already has (by its tags)."""
        r = self.request
        quota = self.conn.network.get_quota(self.project_id, details=True)
        groups = list(self._tagged(self.conn.network.security_groups))
        rules = sum(len(g.security_group_rules or []) for g in groups)
        created = 1 if r.create_network and not any(True for _ in self._tagged(self.conn.network.networks)) else 0
        fips = sum(1 for _ in self._tagged(self.conn.network.ips))
        ports = sum(1 for _ in self._tagged(self.conn.network.ports))
        wanted: list[tuple[str, str, int | None, str]] = [
            ("floating IPs", "floating_ips", r.floating_ips - fips, "the master's"),
            ("security groups", "security_groups", r.security_groups - len(groups), "external and internal"),
            (
                "security group rules",
                "security_group_rules",
                None if r.security_group_rules is None else r.security_group_rules - rules,
                "with Neutron's default egress rules",
            ),
            ("ports", "ports", r.servers - ports + created, "one per server (+ the router's)"),
        ]
        if r.create_network:
            wanted += [
                ("networks", "networks", created, "the deployment's own network"),
                ("subnets", "subnets", created, "its subnet"),
                ("routers", "routers", created, "its router"),
            ]
        rows = []
        for label, attribute, needed, note in wanted:
            if needed is None:
                rows.append(Check(label, NOT_CHECKED, "could not count the rules of the root module's main.tf"))
                continue
            detail = getattr(quota, attribute) or {}
            used = int(detail.get("used") or 0) + int(detail.get("reserved") or 0)
            rows.append(_quota_row(label, needed, detail.get("limit", -1), used, note, "network"))
        return rows

    def _tagged(self, listing: Callable[..., Iterable[Any]]) -> Iterable[Any]:
        """This deployment's Neutron resources: the root module tags them with its name and owner."""
        name, owner = self.request.deployment.split("/", 1)
        return listing(project_id=self.project_id, tags=[f"hgi-spark-name={name}", f"hgi-spark-owner={owner}"])

    def volume_quota_checks(self) -> list[Check]:
        r = self.request
        if not r.volume_gb:
            return []
        from keystoneauth1.exceptions import EndpointNotFound

        try:
            self.conn.session.get_endpoint(service_type="block-storage", interface=self.conn.config.get_interface())
        except EndpointNotFound:
            return [Check("volumes", NOT_CHECKED, f"{r.volume_gb} GB asked; this cloud has no block-storage endpoint")]
        quota = self.conn.block_storage.get_quota_set(self.project_id, usage=True)
        usage, reserved = quota.usage or {}, quota.reservation or {}
        existing = 1 if any(True for _ in self._own_volumes()) else 0
        less = "a smaller tmp_volume_gb, or 0 for none"
        note = "the master's shared tmp volume"
        rows = []
        for label, limit, key, needed in (
            ("volumes", quota.volumes, "volumes", 1 - existing),
            ("volume GB", quota.gigabytes, "gigabytes", r.volume_gb * (1 - existing)),
            ("GB per volume", quota.per_volume_gigabytes, None, r.volume_gb),
        ):
            used = usage.get(key, 0) + reserved.get(key, 0) if key else 0
            rows.append(_quota_row(label, needed, limit, used, note, "volume", less))
        return rows

    def _own_volumes(self) -> Iterator[Any]:
        """The deployment's tmp volume: it carries the same metadata as its master."""
        for volume in self.conn.block_storage.volumes(details=True):
            if (volume.metadata or {}).get(DEPLOYMENT_METADATA) == self.request.deployment:
                yield volume


def _find(find: Callable[..., Any], name: str) -> Any:
    """A resource by name or id, or None (the SDK's own ``ignore_missing=True`` is deprecated)."""
    import openstack.exceptions

    try:
        return find(name, ignore_missing=False)
    except openstack.exceptions.NotFoundException:
        return None


def _key_body(public_key: str | None) -> str:
    """Type and base64 of an OpenSSH public key (the comment does not matter)."""
    return " ".join((public_key or "").split()[:2])


def _server_size(conn: Any, server: Any) -> tuple[int, int]:
    """vCPUs and RAM of a server's flavor (embedded since compute microversion 2.47)."""
    flavor = server.flavor
    vcpus, ram = getattr(flavor, "vcpus", None), getattr(flavor, "ram", None)
    if vcpus is None or ram is None:
        full = conn.compute.get_flavor(flavor.id)
        vcpus, ram = full.vcpus, full.ram
    return int(vcpus), int(ram)


def _quota_row(
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


def run(request: Request, env: Mapping[str, str], *, steps: Iterable[str] | None = None) -> Report:
    """Connect with ``env`` (OS_* variables) and run the checks; never raises for what a check finds."""
    import openstack.exceptions

    from . import cloud

    began = time.monotonic()
    report = Report(request.deployment)
    wanted = [(name, step) for name, step in STEPS if steps is None or name in steps]
    try:
        conn = cloud.connect(env)
    except HgiError as error:
        report.checks.append(Check("credentials", FAIL, error.problem, fix=error.fix or ""))
        report.checks += [Check(name, NOT_CHECKED, "no connection") for name, _ in wanted]
        report.seconds = time.monotonic() - began
        return report
    report.checks.append(Check("credentials", OK, cloud.describe(env)))
    probe = Probe(conn, request)
    for name, step in wanted:
        try:
            report.checks += step(probe)
        except openstack.exceptions.ForbiddenException as error:
            # The cloud's policy hides it from this user: unknown is not the same as failing.
            report.checks.append(
                Check(
                    name,
                    NOT_CHECKED,
                    f"this user may not read it: {_first_line(error)}",
                    fix="ask the cloud admins, or check it in Horizon",
                )
            )
        except openstack.exceptions.SDKException as error:
            report.checks.append(Check(name, FAIL, f"the cloud answered: {_first_line(error)}"))
    report.flavors = {
        role: {"name": f.name, "vcpus": int(f.vcpus), "ram_mb": int(f.ram)} for role, f in probe.flavors.items()
    }
    report.seconds = time.monotonic() - began
    return report


def _first_line(error: BaseException) -> str:
    return (str(error).strip() or type(error).__name__).splitlines()[0]


def check_deployment(deployment: Deployment, env: Mapping[str, str] | None = None) -> Report:
    """The whole pre-flight of a deployment, with the credentials of the task (openrc.sh ...)."""
    from . import credentials

    request = request_from(deployment)
    return run(request, credentials.openstack_environment() if env is None else env)


def check(name: str | None, repo: Repository | None = None) -> Report:
    """The ``preflight`` task: load the deployment and check it (OpenStack deployments only)."""
    from . import config, rootmodules

    deployment = config.load_deployment(name, repo)
    if not rootmodules.profile(deployment.ref.name).needs_cloud:
        raise UsageError(
            f"deployment {deployment.ref} runs terraform/{deployment.ref.name}/: there is no cloud to check",
            fix="preflight is for OpenStack deployments such as spark/OWNER",
        )
    return check_deployment(deployment)


def require_ok(report: Report, fix: str = "mend the rows marked FAIL above") -> None:
    """Stop with one line naming the failed checks: CredentialsError when no connection, else CloudError."""
    if report.ok:
        return
    first = report.checks[0]
    if first.name == "credentials" and first.result == FAIL:
        raise CredentialsError(first.detail, fix=first.fix or None)
    raise CloudError(f"pre-flight of {report.deployment} failed: {report.summary()}", fix=fix)


@contextmanager
def skipped(skip: bool, purpose: str = "up") -> Iterator[None]:
    """Within this block the ``preflight`` hook does not check: a task's ``--skip-preflight`` (said
    loudly), or a destroy plan, which adds nothing to the cloud (said in one quiet line)."""
    global _skip_note
    before = _skip_note
    if skip:
        _skip_note = LOUD_SKIP
    elif purpose == "destroy":
        _skip_note = "pre-flight: not needed for a destroy plan (it adds nothing to the cloud)"
    try:
        yield
    finally:
        _skip_note = before


LOUD_SKIP = "loud"
_skip_note: str | None = None


# --- the root-module profile's hooks ----------------------------------------------------------------------


def before_plan(deployment: Deployment, *, echo: TextIO | None = None) -> None:
    """The ``preflight`` hook of the spark profile: show the rows, stop the plan on any FAIL."""
    echo = echo or sys.stderr
    note = LOUD_SKIP if os.environ.get(SKIP_ENV, "") not in ("", "0") else _skip_note
    if note == LOUD_SKIP:
        note = (
            f"WARNING: pre-flight checks of {deployment.ref} SKIPPED (--skip-preflight or {SKIP_ENV}): "
            "nothing was checked against the cloud; the apply may fail half-way"
        )
    if note:
        print(note, file=echo, flush=True)
        return
    report = check_deployment(deployment)
    print(report.table(), file=echo, flush=True)
    require_ok(
        report,
        fix=f"mend the rows marked FAIL above, or skip with --skip-preflight "
        f"(bash invoke.sh deployment {deployment.ref} preflight shows them again)",
    )


def status_rows(deployment: Deployment) -> list[tuple[str, str]]:
    """The ``status_rows`` hook: credentials, flavors, image, networks and key pair as they stand."""
    from . import credentials

    try:
        env = credentials.openstack_environment()
    except HgiError as error:
        return [("cloud: credentials", f"{NOT_CHECKED}: {error.problem}")]
    report = run(request_from(deployment), env, steps=STATUS_STEPS)
    return [(f"cloud: {c.name}", f"{c.result}: {c.detail}" if c.detail else c.result) for c in report.checks]
