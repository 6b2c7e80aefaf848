"""Benchmark the deployment workflow: a full cycle, and the wrapper's overhead per task over raw terraform.

Run: py3/bin/python tests/bench/bench_workflow.py [--runs N]
On the provider-free toy module (tests/fixtures/toy-module): up -> plan --to update -> update ->
plan --to destroy -> down, each timed (median of N cycles) three ways:
  task     py3/bin/invoke --search-root invoke deployment.TASK (a Python start, invoke, config, terraform)
  library  hgi_spark.workflow.TASK() in this process (config, digests, lock, terraform)
  raw      the same terraform commands typed by hand in a plain folder (no wrapper at all)
overhead = library - raw (what the wrapper itself costs); task - library is the Python start-up.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "toy-module"
NAME = "toy/t1"
sys.path.insert(0, str(ROOT / "invoke"))
STEPS = [("up", None), ("plan", "update"), ("update", None), ("plan", "destroy"), ("down", None)]


def fresh_tree(scratch: Path) -> Path:
    tree = scratch / "repo"
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(FIXTURE, tree)
    return tree


def set_nodes(tree: Path, nodes: int) -> None:
    (tree / "deployments" / "toy" / "t1" / "deployment.yml").write_text(f"nodes: {nodes}\n")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def cycle_tasks(scratch: Path) -> list[float]:
    tree = fresh_tree(scratch)
    env = {**os.environ, "HGI_REPOSITORY": str(tree)}
    times = []
    for task, purpose in STEPS:
        if (task, purpose) == ("plan", "update"):
            set_nodes(tree, 2)
        argv = [str(ROOT / "py3/bin/invoke"), "--search-root", str(ROOT / "invoke"), f"deployment.{task}"]
        argv += ["--name", NAME] + (["--to", purpose] if purpose else [])
        times.append(timed(lambda a=argv: subprocess.run(a, env=env, check=True, capture_output=True)))
    return times


def cycle_library(scratch: Path) -> list[float]:
    from hgi_spark.core.layout import Repository
    from hgi_spark.deploy import workflow

    tree = fresh_tree(scratch)
    repo = Repository(tree)
    times = []
    sink = io.StringIO()
    with redirect_stdout(sink), redirect_stderr(sink):
        # terraform's own output goes to our fds, not through sys.stdout: silence them too
        devnull = os.open(os.devnull, os.O_WRONLY)
        saved = os.dup(1), os.dup(2)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            for task, purpose in STEPS:
                if (task, purpose) == ("plan", "update"):
                    set_nodes(tree, 2)
                if task == "plan":
                    times.append(timed(lambda p=purpose: workflow.plan(NAME, p, repo)))
                else:
                    times.append(timed(lambda t=task: getattr(workflow, t)(NAME, repo)))
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(devnull)
    return times


def cycle_raw(scratch: Path) -> list[float]:
    """The terraform commands each task runs, by hand, in a copy of the module (no wrapper)."""
    tree = fresh_tree(scratch)
    module = tree / "terraform" / "toy"
    folder = tree / "deployments" / "toy" / "t1"
    env = {**os.environ, "TF_DATA_DIR": str(folder / ".terraform"), "TF_IN_AUTOMATION": "1"}

    def tf(*args: str) -> None:
        subprocess.run(["terraform", f"-chdir={module}", *args, "-no-color"], env=env, check=True, capture_output=True)

    def tfvars(nodes: int) -> str:
        path = folder / "raw.tfvars"
        path.write_text(
            f'deployment_name = "toy"\ndeployment_owner = "t1"\ndeployment_dir = "{folder}"\nnodes = {nodes}\n'
        )
        return f"-var-file={path}"

    state = f"-state={folder / 'terraform.tfstate'}"
    plan = str(folder / "x.tfplan")
    steps = [
        lambda: (tf("init", "-input=false"), tf("validate"), tf("plan", tfvars(1), state, f"-out={plan}")),
        lambda: tf("plan", tfvars(2), state, f"-out={plan}"),
        lambda: tf("apply", state, plan),
        lambda: tf("plan", "-destroy", tfvars(2), state, f"-out={plan}"),
        lambda: tf("apply", state, plan),
    ]
    times = [timed(steps[0]) + timed(lambda: tf("apply", state, plan))]
    times += [timed(step) for step in steps[1:]]
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    cli_config = tempfile.NamedTemporaryFile(suffix=".tfrc", delete=False)  # noqa: SIM115
    os.environ["TF_CLI_CONFIG_FILE"] = cli_config.name
    os.environ.pop("HGI_DEPLOYMENT", None)
    results: dict[str, list[list[float]]] = {"task": [], "library": [], "raw": []}
    with tempfile.TemporaryDirectory() as scratch:
        for _ in range(args.runs):
            results["task"].append(cycle_tasks(Path(scratch)))
            results["library"].append(cycle_library(Path(scratch)))
            results["raw"].append(cycle_raw(Path(scratch)))
    os.unlink(cli_config.name)
    medians = {
        way: [statistics.median(run[i] for run in runs) for i in range(len(STEPS))] for way, runs in results.items()
    }
    print(f"deployment workflow on the toy module, median of {args.runs} cycles (seconds):")
    print(f"  {'step':<20}{'task':>8}{'library':>9}{'raw tf':>8}{'overhead':>10}")
    for i, (task, purpose) in enumerate(STEPS):
        label = f"{task} --to {purpose}" if purpose else task
        t, lib, raw = medians["task"][i], medians["library"][i], medians["raw"][i]
        print(f"  {label:<20}{t:>8.3f}{lib:>9.3f}{raw:>8.3f}{lib - raw:>+10.3f}")
    total = {way: sum(values) for way, values in medians.items()}
    print(
        f"  {'full cycle':<20}{total['task']:>8.3f}{total['library']:>9.3f}{total['raw']:>8.3f}"
        f"{total['library'] - total['raw']:>+10.3f}"
    )


if __name__ == "__main__":
    main()
