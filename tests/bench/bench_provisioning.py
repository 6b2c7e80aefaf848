"""Benchmark image provisioning in a debootstrap'd root, Debian 12 by default (the harness of tests/packer/).

Run (as root): py3/bin/python tests/bench/bench_provisioning.py [--base B] [--cold] [--no-wheel-cache|--both]
Measures, each on a fresh root:
  base       building the minbase tarball with debootstrap (only with --cold: the day's tarball is
             removed first) or, when cached, unpacking it
  install    install-node's first run, split by its own steps (packages, venv, ...)
  rerun      the second run (must change nothing)
with the host wheel cache (~/.cache/hgi-spark/pip) bound in, and without it (--no-wheel-cache, or
both with --both). Roots are unpacked on tmpfs when memory allows (packer_rootfs.scratch_parent);
HGI_ROOTFS_DIR=/var/tmp forces the disk. Set HGI_REPOSITORY to run another checkout's image definition.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "packer"))
sys.path.insert(0, str(ROOT / "invoke"))

import packer_rootfs as rootfs  # noqa: E402

from hgi_spark.core.layout import Repository  # noqa: E402

# What an image definition for the base would name (see tests/packer/test_install_node.py).
OVERRIDES = {"ubuntu-24.04": {"JAVA_VERSION": "11", "PYTHON_VERSION": "3.12"}}


def one_run(scratch: Path, *, base: str, cold: bool, wheel_cache: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.monotonic()
    if cold:
        for old in (rootfs.CACHE_DIR / "debootstrap").glob(f"{base}-*.tar"):
            old.unlink()
    tarball = rootfs.base_tarball(base)
    times["base tarball" + (" (debootstrap)" if cold else " (cached)")] = time.monotonic() - started
    unpacked = time.monotonic()
    root = rootfs.NodeRoot.unpack(tarball, scratch, base)
    times[f"unpack + prepare (in {root.path.parent})"] = time.monotonic() - unpacked
    try:
        repo = Repository.default()
        cache = rootfs.CACHE_DIR / "pip" if wheel_cache else None
        overrides = OVERRIDES.get(base, {})
        result = root.run(root.stage(repo, env_overrides=overrides, pip_cache=wheel_cache), pip_cache=cache)
        if result.returncode != 0:
            raise SystemExit(f"install-node failed:\n{result.stderr[-3000:]}")
        times["install-node"] = result.seconds
        for step, (seconds, outcome) in rootfs.step_times(result.stderr).items():
            times[f"  step {step} ({outcome})"] = seconds
        rerun = root.run(root.stage(repo, env_overrides=overrides, pip_cache=wheel_cache), pip_cache=cache)
        times["install-node again (no change)"] = rerun.seconds
        times["total"] = time.monotonic() - started
    finally:
        root.remove()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="debian-12", choices=sorted(rootfs.BASES), help="the distribution")
    parser.add_argument("--cold", action="store_true", help="rebuild the debootstrap tarball first")
    parser.add_argument("--no-wheel-cache", action="store_true", help="do not bind the host wheel cache in")
    parser.add_argument("--both", action="store_true", help="run without and then with the wheel cache")
    args = parser.parse_args()
    variants = [False, True] if args.both else [not args.no_wheel_cache]
    with tempfile.TemporaryDirectory(prefix="bench-provisioning-", dir="/var/tmp") as scratch:
        for index, wheel_cache in enumerate(variants):
            times = one_run(Path(scratch), base=args.base, cold=args.cold and index == 0, wheel_cache=wheel_cache)
            print(f"\n{args.base}, wheel cache {'bound in' if wheel_cache else 'off'}:")
            for name, seconds in times.items():
                print(f"  {name:<44} {seconds:7.1f} s")


if __name__ == "__main__":
    main()
