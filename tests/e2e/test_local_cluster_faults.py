"""Faults in the middle of a change, on the real local cluster: terraform killed with SIGKILL (as
an OOM kill or a lost session would) while an ``up`` or an ``update`` starts nodes (a worker's JVM
killed alone is test_local_cluster.py's). Nothing it started may be hidden from ``status``, called
"another program", or need to be found and killed by hand: the next ``up`` adopts what runs,
``down`` removes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_local_cluster_client import REPO, LocalCluster, port_listening

pytestmark = pytest.mark.slow

PORTS = {
    "http": 38888,
    "spark_master": 37077,
    "spark_master_ui": 38080,
    "spark_worker_ui": 38081,
    "jupyter": 38889,
    "spark_app_ui_first": 34040,
    "spark_app_ui_last": 34050,
    "spark_driver": 34100,
    "spark_blockmanager": 34101,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("repo"), "faults", PORTS, workers=1)
    try:
        yield local
    finally:
        try:
            if local.nodes() or local.pids():
                local.invoke("plan", "--to", "destroy", check=False)
                local.invoke("down", check=False)
        finally:
            local.force_stop()


def children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def terraform_of(task: subprocess.Popen) -> int | None:
    for pid in children(task.pid):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "terraform":
                return pid
        except OSError:
            continue
    return None


def kill_terraform_when(cluster: LocalCluster, args: list[str], ready: Path, timeout: float = 600) -> None:
    """Run a task; once ``ready`` exists, SIGKILL its terraform; the task must fail, not hang."""
    task = subprocess.Popen(
        ["bash", str(REPO / "invoke.sh"), "deployment", cluster.name, *args],
        env=cluster.env(),
        cwd=cluster.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not ready.exists() and time.monotonic() < deadline and task.poll() is None:
            time.sleep(0.1)
        assert ready.exists(), f"{ready} never appeared"
        victim = terraform_of(task)
        assert victim is not None, "terraform is running"
        os.kill(victim, signal.SIGKILL)
        output, _ = task.communicate(timeout=120)
    finally:
        if task.poll() is None:
            os.killpg(task.pid, signal.SIGKILL)
            task.wait()
    assert task.returncode != 0, output


def test_terraform_killed_after_the_master_started(cluster: LocalCluster) -> None:
    """The master's processes run, the state does not hold it: status says so; up adopts them."""
    kill_terraform_when(cluster, ["up"], cluster.folder / "runtime" / "master" / "run" / "nginx.pid")
    running = cluster.pids()
    assert {"master/spark-master", "master/jupyter", "master/nginx"} <= set(running)
    status = cluster.invoke("status").stdout
    assert "running, not in state" in status and "another program" not in status
    again = cluster.invoke("up")  # never refused as "another program": they are this deployment's
    assert "another program" not in again.stderr
    assert set(cluster.pids()) == {"master/spark-master", "master/jupyter", "master/nginx", "worker-1/spark-worker"}
    assert "running, not in state" not in cluster.invoke("status").stdout
    assert cluster.master_json()["aliveworkers"] == 1


def test_terraform_killed_while_a_new_worker_starts_then_down_removes_it(cluster: LocalCluster) -> None:
    """An update killed while worker 2 starts: down removes it with the rest, no process or port left."""
    cluster.define(2)
    cluster.invoke("plan", "--to", "update")
    kill_terraform_when(cluster, ["update"], cluster.folder / "runtime" / "worker-2" / "run" / "spark-worker.pid")
    plan = cluster.invoke("plan", "--to", "destroy")
    assert "running but not in state" in plan.stdout, plan.stdout
    cluster.invoke("down")
    deadline = time.monotonic() + 30
    while cluster.pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert cluster.pids() == {}
    assert not any(port_listening(port) for port in cluster.all_ports())


def test_a_destroy_plan_needs_no_free_port_and_no_prefix(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment whose processes are gone (a reboot), its ports now taken by other programs and
    its Hail prefix removed: plan --to destroy is neither refused nor installs anything. (run-node
    --stop then waits for the node's ports to be free, so the down comes once the other programs
    are gone, with a plan made then: the plan's inputs include nginx's port, which moved.)"""
    import socket

    from hgi_spark.clusters.local import prefix
    from hgi_spark.core import config

    real = prefix.prefix_path(prefix.PrefixSpec.of(config.load_image("hail-base/1.0.0")))
    scratch = tmp_path_factory.mktemp("prefix")
    link = scratch / "prefix"
    link.symlink_to(real.resolve())
    monkeypatch.setenv(prefix.PREFIX_ENV, str(link))
    ports = {**PORTS, **{k: v + 1000 for k, v in PORTS.items()}}
    local = LocalCluster(tmp_path_factory.mktemp("repo"), "gone", ports, workers=1)
    listeners = []
    try:
        local.invoke("up")
        local.force_stop()  # as after a reboot: the state holds nodes whose processes are gone
        for key in ("spark_master", "spark_master_ui", "jupyter", "http"):
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # past the stopped node's TIME_WAIT
            listener.bind(("127.0.0.1", ports[key]))
            listener.listen()
            listeners.append(listener)
        link.unlink()
        planned = local.invoke("plan", "--to", "destroy")
        assert "destroy plan: 0 to add, 0 to change, 2 to destroy" in planned.stdout
        assert not link.exists() and "installing" not in planned.stderr
        for listener in listeners:
            listener.close()
        local.invoke("plan", "--to", "destroy")
        local.invoke("down")
        assert local.nodes() == {}
        assert not link.exists(), "nothing was installed for a destroy"
    finally:
        for listener in listeners:
            listener.close()
        local.force_stop()
