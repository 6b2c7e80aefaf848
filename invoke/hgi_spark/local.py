"""The local cluster (``terraform/spark-local``): its software prefix, this machine, its processes.

What terraform cannot do for a cluster made of processes lives here, as the root module's hooks
(see rootmodules.py): ``preflight`` (java and nginx present, the Hail prefix installed once, the
Jupyter password generated, ports free), ``extra_tfvars`` (prefix path, this machine's cores and
RAM, nginx's port, a restart generation per node), ``status_rows`` (each process and where things
are) and ``submit`` (a Python script run with spark-submit in the cluster's login environment).
The processes themselves are started and stopped by the node scripts, never from here.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import secrets
from .errors import ConfigError, NotFoundError, RefusedError, ToolError

if TYPE_CHECKING:
    from .config import Deployment, Image

PREFIX_ENV = "HGI_SPARK_PREFIX"  # use (or install into) exactly this prefix
CACHE_ENV = "HGI_SPARK_CACHE"  # folder of prefixes, default ~/.cache/hgi-spark
STAMP = ".hgi-spark-prefix.json"  # written last: a prefix without it is not installed
HTTP_PORT_SEARCH = 100  # how far above ports.http nginx may move when that port is taken

# What to install when something is missing: one line each.
TOOLS = {
    "java": "apt-get install openjdk-17-jre-headless",
    "nginx": "apt-get install nginx-light",
}


# --- the Hail prefix ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrefixSpec:
    """What goes into a prefix: the image's versions and pip constraints; its digest names it."""

    python: str
    packages: tuple[str, ...]
    constraints: Path | None

    @classmethod
    def of(cls, image: Image) -> PrefixSpec:
        s = image.software
        return cls(
            python=s.python,
            packages=(f"hail=={s.hail}", f"pyspark=={s.pyspark}", f"jupyterlab=={s.jupyterlab}"),
            constraints=image.constraints_file,
        )

    @property
    def digest(self) -> str:
        constraints = self.constraints.read_bytes() if self.constraints else b""
        document = {
            "python": self.python,
            "packages": list(self.packages),
            "constraints": hashlib.sha256(constraints).hexdigest(),
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()[:16]


def cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hgi-spark"


def prefix_path(spec: PrefixSpec) -> Path:
    """Where the prefix for ``spec`` is (or will be): $HGI_SPARK_PREFIX, or the cache keyed by digest."""
    if os.environ.get(PREFIX_ENV):
        return Path(os.environ[PREFIX_ENV]).expanduser().absolute()
    return cache_dir() / f"prefix-{spec.digest}"


def prefix_installed(path: Path, spec: PrefixSpec) -> bool:
    try:
        stamp = json.loads((path / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stamp.get("digest") == spec.digest and (path / "bin" / "python").exists()


def _python_for(version: str) -> str:
    """An interpreter of the image's Python version, to create the prefix's venv with."""
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    found = shutil.which(f"python{version}")
    if found:
        return found
    raise ToolError(
        f"Python {version} (the image's version) not found",
        fix=f"install it with: apt-get install python{version} python{version}-venv",
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One installer per prefix at a time (two deployments brought up together share it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_prefix(spec: PrefixSpec, *, echo: Any = None) -> Path:
    """Install hail, pyspark and jupyterlab once; later calls return at once.

    The venv is built in a temporary folder beside the target and published by renaming a
    symlink over the target name, so a prefix is either complete or absent (a venv cannot be
    moved after it is made: its scripts name their own path).
    """
    echo = echo or sys.stderr
    target = prefix_path(spec)
    if prefix_installed(target, spec):
        return target
    with _locked(target.parent / f".{target.name}.lock"):
        if prefix_installed(target, spec):
            return target
        if target.exists() and not target.is_symlink():
            raise ConfigError(
                f"{target} exists but is not a complete Hail prefix",
                fix=f"remove it, or point {PREFIX_ENV} elsewhere",
            )
        python = _python_for(spec.python)
        build = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        log = target.parent / f"{target.name}.install.log"
        print(
            f"installing {', '.join(spec.packages)} into {target} (once; about a minute; log: {log})",
            file=echo,
            flush=True,
        )
        try:
            with open(log, "w") as out:
                steps = [
                    [python, "-m", "venv", str(build)],
                    [str(build / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check"]
                    + (["-c", str(spec.constraints)] if spec.constraints else [])
                    + list(spec.packages),
                ]
                for step in steps:
                    print("$ " + " ".join(step), file=out, flush=True)
                    if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                        raise ToolError(f"installing the Hail prefix failed at: {' '.join(step[:4])}", file=log)
            stamp = {"digest": spec.digest, "packages": list(spec.packages), "python": spec.python}
            (build / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
            link = target.parent / f".{target.name}.link"
            link.unlink(missing_ok=True)
            link.symlink_to(build.name)
            old = target.resolve() if target.is_symlink() else None
            os.replace(link, target)
            # The prefix it replaces is removed only when it is one of ours (built here, by this code).
            if old is not None and old.parent == build.parent and old.name.startswith(f".{target.name}-"):
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(build, ignore_errors=True)
            raise
    return target


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


# --- the deployment's processes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """A node recorded in terraform's state: its key ("master", "1", "2" ...) and environment."""

    key: str
    env: Mapping[str, str]
    generation: int

    @property
    def role(self) -> str:
        return "master" if self.key == "master" else "worker"

    @property
    def processes(self) -> tuple[str, ...]:
        return ("spark-master", "jupyter", "nginx") if self.role == "master" else ("spark-worker",)

    @property
    def state_dir(self) -> Path:
        return Path(self.env["STATE_DIR"])

    def process_state(self, name: str) -> tuple[str, int | None]:
        """("running", pid), ("dead", pid) for a stale pid file, or ("stopped", None)."""
        pid_file = self.state_dir / "run" / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return "stopped", None
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return "dead", pid
        zombie = any(line.startswith("State:") and "Z" in line.split()[1] for line in status.splitlines())
        if zombie or str(self.state_dir) not in cmdline:
            return "dead", pid
        return "running", pid

    @property
    def alive(self) -> bool:
        return all(self.process_state(name)[0] == "running" for name in self.processes)


def deployed_nodes(deployment: Deployment) -> dict[str, Node]:
    """The nodes terraform's state holds (read-only, from the local state file)."""
    try:
        state = json.loads(deployment.paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    nodes: dict[str, Node] = {}
    for resource in state.get("resources", []):
        if resource.get("type") != "terraform_data" or resource.get("mode") != "managed":
            continue
        for instance in resource.get("instances", []):
            value = (instance.get("attributes", {}).get("input") or {}).get("value") or {}
            env = value.get("env")
            if not env:
                continue
            key = "master" if resource.get("name") == "master" else str(instance.get("index_key"))
            nodes[key] = Node(key, env, int(value.get("generation", 0)))
    return nodes


def _ports(deployment: Deployment) -> dict[str, int]:
    return dict(deployment.settings.get("ports") or {})


def http_port(deployment: Deployment, nodes: Mapping[str, Node] | None = None) -> int:
    """nginx's port: the running master keeps its own; otherwise ports.http or the first free above it."""
    wanted = int(_ports(deployment)["http"])
    nodes = deployed_nodes(deployment) if nodes is None else nodes
    master = nodes.get("master")
    if master is not None and master.alive:
        current = int(master.env.get("HTTP_PORT", wanted))
        if wanted <= current < wanted + HTTP_PORT_SEARCH:
            return current
    for port in range(wanted, min(wanted + HTTP_PORT_SEARCH, 65536)):
        if port_free(port):
            return port
    raise RefusedError(
        f"ports {wanted}-{wanted + HTTP_PORT_SEARCH - 1} are all in use: no port for nginx",
        file=deployment.paths.definition,
        key="ports.http",
        fix="set another ports.http",
    )


def generations(nodes: Mapping[str, Node]) -> dict[str, int]:
    """Per node, a number that moves on when its processes died (a crash, a reboot), so the next
    plan replaces (restarts) exactly those nodes; stable while they run."""
    return {key: node.generation + (0 if node.alive else 1) for key, node in nodes.items()}


def extra_tfvars(deployment: Deployment) -> dict[str, Any]:
    """The values only the wrapper knows; cheap and without side effects (called for every check)."""
    if deployment.image is None:
        raise ConfigError(
            "a local cluster needs 'image: NAME/VERSION' (the versions to install)",
            file=deployment.paths.definition,
            key="image",
            fix="set image: hail-base/1.0.0 (deployments/spark-local/defaults.yml does)",
        )
    vcpus, ram_mb = host_resources()
    nodes = deployed_nodes(deployment)
    return {
        "prefix": str(prefix_path(PrefixSpec.of(deployment.image))),
        "host_vcpus": vcpus,
        "host_ram_mb": ram_mb,
        "http_port": http_port(deployment, nodes),
        "jupyter_password_hash_file": str(secrets.JupyterSecret.of(deployment.paths).hash_file.absolute()),
        "generations": generations(nodes),
    }


def _wanted_ports(deployment: Deployment) -> list[tuple[str, str, int]]:
    """(node key, YAML key, port) for every port a node of this deployment listens on (but http)."""
    ports = _ports(deployment)
    wanted = [("master", f"ports.{k}", int(ports[k])) for k in ("spark_master", "spark_master_ui", "jupyter")]
    for index in range(1, int(deployment.settings.get("workers", 1)) + 1):
        wanted.append((str(index), "ports.spark_worker_ui", int(ports["spark_worker_ui"]) + index - 1))
    return wanted


def preflight(deployment: Deployment, *, echo: Any = None) -> None:
    """Before a plan: tools present, prefix installed, password generated, ports free."""
    check_tools()
    if deployment.image is None:
        extra_tfvars(deployment)  # raises the ConfigError that says what is missing
        return
    ensure_prefix(PrefixSpec.of(deployment.image), echo=echo)
    secrets.ensure_jupyter_password(deployment.paths)
    nodes = deployed_nodes(deployment)
    for key, setting, port in _wanted_ports(deployment):
        node = nodes.get(key)
        if node is not None and node.alive:
            continue  # our own process holds it
        if not port_free(port):
            raise RefusedError(
                f"port {port} ({setting}{'' if key == 'master' else f' + {int(key) - 1} for worker {key}'}) "
                "is in use by another program",
                file=deployment.paths.definition,
                fix="stop that program, or give this deployment other ports in its deployment.yml "
                "(two local clusters at once need different ones)",
            )
    port = http_port(deployment, nodes)
    wanted = int(_ports(deployment)["http"])
    if port != wanted:
        print(f"port {wanted} (ports.http) is in use: nginx will listen on {port}", file=echo or sys.stderr)


# --- status and submit -------------------------------------------------------------------------------


def _outputs(deployment: Deployment) -> dict[str, Any]:
    try:
        state = json.loads(deployment.paths.state.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v.get("value") for k, v in state.get("outputs", {}).items()}


def status_rows(deployment: Deployment) -> list[tuple[str, str]]:
    """Each process with its state and pid, the URLs, and where the password and logs are."""
    rows: list[tuple[str, str]] = []
    nodes = deployed_nodes(deployment)
    for key in sorted(nodes, key=lambda k: (k != "master", k.zfill(4))):
        node = nodes[key]
        for name in node.processes:
            state, pid = node.process_state(name)
            shown = f"{state} (pid {pid})" if pid else state
            rows.append((f"{node.env.get('NODE_NAME', key)} {name}", shown))
    outputs = _outputs(deployment)
    for label, key in (("jupyter", "jupyter_url"), ("spark ui", "spark_ui_url"), ("profile", "profile")):
        if outputs.get(key):
            rows.append((label, str(outputs[key])))
    secret = secrets.JupyterSecret.of(deployment.paths)
    where = secret.password_file if secret.password_file.is_file() else "not generated yet"
    rows.append(("jupyter password", f"{where} (show it: bash invoke.sh deployment {deployment.ref} password)"))
    if outputs.get("runtime_dir"):
        rows.append(("logs", f"{outputs['runtime_dir']}/*/logs/"))
    return rows


def submit_command(deployment: Deployment, script: Path, args: Sequence[str]) -> list[str]:
    """spark-submit of ``script`` in the cluster's login environment (the same as pyspark's)."""
    profile = _outputs(deployment).get("profile")
    nodes = deployed_nodes(deployment)
    if not profile or "master" not in nodes:
        raise RefusedError(
            f"deployment {deployment.ref} is not up", fix=f"bring it up: bash invoke.sh deployment {deployment.ref} up"
        )
    if not nodes["master"].alive:
        raise RefusedError(
            f"the master of {deployment.ref} is not running",
            fix=f"restart it: bash invoke.sh deployment {deployment.ref} up",
        )
    return ["bash", "-c", '. "$0" && exec spark-submit "$@"', str(profile), str(script), *args]


def submit(deployment: Deployment, script: str | Path, args: Sequence[str] = ()) -> int:
    """Run a Python script against the cluster with spark-submit; returns its exit code."""
    path = Path(script).expanduser().absolute()
    if not path.is_file():
        raise NotFoundError(f"no such script: {script}")
    return subprocess.run(submit_command(deployment, path, args), check=False).returncode
