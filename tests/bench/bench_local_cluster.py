"""Benchmark the local cluster: `up` until every service is ready, the first Hail answer through
`submit`, `down`; optionally the cold install of the Hail prefix.

Run: py3/bin/python tests/bench/bench_local_cluster.py [--runs N] [--cold]
Each run: a fresh spark-local deployment (1 worker, its own ports) in a temporary copy of the
repository's definitions, driven through the front door (bash invoke.sh ...), as a user would:
  up       `up` (clean, init, validate, plan, apply: master, JupyterLab, nginx, worker ready)
  answer   `submit` of the README's initialisation and job, until it printed (100, 50)
  first    seconds from the start of `up` to that answer
  down     `plan --to destroy` + `down` (every process stopped, every port free)
--cold also installs the prefix into an empty cache (HGI_SPARK_CACHE in a temporary folder; about
a minute, uses pip's own cache like any user) and reports that time. Targets: up <= 15 s, first <= 40 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
sys.path.insert(0, str(ROOT / "invoke"))

from test_local_cluster_client import LocalCluster, readme_job  # noqa: E402

PORTS = {
    "http": 29888,
    "spark_master": 29077,
    "spark_master_ui": 29080,
    "spark_worker_ui": 29081,
    "jupyter": 29889,
    "spark_app_ui_first": 29040,
    "spark_app_ui_last": 29050,
    "spark_driver": 29100,
    "spark_blockmanager": 29101,
}
TARGETS = {"up": 15.0, "first": 40.0}


def one_run(scratch: Path, job: Path) -> dict[str, float]:
    cluster = LocalCluster(scratch / f"repo-{time.monotonic_ns()}", "bench", PORTS, workers=1)
    try:
        started = time.perf_counter()
        cluster.invoke("up")
        up = time.perf_counter() - started
        done = cluster.invoke("submit", str(job))
        answered = time.perf_counter()
        if "(100, 50)" not in done.stdout:
            raise SystemExit(f"submit printed no answer:\n{done.stdout}\n{done.stderr[-3000:]}")
        stopping = time.perf_counter()
        cluster.down()
        down = time.perf_counter() - stopping
        return {"up": up, "answer": answered - started - up, "first": answered - started, "down": down}
    finally:
        cluster.force_stop()
        shutil.rmtree(cluster.root, ignore_errors=True)


def cold_install(scratch: Path) -> float:
    from hgi_spark.clusters.local import prefix
    from hgi_spark.core import config
    from hgi_spark.core.layout import CACHE_ENV

    cache = scratch / "cold-cache"
    os.environ[CACHE_ENV] = str(cache)
    try:
        image = config.load_image("hail-base/1.0.0")
        started = time.perf_counter()
        prefix.ensure_prefix(prefix.PrefixSpec.of(image))
        return time.perf_counter() - started
    finally:
        del os.environ[CACHE_ENV]
        shutil.rmtree(cache, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="also time a cold install of the Hail prefix")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-local-cluster-") as tmp:
        scratch = Path(tmp)
        job = scratch / "job.py"
        job.write_text(readme_job())
        if args.cold:
            print(f"cold install of the Hail prefix: {cold_install(scratch):.1f} s", flush=True)
        runs = [one_run(scratch, job) for _ in range(args.runs)]
    print(f"{'step':8} {'median s':>9} {'min s':>7} {'max s':>7} {'target':>7}")
    verdict = 0
    for step in ("up", "answer", "first", "down"):
        values = [r[step] for r in runs]
        target = TARGETS.get(step)
        median = statistics.median(values)
        mark = "" if target is None else (f"{target:>5.0f} {'ok' if median <= target else 'MISSED'}")
        print(f"{step:8} {median:9.1f} {min(values):7.1f} {max(values):7.1f} {mark:>7}")
        if target is not None and median > target:
            verdict = 1
    print(f"runs: {len(runs)}; machine: {os.cpu_count()} cores")
    return verdict


if __name__ == "__main__":
    sys.exit(main())
