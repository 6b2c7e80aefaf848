"""The OpenStack cluster (``terraform/spark``): servers booted from the image, configured by cloud-init.

What the workflow asks of it: the cloud's credentials for terraform, the pre-flight checks before a
plan (never for a destroy plan, loudly skipped when asked), the security-group quota against the
plan terraform made, the Jupyter password's hash, waiting for each new node's ready line on its
console (and pinning the master's host keys then), status rows from the cloud, and submit /
ssh-config over ssh with the pinned key.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from typing import Any

from hgi_spark.clusters import extras, health, nodes, readiness, remote, tls
from hgi_spark.clusters.base import Cluster, Purpose, Rows
from hgi_spark.clusters.openstack import preflight
from hgi_spark.clusters.openstack.report import NOT_CHECKED, Check, Report, require_ok
from hgi_spark.clusters.openstack.request import Request, request_from
from hgi_spark.core import secrets
from hgi_spark.core.errors import CloudError, HgiError, NotFoundError, RefusedError

# Set (to anything but 0) to skip the checks before plan/up, like --skip-preflight; said loudly.
SKIP_ENV = "HGI_SKIP_PREFLIGHT"
SERVER = "openstack_compute_instance_v2"


def skip_asked(flag: bool) -> bool:
    return flag or os.environ.get(SKIP_ENV, "") not in ("", "0")


def server_ids(state: Mapping[str, Any] | None) -> dict[str, str]:
    """Server name -> id of every server in the state (a replaced server has a new id)."""
    ids = {}
    for resource in (state or {}).get("resources", []):
        if resource.get("type") != SERVER or resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            if attributes.get("name") and attributes.get("id"):
                ids[str(attributes["name"])] = str(attributes["id"])
    return ids


class OpenStackCluster(Cluster):
    """A master and N workers as servers of one OpenStack project."""

    needs_cloud = True

    def __init__(self, deployment: Any, say: Callable[[str], None] | None = None) -> None:
        super().__init__(deployment, *([say] if say else []))
        self._checked = False

    # --- the cloud --------------------------------------------------------------------------

    @cached_property
    def credentials(self) -> dict[str, str]:
        return dict(self.terraform_env())

    def project(self) -> Any:
        from hgi_spark.cloud import connection
        from hgi_spark.cloud.project import Project

        return Project(connection.connect(self.credentials))

    def request(self) -> Request:
        return request_from(self.deployment)

    def preflight(self, *, steps: Sequence[str] | None = None) -> Report:
        """The pre-flight report of this deployment (the ``preflight`` task, and before plans)."""
        from hgi_spark.cloud import connection

        try:
            env = self.credentials
        except HgiError as error:
            report = Report(str(self.deployment.ref))
            report.checks.append(Check("credentials", "FAIL", error.problem, fix=error.fix or ""))
            return report
        return preflight.run(self.request(), self.project, connection.describe(env), steps=steps)

    # --- before terraform -------------------------------------------------------------------

    def extra_tfvars(self, state: Mapping[str, Any] | None) -> dict[str, Any]:
        """The master's Jupyter password hash (read-only: ``prepare`` generates it once), and the
        image the nodes keep: the one they were created from while ``image:`` names the same
        definition, so a rebuilt image of that name never reaches them by accident."""
        secret = secrets.JupyterSecret.of(self.deployment.paths)
        hashed = secret.hash_file.read_text(encoding="utf-8").strip() if secret.hash_file.is_file() else ""
        extra: dict[str, Any] = {"jupyter_password_hash": hashed, **tls.tfvars(self.deployment)}
        if not self.deployment.settings.get("image_id"):  # an explicit image_id: in the YAML wins
            extra["image_id"] = pinned_image(state, self.deployment.image)
        return extra

    def check(self, purpose: Purpose, state: Mapping[str, Any] | None, *, skip: bool = False) -> None:
        """Show the pre-flight rows and stop on any FAIL; a destroy plan adds nothing, so it is not checked."""
        if purpose == "destroy":
            self.say("pre-flight: not needed for a destroy plan (it adds nothing to the cloud)")
            return
        self.check_volume_change(state)
        tls.warn(self.deployment, self.say)
        if skip_asked(skip):
            self.say(
                f"WARNING: pre-flight checks of {self.deployment.ref} SKIPPED (--skip-preflight or {SKIP_ENV}): "
                "nothing was checked against the cloud; the apply may fail half-way"
            )
            return
        report = self.preflight()
        self.say(report.table())
        require_ok(
            report,
            fix=f"mend the rows marked FAIL above, or skip with --skip-preflight "
            f"({self.command('preflight')} shows them again)",
        )
        self._checked = True

    def check_volume_change(self, state: Mapping[str, Any] | None) -> None:
        """The tmp volume may grow (online) but never shrink or go: refused before planning."""
        current = volume_size(state)
        wanted = int(self.deployment.settings.get("tmp_volume_gb") or 0)
        where = self.deployment.paths.definition
        if current and wanted == 0:
            raise RefusedError(
                f"tmp_volume_gb 0 would delete the master's {current} GB tmp volume and replace the master",
                file=where,
                key="tmp_volume_gb",
                fix=f"keep tmp_volume_gb: {current} (copy the data off and destroy the deployment to drop it)",
            )
        if current and wanted < current:
            raise RefusedError(
                f"the tmp volume cannot shrink from {current} GB to {wanted} GB (Cinder only extends volumes)",
                file=where,
                key="tmp_volume_gb",
                fix=f"set tmp_volume_gb to {current} or more",
            )
        if current and wanted > current:
            self.say(f"tmp volume: grows online from {current} to {wanted} GB; the master grows its filesystem at boot")
        if state and not current and wanted and _has_master(state):
            self.say("WARNING: adding a tmp volume to a running cluster replaces the master (its notebooks go)")

    def prepare(self, purpose: Purpose) -> None:
        if purpose == "destroy":
            return
        secrets.ensure_jupyter_password(self.deployment.paths)
        tls.prepare(self.deployment)
        if extras.Wanted.of(self.deployment):  # a conflicting pin is refused before the plan
            extras.resolve_for(self.deployment, self.image, self.say)

    def output_rows(self) -> Rows:
        return tls.rows(self.deployment)

    def check_plan(self, purpose: Purpose, plan: Mapping[str, Any]) -> None:
        """Security groups and rules the plan creates, against Neutron's quota (only when checked)."""
        if not self._checked:
            return
        report = Report(str(self.deployment.ref))
        probe = preflight.Probe(self.project(), self.request(), plan)
        report.checks += preflight.guarded(
            "network quota", lambda: [c for c in probe.network_quota_checks() if c.name.startswith("security")]
        )
        self.say(report.table())
        require_ok(report, fix="ask for a larger network quota, or fewer allowed_cidrs")

    # --- after an apply ---------------------------------------------------------------------

    def console_reader(self) -> Callable[[str], str]:
        project = self.project()

        def read(name: str) -> str:
            output = project.console_log(name)
            if output is None:
                raise NotFoundError(f"server {name} not found in this project", fix=f"see: {self.command('status')}")
            return output

        return read

    def ready_record(self) -> readiness.ReadyRecord:
        return readiness.ReadyRecord(self.deployment.paths.folder / "nodes-ready.json")

    def wait_ready(self, outputs: Mapping[str, Any], state: Mapping[str, Any] | None) -> None:
        """Wait for the ready line of every node created since the last wait; then pin the master's keys."""
        lines = readiness.ready_lines(outputs)
        timeout = self.deployment.wrapper.wait_ready_s
        if not lines or timeout == 0:
            return
        read = self.console_reader()
        readiness.wait_for_new_nodes(
            lines, server_ids(state), self.ready_record(), read, timeout_s=timeout, say=self.say
        )
        try:
            remote.pin(outputs, read, self.deployment.paths.known_hosts)
        except HgiError as error:
            self.say(f"note: the master's host keys are not pinned yet ({error.problem}); ssh-config will try again")
        for name, problem in remote.pin_workers(outputs, read, self.deployment.paths.known_hosts, refresh=True).items():
            self.say(f"note: {name}'s host keys are not pinned yet ({problem}); ssh-config will try again")
        extras.after_ready(self.deployment, self.image, outputs, read, self.say)

    # --- read-only ----------------------------------------------------------------------------

    def status_rows(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> Rows:
        """The cloud as it stands (credentials, flavors, image, networks, key pair), the nodes' readiness."""
        report = self.preflight(steps=preflight.STATUS_STEPS)
        rows = [(f"cloud: {c.name}", f"{c.result}: {c.detail}" if c.detail else c.result) for c in report.checks]
        lines = readiness.ready_lines(outputs)
        if lines and report.ok:
            try:
                states = readiness.node_states(lines, self.console_reader())
            except HgiError as error:
                rows.append(("nodes", f"{NOT_CHECKED}: {error.problem}"))
            else:
                seen = self.ready_record().read()
                ids = server_ids(state)
                ready = sum(1 for s in states if s.state == readiness.READY or seen.get(s.name) == ids.get(s.name))
                rows.append(("nodes", f"{ready} of {len(states)} configured"))
                rows.extend(
                    (f"node {s.name}", s.state + (f": {s.detail}" if s.detail else ""))
                    for s in states
                    if s.state != readiness.READY and seen.get(s.name) != ids.get(s.name)
                )
        for stray in self.strays(state):
            rows.append(("running, not in state", stray))
        return rows + self.output_rows()

    def health(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> health.ClusterHealth:
        """The master's view through nginx (https checked against the deployment's own certificate),
        then every node over ssh: its services, the shared tmp (clusters/nodes.py)."""
        url = str((outputs.get("jupyter_url") or {}).get("value") or "")
        if not url:
            return health.ClusterHealth([], health.MasterView(False, problem="the deployment is not up"))
        password = secrets.JupyterSecret.of(self.deployment.paths).password_file
        view = health.master_view(
            url.split("/jupyter/")[0],
            password.read_text(encoding="utf-8").strip() if password.is_file() else "",
            cafile=tls.pinned(self.deployment),
        )
        return health.ClusterHealth(
            nodes.every_node(self.deployment, nodes.NodePaths.of(self.image), outputs, view, self._lazy_console()), view
        )

    def diagnose(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], archive: Any) -> None:
        """Every node's logs, configuration, cloud-init output and state over ssh (clusters/nodes.py)."""
        nodes.diagnose_nodes(
            self.deployment, nodes.NodePaths.of(self.image), outputs, archive, self._lazy_console(), self.say
        )

    def _lazy_console(self) -> Callable[[str], str]:
        """A console reader that asks for credentials only when a key is really missing."""
        return lambda name: self.console_reader()(name)

    def strays(self, state: Mapping[str, Any] | None) -> list[str]:
        """Resources carrying this deployment's tags or metadata that the state does not hold."""
        if state is None and not self.deployment.paths.state.exists():
            return []
        try:
            project = self.project()
            deployment = str(self.deployment.ref)
            found = project.tagged(preflight.deployment_tags(deployment))
            found += _servers_as_tagged(project, deployment)
            found += project.volumes_with_metadata(preflight.DEPLOYMENT_METADATA, deployment)
        except (HgiError, CloudError):
            return []
        known = _ids_in_state(state)
        return [f"{t.kind} {t.name or t.id} ({t.id})" for t in found if t.id not in known]

    def orphans(self, state: Mapping[str, Any] | None) -> list[Any]:
        """The strays as orphans, each with its free place in the module or why it has none (orphans.py)."""
        from hgi_spark.clusters.openstack import orphans

        project = self.project()
        found = orphans.tagged_resources(project, str(self.deployment.ref))
        groups = [t.id for t in found if t.kind == "security group"]
        rules = {group: project.security_group_rules([group]) for group in groups}
        return orphans.place(found, state, self.deployment.settings, rules)

    def delete_orphans(self, found: Sequence[Any]) -> list[str]:
        """Delete exactly these (a reviewed deletion plan's list), in the order OpenStack allows."""
        from hgi_spark.cloud import cleanup

        return cleanup.delete(self.project(), [(o.kind, o.id, o.name) for o in found], self.say)

    # --- acting on the cluster --------------------------------------------------------------

    def submit(
        self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], script: str, args: Sequence[str]
    ) -> int:
        return remote.submit(outputs, self.deployment.paths.known_hosts, self.app_user, script, args)

    def install(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> extras.InstallReport:
        """The YAML's extra packages onto every server over ssh (clusters/extras.py)."""
        return extras.install_on(self.deployment, self.image, outputs, self._lazy_console(), self.say)

    def ssh_config(self, outputs: Mapping[str, Any]) -> str:
        spot = remote.target(outputs)  # no master yet: say so before asking for credentials
        known_hosts = self.deployment.paths.known_hosts
        read = (lambda _name: "") if remote.pinned_keys(known_hosts, spot.alias) else self.console_reader()
        entry = remote.entry(outputs, read, known_hosts, deployment=str(self.deployment.ref))
        port = int((self.deployment.settings.get("ports") or {}).get("ssh", 22))
        return entry + remote.worker_entries(outputs, self._lazy_console(), known_hosts, port=port)


def pinned_image(state: Mapping[str, Any] | None, image: Any) -> str:
    """The image id the running nodes were created from, while the deployment still names that image
    definition; "" (look up the newest image of the name) for a new cluster or a new ``image:``."""
    outputs = (state or {}).get("outputs", {})
    pinned = str((outputs.get("image_id") or {}).get("value") or "")
    metadata = (outputs.get("metadata") or {}).get("value") or {}
    master = metadata.get("master") or {} if isinstance(metadata, Mapping) else {}
    if not pinned or image is None:
        return ""
    created_from = (master.get("hgi-spark-image"), master.get("hgi-spark-image-version"))
    return pinned if created_from == (image.ref.name, image.ref.version) else ""


def volume_size(state: Mapping[str, Any] | None) -> int:
    """GB of the master's tmp volume as the state knows it (0: none)."""
    for resource in (state or {}).get("resources", []):
        if resource.get("type") == "openstack_blockstorage_volume_v3" and resource.get("mode") == "managed":
            for instance in resource.get("instances", []):
                return int((instance.get("attributes") or {}).get("size") or 0)
    return 0


def _has_master(state: Mapping[str, Any]) -> bool:
    return any(r.get("type") == SERVER and r.get("name") == "master" for r in state.get("resources", []))


def _servers_as_tagged(project: Any, deployment: str) -> list[Any]:
    from hgi_spark.cloud.project import Tagged

    return [
        Tagged("server", s.id, s.name) for s in project.servers_with_metadata(preflight.DEPLOYMENT_METADATA, deployment)
    ]


def _ids_in_state(state: Mapping[str, Any] | None) -> set[str]:
    ids = set()
    for resource in (state or {}).get("resources", []):
        for instance in resource.get("instances", []):
            value = (instance.get("attributes") or {}).get("id")
            if value:
                ids.add(str(value))
    return ids
