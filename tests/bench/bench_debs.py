"""Benchmark what `install` adds when the YAML lists Debian packages: resolving them here against a
node's apt (clusters/debs.py), cold (apt reads the sources' lists and downloads the .debs) and warm
(the same request read from the cache), and the size of what is pushed.

Run: py3/bin/python tests/bench/bench_debs.py [--runs N] [--package NAME]
The node is this machine as a node without NAME and whatever needs it (its dpkg status with those
left out; its own Debian sources): the same apt work a node of the image asks for. Each cold run has
a cache of its own; figures are medians of N runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "invoke"))
sys.path.insert(0, str(ROOT / "tests" / "hgi_spark" / "clusters"))

from test_debs import facts_of_this_machine  # noqa: E402

from hgi_spark.clusters import debs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--package", default="jq")
    args = parser.parse_args()
    cold, warm, pushed = [], [], 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache:
            os.environ["HGI_SPARK_CACHE"] = cache
            apt = debs.NodeApt.parse(facts_of_this_machine({args.package}))
            started = time.perf_counter()
            found = debs.resolve(apt, [args.package], where="bench", say=lambda _: None)
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            debs.resolve(apt, [args.package], where="bench", say=lambda _: None)
            warm.append(time.perf_counter() - started)
            pushed = sum(f.stat().st_size for f in found.files())
            names = ", ".join(f.name.split("_")[0] for f in found.files())
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    print(f"resolve {args.package} ({names}; {pushed / 1024:.0f} KiB pushed), median of {args.runs}:")
    print(f"  cold (apt update + download): {cold_s:.2f} s")
    print(f"  warm (from the cache):        {warm_s * 1000:.1f} ms  ({cold_s / warm_s:.0f}x faster)")


if __name__ == "__main__":
    main()
