"""The qemu target: the image packer's qemu source builds on this machine, kept in the local cache.

The same template and provisioners as the OpenStack build make a qcow2 file instead of a Glance
image. Everything expensive is cached under ``~/.cache/hgi-spark`` by the digest of its inputs, and
appears atomically:

- ``base-disks/debian-12-<digest>.qcow2``: packer/scripts/make-base-disk (a self-booting Debian 12
  disk made from Debian's packages; keyed by the script and the host's apt sources);
- ``wheels-<digest>/``: packer/scripts/make-wheelhouse (every wheel of the Hail venv, built once
  on the host and served to the build VM on 127.0.0.1, so the VM under emulation neither
  resolves nor compiles);
- ``images/<glance name>-<digest>/<glance name>.qcow2``: ``packer build -only=qemu.hail-base``,
  keyed by the template, install-node and install-hail-env, its env file (less the commit), the constraints, the node
  scripts, the base disk and the wheelhouse. A build with the same inputs is skipped without
  starting packer; ``--force`` builds anew and replaces the old image only after success.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.core.config import Image
from hgi_spark.core.errors import ToolError
from hgi_spark.core.layout import cache_dir
from hgi_spark.images import packer, provisioning

DIGEST_LENGTH = 16
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
ACCEL_ENV = "HGI_SPARK_ACCEL"  # kvm or tcg: no probe
BUILD_TIMEOUT_S = 3 * 3600
Say = Callable[[str], None]


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def digest(parts: Iterable[bytes | str | Path]) -> str:
    """16 hex digits of sha256 over the parts (a Path counts by its content, or its files' for a folder)."""
    hasher = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for file in files:
                hasher.update(str(file.relative_to(part) if part.is_dir() else file.name).encode() + b"\0")
                hasher.update(file.read_bytes() + b"\0")
        else:
            hasher.update((part.encode() if isinstance(part, str) else part) + b"\0")
    return hasher.hexdigest()[:DIGEST_LENGTH]


def _run(argv: list[str], say: Say, **kwargs: Any) -> None:
    say("+ " + " ".join(argv))
    if subprocess.run(argv, check=False, **kwargs).returncode != 0:
        raise ToolError(f"{Path(argv[1] if argv[0] == 'bash' else argv[0]).name} failed (its output is above)")


# --- inputs --------------------------------------------------------------------------------------------


def _scripts(image: Image) -> Path:
    return image.paths.repo.packer_dir / "scripts"


def base_disk(image: Image, say: Say = _stderr) -> Path:
    """make-base-disk's disk, keyed by the script and the host's apt sources (its mirror)."""
    script = _scripts(image) / "make-base-disk"
    key = digest([script, *(p for p in APT_SOURCES if p.is_file())])
    path = cache_dir() / "base-disks" / f"debian-12-{key}.qcow2"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        say(f"making the base disk {path.name} from Debian's packages (once; a few minutes)")
        _run(["bash", str(script), "--output", str(path)], say)
        say(f"base disk made in {time.monotonic() - started:.0f} s")
        for old in path.parent.glob("debian-12-*.qcow2"):
            if old != path:
                old.unlink()
    return path


def requirements(image: Image) -> list[str]:
    software = image.software.model_dump()
    return [f"{name}=={software[name]}" for name in ("hail", "pyspark", "jupyterlab")]


def wheelhouse(image: Image, say: Say = _stderr) -> Path:
    """make-wheelhouse's folder for image.yml's versions, built with the image's Python version."""
    script = _scripts(image) / "make-wheelhouse"
    if image.constraints_file is None:
        raise ToolError("the image names no constraints file: its wheels cannot be pinned")
    python = str(image.software.python)
    wanted = requirements(image)
    key = digest([script, image.constraints_file, python, *wanted])
    path = cache_dir() / f"wheels-{key}"
    if not path.is_dir():
        started = time.monotonic()
        say(f"building the wheels of {', '.join(wanted)} on this machine (once)")
        argv = ["bash", str(script), "--constraints", str(image.constraints_file), "--output", str(path)]
        _run([*argv, "--python", f"python{python}", "--python-version", python, *wanted], say)
        say(f"wheelhouse made in {time.monotonic() - started:.0f} s")
    return path


def install_env_text(image: Image) -> str:
    """install-node's env file; the commit is only a property of the image, not one of its inputs."""
    return provisioning.render_install_env(provisioning.install_env(image, commit="local"), source=str(image.ref))


def image_key(image: Image, base: Path, wheels: Path) -> str:
    repo = image.paths.repo
    node_scripts = repo.terraform_dir / "modules" / "spark-node" / "scripts"
    constraints = image.constraints_file or Path("/dev/null")
    return digest(
        [
            image.paths.template,
            _scripts(image) / "install-node",
            _scripts(image) / "install-hail-env",
            install_env_text(image),
            constraints,
            node_scripts,
            base.name,
            wheels.name,
        ]
    )


def images_dir() -> Path:
    return cache_dir() / "images"


def folder_for(image: Image, key: str) -> Path:
    return images_dir() / f"{image.ref.glance_name}-{key}"


def image_path(image: Image) -> Path:
    """Where the image of the current inputs is (or will be), without building anything.

    The base disk and the wheelhouse are named by their own inputs, so this needs neither.
    """
    scripts = _scripts(image)
    base = f"debian-12-{digest([scripts / 'make-base-disk', *(p for p in APT_SOURCES if p.is_file())])}.qcow2"
    python = str(image.software.python)
    constraints = image.constraints_file or Path("/dev/null")
    wheels = f"wheels-{digest([scripts / 'make-wheelhouse', constraints, python, *requirements(image)])}"
    key = image_key(image, Path(base), Path(wheels))
    return folder_for(image, key) / f"{image.ref.glance_name}.qcow2"


def local_status(image: Image) -> dict[str, Any]:
    """Whether the local cache has the image of the current inputs, and older builds of it."""
    path = image_path(image)
    others = sorted(p.name for p in images_dir().glob(f"{image.ref.glance_name}-*") if p != path.parent)
    if path.is_file():
        detail = f"{path.stat().st_size / 2**30:.2f} GiB"
    else:
        detail = "build it with: " + image.ref.command("build --target qemu")
    if others:
        detail += f"; builds of other inputs: {', '.join(others)}"
    return {"present": path.is_file(), "path": str(path), "detail": detail}


# --- the accelerator -------------------------------------------------------------------------------------


def accelerator(disk: Path, repo_root: Path) -> str:
    """kvm when a KVM guest boots here (a short probe, cached per machine and kernel), else tcg.

    A machine may have /dev/kvm and still hang a KVM guest in early boot: only a guest that speaks
    on its console counts.
    """
    forced = os.environ.get(ACCEL_ENV)
    if forced in ("kvm", "tcg"):
        return forced
    uname = os.uname()
    machine = f"{uname.nodename} {uname.release}"
    cache = cache_dir() / "accelerator.json"
    try:
        known = json.loads(cache.read_text())
        if known.get("machine") == machine and known.get("accelerator") in ("kvm", "tcg"):
            return str(known["accelerator"])
    except (OSError, ValueError):
        pass
    if not disk.is_file():
        return "tcg"
    probe = repo_root / "terraform" / "spark-vm" / "scripts" / "vm-node"
    result = subprocess.run(
        ["bash", str(probe), "--probe-accel"],
        env={**os.environ, "VM_IMAGE": str(disk)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    found = result.stdout.strip() if result.stdout.strip() in ("kvm", "tcg") else "tcg"
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"machine": machine, "accelerator": found}) + "\n")
    return found


# --- the build -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QemuBuild:
    """The outcome of ``build --target qemu``."""

    path: Path
    built: bool
    seconds: float = 0.0

    def line(self) -> str:
        if not self.built:
            return f"{self.path} is in the local image cache for these inputs: not built (--force rebuilds)"
        return f"{self.path} built in {self.seconds:.0f} s"


def _seed(folder: Path, user: str) -> tuple[Path, str]:
    """A key pair for this build only and the NoCloud seed that authorizes it: (private key, public key)."""
    folder.mkdir(parents=True, exist_ok=True)
    key = folder / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hgi-spark-image-build", "-f", str(key)], check=True
    )
    public = key.with_suffix(".pub").read_text().strip()
    (folder / "user-data").write_text(
        "#cloud-config\n"
        f"# packer's login as {user} (cloud-init's default user) for this build only\n"
        f"ssh_authorized_keys:\n  - {public}\nssh_pwauth: false\n"
    )
    (folder / "meta-data").write_text(f"instance-id: hgi-spark-build-{os.urandom(4).hex()}\nlocal-hostname: build\n")
    return key, public


def _show_progress(log: Path, process: subprocess.Popen[bytes], say: Say) -> int:
    """Say packer's own step lines (``==>``) while it runs; everything stays in its log."""
    with open(log, encoding="utf-8", errors="replace") as reader:
        pending = ""
        while True:
            running = process.poll() is None
            pending += reader.read()
            *lines, pending = pending.split("\n")
            for line in lines:
                if line.startswith("==>") or "install-node: step" in line or "install-node: done" in line:
                    say(line.strip())
            if not running:
                return int(process.returncode)
            time.sleep(0.5)


def build(image: Image, *, force: bool = False, say: Say = _stderr) -> QemuBuild:
    """The qcow2 of ``image``: from the cache when its inputs did not change, else built by packer."""
    cached = image_path(image)
    if cached.is_file() and not force:
        return QemuBuild(cached, built=False)  # packer is not even looked for
    tool = packer.find()
    base = base_disk(image, say)
    wheels = wheelhouse(image, say)
    final = folder_for(image, image_key(image, base, wheels))
    qcow2 = final / f"{image.ref.glance_name}.qcow2"
    if qcow2.is_file() and not force:
        return QemuBuild(qcow2, built=False)
    images_dir().mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=images_dir(), prefix=".build-"))
    try:
        private_key, public = _seed(work / "seed", image.build.ssh_user)
        (work / "install.env").write_text(install_env_text(image))
        accel = accelerator(base, image.paths.repo.root)
        values = packer.var_values(
            image,
            glance_name=image.ref.glance_name,
            git_commit=provisioning.repository_commit(image.paths.repo.root),
            install_env_file=work / "install.env",
        )
        values.update(
            {
                "qemu_base_disk": str(base),
                "qemu_output_directory": str(work / "output"),
                "qemu_accelerator": accel,
                "qemu_cpu_model": "host" if accel == "kvm" else "max",
                "qemu_cpus": 2,
                "qemu_memory_mb": 2048,
                "qemu_seed_dir": str(work / "seed"),
                "qemu_ssh_private_key_file": str(private_key),
                "qemu_wheelhouse_dir": str(wheels),
                "qemu_serial_log": str(work / "serial.log"),
            }
        )
        var_file = packer.write_var_file(values, work / f"{image.ref.name}.pkrvars.json")
        argv = [tool.path, "build", "-color=false", "-on-error=cleanup", f"-only={packer.QEMU_SOURCE}"]
        argv += [f"-var-file={var_file}", str(image.paths.template)]
        log = work / "packer.log"
        say(f"+ {' '.join(argv)}  (with {accel}; full log: {log}, kept beside the image)")
        started = time.monotonic()
        with open(log, "w") as out:
            process = subprocess.Popen(
                argv,
                cwd=work,  # packer_cache/ lands here
                env={**os.environ, "CHECKPOINT_DISABLE": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopping it stops qemu too
            )
            try:
                code = _show_progress(log, process, say)
            except BaseException:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=120)
                raise
        seconds = time.monotonic() - started
        if code != 0:
            kept = cache_dir() / "logs" / f"{image.ref.glance_name}-{time.strftime('%Y%m%dT%H%M%S')}"
            kept.mkdir(parents=True, exist_ok=True)
            for name in ("packer.log", "serial.log", var_file.name):
                if (work / name).is_file():
                    shutil.copyfile(work / name, kept / name)
            raise ToolError(
                f"packer build failed with exit code {code} after {seconds:.0f} s", fix=f"see {kept}/packer.log"
            )
        (work / "output" / "build-key.pub").write_text(public + "\n")
        for name in ("packer.log", "serial.log"):
            if (work / name).is_file():
                shutil.copyfile(work / name, work / "output" / name)
        # The new image replaces the old one only now that it is complete.
        old = final.with_name(final.name + ".old")
        if final.exists():
            final.rename(old)
        (work / "output").rename(final)
        shutil.rmtree(old, ignore_errors=True)
        for stale in images_dir().glob(f"{image.ref.glance_name}-*"):
            if stale != final and stale.is_dir() and not stale.name.startswith("."):
                shutil.rmtree(stale, ignore_errors=True)
        say(f"built {qcow2} in {seconds:.0f} s")
        return QemuBuild(qcow2, built=True, seconds=seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
