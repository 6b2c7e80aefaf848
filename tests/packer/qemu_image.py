"""The hail-base image built for real by packer's qemu source on this machine, and checked.

Run as a script (``py3/bin/python tests/packer/qemu_image.py [--check] [--force]``) or through
tests/packer/test_qemu_image.py. Every expensive piece is cached under ~/.cache/hgi-spark/ keyed by
a digest of its inputs, and every file appears atomically:

the base disk, the wheelhouse and the image itself (invoke/hgi_spark/images/qemu.py says how);
the build goes through the front door, ``bash invoke.sh image hail-base/1.0.0 build --target qemu``.

The check does not trust packer's log: it reads the image's filesystem offline (debugfs on a raw
copy) for what a clone must not inherit, then boots a copy-on-write overlay of it under qemu with a
NoCloud seed whose runcmd prints facts to the serial console, and compares both with image.yml.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "invoke"))
sys.path.insert(0, str(HERE))

from hgi_spark.core import config  # noqa: E402
from hgi_spark.core.layout import Repository  # noqa: E402
from hgi_spark.images import qemu  # noqa: E402

CACHE_DIR = Path(os.environ.get("HGI_CACHE_DIR", Path.home() / ".cache" / "hgi-spark"))
SCRIPTS = REPO / "packer" / "scripts"
TEMPLATE = REPO / "packer" / "hail-base.pkr.hcl"
NODE_SCRIPTS = REPO / "terraform" / "modules" / "spark-node" / "scripts"
APT_SOURCES = (Path("/etc/apt/sources.list.d/debian.sources"), Path("/etc/apt/sources.list"))
BUILD_USER = "debian"  # build.ssh_user of images/hail-base/defaults.yml: the base's default user
PARTITION_OFFSET = 1048576  # make-base-disk's one partition starts at sector 2048
CHECK_BEGIN, CHECK_END = "HGI-CHECK-BEGIN", "HGI-CHECK-END"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] qemu-image: {message}", file=sys.stderr, flush=True)


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    log("+ " + " ".join(argv))
    return subprocess.run(argv, check=True, **kwargs)


# --- the build: through the front door ------------------------------------------------------------


@dataclass
class Built:
    image: Path
    seconds: float  # 0 when it came from the cache
    public_key: str
    log: Path


def build(image_ref: str = "hail-base/1.0.0", *, force: bool = False, env: Mapping[str, str] | None = None) -> Built:
    """``bash invoke.sh image IMAGE build --target qemu`` (the library's images/qemu.py does the work)."""
    argv = ["bash", str(REPO / "invoke.sh"), "image", image_ref, "build", "--target", "qemu"]
    if force:
        argv.append("--force")
    started = time.monotonic()
    done = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[2:])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr[-6000:]}")
    log(done.stdout.strip())
    image = qemu.image_path(config.load_image(image_ref, Repository.default()))
    seconds = time.monotonic() - started if "built in" in done.stdout else 0.0
    public = (image.parent / "build-key.pub").read_text().strip()
    return Built(image, seconds, public, image.parent / "packer.log")


# --- the check -------------------------------------------------------------------------------------


def debugfs(raw: Path, command: str) -> str:
    """Run one debugfs request on the image's root filesystem, read-only, nothing mounted."""
    result = subprocess.run(
        ["debugfs", "-R", command, f"{raw}?offset={PARTITION_OFFSET}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout


def offline_facts(qcow2: Path, work: Path) -> dict[str, Any]:
    """What a clone must (not) inherit, read from the image's filesystem itself."""
    raw = work / "image.raw"
    run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(qcow2), str(raw)])
    try:

        def exists(path: str) -> bool:
            return "Inode:" in debugfs(raw, f"stat {path}")

        def cat(path: str) -> str:
            return debugfs(raw, f"cat {path}")

        passwd = cat("/etc/passwd")
        wants = debugfs(raw, "ls -l /etc/systemd/system/multi-user.target.wants")
        authorized = [f"/home/{BUILD_USER}/.ssh/authorized_keys", "/root/.ssh/authorized_keys"]
        return {
            "manifest": json.loads(cat("/etc/hgi-spark/image.json") or "{}"),
            "machine_id": cat("/etc/machine-id"),
            "machine_id_exists": exists("/etc/machine-id"),
            "cloud_seed": exists("/var/lib/cloud/seed"),
            "cloud_instance": exists("/var/lib/cloud/instance"),
            "cloud_init_log": exists("/var/log/cloud-init.log"),
            "authorized_keys": {path: cat(path) for path in authorized if exists(path)},
            "users": [line.split(":")[0] for line in passwd.splitlines() if ":" in line],
            "passwd": {line.split(":")[0]: line.split(":") for line in passwd.splitlines() if line.count(":") == 6},
            "constraints": cat("/etc/hgi-spark/constraints.txt"),
            "installer": exists("/opt/hgi-spark/node/install-hail-env"),
            "profile": exists("/etc/profile.d/hgi-spark.sh"),
            "enabled_units": wants.split(),
            "staging": exists("/tmp/hgi-spark-install"),
        }
    finally:
        raw.unlink(missing_ok=True)


CHECK_SCRIPT = HERE / "image-check"  # runs at the check boot, prints facts to the console


def check_boot(qcow2: Path, work: Path, *, timeout: float = 900) -> tuple[dict[str, Any], str]:
    """Boot an overlay of the image with a NoCloud seed whose runcmd prints facts; (facts, console)."""
    overlay = work / "check.qcow2"
    run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(qcow2), "-F", "qcow2", str(overlay)])
    seed = work / "seed"
    seed.mkdir()
    script_lines = "\n".join("      " + line for line in CHECK_SCRIPT.read_text().splitlines())
    (seed / "user-data").write_text(
        "#cloud-config\nwrite_files:\n  - path: /usr/local/sbin/hgi-check\n    permissions: '0755'\n"
        f"    content: |\n{script_lines}\n"
        "runcmd:\n  - [/usr/local/sbin/hgi-check]\n"
        "power_state:\n  mode: poweroff\n  condition: true\n  timeout: 30\n"
    )
    (seed / "meta-data").write_text("instance-id: hgi-image-check\nlocal-hostname: hail-base-check\n")
    iso = work / "seed.iso"
    run(
        [
            *("genisoimage", "-quiet", "-output", str(iso), "-volid", "cidata", "-joliet", "-rock"),
            *(str(seed / "user-data"), str(seed / "meta-data")),
        ]
    )
    console = work / "console.log"
    accel = qemu.accelerator(qcow2, REPO)
    cpu = "host" if accel == "kvm" else "max"
    argv = ["qemu-system-x86_64", "-accel", f"{accel}" + (",thread=multi" if accel == "tcg" else ""), "-cpu", cpu]
    argv += ["-smp", "2", "-m", "2048", "-display", "none", "-no-reboot", "-serial", f"file:{console}"]
    argv += ["-drive", f"file={overlay},if=virtio,format=qcow2", "-drive", f"file={iso},media=cdrom,readonly=on"]
    argv += ["-netdev", "user,id=n0,restrict=on", "-device", "virtio-net-pci,netdev=n0", "-monitor", "none"]
    log("+ " + " ".join(argv))
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    text = console.read_text(errors="replace") if console.is_file() else ""
    if CHECK_BEGIN not in text or CHECK_END not in text:
        raise AssertionError(f"no check output on the console; its end:\n{text[-3000:]}")
    body = text.split(CHECK_BEGIN, 1)[1].split(CHECK_END, 1)[0]
    line = next(line for line in body.splitlines() if line.strip().startswith("{"))
    return json.loads(line.strip()), text


@dataclass
class Checked:
    offline: dict[str, Any]
    booted: dict[str, Any]
    seconds: float


def check(built: Built, *, work: Path | None = None) -> Checked:
    """Offline facts and facts from a boot of the image; raises nothing, returns both."""
    started = time.monotonic()
    own = work is None
    work = work or Path(tempfile.mkdtemp(prefix="hgi-image-check-"))
    try:
        offline = offline_facts(built.image, work)
        booted, _ = check_boot(built.image, work)
        return Checked(offline, booted, time.monotonic() - started)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def problems(checked: Checked, image: config.Image, public_key: str) -> list[str]:
    """Everything the image gets wrong, as readable lines (empty: it is right)."""
    found: list[str] = []
    software = image.software.model_dump()
    offline, booted = checked.offline, checked.booted
    manifest = offline["manifest"]
    wanted = {key: str(value) for key, value in software.items()}
    if manifest.get("software") != wanted:
        found.append(f"image.json software {manifest.get('software')} != image.yml {wanted}")
    installed = manifest.get("installed", {})
    for name in ("hail", "pyspark", "jupyterlab"):
        if installed.get(name) != wanted[name]:
            found.append(f"image.json installed {name} {installed.get(name)} != {wanted[name]}")
    if not str(installed.get("python", "")).startswith(wanted["python"] + "."):
        found.append(f"python {installed.get('python')} is not {wanted['python']}")
    if not str(installed.get("java", "")).startswith(wanted["java"]):
        found.append(f"java {installed.get('java')} is not {wanted['java']}")
    if offline["machine_id"] != "" or not offline["machine_id_exists"]:
        found.append(f"/etc/machine-id is not an empty file: {offline['machine_id']!r}")
    for key in ("cloud_seed", "cloud_instance", "cloud_init_log", "staging"):
        if offline[key]:
            found.append(f"the image carries {key}")
    key_body = public_key.split()[1] if public_key else "?"
    for path, text in offline["authorized_keys"].items():
        if key_body in text:
            found.append(f"the build key is still in {path}")
    user = image.app_user
    entry = offline["passwd"].get(user.name)
    if entry is None:
        found.append(f"no user {user.name} in /etc/passwd")
    elif entry[2:4] != [str(user.uid), str(user.gid)] or entry[5] != user.home:
        found.append(f"{user.name} is {':'.join(entry)}, not uid {user.uid}, gid {user.gid}, home {user.home}")
    if image.constraints_file and offline["constraints"] != image.constraints_file.read_text():
        found.append("/etc/hgi-spark/constraints.txt is not the image's constraints.txt")
    if not offline["installer"]:
        found.append("no install-hail-env among the node scripts")
    if not offline["profile"]:
        found.append("no /etc/profile.d/hgi-spark.sh")
    for unit in ("nginx.service", "nfs-server.service"):
        if unit in offline["enabled_units"]:
            found.append(f"{unit} is enabled in the image")
    versions = booted["imports"].split()
    if versions[:3] != [wanted["hail"], wanted["pyspark"], wanted["jupyterlab"]]:
        found.append(f"import hail, pyspark in the booted image: {booted['imports']!r}")
    if f'version "{wanted["java"]}' not in booted["java"]:
        found.append(f"java in the booted image: {booted['java']!r}")
    for key in ("nginx", "nfs_server"):
        if booted[key] != "disabled":
            found.append(f"{key} is {booted[key]!r} at boot, not disabled")
    for key in ("nginx_installed", "nfs_installed"):
        if "install ok installed" not in booted[key]:
            found.append(f"{key}: {booted[key]!r}")
    if "uid=" not in booted["hgi"] or booted["hgi_home"] != "/opt/hail":
        found.append(f"user hgi or its login environment: {booted['hgi']!r} HAIL_HOME={booted['hgi_home']!r}")
    if "uid=" not in booted["default_user"]:
        found.append(f"cloud-init did not create the default user {BUILD_USER}: {booted['default_user']!r}")
    if len(booted["machine_id"]) != 32:
        found.append(f"no fresh machine id at boot: {booted['machine_id']!r}")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="hail-base/1.0.0")
    parser.add_argument("--force", action="store_true", help="rebuild the image even if cached")
    parser.add_argument("--check", action="store_true", help="check the image afterwards")
    args = parser.parse_args()
    built = build(args.image, force=args.force)
    size = built.image.stat().st_size
    print(json.dumps({"image": str(built.image), "build_seconds": round(built.seconds), "bytes": size}))
    if args.check:
        image = config.load_image(args.image, Repository.default())
        checked = check(built)
        found = problems(checked, image, built.public_key)
        print(json.dumps({"check_seconds": round(checked.seconds), "problems": found, "booted": checked.booted}))
        return 1 if found else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
