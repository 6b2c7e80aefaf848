"""The qemu target: the image packer's qemu source builds, kept in the local image cache.

The same template and provisioners as the OpenStack build make a qcow2 file instead of a Glance
image. It is named by the digest of everything it is made from (image.yml and its defaults, the
constraints, the template, install-node, the node scripts, the base disk's recipe), so a second
build with the same inputs is skipped without starting packer, and the VM cluster finds exactly
the image its definition asks for.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.config import Image
from hgi_spark.core.layout import cache_dir

DIGEST_LENGTH = 16


def images_dir() -> Path:
    return cache_dir() / "images"


def input_files(image: Image) -> list[Path]:
    """Every file the qemu image is made from, in a fixed order."""
    repo = image.paths.repo
    packer = repo.packer_dir
    files = [*image.input_files, image.paths.template, packer / "scripts" / "install-node"]
    files += [packer / "scripts" / "make-base-disk"]
    if image.constraints_file is not None:
        files.append(image.constraints_file)
    scripts = repo.terraform_dir / "modules" / "spark-node" / "scripts"
    files += sorted(p for p in scripts.rglob("*") if p.is_file())
    return files


def digest(image: Image) -> str:
    """The digest of the image's inputs: names (relative to the repository) and contents."""
    root = image.paths.repo.root.resolve()
    total = hashlib.sha256()
    for path in input_files(image):
        try:
            relative = str(path.resolve().relative_to(root))
        except ValueError:
            relative = path.name
        total.update(relative.encode() + b"\0")
        total.update(path.read_bytes() if path.is_file() else b"(missing)")
        total.update(b"\0")
    return total.hexdigest()[:DIGEST_LENGTH]


def image_path(image: Image) -> Path:
    """Where the image for these inputs is (or will be): ``<glance name>-<digest>.qcow2``."""
    return images_dir() / f"{image.ref.glance_name}-{digest(image)}.qcow2"


def local_status(image: Image) -> dict[str, Any]:
    """Whether the local cache has the image of the current inputs, and older builds of it."""
    path = image_path(image)
    others = sorted(p.name for p in images_dir().glob(f"{image.ref.glance_name}-*.qcow2") if p != path)
    detail = (
        f"{path.stat().st_size / 2**30:.2f} GiB"
        if path.is_file()
        else "build it with: " + image.ref.command("build --target qemu")
    )
    if others:
        detail += f"; older builds of other inputs: {', '.join(others)}"
    return {"present": path.is_file(), "path": str(path), "detail": detail}


@dataclass(frozen=True)
class QemuBuild:
    """The outcome of ``build --target qemu``."""

    path: Path
    built: bool
    seconds: float = 0.0

    def line(self) -> str:
        if not self.built:
            return (
                f"{self.path.name} already in the local image cache ({self.path.parent}): not built (--force rebuilds)"
            )
        return f"{self.path.name} built in {self.seconds:.0f} s: {self.path}"
