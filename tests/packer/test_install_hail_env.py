"""The image's one installer of the Hail environment (packer/scripts/install-hail-env), run for real
on this machine's Python with wheels made here (tests/fixtures/wheels.py): offline, no Hail needed.

It byte-compiles what pip wrote and no more: a new venv whole, a package joining a built venv
alone (adding one package to an image's venv used to check and compile all of it: minutes on an
emulated node).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fixtures.wheels import make_wheel

REPO = Path(__file__).resolve().parents[2]
INSTALLER = REPO / "packer" / "scripts" / "install-hail-env"
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"


def install(venv: Path, wheels: Path, constraints: Path, *requirements: str) -> subprocess.CompletedProcess:
    argv = [str(INSTALLER), "--venv", str(venv), "--python", PYTHON, "--interpreter", sys.executable]
    argv += ["--constraints", str(constraints), "--find-links", str(wheels), *requirements]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


def cached(venv: Path, package: str) -> list[Path]:
    return list(venv.glob(f"lib/python{PYTHON}/site-packages/{package}/__pycache__/*.pyc"))


def test_a_package_joining_a_built_venv_is_compiled_alone(tmp_path: Path) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    make_wheel(wheels, "alpha", "1.0")
    make_wheel(wheels, "beta", "1.0")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("alpha==1.0\nbeta==1.0\n")

    first = install(venv, wheels, constraints, "alpha==1.0")
    assert first.returncode == 0, first.stderr
    assert cached(venv, "alpha") and cached(venv, "pip"), "a new venv is compiled whole"
    for pyc in cached(venv, "alpha"):
        pyc.unlink()

    second = install(venv, wheels, constraints, "beta==1.0")
    assert second.returncode == 0, second.stderr
    assert cached(venv, "beta"), "the added package is compiled"
    assert not cached(venv, "alpha"), "what was there before is not compiled again"
    assert "byte-compile of 1 location(s)" in second.stderr

    again = install(venv, wheels, constraints, "beta==1.0")
    assert again.returncode == 0 and "already holds beta==1.0" in again.stderr


def test_a_requirement_against_the_constraints_is_one_line_and_changes_nothing(tmp_path: Path) -> None:
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    make_wheel(wheels, "alpha", "2.0")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("alpha==1.0\n")
    done = install(venv, wheels, constraints, "alpha==2.0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "install-hail-env: error: alpha 2.0 asked for but constraints.txt pins alpha==1.0: make them agree"
    ]
    assert not venv.exists()
