"""invoke/hgi_spark/local.py and secrets.py without a cluster: the prefix (a real venv and pip,
with no package to download), this machine, ports, terraform state, status rows, submit guard.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hgi_spark import config, local, secrets
from hgi_spark.errors import NotFoundError, RefusedError, ToolError
from hgi_spark.layout import Repository

REPO = Path(__file__).resolve().parents[2]


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
    monkeypatch.setenv(local.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(local.PREFIX_ENV, raising=False)
    return config.load_deployment("spark-local/t", repo)


# --- the prefix -------------------------------------------------------------------------------------------


def test_the_prefix_is_keyed_by_versions_and_constraints(deployment: config.Deployment, tmp_path: Path) -> None:
    spec = local.PrefixSpec.of(deployment.image)
    assert spec.packages == ("hail==0.2.139", "pyspark==3.5.9", "jupyterlab==4.5.11")
    assert local.prefix_path(spec) == tmp_path / "cache" / f"prefix-{spec.digest}"
    other = tmp_path / "constraints.txt"
    other.write_text("numpy==1.0\n")
    assert local.PrefixSpec(spec.python, spec.packages, other).digest != spec.digest
    assert local.PrefixSpec(spec.python, ("hail==0.2.140",), spec.constraints).digest != spec.digest


def test_hgi_spark_prefix_names_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local.PREFIX_ENV, str(tmp_path / "mine"))
    assert local.prefix_path(local.PrefixSpec("3.11", (), None)) == tmp_path / "mine"


def _version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def test_install_is_atomic_and_happens_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real venv and a real pip run; the only requirement is pip itself, already satisfied offline."""
    monkeypatch.setenv(local.CACHE_ENV, str(tmp_path / "cache"))
    spec = local.PrefixSpec(_version(), ("pip",), None)
    with open(os.devnull, "w") as quiet:
        target = local.ensure_prefix(spec, echo=quiet)
    assert target.is_symlink() and (target / "bin" / "python").exists()
    assert json.loads((target / local.STAMP).read_text())["digest"] == spec.digest
    stamp_time = (target / local.STAMP).stat().st_mtime_ns
    assert local.ensure_prefix(spec) == target  # second call: nothing installed
    assert (target / local.STAMP).stat().st_mtime_ns == stamp_time
    # the venv works where it was published
    done = subprocess.run([str(target / "bin" / "python"), "-c", "import sys; print(sys.prefix)"], capture_output=True)
    assert done.returncode == 0
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".link")]
    assert not leftovers


def test_a_new_prefix_replaces_ours_but_never_removes_a_users_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    users = tmp_path / "users-venv"
    (users / "bin").mkdir(parents=True)
    target = tmp_path / "prefix"
    target.symlink_to(users)  # HGI_SPARK_PREFIX names a link to someone's own folder
    monkeypatch.setenv(local.PREFIX_ENV, str(target))
    with open(os.devnull, "w") as quiet:
        local.ensure_prefix(local.PrefixSpec(_version(), ("pip",), None), echo=quiet)
    assert target.resolve() != users and users.is_dir()


def test_a_failed_install_leaves_no_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local.CACHE_ENV, str(tmp_path / "cache"))
    spec = local.PrefixSpec(_version(), (str(tmp_path / "no-such-project"),), None)
    with open(os.devnull, "w") as quiet, pytest.raises(ToolError, match="installing the Hail prefix failed"):
        local.ensure_prefix(spec, echo=quiet)
    assert not local.prefix_path(spec).exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # the temporary venv is gone


def test_a_python_of_another_version_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match=r"Python 3\.99 .*apt-get install python3\.99"):
        local._python_for("3.99")


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


def test_nginx_moves_to_the_first_free_port_when_its_own_is_taken(
    deployment: config.Deployment, busy_port: int
) -> None:
    deployment.settings["ports"]["http"] = busy_port
    port = local.http_port(deployment, {})
    assert port > busy_port and local.port_free(port)


def test_a_busy_spark_port_refuses_the_plan_with_the_yaml_key(
    deployment: config.Deployment, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "ensure_prefix", lambda spec, echo=None: Path("/prefix"))
    monkeypatch.setattr(local, "check_tools", lambda: None)
    for key in ("spark_master", "spark_master_ui", "jupyter"):
        deployment.settings["ports"][key] = free_port()
    deployment.settings["ports"]["spark_worker_ui"] = busy_port - 1  # worker 2's port is the busy one
    with pytest.raises(RefusedError, match=rf"port {busy_port} \(ports.spark_worker_ui \+ 1 for worker 2\)"):
        local.preflight(deployment)
    # the password was generated before the port check, once, 0600
    secret = secrets.JupyterSecret.of(deployment.paths)
    assert oct(secret.password_file.stat().st_mode & 0o777) == "0o600"


# --- state, generations, status, submit -------------------------------------------------------------------


def write_state(deployment: config.Deployment, nodes: dict[str, dict[str, str]], generation: int = 0) -> None:
    resources = []
    for key, env in nodes.items():
        name = "master" if key == "master" else "worker"
        instance = {"attributes": {"input": {"value": {"env": env, "generation": generation, "run_node": "x"}}}}
        if name == "worker":
            instance["index_key"] = key
        resources.append({"mode": "managed", "type": "terraform_data", "name": name, "instances": [instance]})
    state = {"resources": resources, "outputs": {"profile": {"value": "/p/profile.sh"}}}
    deployment.paths.folder.mkdir(parents=True, exist_ok=True)
    deployment.paths.state.write_text(json.dumps(state))


def test_a_dead_node_gets_a_new_generation_a_running_one_keeps_its_own(
    deployment: config.Deployment, tmp_path: Path
) -> None:
    running_dir, dead_dir = tmp_path / "running", tmp_path / "dead"
    sleeper = subprocess.Popen(["bash", "-c", "sleep 30; true", str(running_dir)])  # its command line names its dir
    try:
        while str(running_dir).encode() not in Path(f"/proc/{sleeper.pid}/cmdline").read_bytes():
            time.sleep(0.01)  # until the child has exec'd bash
        (running_dir / "run").mkdir(parents=True)
        (running_dir / "run" / "spark-worker.pid").write_text(str(sleeper.pid))
        (dead_dir / "run").mkdir(parents=True)
        (dead_dir / "run" / "spark-worker.pid").write_text("999999")
        write_state(deployment, {"1": {"STATE_DIR": str(running_dir)}, "2": {"STATE_DIR": str(dead_dir)}}, 3)
        nodes = local.deployed_nodes(deployment)
        assert local.generations(nodes) == {"1": 3, "2": 4}
        rows = dict(local.status_rows(deployment))
        assert rows["1 spark-worker"] == f"running (pid {sleeper.pid})"
        assert rows["2 spark-worker"] == "dead (pid 999999)"
        assert "secrets/jupyter-password" not in rows["jupyter password"]  # not generated yet
    finally:
        sleeper.kill()
        sleeper.wait()


def test_extra_tfvars_are_declared_by_the_root_module(deployment: config.Deployment) -> None:
    extra = local.extra_tfvars(deployment)
    assert set(extra) <= set(deployment.variables)
    values = deployment.tfvars(extra)  # raises if anything is undeclared or missing
    assert values["http_port"] >= 8888 and values["host_vcpus"] >= 1
    assert values["jupyter_password_hash_file"].endswith("secrets/jupyter-password.hash")
    assert local.extra_tfvars(deployment) == extra  # stable: the plan staleness check calls it again


def test_submit_refuses_a_deployment_that_is_not_up(deployment: config.Deployment, tmp_path: Path) -> None:
    script = tmp_path / "job.py"
    script.write_text("print(1)\n")
    with pytest.raises(RefusedError, match="is not up"):
        local.submit(deployment, script)
    with pytest.raises(NotFoundError, match="no such script"):
        local.submit(deployment, tmp_path / "missing.py")


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
