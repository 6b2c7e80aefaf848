"""Benchmark the pre-flight: the loopback cloud's start-up, then the checks' own time against it.

Run: py3/bin/python tests/bench/bench_preflight.py [--runs N] [--cold]
Starts Keystone, Glance, Nova API and Neutron server as the test fixture does (warm: from the
cached templates; --cold: from an empty cache, as on a fresh machine), seeds flavors, networks and
quotas, uploads an image, then times N full pre-flights as a project member (new connection each
time, as a task does). Target: a pre-flight under 2 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "invoke")]

from fixtures.openstack import neutron, nova, start_cloud  # noqa: E402

from hgi_spark.cloud import connection  # noqa: E402
from hgi_spark.cloud.project import Project  # noqa: E402
from hgi_spark.clusters.openstack import preflight  # noqa: E402
from hgi_spark.clusters.openstack.request import Request  # noqa: E402


def request() -> Request:
    return Request(
        deployment="spark/bench",
        master_flavor="m1.large",
        worker_flavor="m1.medium",
        workers=12,
        image="hail-base/9.9.9",
        glance_name="hail-base-9.9.9",
        network="hgi-net",
        subnet_name=None,
        create_network=False,
        external_network="public",
        keypair="spark-bench-key",
        public_key=None,
        volume_gb=100,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="build every service's template from nothing")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-preflight-") as scratch:
        cache = Path(scratch) / "cache" if args.cold else None
        state = Path(scratch) / "state"
        state.mkdir()
        began = time.monotonic()
        cloud = start_cloud(state, cache)
        try:
            cloud.add_services([nova.Nova(), neutron.Neutron()])
            started = time.monotonic() - began
            nova.seed(cloud)
            neutron.seed(cloud)
            seeded = time.monotonic() - began
            alice = cloud.connect("alice")
            alice.image.create_image(
                name="hail-base-9.9.9", disk_format="raw", container_format="bare", data=b"\0" * 1024
            )
            env = cloud.env("alice")
            reports = [
                preflight.run(request(), lambda: Project(connection.connect(env)), connection.describe(env))
                for _ in range(args.runs)
            ]
        finally:
            cloud.stop()
            if cache is not None:
                shutil.rmtree(cache, ignore_errors=True)
    if not reports[0].ok:
        print(reports[0].table())
        raise SystemExit("the benchmark's pre-flight did not pass")
    seconds = [r.seconds for r in reports]
    steps = ", ".join(f"{k} {v:.1f} s" for k, v in cloud.timings.items())
    print(f"{'cold' if args.cold else 'warm'} start of Keystone+Glance+Nova+Neutron: {started:.1f} s ({steps})")
    print(f"  + seeding flavors, networks, quotas as admin: {seeded - started:.1f} s")
    print(f"pre-flight ({len(reports[0].checks)} checks, connect included), {args.runs} runs:")
    median = statistics.median(seconds)
    print(f"  median {median:.3f} s, min {min(seconds):.3f} s, max {max(seconds):.3f} s (target < 2 s)")


if __name__ == "__main__":
    main()
