"""The local cluster's class without a cluster: this machine, ports, the checks a plan for each
purpose runs, terraform state, run-node's view of processes, status rows, the submit guard, secrets.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hgi_spark.clusters.local import cluster as local
from hgi_spark.clusters.local import prefix
from hgi_spark.core import config, secrets
from hgi_spark.core.errors import NotFoundError, RefusedError, ToolError
from hgi_spark.core.layout import CACHE_ENV, Repository

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A repository tree with the real spark-local module, definitions and one deployment."""
    import shutil

    root = tmp_path / "repo"
    shutil.copytree(REPO / "terraform" / "spark-local", root / "terraform" / "spark-local")
    shutil.copytree(REPO / "images", root / "images")
    (root / "deployments" / "spark-local" / "t").mkdir(parents=True)
    shutil.copy(REPO / "deployments" / "defaults.yml", root / "deployments" / "defaults.yml")
    shutil.copy(REPO / "deployments" / "spark-local" / "defaults.yml", root / "deployments" / "spark-local")
    (root / "deployments" / "spark-local" / "t" / "deployment.yml").write_text("workers: 2\n")
    return Repository(root)


@pytest.fixture
def deployment(repo: Repository, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> config.Deployment:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(prefix.PREFIX_ENV, raising=False)
    return config.load_deployment("spark-local/t", repo)


@pytest.fixture
def cluster(deployment: config.Deployment) -> local.LocalCluster:
    return local.LocalCluster(deployment, lambda _text: None)


# --- this machine -----------------------------------------------------------------------------------------


def test_host_resources_are_this_machine() -> None:
    vcpus, ram_mb = local.host_resources()
    assert vcpus == len(os.sched_getaffinity(0))
    assert ram_mb * 1024 * 1024 <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") + 1024 * 1024


def test_missing_tools_say_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolError, match=r"java not found .*apt-get install openjdk-17-jre-headless"):
        local.check_tools()
    (tmp_path / "jdk" / "bin").mkdir(parents=True)
    (tmp_path / "jdk" / "bin" / "java").touch()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    monkeypatch.setattr(local.shutil, "which", lambda tool, path=None: None)  # a machine without nginx
    with pytest.raises(ToolError, match=r"nginx not found .*apt-get install nginx-light"):
        local.check_tools()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_port_free_sees_a_listener(busy_port: int) -> None:
    assert not local.port_free(busy_port)


def test_nginx_moves_to_the_first_free_port_when_its_own_is_taken(cluster: local.LocalCluster, busy_port: int) -> None:
    cluster.deployment.settings["ports"]["http"] = busy_port
    port = cluster.http_port({})
    assert port > busy_port and local.port_free(port)


def test_a_busy_spark_port_refuses_the_plan_with_the_yaml_key(
    cluster: local.LocalCluster, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "check_tools", lambda: None)
    ports = cluster.deployment.settings["ports"]
    for key in ("spark_master", "spark_master_ui", "jupyter"):
        ports[key] = free_port()
    ports["spark_worker_ui"] = busy_port - 1  # worker 2's port is the busy one
    for purpose in ("up", "update"):
        with pytest.raises(RefusedError, match=rf"port {busy_port} \(ports.spark_worker_ui \+ 1 for worker 2\)"):
            cluster.check(purpose, None)
    cluster.check("up", None, skip=True)  # --skip-preflight: said, not checked


def test_a_destroy_plan_checks_nothing_and_installs_nothing(
    cluster: local.LocalCluster, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With every port taken by another program and no prefix, a destroy plan still goes ahead."""

    def must_not_run(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("a destroy plan must not install or check anything")

    monkeypatch.setattr(prefix, "ensure_prefix", must_not_run)
    monkeypatch.setattr(local, "check_tools", must_not_run)
    for key in ("spark_master", "spark_master_ui", "jupyter", "spark_worker_ui"):
        cluster.deployment.settings["ports"][key] = busy_port
    cluster.check("destroy", None)
    cluster.prepare("destroy")
    assert not secrets.JupyterSecret.of(cluster.deployment.paths).password_file.exists()


# --- state, generations, status, submit -------------------------------------------------------------------


def write_state(deployment: config.Deployment, nodes: dict[str, dict[str, str]], generation: int = 0) -> None:
    resources = []
    run_node = str(local.SCRIPTS / "run-node")
    for key, env in nodes.items():
        name = "master" if key == "master" else "worker"
        instance = {"attributes": {"input": {"value": {"env": env, "generation": generation, "run_node": run_node}}}}
        if name == "worker":
            instance["index_key"] = key
        resources.append({"mode": "managed", "type": "terraform_data", "name": name, "instances": [instance]})
    state = {"resources": resources, "outputs": {"profile": {"value": "/p/profile.sh"}}}
    deployment.paths.folder.mkdir(parents=True, exist_ok=True)
    deployment.paths.state.write_text(json.dumps(state))


def worker_env(state_dir: Path, key: str) -> dict[str, str]:
    """A worker's whole run-node environment (the contract of terraform/modules/spark-node/README.md)."""
    numbers = {
        "SPARK_MASTER_PORT": "7077", "SPARK_MASTER_WEBUI_PORT": "8080", "SPARK_EXECUTOR_CORES": "1",
        "SPARK_EXECUTOR_MEMORY_MB": "1024", "SPARK_DRIVER_MEMORY_MB": "1024", "SPARK_MEMORY_OVERHEAD_MB": "384",
        "SPARK_DRIVER_PORT": "40000", "SPARK_BLOCKMANAGER_PORT": "40001", "SPARK_UI_PORT": "4040",
        "SPARK_UI_PORT_RETRIES": "10", "SPARK_WORKER_CLEANUP_INTERVAL_S": "1800", "SPARK_WORKER_APPDATA_TTL_S": "3600",
        "READY_TIMEOUT_S": "60",
        "SPARK_WORKER_CORES": "1", "SPARK_WORKER_MEMORY_MB": "2048", "SPARK_WORKER_WEBUI_PORT": "8081",
    }  # fmt: skip
    return {
        "NODE_MODE": "local", "NODE_NAME": f"t-worker-{key}", "STATE_DIR": str(state_dir), "APP_USER": "hgi",
        "HAIL_HOME": "/nonexistent", "HAIL_VENV": "/nonexistent", "HAIL_TMP_DIR": str(state_dir / "tmp"),
        "NODE_BIND_ADDRESS": "127.0.0.1", "SPARK_MASTER_HOST": "127.0.0.1", **numbers,
    }  # fmt: skip


def test_run_node_tells_a_dead_node_which_gets_a_new_generation(cluster: local.LocalCluster, tmp_path: Path) -> None:
    """Processes as run-node --status sees them: a live pid whose command line names the node's folder."""
    running_dir, dead_dir = tmp_path / "running", tmp_path / "dead"
    sleeper = subprocess.Popen(["bash", "-c", "sleep 30; true", str(running_dir)])  # its command line names its dir
    try:
        while str(running_dir).encode() not in Path(f"/proc/{sleeper.pid}/cmdline").read_bytes():
            time.sleep(0.01)  # until the child has exec'd bash
        (running_dir / "run").mkdir(parents=True)
        (running_dir / "run" / "spark-worker.pid").write_text(str(sleeper.pid))
        (dead_dir / "run").mkdir(parents=True)
        (dead_dir / "run" / "spark-worker.pid").write_text("999999")
        write_state(cluster.deployment, {"1": worker_env(running_dir, "1"), "2": worker_env(dead_dir, "2")}, 3)
        state = json.loads(cluster.deployment.paths.state.read_text())
        nodes = local.nodes_in_state(state)
        assert local.generations(nodes) == {"1": 3, "2": 4}
        rows = dict(cluster.status_rows(state, state["outputs"]))
        assert rows["t-worker-1 spark-worker"] == f"running (pid {sleeper.pid})"
        assert rows["t-worker-2 spark-worker"] == "dead (pid 999999)"
        assert "secrets/jupyter-password" not in rows["jupyter password"]  # not generated yet
    finally:
        sleeper.kill()
        sleeper.wait()


def test_processes_a_killed_apply_left_are_shown_and_are_ours(cluster: local.LocalCluster, tmp_path: Path) -> None:
    """A node folder with an environment and a live process, but no state: 'running, not in state'."""
    node_dir = cluster.deployment.paths.runtime_dir / "worker-1"
    sleeper = subprocess.Popen(["bash", "-c", "sleep 30; true", str(node_dir)])
    try:
        while str(node_dir).encode() not in Path(f"/proc/{sleeper.pid}/cmdline").read_bytes():
            time.sleep(0.01)
        (node_dir / "run").mkdir(parents=True)
        (node_dir / "run" / "spark-worker.pid").write_text(str(sleeper.pid))
        env = worker_env(node_dir, "1")
        (node_dir / local.NODE_ENV_FILE).write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
        rows = dict(cluster.status_rows(None, {}))
        assert rows["t-worker-1 spark-worker"] == f"running, not in state (pid {sleeper.pid})"
        assert cluster.strays(None) == ["t-worker-1"]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_extra_tfvars_are_declared_by_the_root_module(cluster: local.LocalCluster) -> None:
    extra = cluster.extra_tfvars(None)
    assert set(extra) <= set(cluster.deployment.variables)
    values = cluster.deployment.tfvars(extra)  # raises if anything is undeclared or missing
    assert values["http_port"] >= 8888 and values["host_vcpus"] >= 1
    assert values["jupyter_password_hash_file"].endswith("secrets/jupyter-password.hash")
    assert cluster.extra_tfvars(None) == extra  # stable: a plan's staleness check asks again


def test_submit_refuses_a_deployment_that_is_not_up(cluster: local.LocalCluster, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(1)\n")
    with pytest.raises(RefusedError, match="is not up"):
        cluster.submit(None, {}, str(script), [])
    with pytest.raises(NotFoundError, match="no such script"):
        cluster.submit(None, {}, str(tmp_path / "missing.py"), [])


# --- secrets ----------------------------------------------------------------------------------------------


def test_the_password_is_generated_once_and_kept_private(deployment: config.Deployment) -> None:
    with pytest.raises(NotFoundError, match="no Jupyter password yet"):
        secrets.jupyter_password(deployment.paths)
    first = secrets.ensure_jupyter_password(deployment.paths)
    password = secrets.jupyter_password(deployment.paths)
    assert len(password) >= 20
    assert secrets.ensure_jupyter_password(deployment.paths) == first
    assert secrets.jupyter_password(deployment.paths) == password
    assert oct(first.password_file.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(first.hash_file.stat().st_mode & 0o777) == "0o600"
    hashed = first.hash_file.read_text().strip()
    assert password not in hashed
    assert secrets.check_password(hashed, password) and not secrets.check_password(hashed, password + "x")


def test_the_hash_is_the_one_jupyter_checks() -> None:
    """jupyter_server's passwd_check: algorithm:salt:hexdigest of hashlib.new(algorithm, password + salt)."""
    import hashlib

    hashed = secrets.hash_password("s3cret", "abcd")
    algorithm, salt, digest = hashed.split(":")
    assert digest == hashlib.new(algorithm, b"s3cret" + salt.encode()).hexdigest()
