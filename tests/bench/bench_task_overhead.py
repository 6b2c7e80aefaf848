"""Benchmark a warm task's start-up: what a task that needs no terraform costs over a bare invoke.

Run: py3/bin/python tests/bench/bench_task_overhead.py [--runs N]

Times, median of N runs each, in a copy of the local demo deployment with a password and a
state of its own (so status and outputs have something to read): `py3/bin/invoke --version` (a
bare pyinvoke start), then `bash invoke.sh deployment spark-local/demo TASK` for password,
outputs and status. The target: a task that needs no terraform costs at most 0.2 s over a bare
invoke start. variables.tf is parsed once per digest and cached, and modules are imported only
by the tasks that use them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def timed(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        times.append(time.perf_counter() - started)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr}")
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-task-overhead-") as scratch:
        repo = Path(scratch) / "repo"
        for part in ("deployments", "images", "terraform"):
            shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns(".terraform*", "runtime"))
        folder = repo / "deployments" / "spark-local" / "demo"
        (folder / "secrets").mkdir(mode=0o700, exist_ok=True)
        (folder / "secrets" / "jupyter-password").write_text("not-a-real-password\n")
        outputs = {"jupyter_url": {"value": "http://127.0.0.1:8888/jupyter/", "type": "string", "sensitive": False}}
        (folder / "terraform.tfstate").write_text(
            json.dumps({"version": 4, "serial": 1, "lineage": "bench", "outputs": outputs, "resources": []})
        )
        cli = Path(scratch) / "terraformrc"
        cli.write_text("")
        env = {**os.environ, "HGI_REPOSITORY": str(repo), "TF_CLI_CONFIG_FILE": str(cli)}
        bare = timed([str(ROOT / "py3" / "bin" / "invoke"), "--version"], env, args.runs)
        print(f"median of {args.runs} runs, warm (seconds):")
        print(f"  bare invoke --version          {bare:.3f}")
        for task in ("password", "outputs", "status"):
            argv = ["bash", str(ROOT / "invoke.sh"), "deployment", "spark-local/demo", task]
            timed(argv, env, 1)  # warm the variables cache
            took = timed(argv, env, args.runs)
            print(f"  invoke.sh ... {task:<16} {took:.3f}  (+{took - bare:.3f} over bare invoke)")


if __name__ == "__main__":
    main()
