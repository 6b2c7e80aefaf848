"""packer's qemu source builds the hail-base image for real here, with the openstack source's provisioners.

Built (or reused from ~/.cache/hgi-spark/images/, keyed by a digest of every input) by
tests/packer/qemu_image.py: make-base-disk's Debian 12 disk, make-wheelhouse's wheels served to
the VM by packer, ``packer build -only=qemu.hail-base``. The image is then checked without
trusting the build: its filesystem read offline (debugfs), and one boot of an overlay under qemu
whose NoCloud runcmd prints what is installed to the serial console.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import qemu_image

from hgi_spark import config
from hgi_spark.layout import Repository

TOOLS = ("packer", "qemu-system-x86_64", "qemu-img", "debootstrap", "grub-mkimage", "genisoimage", "debugfs")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(5400),
    pytest.mark.skipif(os.geteuid() != 0, reason="make-base-disk needs root (debootstrap, file ownership)"),
    pytest.mark.skipif(
        any(shutil.which(tool) is None for tool in TOOLS),
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
    assert built.image.name == "hail-base-1.0.0.qcow2"
    with built.image.open("rb") as image:
        assert image.read(4) == b"QFI\xfb"
    assert Path(qemu_image.CACHE_DIR) in built.image.parents


def test_the_image_holds_what_image_yml_asks_for_and_nothing_of_the_build(
    built: qemu_image.Built, checked: qemu_image.Checked
) -> None:
    image = config.load_image(IMAGE, Repository.default())
    assert qemu_image.problems(checked, image.software.model_dump(), built.public_key) == []


def test_a_clone_boots_fresh(checked: qemu_image.Checked) -> None:
    """cloud-init ran again at the check boot (the default user exists) and systemd made a machine id."""
    assert "uid=" in checked.booted["default_user"]
    assert len(checked.booted["machine_id"]) == 32
    assert checked.offline["machine_id"] == ""
    assert not checked.offline["cloud_seed"]
