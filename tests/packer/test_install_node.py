"""packer/scripts/install-node run for real in debootstrap'd roots, checked as a node uses it.

Nothing here is faked: debootstrap builds the root (cached tarball, see packer_rootfs.py), apt and
pip install from the real mirrors and PyPI, and the checks run Java, nginx and Hail inside it.
Debian 12 runs hail-base 1.0.0 as defined; Ubuntu 24.04 runs it with the versions an image
definition for that base would name (Java 11, which Hail prefers, and the base's Python 3.12),
given as overrides of the generated env file.
What the chroot cannot prove: services serving (no systemd, no kernel nfsd in it).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import packer_rootfs as rootfs
import pytest

from hgi_spark.core import config
from hgi_spark.core.layout import Repository

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap, unshare and chroot need root"),
]

REPO = Repository.default()  # HGI_REPOSITORY may point elsewhere
IMAGE = "hail-base/1.0.0"


# Per base: the env overrides an image definition for it would carry (none for Debian 12).
BASE_OVERRIDES: dict[str, dict[str, str]] = {
    "debian-12": {},
    "ubuntu-24.04": {"JAVA_VERSION": "11", "PYTHON_VERSION": "3.12"},
}


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


@dataclass
class Installed:
    root: rootfs.NodeRoot
    result: rootfs.Result
    base: str
    overrides: dict[str, str]
    software: dict[str, str]  # image.yml's software: with the base's overrides


@pytest.fixture(scope="module", params=list(BASE_OVERRIDES))
def installed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """A fresh root of the base with install-node run once (the wheel cache bound in); deleted afterwards."""
    for tool in ("debootstrap", "unshare", "chroot", "tar"):
        assert shutil.which(tool), f"{tool} missing: run the tests with bash tests/run (it installs it)"
    base = request.param
    overrides = BASE_OVERRIDES[base]
    software = dict(config.load_image(IMAGE, REPO).software.model_dump())
    software.update({key.removesuffix("_VERSION").lower(): value for key, value in overrides.items()})
    root = rootfs.NodeRoot.unpack(rootfs.base_tarball(base), tmp_path_factory.mktemp("rootfs"), base)
    try:
        command = root.stage(REPO, IMAGE, env_overrides=overrides, pip_cache=True)
        result = root.run(command, pip_cache=rootfs.CACHE_DIR / "pip")
        print(f"{base}: install-node first run: {result.seconds:.1f} s, steps {rootfs.step_times(result.stderr)}")
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        yield Installed(root, result, base, overrides, software)
    finally:
        root.remove()


def inside(root: rootfs.NodeRoot, command: str, **kwargs) -> rootfs.Result:
    result = root.run(command, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result


def test_every_step_ran_and_reported(installed: Installed) -> None:
    steps = rootfs.step_times(installed.result.stderr)
    assert list(steps) == [
        "packages", "user", "venv", "image-env", "node", "profile", "services", "manifest", "cleanup",
    ]  # fmt: skip
    assert steps["packages"][1] == "changed"
    assert steps["venv"][1] == "changed"
    assert "done in" in last_line(installed.result.stderr)


def test_java_runs_at_the_image_version(installed: Installed) -> None:
    result = inside(installed.root, "java -version")
    assert f'version "{installed.software["java"]}.' in result.stderr


def test_venv_imports_hail_and_pyspark_at_the_pinned_versions(installed: Installed) -> None:
    software = installed.software
    result = inside(
        installed.root,
        "/opt/hail/venv/bin/python -c 'import sys, hail, pyspark, jupyterlab; from importlib.metadata import version; "
        'print(*(version(name) for name in ("hail", "pyspark", "jupyterlab")), hail.__version__, '
        '"%d.%d" % sys.version_info[:2])\'',
    )
    *distributions, hail_build, python = result.stdout.split()
    assert distributions == [software["hail"], software["pyspark"], software["jupyterlab"]]
    assert hail_build.startswith(f"{software['hail']}-")  # hail.__version__ adds its build hash
    assert python == software["python"]


def test_nginx_accepts_the_installed_configuration(installed: Installed) -> None:
    result = inside(installed.root, "nginx -t")
    assert "test is successful" in result.stderr


def test_nfs_tools_app_user_and_prefix_exist(installed: Installed) -> None:
    result = inside(
        installed.root,
        "command -v exportfs rpc.nfsd mount.nfs showmount && id -un hgi && stat -c '%U %a' /opt/hail/tmp"
        " && ls /opt/hgi-spark/node/run-node",
    )
    lines = result.stdout.split("\n")
    assert len([line for line in lines if line.startswith("/")]) >= 5
    assert "hgi" in lines
    assert "hgi 1777" in lines


def test_the_app_user_has_the_ids_of_the_image_definition(installed: Installed) -> None:
    """Fixed ids: files the user writes on the NFS-shared tmp are its own on every node."""
    user = config.load_image(IMAGE, REPO).app_user
    result = inside(installed.root, f"id -u {user.name}; id -g {user.name}; getent passwd {user.name} | cut -d: -f6")
    assert result.stdout.split() == [str(user.uid), str(user.gid), user.home]


def test_the_installer_and_the_pins_stay_on_the_node_and_the_venv_is_compiled(installed: Installed) -> None:
    """Packages added to a running cluster are installed the same way, under the same pins; the
    venv is byte-compiled (users cannot write it, so nothing would ever cache the bytecode)."""
    image = config.load_image(IMAGE, REPO)
    assert image.constraints_file is not None
    kept = installed.root.path / image.layout.etc_dir.lstrip("/") / "constraints.txt"
    assert kept.read_bytes() == image.constraints_file.read_bytes()
    installer = installed.root.path / image.layout.node_scripts_dir.lstrip("/") / "install-hail-env"
    assert installer.read_bytes() == (REPO.packer_dir / "scripts/install-hail-env").read_bytes()
    result = inside(
        installed.root,
        f"{image.layout.hail_venv}/bin/python -c 'import hail, importlib.util as u; "
        "print(u.cache_from_source(hail.__file__))'",
    )
    assert (installed.root.path / result.stdout.strip().lstrip("/")).is_file(), result.stdout


def test_services_are_installed_but_disabled(installed: Installed) -> None:
    root = installed.root
    for unit in ("nginx.service", "nfs-server.service"):
        assert (root.path / "usr/lib/systemd/system" / unit).exists(), unit  # both bases merge /usr
        assert not list((root.path / "etc/systemd/system").glob(f"*.wants/{unit}")), f"{unit} still enabled"


def test_apt_and_pip_caches_are_cleaned(installed: Installed) -> None:
    root = installed.root
    assert not list((root.path / "var/cache/apt").rglob("*.deb"))
    assert not list((root.path / "var/cache/apt").glob("*.bin"))
    assert not list((root.path / "var/lib/apt/lists").glob("*_Packages*"))
    assert not (root.path / "root/.cache/pip").exists()


def test_login_shell_has_the_spark_and_hail_environment(installed: Installed) -> None:
    result = inside(
        installed.root,
        "runuser -l hgi -c 'echo SPARK_HOME=$SPARK_HOME HAIL_HOME=$HAIL_HOME PYSPARK_PYTHON=$PYSPARK_PYTHON'",
    )
    values = dict(item.split("=", 1) for item in result.stdout.split())
    assert values["HAIL_HOME"] == "/opt/hail", result.stdout
    assert values["SPARK_HOME"].endswith("/site-packages/pyspark"), result.stdout
    assert values["PYSPARK_PYTHON"] == "/opt/hail/venv/bin/python", result.stdout


def test_manifest_matches_the_image_definition(installed: Installed) -> None:
    image = config.load_image(IMAGE, REPO)
    manifest = json.loads((installed.root.path / "etc/hgi-spark/image.json").read_text())
    software = installed.software
    assert manifest["software"] == software
    assert manifest["distribution"] == installed.base
    assert manifest["image"]["glance_name"] == image.ref.glance_name
    installed_versions = manifest["installed"]
    for name in ("hail", "pyspark", "jupyterlab"):
        assert installed_versions[name] == software[name]
    assert installed_versions["java"].split(".")[0] == software["java"]
    assert installed_versions["python"].startswith(software["python"] + ".")
    assert f"openjdk-{software['java']}-jre-headless" in installed_versions["packages"]
    spark_home = Path(manifest["paths"]["SPARK_HOME"])
    assert (installed.root.path / spark_home.relative_to("/") / "bin/spark-class").is_file()


def test_a_local_mode_hail_job_answers(installed: Installed) -> None:
    job = (
        "import hail as hl; "
        "hl.init(master='local[2]', tmp_dir='/opt/hail/tmp', quiet=True); "
        "mt = hl.balding_nichols_model(3, 20, 50); "
        "print('ANSWER', mt.count()); hl.stop()"
    )
    result = inside(installed.root, f'cd /tmp && runuser -u hgi -- /opt/hail/venv/bin/python -c "{job}"', timeout=600)
    assert "ANSWER (50, 20)" in result.stdout, result.stderr[-3000:]


def test_a_second_run_changes_nothing(installed: Installed) -> None:
    root = installed.root
    before = root.snapshot()
    command = root.stage(REPO, IMAGE, env_overrides=installed.overrides, pip_cache=True)
    result = inside(root, command, pip_cache=rootfs.CACHE_DIR / "pip")
    steps = rootfs.step_times(result.stderr)
    assert {name: outcome for name, (_, outcome) in steps.items()} == dict.fromkeys(steps, "no change")
    assert last_line(result.stderr).endswith("no change")
    assert rootfs.diff_snapshots(before, root.snapshot()) == []
    print(f"{installed.base}: install-node second run: {result.seconds:.1f} s")


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ({"HAIL_VERSION": "0.2.999"}, "hail 0.2.999 asked for (software.hail in image.yml) but constraints.txt pins"),
        ({"JAVA_VERSION": "8"}, "Java 8 is not offered by {base} (offered: "),
        ({"PYSPARK_VERSION": "3.5.x"}, "PYSPARK_VERSION='3.5.x' is not a version like 3.5.9 (software.pyspark"),
    ],
)
def test_a_bad_version_fails_with_one_clear_line_and_changes_nothing(
    installed: Installed, override: dict[str, str], expected: str
) -> None:
    root = installed.root
    before = root.snapshot()
    command = root.stage(REPO, IMAGE, env_overrides=installed.overrides | override)
    result = root.run(command)
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert result.stderr.startswith("install-node: error: ")
    assert expected.format(base=installed.base) in result.stderr
    assert rootfs.diff_snapshots(before, root.snapshot()) == []
