"""packer's qemu source builds the hail-base image for real here, with the openstack source's provisioners.

`bash invoke.sh image hail-base/1.0.0 build --target qemu` builds it (or finds it in
~/.cache/hgi-spark/images/, keyed by the digest of every input: see invoke/hgi_spark/images/qemu.py):
make-base-disk's Debian 12 disk, make-wheelhouse's wheels served to the VM by packer,
``packer build -only=qemu.hail-base``. The image is then checked without trusting the build: its
filesystem read offline (debugfs), and one boot of an overlay under qemu whose NoCloud runcmd
prints what is installed to the serial console.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import qemu_image

from hgi_spark.core import config
from hgi_spark.core.layout import CACHE_ENV, Repository, cache_dir
from hgi_spark.images import qemu

TOOLS = ("packer", "qemu-system-x86_64", "qemu-img", "debootstrap", "grub-mkimage", "genisoimage", "debugfs")
REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(5400),
    pytest.mark.skipif(os.geteuid() != 0, reason="make-base-disk needs root (debootstrap, file ownership)"),
    pytest.mark.skipif(
        any(shutil.which(tool, path=f"{os.environ.get('PATH')}:/usr/sbin:/sbin") is None for tool in TOOLS),
        reason=f"needs {', '.join(TOOLS)} (bash tests/run installs them)",
    ),
]

IMAGE = "hail-base/1.0.0"


@pytest.fixture(scope="module")
def built() -> qemu_image.Built:
    return qemu_image.build(IMAGE)


@pytest.fixture(scope="module")
def checked(built: qemu_image.Built, tmp_path_factory: pytest.TempPathFactory) -> qemu_image.Checked:
    return qemu_image.check(built, work=tmp_path_factory.mktemp("image-check"))


def test_the_image_is_a_qcow2_named_after_the_definition(built: qemu_image.Built) -> None:
    print(f"build: {built.seconds:.0f} s (0: from the cache)")
    assert built.image.name == "hail-base-1.0.0.qcow2"
    with built.image.open("rb") as image:
        assert image.read(4) == b"QFI\xfb"
    assert cache_dir() in built.image.parents


def test_the_image_holds_what_image_yml_asks_for_and_nothing_of_the_build(
    built: qemu_image.Built, checked: qemu_image.Checked
) -> None:
    image = config.load_image(IMAGE, Repository.default())
    assert qemu_image.problems(checked, image, built.public_key) == []


def test_a_clone_boots_fresh(checked: qemu_image.Checked) -> None:
    """cloud-init ran again at the check boot (the default user exists) and systemd made a machine id."""
    assert "uid=" in checked.booted["default_user"]
    assert len(checked.booted["machine_id"]) == 32
    assert checked.offline["machine_id"] == ""
    assert not checked.offline["cloud_seed"]


def test_a_second_build_with_the_same_inputs_starts_no_packer(built: qemu_image.Built) -> None:
    """PACKER names nothing that exists: the task must not even look for it when the cache has the image."""
    again = qemu_image.build(IMAGE, env={"PACKER": "/nonexistent/packer"})
    assert again.image == built.image and again.seconds == 0.0


FAKE_PACKER = """#!/usr/bin/env python3
# A stand-in for packer in this one test: a real --force rebuild costs 20 minutes under emulation
# (the real build is test_the_image_holds_what_image_yml_asks_for...). It leaves what a successful
# qemu build leaves (OUTPUT/IMAGE.qcow2), or fails when FAKE_PACKER_FAIL is set.
import json, os, sys
if sys.argv[1] == "version":
    print("Packer v1.6.6")
    sys.exit(0)
values = json.load(open(next(a.split("=", 1)[1] for a in sys.argv if a.startswith("-var-file="))))
if os.environ.get("FAKE_PACKER_FAIL"):
    print("==> qemu.hail-base: a provisioner failed")
    sys.exit(1)
os.makedirs(values["qemu_output_directory"])
with open(os.path.join(values["qemu_output_directory"], values["image_name"] + ".qcow2"), "wb") as out:
    out.write(b"QFI\\xfb rebuilt")
print("==> qemu.hail-base: done")
"""


def test_force_replaces_the_image_only_after_a_build_succeeds(built: qemu_image.Built, tmp_path: Path) -> None:
    """--force builds anew; a failed build leaves the image as it was. A cache of this test's own
    (the real base disk and wheelhouse linked in), so the real image is never touched."""
    cache = tmp_path / "cache"
    (cache / "base-disks").mkdir(parents=True)
    for disk in (cache_dir() / "base-disks").glob("*.qcow2"):
        (cache / "base-disks" / disk.name).symlink_to(disk)
    for wheels in cache_dir().glob("wheels-*"):
        (cache / wheels.name).symlink_to(wheels)
    (cache / "accelerator.json").write_text(json.dumps({"machine": "any", "accelerator": "tcg"}))
    target = cache / "images" / built.image.parent.name
    target.mkdir(parents=True)
    (target / built.image.name).write_bytes(b"QFI\xfb the old image")
    fake = tmp_path / "packer"
    fake.write_text(FAKE_PACKER)
    fake.chmod(0o755)
    env = {CACHE_ENV: str(cache), "PACKER": str(fake), "HGI_SPARK_ACCEL": "tcg"}
    argv = ["bash", str(REPO / "invoke.sh"), "image", IMAGE, "build", "--target", "qemu", "--force"]
    failed = subprocess.run(argv, env={**os.environ, **env, "FAKE_PACKER_FAIL": "1"}, capture_output=True, text=True)
    assert failed.returncode == 5 and "packer build failed" in failed.stderr
    assert (target / built.image.name).read_bytes() == b"QFI\xfb the old image"
    done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (target / built.image.name).read_bytes() == b"QFI\xfb rebuilt"
    assert "==> qemu.hail-base: done" in done.stderr  # packer's own lines, shown while it runs
    assert not [p for p in (cache / "images").iterdir() if p.name.startswith(".")]  # no scratch folder left
    assert qemu.image_path(config.load_image(IMAGE)) == built.image
