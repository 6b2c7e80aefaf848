"""Day-2 operations on the real local cluster: per-node health, one-command diagnostics, idle
clusters reaped only when they opted in, and termination protection.

A deployment of its own (its own ports), driven through the front door as a user would; tests run
in file order on one cluster, the last one reaps it.
"""

from __future__ import annotations

import json
import os
import signal
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_local_cluster_client import Jupyter, LocalCluster

pytestmark = pytest.mark.slow

PORTS = {
    "http": 48888,
    "spark_master": 47077,
    "spark_master_ui": 48080,
    "spark_worker_ui": 48081,
    "jupyter": 48889,
    "spark_app_ui_first": 44040,
    "spark_app_ui_last": 44050,
    "spark_driver": 44100,
    "spark_blockmanager": 44101,
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("repo"), "day2", PORTS, workers=2)
    try:
        local.invoke("up")
        yield local
    finally:
        try:
            if local.nodes() or local.pids():
                write(local, protect=False)
                local.invoke("plan", "--to", "destroy", check=False)
                local.invoke("down", check=False)
        finally:
            local.force_stop()


def write(cluster: LocalCluster, **keys: object) -> None:
    """Add keys to the deployment's YAML (protect, max_idle ...)."""
    path = cluster.folder / "deployment.yml"
    document = yaml.safe_load(path.read_text()) or {}
    document.update(keys)
    path.write_text(yaml.safe_dump(document))


def secrets_of(cluster: LocalCluster) -> list[str]:
    folder = cluster.folder / "secrets"
    return [(folder / name).read_text().strip() for name in ("jupyter-password", "jupyter-password.hash")]


def test_status_nodes_shows_every_node_registered(cluster: LocalCluster) -> None:
    shown = json.loads(cluster.invoke("status", "--nodes", "--json").stdout)
    nodes = {n["name"]: n for n in shown["nodes"]}
    assert [n["role"] for n in shown["nodes"]] == ["master", "worker", "worker"]
    assert all(n["healthy"] for n in nodes.values()), nodes
    workers = [n for n in nodes.values() if n["role"] == "worker"]
    assert all(n["registered"].startswith("ALIVE, ") for n in workers)
    assert all(n["tmp_free"].startswith("shared tmp: ") for n in nodes.values())
    table = cluster.invoke("status", "--nodes").stdout
    assert "spark-local-day2-worker-002" in table and "registered: ALIVE" in table


def test_diagnose_holds_every_node_and_no_secret(cluster: LocalCluster, tmp_path: Path) -> None:
    started = time.monotonic()
    done = cluster.invoke("diagnose", "--dest", str(tmp_path))
    print(f"diagnose took {time.monotonic() - started:.1f} s")
    archive = Path(done.stdout.strip().splitlines()[-1])
    assert (
        archive.parent == tmp_path
        and archive.name.startswith("spark-local-day2-")
        and archive.suffixes[-2:]
        == [
            ".tar",
            ".gz",
        ]
    )
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        texts = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers() if m.isfile()}
    for node in ("spark-local-day2-master", "spark-local-day2-worker-001", "spark-local-day2-worker-002"):
        assert any(f"/nodes/{node}/logs/" in name for name in names), node
    assert any(name.endswith("/status.json") for name in names)
    assert any(name.endswith("/configuration/terraform.tfvars.json") for name in names)
    for secret in secrets_of(cluster):
        assert all(secret not in text for text in texts.values())


def test_a_killed_worker_is_down_in_status_and_named_by_diagnose(cluster: LocalCluster, tmp_path: Path) -> None:
    pid = cluster.pids()["worker-2/spark-worker"]
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        shown = json.loads(cluster.invoke("status", "--nodes", "--json").stdout)
        worker = next(n for n in shown["nodes"] if n["name"] == "spark-local-day2-worker-002")
        if not worker["registered"].startswith("ALIVE"):
            break
        time.sleep(2)
    assert not worker["healthy"]
    assert worker["services"]["spark-worker"].startswith("dead")
    assert not worker["registered"].startswith("ALIVE")  # the master dropped it (or lists it DEAD)
    done = cluster.invoke("diagnose", "--dest", str(tmp_path))
    with tarfile.open(done.stdout.strip().splitlines()[-1]) as tar:
        summary = next(tar.extractfile(m).read().decode() for m in tar.getmembers() if m.name.endswith("SUMMARY.txt"))
    assert "spark-local-day2-worker-002: DOWN" in summary
    cluster.invoke("up")  # brings the worker back for the tests after this one


def test_reap_needs_the_opt_in_waits_for_a_busy_kernel_and_refuses_a_protected_cluster(cluster: LocalCluster) -> None:
    no_opt_in = cluster.invoke("reap").stdout
    assert "not reaped: max_idle is not set" in no_opt_in
    write(cluster, max_idle="5s")
    jupyter = Jupyter(f"http://127.0.0.1:{PORTS['http']}/jupyter/")
    assert jupyter.login(cluster.invoke("password").stdout.strip()) == 302
    kernel = jupyter.start_kernel()
    busy = threading.Thread(
        target=jupyter.execute, args=(kernel, "import time; time.sleep(40)"), kwargs={"timeout": 90}
    )
    busy.start()
    try:
        time.sleep(8)
        assert "busy" in cluster.invoke("idle").stdout
        assert "not reaped: 1 busy Jupyter kernel" in cluster.invoke("reap").stdout
    finally:
        busy.join()
    jupyter.stop_kernel(kernel)
    write(cluster, protect=True)
    refused = cluster.invoke("reap", check=False)
    assert refused.returncode == 6 and "is protected" in refused.stderr
    assert cluster.invoke("plan", "--to", "destroy", check=False).returncode == 6
    write(cluster, protect=False)
    time.sleep(6)
    assert "idle for" in cluster.invoke("idle").stdout
    reaped = cluster.invoke("reap")
    assert "reaped after" in reaped.stdout, reaped.stdout + reaped.stderr
    assert cluster.pids() == {}
    assert cluster.nodes() == {}  # the state says destroyed
