"""Benchmark what a user runs when something looks wrong: `status`, `status --nodes`, its `--json`
and `diagnose`, on a real local cluster (master and 2 workers), healthy and with a worker killed.

Run: py3/bin/python tests/bench/bench_node_views.py [--runs N]
Each figure is the wall time of the whole command through the front door (bash invoke.sh ...), as a
user sees it, median of N runs; `status` alone (the state, plans and lock, no node asked) is the
baseline the others are quoted against. With a worker killed, `status --nodes` and `diagnose` must
still finish and name it: their time shows that a node that does not answer costs a bounded wait.
The archive's size is reported too (big logs are tailed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from test_local_cluster_client import LocalCluster  # noqa: E402

PORTS = {
    "http": 31888,
    "spark_master": 31077,
    "spark_master_ui": 31080,
    "spark_worker_ui": 31081,
    "jupyter": 31889,
    "spark_app_ui_first": 31040,
    "spark_app_ui_last": 31050,
    "spark_driver": 31100,
    "spark_blockmanager": 31101,
}
KILLED = "spark-local-bench-worker-002"


def timed(runs: int, command: Callable[[], object]) -> list[float]:
    values = []
    for _ in range(runs):
        started = time.perf_counter()
        command()
        values.append(time.perf_counter() - started)
    return values


def diagnose_into(cluster: LocalCluster, dest: Path) -> Callable[[], Path]:
    def run() -> Path:
        dest.mkdir(exist_ok=True)
        done = cluster.invoke("diagnose", "--dest", str(dest))
        return Path(done.stdout.strip().splitlines()[-1])

    return run


def measure(cluster: LocalCluster, runs: int, scratch: Path) -> dict[str, list[float]]:
    figures = {
        "status": timed(runs, lambda: cluster.invoke("status")),
        "status --nodes": timed(runs, lambda: cluster.invoke("status", "--nodes")),
        "status --nodes --json": timed(runs, lambda: cluster.invoke("status", "--nodes", "--json")),
        "diagnose": timed(runs, diagnose_into(cluster, scratch / "healthy")),
    }
    sizes = [p.stat().st_size for p in (scratch / "healthy").glob("*.tar.gz")]
    print(f"archive of a healthy cluster: {statistics.median(sizes) / 1024:.0f} KiB", flush=True)
    os.kill(cluster.pids()["worker-2/spark-worker"], signal.SIGKILL)
    shown = json.loads(cluster.invoke("status", "--nodes", "--json").stdout)
    worker = next(n for n in shown["nodes"] if n["name"] == KILLED)
    if worker["healthy"]:
        raise SystemExit(f"status --nodes still shows {KILLED} healthy after its JVM was killed")
    figures["status --nodes, worker down"] = timed(runs, lambda: cluster.invoke("status", "--nodes"))
    archive = diagnose_into(cluster, scratch / "down")
    figures["diagnose, worker down"] = timed(runs, archive)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-node-views-") as tmp:
        scratch = Path(tmp)
        cluster = LocalCluster(scratch / "repo", "bench", PORTS, workers=2)
        try:
            cluster.invoke("up")
            figures = measure(cluster, args.runs, scratch)
            cluster.down()
        finally:
            cluster.force_stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
    baseline = statistics.median(figures["status"])
    print(f"{'command':30} {'median s':>9} {'min s':>7} {'max s':>7} {'x status':>9}")
    for name, values in figures.items():
        median = statistics.median(values)
        print(f"{name:30} {median:9.2f} {min(values):7.2f} {max(values):7.2f} {median / baseline:9.1f}")
    print(f"runs: {args.runs}; machine: {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
