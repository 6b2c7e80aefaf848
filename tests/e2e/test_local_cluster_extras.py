"""Extra packages on the real local cluster, through the front door: a conflicting pin refused in
one line with nothing changed, then a small pure-Python package the image lacks (toolz: not in
images/hail-base/1.0.0/constraints.txt) installed, the nodes moved onto the extras' prefix by the
guarded update, a job whose executors import it on every worker, and a worker added later on the
same prefix.

toolz is resolved and downloaded from PyPI on this machine (the one network use allowed); the
prefix is installed from the image's wheelhouse plus that wheel, into the user's cache like any
local cluster's prefix. Tests run in file order on one cluster; the fixture takes it down.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from test_local_cluster_client import LocalCluster

pytestmark = pytest.mark.slow

PACKAGE = "toolz"  # pure Python, no dependencies, absent from the image's constraints
PORTS = {
    "http": 58888,
    "spark_master": 57077,
    "spark_master_ui": 58080,
    "spark_worker_ui": 58081,
    "jupyter": 58889,
    "spark_app_ui_first": 54040,
    "spark_app_ui_last": 54050,
    "spark_driver": 54100,
    "spark_blockmanager": 54101,
}

# Every task imports the package on the executor that runs it and says where it ran (the worker's
# state dir is in the executor's working directory) and from which environment.
JOB = f"""
import os, sys, time
from pyspark import SparkContext

def probe(_):
    import {PACKAGE}
    time.sleep(1)
    return (os.getcwd().split("/work/")[0], sys.prefix, {PACKAGE}.__version__)

sc = SparkContext.getOrCreate()
seen = sorted(set(sc.parallelize(range(24), 24).map(probe).collect()))
for row in seen:
    print("EXTRAS", *row)
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("repo"), "extras", PORTS, workers=2)
    try:
        local.invoke("up")
        yield local
    finally:
        try:
            if local.nodes() or local.pids():
                local.invoke("plan", "--to", "destroy", check=False)
                local.invoke("down", check=False)
        finally:
            local.force_stop()


def write(cluster: LocalCluster, **keys: object) -> None:
    path = cluster.folder / "deployment.yml"
    document = yaml.safe_load(path.read_text()) or {}
    document.update(keys)
    path.write_text(yaml.safe_dump(document))


def prefixes(cluster: LocalCluster) -> dict[str, str]:
    return {key: env["HAIL_VENV"] for key, env in cluster.nodes().items()}


def test_a_conflicting_pin_is_refused_in_one_line_and_changes_nothing(cluster: LocalCluster) -> None:
    before = prefixes(cluster)
    pids = cluster.pids()
    write(cluster, extra_python_packages=["numpy==1.26.4"])
    done = cluster.invoke("install", check=False)
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "'numpy==1.26.4' conflicts with the image's pin numpy==2.4.6" in errors[0]
    assert "deployment.yml:" in errors[0]  # file:line of the item
    assert prefixes(cluster) == before and cluster.pids() == pids
    assert not (cluster.folder / "update.tfplan").exists()


def test_install_moves_every_node_onto_the_extras_and_a_job_imports_them(cluster: LocalCluster, tmp_path: Path) -> None:
    before = prefixes(cluster)
    write(cluster, extra_python_packages=[PACKAGE])
    done = cluster.invoke("install", timeout=1200)
    lines = done.stdout.strip().splitlines()
    assert sum("restart needed" in line for line in lines) == 3, done.stdout  # master and two workers
    assert "update plan:" in done.stdout and cluster.name in done.stdout, done.stdout
    assert prefixes(cluster) == before  # nothing restarted by install itself
    again = cluster.invoke("install")  # idempotent: the same prefix, the same plan
    assert "restart needed" in again.stdout

    cluster.invoke("update", timeout=900)
    after = prefixes(cluster)
    assert len(set(after.values())) == 1 and set(after.values()) != set(before.values())
    assert "-" in Path(next(iter(after.values()))).name

    status = cluster.invoke("status").stdout
    assert f"extra packages {PACKAGE}==" in " ".join(status.split()), status
    nodes = json.loads(cluster.invoke("status", "--nodes", "--json").stdout)["nodes"]
    assert all(n["extra_packages"].startswith(f"{PACKAGE}==") for n in nodes), nodes

    script = tmp_path / "job.py"
    script.write_text(JOB)
    job = cluster.invoke("submit", str(script), timeout=600)
    rows = [line.split()[1:] for line in job.stdout.splitlines() if line.startswith("EXTRAS ")]
    assert rows, job.stdout + job.stderr[-3000:]
    workers = {row[0].rsplit("/", 1)[-1] for row in rows}
    assert workers == {"worker-1", "worker-2"}, rows
    assert {row[1] for row in rows} == set(after.values())
    print(f"executors imported {PACKAGE} {rows[0][2]} on {sorted(workers)}")

    settled = cluster.invoke("install")
    assert sum("running on the prefix with them" in line for line in settled.stdout.splitlines()) == 3


def test_a_worker_added_later_gets_the_same_packages(cluster: LocalCluster) -> None:
    write(cluster, workers=3)
    cluster.invoke("plan", "--to", "update")
    cluster.invoke("update", timeout=900)
    found = prefixes(cluster)
    assert set(found) == {"master", "1", "2", "3"} and len(set(found.values())) == 1, found
