"""The local cluster's Hail prefix: a real venv and a real pip (with no package to download)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hgi_spark.clusters.local import prefix as local
from hgi_spark.core import config
from hgi_spark.core.errors import ToolError
from hgi_spark.core.layout import CACHE_ENV, Repository

INSTALLER = Repository.default().packer_dir / "scripts" / "install-hail-env"


def quiet(_text: str) -> None:
    pass


def test_the_prefix_is_keyed_by_versions_and_constraints(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(local.PREFIX_ENV, raising=False)
    spec = local.PrefixSpec.of(config.load_image("hail-base/1.0.0"))
    assert spec.packages == ("hail==0.2.139", "pyspark==3.5.9", "jupyterlab==4.5.11")
    assert local.prefix_path(spec) == tmp_path / "cache" / f"prefix-{spec.digest}"
    other = tmp_path / "constraints.txt"
    other.write_text("numpy==1.0\n")
    assert local.PrefixSpec(spec.python, spec.packages, other, INSTALLER).digest != spec.digest
    assert local.PrefixSpec(spec.python, ("hail==0.2.140",), spec.constraints, INSTALLER).digest != spec.digest


def test_hgi_spark_prefix_names_the_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(local.PREFIX_ENV, str(tmp_path / "mine"))
    assert local.prefix_path(local.PrefixSpec("3.11", (), None, INSTALLER)) == tmp_path / "mine"


def _version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _pip_only() -> local.PrefixSpec:
    """A prefix whose one requirement, the pip a new venv already has, needs nothing downloaded."""
    import ensurepip

    return local.PrefixSpec(_version(), (f"pip=={ensurepip.version()}",), None, INSTALLER)


def test_install_is_atomic_and_happens_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A real venv and a real pip run, through the installer images use; the only requirement is pip
    itself, already satisfied offline."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    spec = _pip_only()
    target = local.ensure_prefix(spec, say=quiet)
    assert target.is_symlink() and (target / "bin" / "python").exists()
    assert json.loads((target / local.STAMP).read_text())["digest"] == spec.digest
    stamp_time = (target / local.STAMP).stat().st_mtime_ns
    assert local.ensure_prefix(spec) == target  # second call: nothing installed
    assert (target / local.STAMP).stat().st_mtime_ns == stamp_time
    # the venv works where it was published
    done = subprocess.run([str(target / "bin" / "python"), "-c", "import sys; print(sys.prefix)"], capture_output=True)
    assert done.returncode == 0
    leftovers = [p.name for p in (tmp_path / "cache").iterdir() if p.name.endswith(".link")]
    assert not leftovers


def test_a_new_prefix_replaces_ours_but_never_removes_a_users_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    users = tmp_path / "users-venv"
    (users / "bin").mkdir(parents=True)
    target = tmp_path / "prefix"
    target.symlink_to(users)  # HGI_SPARK_PREFIX names a link to someone's own folder
    monkeypatch.setenv(local.PREFIX_ENV, str(target))
    local.ensure_prefix(_pip_only(), say=quiet)
    assert target.resolve() != users and users.is_dir()


def test_a_failed_install_leaves_no_prefix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # offline: the project cannot be found
    spec = local.PrefixSpec(_version(), ("no-such-project==1.0",), None, INSTALLER)
    with pytest.raises(ToolError, match=r"installing the Hail prefix into .* failed"):
        local.ensure_prefix(spec, say=quiet)
    assert not local.prefix_path(spec).exists()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]  # the temporary venv is gone


def test_a_python_of_another_version_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local.shutil, "which", lambda name: None)
    with pytest.raises(ToolError, match=r"Python 3\.99 .*apt-get install python3\.99"):
        local._python_for("3.99")


def test_a_requirement_the_constraints_pin_otherwise_is_refused_before_anything_is_made(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The one constraints check, in the installer the image build uses too."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("hail==0.2.139\n")
    spec = local.PrefixSpec(_version(), ("hail==0.2.140",), constraints, INSTALLER)
    with pytest.raises(ToolError) as raised:
        local.ensure_prefix(spec, say=quiet)
    assert "hail 0.2.140 asked for but constraints.txt pins hail==0.2.139: make them agree" in str(raised.value)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
