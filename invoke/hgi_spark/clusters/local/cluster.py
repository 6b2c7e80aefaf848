"""The local cluster (``terraform/spark-local``): processes on this machine started by the node scripts.

What terraform cannot do for a cluster made of processes: the checks before a plan (java and nginx
present, ports free or held by this deployment's own processes), the preparation of an apply (the
Hail prefix installed once, the Jupyter password generated), the wrapper's variables (prefix path,
this machine's cores and RAM, nginx's port, a restart generation per node), status (each process,
as ``run-node --status`` reports it, including processes a killed apply left behind) and submit.
The processes themselves are started, inspected and stopped by run-node, never from here.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from hgi_spark.clusters import diagnose, extras, health
from hgi_spark.clusters.base import Cluster, Purpose, Rows
from hgi_spark.clusters.local import prefix
from hgi_spark.core import secrets
from hgi_spark.core.errors import NotFoundError, RefusedError, ToolError

HTTP_PORT_SEARCH = 100  # how far above ports.http nginx may move when that port is taken
NODE_ENV_FILE = "node.env"  # run-node keeps a copy of a local node's environment in its state dir
SCRIPTS = Path(__file__).resolve().parents[4] / "terraform" / "modules" / "spark-node" / "scripts"

# What to install when something is missing: one line each.
TOOLS = {
    "java": "apt-get install openjdk-17-jre-headless",
    "nginx": "apt-get install nginx-light",
}


# --- this machine ------------------------------------------------------------------------------------


def host_resources() -> tuple[int, int]:
    """(cores this process may use, MiB of RAM) of this machine."""
    vcpus = len(os.sched_getaffinity(0))
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return vcpus, int(line.split()[1]) // 1024
    raise ToolError("cannot read MemTotal from /proc/meminfo")


def check_tools() -> None:
    """java and nginx must be installed; one line says how when they are not."""
    for tool, install in TOOLS.items():
        java_home = os.environ.get("JAVA_HOME")
        if tool == "java" and java_home and (Path(java_home) / "bin" / "java").exists():
            continue
        # nginx is in /usr/sbin, which a normal user's PATH on Debian does not name
        if shutil.which(tool, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin") is None:
            raise ToolError(f"{tool} not found (the local cluster needs it)", fix=f"install it with: {install}")


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def listening_pids(port: int) -> set[int]:
    """The processes listening on a TCP port of this machine (from /proc: no ss or lsof needed)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(fields[9])
    pids = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            for fd in fd_dir.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    pids.add(int(fd_dir.parent.name))
                    break
        except OSError:
            continue
    return pids


# --- the deployment's nodes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A node: its key ("master", "1", "2" ...), its run-node environment, whether the state has it."""

    key: str
    env: Mapping[str, str]
    generation: int
    in_state: bool = True
    run_node: str = str(SCRIPTS / "run-node")

    @property
    def role(self) -> str:
        return "master" if self.key == "master" else "worker"

    @property
    def name(self) -> str:
        return str(self.env.get("NODE_NAME", self.key))

    @property
    def state_dir(self) -> Path:
        return Path(self.env["STATE_DIR"])

    def processes(self) -> list[health.Process]:
        """``run-node --status``: the one place that knows a role's processes and checks their pids."""
        result = subprocess.run(
            ["bash", self.run_node, "--role", self.role, "--status"],
            env={**_clean_environment(), **self.env},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        return health.parse_status(result.stdout)

    def alive(self) -> bool:
        found = self.processes()
        return bool(found) and all(p.state == "running" for p in found)

    def pids(self) -> set[int]:
        return {p.pid for p in self.processes() if p.state == "running" and p.pid}


def _clean_environment() -> dict[str, str]:
    """The caller's environment without Spark's own settings (run-node drops them too)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}


def nodes_in_state(state: Mapping[str, Any] | None) -> dict[str, Node]:
    """The nodes terraform's state holds."""
    nodes: dict[str, Node] = {}
    for resource in (state or {}).get("resources", []):
        if resource.get("type") != "terraform_data" or resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances", []):
            value = (instance.get("attributes", {}).get("input") or {}).get("value") or {}
            env = value.get("env")
            if not env:
                continue
            key = "master" if resource.get("name") == "master" else str(instance.get("index_key"))
            run_node = str(value.get("run_node") or SCRIPTS / "run-node")
            nodes[key] = Node(key, env, int(value.get("generation", 0)), True, run_node)
    return nodes


def stray_nodes(runtime: Path, known: Mapping[str, Node]) -> list[Node]:
    """Nodes with an environment in runtime/ that the state does not hold (a killed apply's)."""
    known_dirs = {str(node.state_dir) for node in known.values()}
    found = []
    for env_file in sorted(runtime.glob(f"*/{NODE_ENV_FILE}")):
        env = _read_env_file(env_file)
        if not env.get("STATE_DIR") or env["STATE_DIR"] in known_dirs:
            continue
        folder = env_file.parent.name
        key = "master" if folder == "master" else folder.removeprefix("worker-")
        found.append(Node(key, env, 0, in_state=False))
    return found


def _read_env_file(path: Path) -> dict[str, str]:
    """KEY='value' lines as run-node writes them (single-quoted, ' escaped as '\\'')."""
    env: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return env
    for line in lines:
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1].replace("'\\''", "'")
        env[key] = value
    return env


# --- the cluster ---------------------------------------------------------------------------------------


class LocalCluster(Cluster):
    """A master and N workers as detached processes of this machine (run-node's local mode)."""

    def _ports(self) -> dict[str, int]:
        return {k: int(v) for k, v in (self.deployment.settings.get("ports") or {}).items()}

    def all_nodes(self, state: Mapping[str, Any] | None) -> tuple[dict[str, Node], list[Node]]:
        """The nodes in the state, and the ones running without being in it."""
        known = nodes_in_state(state)
        return known, stray_nodes(self.deployment.paths.runtime_dir, known)

    # --- before terraform ------------------------------------------------------------------

    def http_port(self, nodes: Mapping[str, Node], strays: Sequence[Node] = ()) -> int:
        """nginx's port: a running master (in the state or left by a killed apply) keeps its own;
        otherwise ports.http or the first free port above it."""
        wanted = self._ports()["http"]
        master = nodes.get("master") or next((n for n in strays if n.role == "master"), None)
        if master is not None and master.alive():
            current = int(master.env.get("HTTP_PORT", wanted))
            if wanted <= current < wanted + HTTP_PORT_SEARCH:
                return current
        for port in range(wanted, min(wanted + HTTP_PORT_SEARCH, 65536)):
            if port_free(port):
                return port
        raise RefusedError(
            f"ports {wanted}-{wanted + HTTP_PORT_SEARCH - 1} are all in use: no port for nginx",
            file=self.deployment.paths.definition,
            key="ports.http",
            fix="set another ports.http",
        )

    def prefix_spec(self, resolution: extras.Resolution | None = None) -> prefix.PrefixSpec:
        """The image's prefix, or the one with the YAML's extra Python packages: their resolved set
        (from the cache, no network) in its digest; before the first resolution, what the YAML asks
        for (a plan resolves first, so a plan never records that)."""
        spec = prefix.PrefixSpec.of(self.image)
        wanted = extras.Wanted.of(self.deployment)
        if not wanted.python:
            return spec
        found = resolution or extras.resolved(self.image, wanted)
        if found is None:
            return replace(spec, extras=tuple(sorted(wanted.python)))
        if not found.pins:  # the image has them all: its own prefix
            return spec
        return replace(spec, extras=found.pins, find_links=found.wheels.parent / "find-links")

    def extra_tfvars(self, state: Mapping[str, Any] | None) -> dict[str, Any]:
        """The values only the wrapper knows; without side effects (asked once per run)."""
        image = self.image
        vcpus, ram_mb = host_resources()
        known, strays = self.all_nodes(state)
        return {
            "prefix": str(prefix.prefix_path(self.prefix_spec())),
            "app_user": image.app_user.name,
            "host_vcpus": vcpus,
            "host_ram_mb": ram_mb,
            "http_port": self.http_port(known, strays),
            "jupyter_password_hash_file": str(secrets.JupyterSecret.of(self.deployment.paths).hash_file.absolute()),
            "generations": generations(known),
        }

    def _wanted_ports(self) -> list[tuple[str, str, int]]:
        """(node key, YAML key, port) for every port a node of this deployment listens on (but http)."""
        ports = self._ports()
        wanted = [("master", f"ports.{k}", ports[k]) for k in ("spark_master", "spark_master_ui", "jupyter")]
        for index in range(1, int(self.deployment.settings.get("workers", 1)) + 1):
            wanted.append((str(index), "ports.spark_worker_ui", ports["spark_worker_ui"] + index - 1))
        return wanted

    def check(self, purpose: Purpose, state: Mapping[str, Any] | None, *, skip: bool = False) -> None:
        """Tools present and ports free (or held by this deployment's own processes).

        A destroy plan is never refused: it only stops what is there.
        """
        if purpose == "destroy":
            return
        _ = self.image  # refused here, before a plan, when the deployment names no image
        if skip:
            self.say(f"WARNING: checks of {self.deployment.ref} SKIPPED (--skip-preflight): tools and ports unchecked")
            return
        check_tools()
        known, strays = self.all_nodes(state)
        ours = set()
        for node in [*known.values(), *strays]:
            ours |= node.pids()
        for key, setting, port in self._wanted_ports():
            if port_free(port) or listening_pids(port) & ours:
                continue
            worker = "" if key == "master" else f" + {int(key) - 1} for worker {key}"
            raise RefusedError(
                f"port {port} ({setting}{worker}) is in use by another program",
                file=self.deployment.paths.definition,
                fix="stop that program, or give this deployment other ports in its deployment.yml "
                "(two local clusters at once need different ones)",
            )
        port = self.http_port(known, strays)
        if port != self._ports()["http"]:
            self.say(f"port {self._ports()['http']} (ports.http) is in use: nginx will listen on {port}")

    def prepare(self, purpose: Purpose) -> None:
        """The Hail prefix (installed once) and the Jupyter password; nothing for a destroy plan."""
        if purpose == "destroy":
            return
        self.ensure_prefix()
        secrets.ensure_jupyter_password(self.deployment.paths)

    def ensure_prefix(self) -> Path:
        """The prefix the YAML asks for, installed once: the image's, or one with the extras (their
        conflicts refused first, their Debian packages required on this machine)."""
        wanted = extras.Wanted.of(self.deployment)
        missing = extras.missing_debian(wanted.system)
        if missing:
            raise RefusedError(
                f"extra_system_packages {', '.join(missing)} not installed on this machine "
                "(the local cluster's nodes are its processes)",
                file=self.deployment.paths.definition,
                key="extra_system_packages",
                fix=f"install them with: apt-get install {' '.join(missing)}",
            )
        if not wanted.python:
            return prefix.ensure_prefix(self.prefix_spec(), say=self.say)
        resolution = extras.resolve_for(self.deployment, self.image, self.say)
        spec = self.prefix_spec(resolution)
        if spec.find_links is not None:
            self._wheelhouse(resolution, spec.find_links)
        return prefix.ensure_prefix(spec, say=self.say)

    def _wheelhouse(self, resolution: extras.Resolution, folder: Path) -> None:
        """The image's wheels (images/qemu.py's wheelhouse, built once) and the extras' in one folder,
        so the extras prefix installs offline from exactly what an image has plus the resolved set."""
        from hgi_spark.images import qemu

        if folder.is_dir():
            return
        building = folder.with_name(f".{folder.name}-{os.getpid()}")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        for source in (qemu.wheelhouse(self.image, self.say), resolution.wheels):
            for wheel in source.glob("*.whl"):
                link = building / wheel.name
                if not link.exists():
                    link.symlink_to(wheel.absolute())
        os.replace(building, folder)

    def install(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> extras.InstallReport:
        """The extras' prefix made (once); the nodes run on it after a restart, which an update plan
        does (the prefix is one of their inputs): each node's line says whether it needs one."""
        wanted = extras.Wanted.of(self.deployment)
        if not wanted:
            return extras.InstallReport(None, (), note=f"{self.deployment.ref}: nothing to install (no extra packages)")
        target = str(self.ensure_prefix())
        resolution = extras.resolved(self.image, wanted) if wanted.python else None
        results = []
        known, _ = self.all_nodes(state)
        for node in sorted(known.values(), key=lambda n: (n.role != "master", n.key.zfill(4))):
            current = str(node.env.get("HAIL_VENV", ""))
            if current == target and node.alive():
                results.append(extras.NodeResult(node.name, True, "ok: running on the prefix with them"))
            else:
                results.append(extras.NodeResult(node.name, True, f"restart needed: it runs on {current}"))
        restart = any(r.line.startswith("restart") for r in results)
        return extras.InstallReport(resolution, tuple(results), needs_update=restart)

    # --- read-only -------------------------------------------------------------------------

    def status_rows(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> Rows:
        """Each process with its state and pid (strays too), the URLs, where the password and logs are."""
        rows: Rows = []
        known, strays = self.all_nodes(state)
        for node in sorted(known.values(), key=lambda n: (n.role != "master", n.key.zfill(4))):
            for process in node.processes():
                shown = f"{process.state} (pid {process.pid})" if process.pid else process.state
                rows.append((f"{node.name} {process.name}", shown))
        for node in strays:
            for process in node.processes():
                if process.state == "running":
                    rows.append((f"{node.name} {process.name}", f"running, not in state (pid {process.pid})"))
        values = {k: v.get("value") for k, v in outputs.items()}
        for label, key in (("jupyter", "jupyter_url"), ("spark ui", "spark_ui_url"), ("profile", "profile")):
            if values.get(key):
                rows.append((label, str(values[key])))
        for node in sorted(known.values(), key=lambda n: (n.role != "master", n.key.zfill(4))):
            has = prefix.extras_of(Path(str(node.env.get("HAIL_VENV", ""))))
            if has:
                rows.append((f"{node.name} extra packages", ", ".join(has)))
        secret = secrets.JupyterSecret.of(self.deployment.paths)
        where = secret.password_file if secret.password_file.is_file() else "not generated yet"
        rows.append(("jupyter password", f"{where} (show it: {self.command('password')})"))
        if values.get("runtime_dir"):
            rows.append(("logs", f"{values['runtime_dir']}/*/logs/"))
        return rows

    def _password(self) -> str:
        secret = secrets.JupyterSecret.of(self.deployment.paths)
        return secret.password_file.read_text(encoding="utf-8").strip() if secret.password_file.is_file() else ""

    def health(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any]) -> health.ClusterHealth:
        """Each node's processes (run-node --status), registration and shared tmp; the master's view."""
        known, strays = self.all_nodes(state)
        url = str((outputs.get("jupyter_url") or {}).get("value") or "")
        if url:
            view = health.master_view(url.split("/jupyter/")[0], self._password())
        else:
            view = health.MasterView(False, problem="the deployment is not up")
        found = []
        ordered = sorted(known.values(), key=lambda n: (n.role != "master", n.key.zfill(4)))
        for node in [*ordered, *strays]:
            services = {p.name: p.shown() for p in node.processes()}
            registered = ""
            if node.role == "worker":
                webui = f"http://{node.env.get('NODE_BIND_ADDRESS')}:{node.env.get('SPARK_WORKER_WEBUI_PORT')}"
                registered = health.registration(view, webui)
            detail = "" if node.in_state else "running, not in state"
            tmp = health.free_space(str(node.env.get("HAIL_TMP_DIR", "")))
            has = ", ".join(prefix.extras_of(Path(str(node.env.get("HAIL_VENV", "")))))
            found.append(health.NodeHealth(node.name, node.role, True, services, registered, tmp, detail, extras=has))
        return health.ClusterHealth(found, view)

    def up_since(self, state: Mapping[str, Any] | None) -> datetime | None:
        master = nodes_in_state(state).get("master")
        marker = master.state_dir / "ready" if master else None
        if marker is None or not marker.is_file():
            return None
        return datetime.fromtimestamp(marker.stat().st_mtime, tz=timezone.utc)

    def diagnose(self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], archive: Any) -> None:
        """Every node's logs (tails), configuration, recent executors' output and processes."""
        known, strays = self.all_nodes(state)
        for node in [*known.values(), *strays]:
            self.say(f"diagnose: {node.name}")
            base = f"nodes/{node.name}"
            for log in sorted((node.state_dir / "logs").glob("*")):
                archive.add_file(f"{base}/logs/{log.name}", log)
            for conf in sorted((node.state_dir / "conf").rglob("*")):
                if conf.is_file():
                    archive.add_file(f"{base}/{conf.relative_to(node.state_dir)}", conf)
            for app in diagnose.newest((node.state_dir / "work").glob("app-*"), 3):
                for output in sorted(app.glob("*/std*")):
                    archive.add_file(f"{base}/work/{app.name}/{output.parent.name}/{output.name}", output)
            processes = "\n".join(f"{p.name} {p.state} {p.pid or '-'}" for p in node.processes())
            archive.add_text(f"{base}/processes.txt", processes + "\n")
            archive.summary.append(f"{node.name}: {'in state' if node.in_state else 'running, not in state'}")

    # --- acting on the cluster -------------------------------------------------------------

    def strays(self, state: Mapping[str, Any] | None) -> list[str]:
        _, strays = self.all_nodes(state)
        return [node.name for node in strays if node.pids()]

    def finish(self, purpose: Purpose, state: Mapping[str, Any] | None) -> None:
        """A destroy also stops the processes a killed apply left running outside the state."""
        if purpose != "destroy":
            return
        _, strays = self.all_nodes(state)
        for node in strays:
            if not node.pids():
                continue
            self.say(f"stopping {node.name}: running, not in state")
            result = subprocess.run(
                ["bash", node.run_node, "--role", node.role, "--stop"],
                env={**_clean_environment(), **node.env},
                check=False,
            )
            if result.returncode:
                raise ToolError(
                    f"could not stop {node.name} (run-node exit {result.returncode})", fix="see its log above"
                )

    def submit(
        self, state: Mapping[str, Any] | None, outputs: Mapping[str, Any], script: str, args: Sequence[str]
    ) -> int:
        """spark-submit of a local script in the cluster's login environment (the same as pyspark's)."""
        path = Path(script).expanduser().absolute()
        if not path.is_file():
            raise NotFoundError(f"no such script: {script}")
        profile = (outputs.get("profile") or {}).get("value")
        master = nodes_in_state(state).get("master")
        if not profile or master is None:
            raise RefusedError(f"deployment {self.deployment.ref} is not up", fix=f"bring it up: {self.command('up')}")
        if not master.alive():
            raise RefusedError(
                f"the master of {self.deployment.ref} is not running", fix=f"restart it: {self.command('up')}"
            )
        log = Path(master.env["STATE_DIR"]) / "logs" / f"submit-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.log"
        argv = ["bash", "-c", '. "$0" && exec spark-submit "$@"', str(profile), str(path), *args]
        code = subprocess.run(argv, env={**os.environ, "HGI_DRIVER_LOG": str(log)}, check=False).returncode
        self.say(f"driver log: {log}")
        return code


def generations(nodes: Mapping[str, Node]) -> dict[str, int]:
    """Per node, a number that moves on when its processes died (a crash, a reboot), so the next
    plan replaces (restarts) exactly those nodes; stable while they run."""
    return {key: node.generation + (0 if node.alive() else 1) for key, node in nodes.items()}
