"""status --nodes and diagnose of a cloud or VM cluster, over real ssh, against sshd nodes on loopback.

The nodes are real OpenSSH servers (tests/fixtures/sshd.py): the master at its "public" address,
the workers on their own loopback addresses reached through the master (ProxyJump), every host
key pinned from a console log as the VM cluster's serial consoles print them (spark-vm), or pinned
beforehand as `up` does from Nova's (spark: no Nova compute here). Each node has its own
/etc/hgi-spark, state dir and shared tmp where its image definition's layout says, in its mount namespace.

`install` runs there for real too: the image's install-hail-env (packer/scripts/, beside run-node in
the nodes' scripts folder as on an image) pip-installs a wheel resolved and downloaded on this
machine into each node's own real venv (made here with python3.11 -m venv: the stand-in for the
image's Hail venv, without Hail) under the image's constraints.txt in the node's /etc/hgi-spark; the
ssh user is root, so no sudo; the Debian package asked for is one this machine has (dpkg answers
for every node), so apt-get is not run.

What runs there is the real run-node --status, in its local mode: its system mode asks systemd,
which is not PID 1 on this machine (its systemctl output is parsed in
tests/hgi_spark/clusters/test_nodes.py; the VM cluster's end-to-end test runs it for real). The
node's daemons are stand-ins: sleeping processes whose command line names the state dir, with
their pid files, which is all run-node --status checks. The master's nginx is not there, so the
master's view says it does not answer, as with a master that is down.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures import sshd

from hgi_spark.clusters import extras, nodes, remote
from hgi_spark.clusters.diagnose import Archive
from hgi_spark.core import config, secrets
from hgi_spark.core.layout import Repository

REPO = Path(__file__).resolve().parents[2]
RUN_NODE = REPO / "terraform" / "modules" / "spark-node" / "scripts" / "run-node"
INSTALL_HAIL_ENV = REPO / "packer" / "scripts" / "install-hail-env"
WORKERS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")  # the last one never answers


def node_env(role: str, name: str, paths: dict[str, str], address: str) -> str:
    """The node environment run-node reads (the contract of terraform/modules/spark-node)."""
    env = {
        "NODE_MODE": "local",
        "NODE_NAME": name,
        "STATE_DIR": paths["state_dir"],
        "APP_USER": "hgi",
        "HAIL_HOME": paths["hail_home"],
        "HAIL_VENV": paths["hail_venv"],
        "HAIL_TMP_DIR": paths["hail_tmp_dir"],
        "NODE_BIND_ADDRESS": address,
        "SPARK_MASTER_HOST": "127.0.0.1",
        "SPARK_MASTER_PORT": "7077",
        "SPARK_MASTER_WEBUI_PORT": "8080",
        "SPARK_EXECUTOR_CORES": "1",
        "SPARK_EXECUTOR_MEMORY_MB": "1024",
        "SPARK_DRIVER_MEMORY_MB": "1024",
        "SPARK_MEMORY_OVERHEAD_MB": "384",
        "SPARK_DRIVER_PORT": "40000",
        "SPARK_BLOCKMANAGER_PORT": "40001",
        "SPARK_UI_PORT": "4040",
        "SPARK_UI_PORT_RETRIES": "10",
        "SPARK_WORKER_CLEANUP_INTERVAL_S": "1800",
        "SPARK_WORKER_APPDATA_TTL_S": "86400",
        "READY_TIMEOUT_S": "60",
    }
    if role == "master":
        env |= {
            "JUPYTER_PORT": "8889",
            "HTTP_PORT": "80",
            "HTTP_LISTEN_ADDRESS": "*",
            "JUPYTER_PASSWORD_HASH_FILE": f"{paths['etc_dir']}/jupyter-password.hash",
            "NOTEBOOK_DIR": paths["notebook_dir"],
        }
    else:
        env |= {"SPARK_WORKER_CORES": "2", "SPARK_WORKER_MEMORY_MB": "2048", "SPARK_WORKER_WEBUI_PORT": "8081"}
    return "".join(f"{k}={v}\n" for k, v in sorted(env.items()))


class Cluster:
    """A deployment of ``kind`` in a copy of the repository's definitions, its nodes sshd's on loopback."""

    def __init__(self, kind: str, root: Path, fleet: sshd.Fleet) -> None:
        self.kind, self.root, self.fleet = kind, root, fleet
        for part in ("terraform", "images", "deployments"):
            shutil.copytree(
                REPO / part, root / part, ignore=shutil.ignore_patterns(".terraform*", "runtime", "secrets")
            )
        self.name = f"{kind}/ssh"
        self.slug = f"{kind}-ssh"
        # The paths every node has, each node's own folder mounted there in its namespace.
        self.mounts = root / "node-paths"
        self.paths = {
            key: str(self.mounts / key)
            for key in ("etc_dir", "state_dir", "hail_tmp_dir", "hail_home", "hail_venv", "notebook_dir")
        }
        for path in self.paths.values():
            Path(path).mkdir(parents=True)
        # The nodes' paths are the image definition's: this tree's image has these, and run-node
        # where this checkout has it instead of where the image has it (/opt/hgi-spark/node).
        image_defaults = root / "images" / "hail-base" / "defaults.yml"
        definition = yaml.safe_load(image_defaults.read_text())
        definition["layout"] |= {k: v for k, v in self.paths.items() if k != "notebook_dir"}
        # The nodes' scripts folder: run-node and its siblings, and the image's installer beside them.
        scripts = root / "node-scripts"
        scripts.mkdir()
        for script in [*RUN_NODE.parent.iterdir(), INSTALL_HAIL_ENV]:
            (scripts / script.name).symlink_to(script)
        definition["layout"]["node_scripts_dir"] = str(scripts)
        definition["app_user"]["home"] = self.paths["notebook_dir"]
        image_defaults.write_text(yaml.safe_dump(definition))
        self.ssh_port = sshd.free_port(WORKERS[0])
        folder = root / "deployments" / kind / "ssh"
        folder.mkdir(parents=True)
        (folder / "deployment.yml").write_text(
            yaml.safe_dump(
                {
                    "ports": {"ssh": self.ssh_port},
                    "ssh_user": "root",
                    "ssh_public_key_file": str(fleet.user_key) + ".pub",
                }
                | ({"allowed_cidrs": ["127.0.0.0/8"], "network": {"name": "cluster"}} if kind == "spark" else {})
            )
        )
        self.deployment = config.load_deployment(self.name, Repository(root))
        secrets.ensure_jupyter_password(self.deployment.paths)
        secret = secrets.JupyterSecret.of(self.deployment.paths)
        self.secrets = [p.read_text().strip() for p in (secret.password_file, secret.hash_file)]
        self.sleepers: list[subprocess.Popen] = []

    def node_folder(self, name: str, role: str, address: str, processes: dict[str, bool]) -> dict[str, Path]:
        """The node's own folders: node.env, the hash on the master, logs, conf, pid files of stand-ins
        (running, or dead: a pid file of an exited process)."""
        own = {key: self.root / "nodes" / name / key for key in self.paths}
        for folder in own.values():
            folder.mkdir(parents=True)
        (own["etc_dir"] / "node.env").write_text(node_env(role, name, self.paths, address))
        if role == "master":
            (own["etc_dir"] / "jupyter-password.hash").write_text(self.secrets[1] + "\n")
        state = own["state_dir"]
        for sub in ("logs", "run", "conf/spark", "work/app-20250101000000-0001/0"):
            (state / sub).mkdir(parents=True)
        # A log that happens to hold the password (a user pasted it): the archive must mask it.
        (state / "logs" / f"{name}.log").write_text(f"started {name}\nlogin with {self.secrets[0]}\n")
        (state / "conf" / "spark" / "spark-defaults.conf").write_text("spark.master spark://127.0.0.1:7077\n")
        (state / "work" / "app-20250101000000-0001" / "0" / "stderr").write_text("executor 0 of app 1\n")
        for process, alive in processes.items():
            if alive:
                sleeper = subprocess.Popen(
                    [sys.executable, "-c", "import time; time.sleep(600)", self.paths["state_dir"]],
                    stdin=subprocess.DEVNULL,
                )
                self.sleepers.append(sleeper)
                pid = sleeper.pid
            else:
                done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
                pid = int(done.stdout)
            (state / "run" / f"{process}.pid").write_text(f"{pid}\n")
        return {self.paths[key]: folder for key, folder in own.items()}

    def outputs(self, master_port: int, consoles: dict[str, str]) -> dict[str, Any]:
        names = [f"{self.slug}-worker-{i:03d}" for i in range(1, len(WORKERS) + 1)]
        values: dict[str, Any] = {
            "master_name": f"{self.slug}-master",
            "worker_names": names,
            "master_private_ip": "127.0.0.1",
            "worker_private_ips": list(WORKERS),
            # Nothing listens there: the master's view says so (its nginx is not part of this test).
            "jupyter_url": f"http://127.0.0.1:{sshd.free_port()}/jupyter/",
            "ssh": {
                "alias": f"{self.slug}-master",
                "host": "127.0.0.1",
                "user": "root",
                "port": master_port,
                "identity_file": str(self.fleet.user_key),
                "server": f"{self.slug}-master",
            },
            "console_logs": consoles,
        }
        return {k: {"value": v, "type": "object", "sensitive": False} for k, v in values.items()}

    def stop(self) -> None:
        for sleeper in self.sleepers:
            sleeper.terminate()
            sleeper.wait(timeout=10)


def console(host_key: str) -> str:
    return f"boot noise\n-----BEGIN SSH HOST KEY KEYS-----\n{host_key}\n-----END SSH HOST KEY KEYS-----\n"


@pytest.fixture(params=["spark-vm", "spark"])
def cluster(request, ssh_fleet: sshd.Fleet, tmp_path: Path, monkeypatch) -> Iterator[tuple[Cluster, dict]]:
    """Master, two answering workers (the second with its Spark worker dead), a third that never answers."""
    kind = request.param
    made = Cluster(kind, tmp_path / "repo", ssh_fleet)
    master_port = sshd.free_port()
    consoles: dict[str, str] = {}
    master = ssh_fleet.start(
        f"{made.slug}-master",
        "127.0.0.1",
        master_port,
        made.node_folder(
            f"{made.slug}-master", "master", "127.0.0.1", {"spark-master": True, "jupyter": True, "nginx": True}
        ),
    )
    hosts = {master.name: master.host_key}
    for index, address in enumerate(WORKERS[:2], start=1):
        name = f"{made.slug}-worker-{index:03d}"
        node = ssh_fleet.start(
            name, address, made.ssh_port, made.node_folder(name, "worker", address, {"spark-worker": index == 1})
        )
        hosts[name] = node.host_key
    # The third worker: its TCP port accepts (the kernel completes the handshake) and then nothing.
    silent = socket.socket()
    silent.bind((WORKERS[2], made.ssh_port))
    silent.listen(8)
    hosts[f"{made.slug}-worker-003"] = sshd.make_key(tmp_path / "silent" / "key", "silent")
    for name, key in hosts.items():
        path = tmp_path / "consoles" / f"{name}.log"
        path.parent.mkdir(exist_ok=True)
        path.write_text(console(key))
        consoles[name] = str(path)
    outputs = made.outputs(master_port, consoles)
    if kind == "spark":  # pinned as `up` pins them from Nova's console logs
        read = lambda name: console(hosts[name])  # noqa: E731
        remote.pin(outputs, read, made.deployment.paths.known_hosts)
        remote.pin_workers(outputs, read, made.deployment.paths.known_hosts)
    try:
        yield made, outputs
    finally:
        silent.close()
        made.stop()


def the_cluster(made: Cluster, say: Any = lambda _text: None) -> Any:
    """The deployment's Cluster class (OpenStackCluster or VmCluster), as the workflow gets it."""
    from hgi_spark.clusters import for_deployment

    return for_deployment(made.deployment, say)


def test_status_nodes_shows_every_node_and_one_that_does_not_answer(cluster) -> None:
    made, outputs = cluster
    started = time.monotonic()
    found = the_cluster(made).health(None, outputs)
    took = time.monotonic() - started
    assert took < nodes.STATUS_TIMEOUT_S, f"status --nodes took {took:.1f} s"
    rows = dict(found.rows())
    shown = {n.name: n for n in found.nodes}
    assert list(shown) == [f"{made.slug}-master", *(f"{made.slug}-worker-{i:03d}" for i in (1, 2, 3))]

    master = shown[f"{made.slug}-master"]
    assert master.reachable and set(master.services) == {"spark-master", "jupyter", "nginx"}
    assert all(state.startswith("running (pid ") for state in master.services.values())
    assert master.tmp_free.startswith("shared tmp: ") and "GiB free of" in master.tmp_free

    one, two, three = (shown[f"{made.slug}-worker-{i:03d}"] for i in (1, 2, 3))
    assert one.reachable and one.services["spark-worker"].startswith("running")
    assert one.registered == "unknown (the master does not answer)"
    assert two.reachable and two.services["spark-worker"].startswith("dead") and not two.healthy
    assert rows[two.name].startswith("DOWN: spark-worker dead")
    assert not three.reachable and rows[three.name].startswith("UNREACHABLE: ")
    assert "master" in rows and "does not answer" in rows["master"]

    as_json = json.loads(found.text(as_json=True))
    assert [n["reachable"] for n in as_json["nodes"]] == [True, True, True, False]
    print(f"status --nodes over ssh ({made.kind}): {took:.1f} s\n{found.text()}")


def test_diagnose_has_every_node_s_files_and_no_secret(cluster, tmp_path: Path) -> None:
    made, outputs = cluster
    said: list[str] = []
    path = tmp_path / "out" / "archive.tar.gz"
    started = time.monotonic()
    with Archive(path, secrets=made.secrets) as archive:
        the_cluster(made, said.append).diagnose(None, outputs, archive)
    print(f"diagnose over ssh ({made.kind}): {time.monotonic() - started:.1f} s")
    with tarfile.open(path) as tar:
        texts = {m.name.split("/", 1)[1]: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    for name in (f"{made.slug}-master", f"{made.slug}-worker-001"):
        base = f"nodes/{name}"
        assert texts[f"{base}/logs/{name}.log"].startswith(f"started {name}")
        assert texts[f"{base}/conf/spark/spark-defaults.conf"] == "spark.master spark://127.0.0.1:7077\n"
        assert texts[f"{base}/work/app-20250101000000-0001/0/stderr"] == "executor 0 of app 1\n"
        assert f"NODE_NAME={name}" in texts[f"{base}/node.env"]
        assert "# df -h" in texts[f"{base}/state.txt"]
    assert "spark-worker dead" in texts[f"nodes/{made.slug}-worker-002/processes.txt"]
    assert "nginx running" in texts[f"nodes/{made.slug}-master/processes.txt"]
    silent = f"{made.slug}-worker-003"
    assert f"nodes/{silent}/UNREACHABLE.txt" in texts
    assert any(line.startswith(f"{silent}: not reached over ssh") for line in texts["SUMMARY.txt"].splitlines())
    assert any(f"{silent}:" in line for line in said), said  # progress per node
    for secret in made.secrets:
        assert all(secret not in text for text in texts.values())
    assert "login with (masked)" in texts[f"nodes/{made.slug}-master/logs/{made.slug}-master.log"]


def test_ssh_config_reaches_a_worker_through_the_master(cluster, tmp_path: Path) -> None:
    """The entries ssh-config prints, as a user's ~/.ssh/config: a worker by its name, through the master."""
    made, outputs = cluster
    text = the_cluster(made).ssh_config(outputs)
    config_file = tmp_path / "ssh_config"
    config_file.write_text(text)
    done = subprocess.run(
        [
            "ssh",
            "-F",
            str(config_file),
            "-o",
            "BatchMode=yes",
            f"{made.slug}-worker-001",
            "cat",
            f"{made.paths['etc_dir']}/node.env",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert done.returncode == 0, done.stderr
    assert f"NODE_NAME={made.slug}-worker-001" in done.stdout
    assert f"ProxyJump {made.slug}-master" in text


def counted(run_once, asked: list[str]):
    """run_once, noting the node of every ssh it makes."""

    def wrapped(config_file, node, script, timeout_s):
        asked.append(node.name)
        return run_once(config_file, node, script, timeout_s)

    return wrapped


def test_install_puts_the_extras_on_every_node_that_answers(cluster, tmp_path: Path, monkeypatch) -> None:
    """toolz resolved and downloaded here, sent to each node in the script, installed by the image's
    install-hail-env into the node's venv; the silent worker is one FAILED line, the others go on;
    a second install changes nothing; status --nodes shows each node's record."""
    made, outputs = cluster
    monkeypatch.setenv("HGI_SPARK_CACHE", str(tmp_path / "cache"))
    # The silent worker times out in the banner exchange, which install asks again: once is enough here.
    monkeypatch.setattr(extras, "INSTALL_RECONNECTS", 1)
    asked: list[str] = []
    monkeypatch.setattr(nodes, "_run_once", counted(nodes._run_once, asked))
    constraints = made.root / "images" / "hail-base" / "1.0.0" / "constraints.txt"
    answering = [f"{made.slug}-master", f"{made.slug}-worker-001", f"{made.slug}-worker-002"]
    for name in answering:
        own = made.root / "nodes" / name
        subprocess.run(["python3.11", "-m", "venv", str(own / "hail_venv")], check=True)
        shutil.copy(constraints, own / "etc_dir" / "constraints.txt")
    path = made.root / "deployments" / made.kind / "ssh" / "deployment.yml"
    document = yaml.safe_load(path.read_text())
    document |= {"extra_python_packages": ["toolz"], "extra_system_packages": ["openssh-client"]}
    path.write_text(yaml.safe_dump(document))
    made.deployment = config.load_deployment(made.name, Repository(made.root))

    started = time.monotonic()
    report = the_cluster(made).install(None, outputs)
    took = time.monotonic() - started
    lines = dict(line.split(": ", 1) for line in report.text().splitlines())
    print(f"install over ssh ({made.kind}): {took:.1f} s\n{report.text()}")
    for name in answering:
        assert lines[name].startswith("ok: installed toolz=="), lines
        venv_python = made.root / "nodes" / name / "hail_venv" / "bin" / "python"
        done = subprocess.run([str(venv_python), "-c", "import toolz; print(toolz.__version__)"], capture_output=True)
        assert done.returncode == 0, done.stderr
        record = json.loads((made.root / "nodes" / name / "state_dir" / "extra-packages.json").read_text())
        assert record["python"] == list(report.resolution.pins) and record["system"] == ["openssh-client"]
    assert [r.name for r in report.failed] == [f"{made.slug}-worker-003"]
    assert asked.count(f"{made.slug}-worker-003") == 2 and asked.count(answering[1]) == 1, asked  # asked again

    again = the_cluster(made).install(None, outputs)
    assert [r.line for r in again.results if r.ok] == ["ok: unchanged (it had them all)"] * 3

    shown = {n.name: n for n in the_cluster(made).health(None, outputs).nodes}
    for name in answering:
        assert shown[name].extras == ", ".join([*report.resolution.pins, "openssh-client"])
    assert "extra packages: toolz==" in dict(the_cluster(made).health(None, outputs).rows())[answering[1]]

    # The master keeps the set on its shared tmp dir, for nodes that boot later (run-node --share-extras).
    share = made.root / "nodes" / answering[0] / "hail_tmp_dir" / ".hgi-spark" / "extra-packages"
    assert json.loads((share / "record.json").read_text())["python"] == list(report.resolution.pins)
    assert sorted(p.name.split("-")[0] for p in (share / "wheels").glob("*.whl")) == ["toolz"]
    assert not (made.root / "nodes" / answering[1] / "hail_tmp_dir" / ".hgi-spark").exists()

    # Dropped from the YAML: removed from every node, and from the set kept for later nodes.
    path.write_text(yaml.safe_dump(document | {"extra_python_packages": [], "extra_system_packages": []}))
    made.deployment = config.load_deployment(made.name, Repository(made.root))
    dropped = the_cluster(made).install(None, outputs)
    assert [r.line for r in dropped.results if r.ok] == ["ok: removed toolz"] * 3, dropped.text()
    for name in answering:
        venv_python = made.root / "nodes" / name / "hail_venv" / "bin" / "python"
        assert subprocess.run([str(venv_python), "-c", "import toolz"], capture_output=True).returncode == 1
    assert json.loads((share / "record.json").read_text())["python"] == []


def test_install_refuses_a_conflicting_pin_before_any_node_is_touched(cluster, tmp_path: Path, monkeypatch) -> None:
    from hgi_spark.core.errors import ConfigError

    made, outputs = cluster
    monkeypatch.setenv("HGI_SPARK_CACHE", str(tmp_path / "cache"))
    path = made.root / "deployments" / made.kind / "ssh" / "deployment.yml"
    document = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(document | {"extra_python_packages": ["tabulate", "numpy==1.26.4"]}))
    made.deployment = config.load_deployment(made.name, Repository(made.root))
    with pytest.raises(ConfigError) as refused:
        the_cluster(made).install(None, outputs)
    assert "conflicts with the image's pin numpy==" in refused.value.message
    assert "deployment.yml:" in refused.value.message.split(": ")[0] + ":"
    assert not list((made.root / "nodes").glob("*/state_dir/extra-packages.json"))
