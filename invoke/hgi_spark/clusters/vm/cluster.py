"""The VM cluster (``terraform/spark-vm``): the OpenStack node path booted as qemu VMs on this machine.

The nodes boot the image packer's qemu source built (images/qemu.py names it), each with the
user-data terraform/spark's cluster module renders; their serial consoles are the console logs
that readiness and the pinned host keys are read from, as Nova's are on OpenStack. What differs
from OpenStack lives here: the accelerator (KVM when a short probe boots a guest, else software
emulation), the tools and the image on this machine, each VM's qemu (``vm-node --status``), and
ssh to workers through the cluster's network namespace.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hgi_spark.clusters import extras, health, nodes, readiness, remote, tls
from hgi_spark.clusters.base import Cluster, Purpose, Rows
from hgi_spark.clusters.local.cluster import listening_pids, port_free
from hgi_spark.core import secrets
from hgi_spark.core.errors import NotFoundError, RefusedError, ToolError

TOOLS = {
    "qemu-system-x86_64": "apt-get install qemu-system-x86",
    "qemu-img": "apt-get install qemu-utils",
    "genisoimage": "apt-get install genisoimage",
    "ip": "apt-get install iproute2",
}
VM_RESOURCES = ("master", "worker")


def _file_reader(paths: Mapping[str, str]) -> Callable[[str], str]:
    """Read a VM's console log file by its server name (what Nova's console output is on OpenStack)."""

    def read(name: str) -> str:
        path = paths.get(name)
        if not path:
            raise NotFoundError(f"no VM called {name} in this deployment")
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            raise NotFoundError(f"{name} has no console log yet ({path})") from None

    return read


def vm_ids(state: Mapping[str, Any] | None) -> dict[str, str]:
    """Server name -> the id of the terraform_data that made its VM (a new VM has a new id)."""
    ids = {}
    for resource in (state or {}).get("resources", []):
        if resource.get("type") != "terraform_data" or resource.get("name") not in VM_RESOURCES:
            continue
        for instance in resource.get("instances", []):
            attributes = instance.get("attributes") or {}
            env = ((attributes.get("input") or {}).get("value") or {}).get("env") or {}
            if env.get("VM_NAME") and attributes.get("id"):
                ids[str(env["VM_NAME"])] = str(attributes["id"])
    return ids


def vms_in_state(state: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Node key ("master", "1" ...) -> {env, vm_node} of every VM the state holds."""
    found = {}
    for resource in (state or {}).get("resources", []):
        if resource.get("type") != "terraform_data" or resource.get("name") not in VM_RESOURCES:
            continue
        for instance in resource.get("instances", []):
            value = ((instance.get("attributes") or {}).get("input") or {}).get("value") or {}
            if value.get("env"):
                key = "master" if resource.get("name") == "master" else str(instance.get("index_key"))
                found[key] = value
    return found


class VmCluster(Cluster):
    """A master and N workers as qemu VMs on a private bridge in a network namespace."""

    @property
    def scripts(self) -> Path:
        return self.deployment.paths.root_module / "scripts"

    def image_path(self) -> Path:
        from hgi_spark.images import qemu

        return qemu.image_path(self.image)

    # --- this machine -------------------------------------------------------------------------

    def accelerator(self) -> str:
        """kvm when a KVM guest boots here, else tcg (images/qemu.py probes, once per machine)."""
        from hgi_spark.images import qemu

        return qemu.accelerator(self.image_path(), self.deployment.repo.root)

    def _password_hash(self) -> str:
        secret = secrets.JupyterSecret.of(self.deployment.paths)
        return secret.hash_file.read_text(encoding="utf-8").strip() if secret.hash_file.is_file() else ""

    # --- before terraform ---------------------------------------------------------------------

    def extra_tfvars(self, state: Mapping[str, Any] | None) -> dict[str, Any]:
        """The image file, the accelerator, the password's hash, and a generation per VM that moves
        on when its qemu died (a crash, a reboot of this machine), so the next plan re-creates it."""
        return {
            "image_path": str(self.image_path()),
            "accelerator": self.accelerator(),
            "jupyter_password_hash": self._password_hash(),
            "generations": self.generations(state),
            **tls.tfvars(self.deployment),
        }

    def vm_status(self, vm: Mapping[str, Any], env_file: Path | None = None) -> tuple[str, str]:
        """(running|dead|stopped, pid) of one VM, as vm-node --status says."""
        env = {**os.environ, **{k: str(v) for k, v in (vm.get("env") or {}).items()}}
        args = ["--env-file", str(env_file), "--status"] if env_file else ["--status"]
        result = subprocess.run(
            ["bash", str(vm.get("vm_node") or self.scripts / "vm-node"), *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        parts = result.stdout.split()
        return (parts[1], parts[2]) if len(parts) >= 3 else ("unknown", "-")

    def generations(self, state: Mapping[str, Any] | None) -> dict[str, int]:
        """Per VM (and the network), a number that moves on when its qemu (or the namespace) is gone."""
        found: dict[str, int] = {}
        network_gone = False
        for resource in (state or {}).get("resources", []):
            if resource.get("type") == "terraform_data" and resource.get("name") == "network":
                for instance in resource.get("instances", []):
                    triggers = ((instance.get("attributes") or {}).get("triggers_replace") or {}).get("value") or {}
                    netns = str(triggers.get("netns", ""))
                    generation = int(triggers.get("generation", 0) or 0)
                    network_gone = bool(netns) and not Path(f"/run/netns/{netns}").exists()
                    found["network"] = generation + (1 if network_gone else 0)
        for key, vm in vms_in_state(state).items():
            current = str(vm["env"].get("VM_INSTANCE_ID", "")).rsplit("-", 1)[-1]
            generation = int(current) if current.isdigit() else 0
            running = not network_gone and self.vm_status(vm)[0] == "running"
            found[key] = generation + (0 if running else 1)
        return found

    def check(self, purpose: Purpose, state: Mapping[str, Any] | None, *, skip: bool = False) -> None:
        """Root, qemu's tools, the image built for these inputs, the forwarded ports free or ours."""
        if purpose == "destroy":
            return
        image = self.image_path()
        if not image.is_file():
            raise NotFoundError(
                f"no local image {image.name} for {self.image.ref}",
                fix=f"build it first: {self.image.ref.command('build --target qemu')}",
            )
        if skip:
            self.say(f"WARNING: checks of {self.deployment.ref} SKIPPED (--skip-preflight): tools and ports unchecked")
            return
        if os.geteuid() != 0:
            raise RefusedError("a VM cluster needs root (network namespaces, taps)", fix="run it as root")
        for tool, install in TOOLS.items():
            if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
                raise ToolError(f"{tool} not found (the VM cluster needs it)", fix=f"install it with: {install}")
        ours: set[int] = set()
        master = vms_in_state(state).get("master")
        pid_file = Path(str((master or {}).get("env", {}).get("VM_DIR", "/nonexistent"))) / "qemu.pid"
        if pid_file.is_file() and pid_file.read_text().strip().isdigit():
            ours.add(int(pid_file.read_text().strip()))
        for key, port in (self.deployment.settings.get("forwarded_ports") or {}).items():
            if port_free(int(port)) or listening_pids(int(port)) & ours:
                continue
            raise RefusedError(
                f"port {port} of this machine (forwarded_ports.{key}) is in use by another program",
                file=self.deployment.paths.definition,
                key=f"forwarded_ports.{key}",
                fix="stop that program, or forward other ports (two VM clusters at once need different ones)",
            )
        how = "hardware virtualisation" if self.accelerator() == "kvm" else "software emulation: slow"
        self.say(f"VMs run with {self.accelerator()} ({how})")

    def prepare(self, purpose: Purpose) -> None:
        if purpose != "destroy":
            secrets.ensure_jupyter_password(self.deployment.paths)
            tls.prepare(self.deployment)
            if extras.Wanted.of(self.deployment):  # a conflicting pin is refused before the plan
                extras.resolve_for(self.deployment, self.image, self.say)

    def output_rows(self) -> Rows:
        return tls.rows(self.deployment)

    # --- after an apply -----------------------------------------------------------------------

    def ready_record(self) -> readiness.ReadyRecord:
        return readiness.ReadyRecord(self.deployment.paths.runtime_dir / "nodes-ready.json")

    def console_reader(self, outputs: Mapping[str, Any]) -> Callable[[str], str]:
        return _file_reader((outputs.get("console_logs") or {}).get("value") or {})

    def wait_ready(self, outputs: Mapping[str, Any], state: Mapping[str, Any] | None) -> None:
        """Wait for every new VM's ready line on its serial console, then pin the master's host keys."""
        lines = readiness.ready_lines(outputs)
        timeout = self.deployment.wrapper.wait_ready_s
        if not lines or timeout == 0:
            return
        read = self.console_reader(outputs)
        readiness.wait_for_new_nodes(
            lines, vm_ids(state), self.ready_record(), read, timeout_s=timeout, say=self.say, interval_s=5
        )
        remote.pin(outputs, read, self.deployment.paths.known_hosts, refresh=True)
        remote.pin_workers(outputs, read, self.deployment.paths.known_hosts, refresh=True)
        extras.after_ready(self.deployment, self.image, outputs, read, self.say)

    def finish(self, purpose: Purpose, state: Mapping[str, Any] | None) -> None:
        if purpose == "destroy":
            self.deployment.paths.known_hosts.unlink(missing_ok=True)
            self.ready_record().path.unlink(missing_ok=True)

    # --- read-only ------------------------------------------------------------------------------

    def status_rows(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> Rows:
        rows: Rows = [("accelerator", self.accelerator())]
        vms = vms_in_state(state)
        for key in sorted(vms, key=lambda k: (k != "master", k.zfill(4))):
            vm = vms[key]
            state_word, pid = self.vm_status(vm)
            rows.append(
                (f"{vm['env'].get('VM_NAME', key)} qemu", f"{state_word} (pid {pid})" if pid != "-" else state_word)
            )
        lines = readiness.ready_lines(outputs)
        if lines:
            seen = self.ready_record().read()
            ids = vm_ids(state)
            states = readiness.node_states(lines, self.console_reader(outputs))
            ready = [s for s in states if s.state == readiness.READY or seen.get(s.name) == ids.get(s.name)]
            rows.append(("nodes", f"{len(ready)} of {len(states)} configured"))
        for stray in self.strays(state):
            rows.append(("running, not in state", stray))
        values = {k: v.get("value") for k, v in outputs.items()}
        for label, key in (("jupyter", "jupyter_url"), ("spark ui", "spark_ui_url"), ("ssh", "ssh_command")):
            if values.get(key):
                rows.append((label, str(values[key])))
        rows.append(("jupyter password", f"show it: {self.command('password')}"))
        return rows

    def strays(self, state: Mapping[str, Any] | None) -> list[str]:
        """VMs whose qemu runs from this deployment's runtime/ without being in the state."""
        known = {str(v["env"].get("VM_DIR")) for v in vms_in_state(state).values()}
        found = []
        for env_file in sorted(self.deployment.paths.runtime_dir.glob("*/vm.env")):
            if str(env_file.parent) in known:
                continue
            status, pid = self.vm_status({}, env_file)
            if status == "running":
                found.append(f"{env_file.parent.name} (qemu pid {pid})")
        return found

    def health(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> health.ClusterHealth:
        """Each VM's qemu, the master's view through the forwarded http port, then every node over ssh
        (its services, the shared tmp: clusters/nodes.py)."""
        url = str((outputs.get("jupyter_url") or {}).get("value") or "")
        password_file = secrets.JupyterSecret.of(self.deployment.paths).password_file
        password = password_file.read_text().strip() if password_file.is_file() else ""
        view = (
            health.master_view(url.split("/jupyter/")[0], password, cafile=tls.pinned(self.deployment))
            if url
            else health.MasterView(False, problem="the deployment is not up")
        )
        qemu = {}
        for key, vm in vms_in_state(state).items():
            status, pid = self.vm_status(vm)
            qemu[str(vm["env"].get("VM_NAME", key))] = f"{status} (pid {pid})" if pid != "-" else status
        found = []
        for node in nodes.every_node(
            self.deployment, nodes.NodePaths.of(self.image), outputs, view, self.console_reader(outputs)
        ):
            if node.name in qemu and node.reachable:
                node = replace(node, services={"qemu": qemu[node.name], **node.services})
            elif node.name in qemu:
                node = replace(node, detail=f"{node.detail} (qemu {qemu[node.name]})")
            found.append(node)
        return health.ClusterHealth(found, view)

    def diagnose(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], archive: Any) -> None:
        """Every node's logs, configuration, cloud-init output and state over ssh (clusters/nodes.py);
        each VM's serial console from this machine."""
        nodes.diagnose_nodes(
            self.deployment, nodes.NodePaths.of(self.image), outputs, archive, self.console_reader(outputs), self.say
        )
        for name, path in ((outputs.get("console_logs") or {}).get("value") or {}).items():
            archive.add_file(f"nodes/{name}/console.log", Path(path))

    # --- acting on the cluster ------------------------------------------------------------------

    def submit(
        self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], script: str, args: Sequence[str]
    ) -> int:
        return remote.submit(outputs, self.deployment.paths.known_hosts, self.app_user, script, args)

    def install(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> extras.InstallReport:
        """The YAML's extra packages onto every VM over ssh (the wheels go with the script: VMs have no
        internet); a Debian package must be in the image's apt lists or reachable (clusters/extras.py)."""
        return extras.install_on(self.deployment, self.image, outputs, self.console_reader(outputs), self.say)

    def ssh_config(self, outputs: Mapping[str, Any]) -> str:
        read, known_hosts = self.console_reader(outputs), self.deployment.paths.known_hosts
        entry = remote.entry(outputs, read, known_hosts, deployment=str(self.deployment.ref))
        port = int((self.deployment.settings.get("ports") or {}).get("ssh", 22))
        return entry + remote.worker_entries(outputs, read, known_hosts, port=port)

    def up_since(self, state: Mapping[str, Any] | None) -> datetime | None:
        path = self.ready_record().path
        return datetime.fromtimestamp(path.stat().st_mtime, tz=timezone.utc) if path.is_file() else None
