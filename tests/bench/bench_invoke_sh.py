"""Benchmark the front door: warm invoke.sh overhead against py3/bin/invoke, and a cold bootstrap.

Run: py3/bin/python tests/bench/bench_invoke_sh.py [--runs N] [--cold]
Prints medians in seconds and the ratio; the target is at most 0.3 s of overhead per call.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TASK = ["image", "hail-base/1.0.0", "validate"]


def timed(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def warm(runs: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_"))}
    wrapper = ["bash", str(ROOT / "invoke.sh"), *TASK]
    direct = [str(ROOT / "py3" / "bin" / "invoke"), "--search-root", "invoke", "image.validate", "--name", TASK[1]]
    timed(wrapper, env, ROOT)  # make sure py3/ is current first
    wrapped = [timed(wrapper, env, ROOT) for _ in range(runs)]
    plain = [timed(direct, env, ROOT) for _ in range(runs)]
    w, p = statistics.median(wrapped), statistics.median(plain)
    print(f"warm 'image {TASK[1]} validate', median of {runs}:")
    print(f"  invoke.sh          {w:.3f} s")
    print(f"  py3/bin/invoke     {p:.3f} s")
    print(f"  overhead           {w - p:+.3f} s  (ratio {w / p:.2f}x; target <= 0.3 s)")


def cold() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "repo"
        root.mkdir()
        for name in ("invoke.sh", "requirements.txt"):
            shutil.copy(ROOT / name, root / name)
        shutil.copytree(ROOT / "invoke", root / "invoke", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "images", root / "images")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_"))}
        seconds = timed(["bash", str(root / "invoke.sh"), *TASK], env, root)
        print(f"cold bootstrap (venv + pip install -r requirements.txt) and first task: {seconds:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--cold", action="store_true", help="also time a bootstrap from nothing")
    args = parser.parse_args()
    warm(args.runs)
    if args.cold:
        cold()


if __name__ == "__main__":
    main()
