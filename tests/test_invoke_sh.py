"""The front door: usage, dispatch, exit codes, and the py3/ bootstrap."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None, script: Path | None = None):
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_"))}
    environment.update(env or {})
    return subprocess.run(
        ["bash", str(script or ROOT / "invoke.sh"), *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )


@pytest.fixture
def bare_copy(tmp_path: Path) -> Path:
    """A copy of the front door with no py3/: what a fresh clone has."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("invoke.sh", "requirements.txt"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "invoke", root / "invoke", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("images", "deployments", "terraform"):
        shutil.copytree(ROOT / name, root / name, ignore=shutil.ignore_patterns("runtime", "secrets", ".terraform"))
    return root


def test_help_installs_nothing(bare_copy: Path, tmp_path: Path) -> None:
    result = run("--help", cwd=tmp_path, script=bare_copy / "invoke.sh", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert "bash invoke.sh deployment spark-local/demo up" in result.stdout
    assert "README.md" in result.stdout
    assert not (bare_copy / "py3").exists()


def test_list_gives_the_collections(bare_copy: Path) -> None:
    result = run("--list", script=bare_copy / "invoke.sh")
    assert result.returncode == 0
    assert result.stdout.split() == ["image", "deployment"]
    assert not (bare_copy / "py3").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "invoke.sh: missing KIND (one of: image deployment)"),
        (("cluster", "spark/ld14", "up"), "invoke.sh: unknown KIND 'cluster' (one of: image deployment)"),
        (("image", "hail-base", "build"), "invoke.sh: malformed image name 'hail-base': expected NAME/VERSION"),
        (("deployment", "ld14", "up"), "invoke.sh: malformed deployment name 'ld14': expected NAME/OWNER"),
    ],
)
def test_usage_errors_exit_2_with_one_line(bare_copy: Path, args: tuple[str, ...], message: str) -> None:
    result = run(*args, script=bare_copy / "invoke.sh")
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == message
    assert "Traceback" not in result.stderr
    assert not (bare_copy / "py3").exists()


def test_task_list_and_task_help_from_another_directory(tmp_path: Path) -> None:
    listed = run("deployment", "spark-local/demo", "--list", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "validate" in listed.stdout
    helped = run("deployment", "spark-local/demo", "--help", "validate", cwd=tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "--name" in helped.stdout


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("deployment", "spark/nobody", "validate"),
            4,
            "error: unknown deployment 'spark/nobody': deployments/spark/nobody/deployment.yml does not exist "
            "(defined deployments: ",
        ),
        (
            ("image", "hail-base/9.9.9", "validate"),
            4,
            "error: unknown image 'hail-base/9.9.9': images/hail-base/9.9.9/image.yml does not exist "
            "(defined images: hail-base/1.0.0)",
        ),
        (
            ("image", "hail-base/1.0", "validate"),
            2,
            "error: malformed image name 'hail-base/1.0': expected NAME/VERSION with VERSION as X.Y.Z",
        ),
    ],
)
def test_bad_names_are_one_line_without_traceback(args: tuple[str, ...], code: int, message: str) -> None:
    result = run(*args)
    assert result.returncode == code, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("deployment", "spark-local/demo", "nosuch"), "error: No idea what 'nosuch' is!"),
        (("deployment", "spark-local/demo", "plan", "--to"), "error: Flag --to needed value and was not given one!"),
        (("deployment", "spark-local/demo", "status", "--nope"), "error: No idea what '--nope' is!"),
        (("deployment", "spark-local/demo", "submit"), "error: 'submit' did not receive required positional"),
    ],
)
def test_invokes_own_parse_errors_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    """An unknown task or flag, a missing option value or script: exit 2 and one line, as invoke.sh's own."""
    result = run(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback() -> None:
    result = run("--debug", "image", "hail-base/9.9.9", "validate")
    assert result.returncode == 4
    assert "Traceback" in result.stderr and "NotFoundError" in result.stderr


def test_malformed_yaml_is_reported_with_position(bare_copy: Path) -> None:
    """A broken deployment.yml: file:line:column, exit 3, nothing written beside it."""
    (bare_copy / "terraform" / "toy").mkdir()
    (bare_copy / "terraform" / "toy" / "variables.tf").write_text('variable "workers" {\n  type = number\n}\n')
    folder = bare_copy / "deployments" / "toy" / "t1"
    folder.mkdir(parents=True)
    (folder / "deployment.yml").write_text("workers: 2\n  bad: indent\n")
    result = run("deployment", "toy/t1", "validate", env={"HGI_REPOSITORY": str(bare_copy)})
    assert result.returncode == 3
    assert result.stderr.startswith("error: deployments/toy/t1/deployment.yml:2:6: malformed YAML:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in folder.iterdir()) == ["deployment.yml"]  # nothing written


def test_plain_invoke_form_for_ci_jobs() -> None:
    """What the README documents for CI: the same tasks through py3/bin/invoke, no wrapper."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_"))}
    result = subprocess.run(
        [
            str(ROOT / "py3" / "bin" / "invoke"),
            "--search-root",
            "invoke",
            "image.validate",
            "--name",
            "hail-base/1.0.0",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_bootstrap_builds_once_and_rebuilds_a_broken_venv(bare_copy: Path) -> None:
    first = run("--setup", script=bare_copy / "invoke.sh")
    assert first.returncode == 0, first.stderr
    assert (bare_copy / "py3" / ".requirements.sha256").is_file()
    # A warm call must not run pip: point pip at an index that does not exist and prove nothing breaks.
    offline = {"PIP_INDEX_URL": "http://127.0.0.1:9/", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": "/dev/null"}
    warm = run("image", "hail-base/1.0.0", "validate", script=bare_copy / "invoke.sh", env=offline)
    assert warm.returncode == 0, warm.stderr
    assert "creating py3/" not in warm.stderr and "rebuilding" not in warm.stderr
    # Half-made: the interpreter is gone (as after a Python upgrade); it must be rebuilt, not used.
    (bare_copy / "py3" / "bin" / "python").unlink()
    rebuilt = run("image", "hail-base/1.0.0", "validate", script=bare_copy / "invoke.sh")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilding it" in rebuilt.stderr
    # requirements.txt changed: reinstall.
    with (bare_copy / "requirements.txt").open("a") as handle:
        handle.write("# touched\n")
    changed = run("--setup", script=bare_copy / "invoke.sh")
    assert changed.returncode == 0 and "rebuilding it" in changed.stderr
