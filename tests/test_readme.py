"""The README's commands run as written, so the documentation cannot drift from the code.

Every `bash invoke.sh ...` and `py3/bin/invoke ...` line of the README's bash blocks is run:
- the front door's own options (`--help`, `--list`);
- the OpenStack lines (`deployment spark/ld14 ...`) and the plain-invoke CI form: no cloud here,
  so each must get as far as the library and say, in one line, that spark/ld14 is not defined
  (exit 4): the task exists, its options parse (a parse error would be exit 2);
- the local cluster's lines, in a copy of the repository's definitions, in the README's order,
  on the real local cluster (slow), which is then taken down.
The VM cluster's and image lines are run by tests/e2e/test_vm_cluster.py and tests/packer.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_task

BLOCK = re.compile(r"```bash\n(.*?)```", re.DOTALL)


def readme_lines() -> list[list[str]]:
    """The invoke lines of README.md's bash blocks, as argv (comments and redirections dropped)."""
    found = []
    for block in BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8")):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line.startswith(("bash invoke.sh", "py3/bin/invoke")):
                continue
            argv = shlex.split(line.split(">>", 1)[0])
            found.append(argv)
    return found


def of(kind: str) -> list[list[str]]:
    lines = readme_lines()
    if kind == "door":
        return [a for a in lines if a[:2] == ["bash", "invoke.sh"] and a[2].startswith("--")]
    if kind == "cloud":
        return [a for a in lines if "spark/ld14" in a]
    if kind == "local":
        return [a for a in lines if "spark-local/demo" in a]
    raise ValueError(kind)


def test_the_readme_has_each_kind_of_line() -> None:
    assert of("door") and of("cloud") and of("local")
    assert any(a[0] == "py3/bin/invoke" for a in of("cloud")), "the plain-invoke CI form"


@pytest.mark.parametrize(
    "argv", [*of("door"), ["bash", "invoke.sh", "--help"], ["bash", "invoke.sh", "--list"]], ids=lambda a: a[2]
)
def test_front_door_options(argv: list[str]) -> None:
    done = run_task(*argv[2:])
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argv", of("cloud"), ids=lambda a: " ".join(a[1:]))
def test_openstack_lines_parse_and_reach_the_library(argv: list[str], tmp_path: Path) -> None:
    if argv[0] == "py3/bin/invoke":
        import subprocess

        done = subprocess.run(
            [str(ROOT / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
        )
    else:
        done = run_task(*argv[2:])
    assert done.returncode == 4, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: unknown deployment 'spark/ld14'")


@pytest.mark.slow
def test_the_local_cluster_lines_run_in_order(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    for part in ("deployments", "images", "packer", "terraform"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns(".terraform*", "runtime", "secrets"))
    env = {"HGI_REPOSITORY": str(repo)}
    ran = []
    try:
        for argv in of("local"):
            args = [a if a != "/tmp" else str(tmp_path) for a in argv[2:]]
            done = run_task(*args, env=env, cwd=tmp_path)
            assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr[-3000:]}"
            ran.append(" ".join(args[2:]))
    finally:
        run_task("deployment", "spark-local/demo", "plan", "--to", "destroy", env=env)
        down = run_task("deployment", "spark-local/demo", "down", env=env)
    assert ran[0] == "up" and down.returncode == 0, down.stderr
