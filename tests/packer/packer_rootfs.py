"""A minbase root filesystem (Debian 12, Ubuntu 24.04) to run the image's install script in, for real.

``packer build`` needs Nova, but what packer runs inside the VM can run here: debootstrap a root
once (cached as a tarball keyed by the date), unpack a fresh copy per run, and run the entry script
inside it with ``unshare`` + ``chroot``. The traps of running in a chroot instead of a VM (DNS,
hosts file, CA trust, services starting) are handled here, never in the install script.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "invoke"))

from hgi_spark.core import config  # noqa: E402
from hgi_spark.core.layout import Repository  # noqa: E402
from hgi_spark.images import provisioning  # noqa: E402

CACHE_DIR = Path(os.environ.get("HGI_CACHE_DIR", Path.home() / ".cache" / "hgi-spark"))
STAGING = "/tmp/hgi-spark-install"  # the same folder packer uploads to (packer/hail-base.pkr.hcl)
PIP_CACHE_INSIDE = "/var/cache/hgi-spark-pip"
INSIDE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Not part of the image: never compared by snapshots.
VOLATILE = ("proc", "sys", "dev", "run", "tmp", PIP_CACHE_INSIDE.lstrip("/"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] rootfs: {message}", file=sys.stderr, flush=True)


def host_mirror() -> str:
    """The Debian mirror of this host's apt sources (deb822 or one-line form)."""
    deb822 = Path("/etc/apt/sources.list.d/debian.sources")
    if deb822.is_file():
        for stanza in deb822.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#")
            )
            if "bookworm" in fields.get("Suites", "").split() and fields.get("URIs"):
                return fields["URIs"].split()[0]
    one_line = Path("/etc/apt/sources.list")
    if one_line.is_file():
        for line in one_line.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == "bookworm":
                return parts[1]
    return "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Base:
    """A distribution the install script supports, as debootstrap builds it."""

    name: str  # as install-node names it: ID-VERSION_ID of /etc/os-release
    suite: str
    mirror: str
    components: str = "main"
    script: str | None = None  # debootstrap script when this debootstrap does not know the suite
    check_gpg: bool = True
    security_mirror: str | None = None  # None: the same as mirror

    def sources(self) -> str:
        """apt sources of a cloud image of this base: release, updates and security."""
        components = self.components.replace(",", " ")
        lines = [f"deb {self.mirror} {self.suite}{pocket} {components}" for pocket in ("", "-updates")]
        lines.append(f"deb {self.security_mirror or self.mirror} {self.suite}-security {components}")
        return "\n".join(lines) + "\n"


BASES = {
    "debian-12": Base("debian-12", "bookworm", host_mirror(), security_mirror="http://deb.debian.org/debian-security"),
    # Debian's debootstrap has no Ubuntu keyring here and no noble script: gutsy's fits every
    # recent Ubuntu; the Release files are not verified by debootstrap (apt inside verifies them
    # with the root's own ubuntu-keyring afterwards).
    "ubuntu-24.04": Base(
        "ubuntu-24.04", "noble", "http://archive.ubuntu.com/ubuntu", "main,universe", "gutsy", check_gpg=False
    ),
}


def pip_index_env() -> dict[str, str]:
    """How pip reaches its index here, without the host's pip config (it names local paths).

    Only an index URL and a timeout are passed on; find-links, extra local indexes and
    constraints stay on the host.
    """
    env: dict[str, str] = {}
    for key in ("PIP_INDEX_URL", "PIP_DEFAULT_TIMEOUT"):
        if os.environ.get(key):
            env[key] = os.environ[key]
    if "PIP_INDEX_URL" not in env:
        found = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.index-url"],
            capture_output=True,
            text=True,
            check=False,
        )
        if found.returncode == 0 and found.stdout.strip():
            env["PIP_INDEX_URL"] = found.stdout.strip()
    return env


def base_tarball(base: str = "debian-12", cache_dir: Path = CACHE_DIR, day: datetime.date | None = None) -> Path:
    """A tarball of a minbase root of ``base``, built by debootstrap once a day and shared (file lock)."""
    spec = BASES[base]
    day = day or datetime.datetime.now(datetime.timezone.utc).date()
    folder = cache_dir / "debootstrap"
    folder.mkdir(parents=True, exist_ok=True)
    tarball = folder / f"{spec.name}-{spec.suite}-minbase-amd64-{day:%Y%m%d}.tar"
    if tarball.is_file():
        return tarball
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.is_file():
            return tarball
        work = Path(tempfile.mkdtemp(dir=folder, prefix=".build-"))
        try:
            root = work / "root"
            argv = ["debootstrap", "--variant=minbase", f"--components={spec.components}"]
            argv += [] if spec.check_gpg else ["--no-check-gpg"]
            argv += [spec.suite, str(root), spec.mirror]
            argv += [f"/usr/share/debootstrap/scripts/{spec.script}"] if spec.script else []
            log(" ".join(argv))
            started = time.monotonic()
            # In a private mount namespace: debootstrap's own proc/sys mounts vanish with it.
            subprocess.run(
                ["unshare", "--mount", "--propagation", "private", *argv], check=True, stdout=subprocess.DEVNULL
            )
            partial = work / "base.tar"
            subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
            partial.rename(tarball)
            log(f"base root cached as {tarball.name} in {time.monotonic() - started:.0f} s")
        finally:
            shutil.rmtree(work, ignore_errors=True)
        for old in folder.glob(f"{spec.name}-*.tar"):
            if old != tarball:
                old.unlink()
    return tarball


# Unpacked roots go to memory when there is room: pip writes 1.3 GB of small files, about 40 %
# faster on tmpfs than on this machine's disk (measured: install-node 56 s against 90 s).
TMPFS = Path("/dev/shm")
TMPFS_MIN_AVAILABLE_GIB = 8


def scratch_parent(fallback: Path) -> Path:
    """Where to unpack a root: $HGI_ROOTFS_DIR, else /dev/shm with enough free memory, else fallback."""
    if os.environ.get("HGI_ROOTFS_DIR"):
        return Path(os.environ["HGI_ROOTFS_DIR"])
    available_kib = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            available_kib = int(line.split()[1])
    if TMPFS.is_dir() and os.access(TMPFS, os.W_OK) and available_kib >= TMPFS_MIN_AVAILABLE_GIB * 1024 * 1024:
        return TMPFS
    return fallback


@dataclass
class Result:
    """One run inside the root."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float


class NodeRoot:
    """A fresh unpacked root filesystem; ``remove()`` deletes it once nothing is mounted in it."""

    def __init__(self, path: Path, base: str = "debian-12") -> None:
        self.path = path
        self.base = BASES[base]

    @classmethod
    def unpack(cls, tarball: Path, parent: Path, base: str = "debian-12") -> NodeRoot:
        """Untar a fresh copy under ``scratch_parent(parent)``; ``remove()`` it when done."""
        path = Path(tempfile.mkdtemp(dir=scratch_parent(parent), prefix="hgi-node-root-"))
        subprocess.run(["tar", "-C", str(path), "--numeric-owner", "-xpf", str(tarball)], check=True)
        root = cls(path, base)
        root.prepare()
        return root

    def prepare(self) -> None:
        """The chroot's traps: DNS, hosts, CA trust, apt sources, no service starts."""
        etc = self.path / "etc"
        resolv = etc / "resolv.conf"
        resolv.unlink(missing_ok=True)
        shutil.copyfile(Path("/etc/resolv.conf").resolve(), resolv)
        hostname = socket.gethostname()
        (etc / "hostname").write_text(f"{hostname}\n")
        # Spark resolves the host name: UnknownHostException without the 127.0.1.1 line.
        (etc / "hosts").write_text(
            f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        )
        # The host's extra CAs (a TLS-inspecting proxy, say): trusted once ca-certificates installs.
        extra_cas = self.path / "usr/local/share/ca-certificates"
        extra_cas.mkdir(parents=True, exist_ok=True)
        for cert in Path("/usr/local/share/ca-certificates").glob("*.crt"):
            shutil.copyfile(cert, extra_cas / cert.name)
        policy = self.path / "usr/sbin/policy-rc.d"
        policy.write_text("#!/bin/sh\n# test harness: services never start in the chroot\nexit 101\n")
        policy.chmod(0o755)
        # Release, updates and security, like a cloud image's sources (debootstrap writes only one).
        (etc / "apt/sources.list").write_text(self.base.sources())

    def stage(
        self,
        repo: Repository,
        image_name: str = "hail-base/1.0.0",
        *,
        env_overrides: dict | None = None,
        pip_cache: bool = False,
    ) -> str:
        """Put what packer uploads where packer puts it; return the install-node command line.

        ``pip_cache``: the run binds a host wheel cache in (``run(pip_cache=...)``); tell the script.
        """
        image = config.load_image(image_name, repo)
        staging = self.path / STAGING.lstrip("/")
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "node").mkdir(parents=True)
        for script in ("install-node", "install-hail-env"):
            shutil.copy2(repo.packer_dir / "scripts" / script, staging / script)
        env = provisioning.install_env(image, commit="test")
        env.update(env_overrides or {})
        (staging / "install.env").write_text(provisioning.render_install_env(env, source=image_name))
        assert image.constraints_file is not None
        shutil.copyfile(image.constraints_file, staging / "constraints.txt")
        shutil.copytree(repo.terraform_dir / "modules/spark-node/scripts", staging / "node", dirs_exist_ok=True)
        return self.command(pip_cache=pip_cache)

    def command(self, *, pip_cache: bool = False) -> str:
        """install-node's command line as packer/hail-base.pkr.hcl runs it (plus ``--pip-cache``)."""
        return (
            f"bash {STAGING}/install-node --env-file {STAGING}/install.env"
            f" --constraints {STAGING}/constraints.txt --node-scripts {STAGING}/node"
            + (f" --pip-cache {PIP_CACHE_INSIDE}" if pip_cache else "")
        )

    def run(
        self,
        command: str,
        *,
        pip_cache: Path | None = None,
        timeout: float = 1800,
        env: dict[str, str] | None = None,
    ) -> Result:
        """Run ``bash -c COMMAND`` as root inside, in private mount and pid namespaces."""
        inside_env = {
            "PATH": INSIDE_PATH,
            "HOME": "/root",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "DEBIAN_FRONTEND": "noninteractive",
            "PIP_CERT": "/etc/ssl/certs/ca-certificates.crt",
            **pip_index_env(),
            **(env or {}),
        }
        binds = ""
        if pip_cache is not None:
            pip_cache.mkdir(parents=True, exist_ok=True)
            (self.path / PIP_CACHE_INSIDE.lstrip("/")).mkdir(parents=True, exist_ok=True)
            binds = f'mount --bind "{pip_cache}" "$R{PIP_CACHE_INSIDE}"; '
        setup = (
            'set -e; R="$1"; shift; mount -t proc proc "$R/proc"; mount -t sysfs sysfs "$R/sys"; '
            f'mount --rbind /dev "$R/dev"; mount -t tmpfs tmpfs "$R/run"; {binds}exec chroot "$R" "$@"'
        )
        argv = [
            "unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
            "bash", "-c", setup, "_", str(self.path),
            "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in inside_env.items()), "/bin/bash", "-c", command,
        ]  # fmt: skip
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        return Result(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def snapshot(self) -> dict[str, tuple]:
        """Every file's type, mode, owner, size, mtime and link target: what a second run must not change."""
        entries: dict[str, tuple] = {}
        skip = {self.path / name for name in VOLATILE}
        for folder, dirs, files in os.walk(self.path):
            current = Path(folder)
            dirs[:] = [d for d in dirs if current / d not in skip]
            for name in dirs + files:
                path = current / name
                info = path.lstat()
                target = os.readlink(path) if path.is_symlink() else None
                entries[str(path.relative_to(self.path))] = (
                    info.st_mode, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, target,
                )  # fmt: skip
        return entries

    def remove(self) -> None:
        mounts = Path("/proc/self/mountinfo").read_text()
        if f" {self.path}/" in mounts or f" {self.path} " in mounts:
            raise RuntimeError(f"refusing to delete {self.path}: something is still mounted in it")
        shutil.rmtree(self.path)


def diff_snapshots(before: dict[str, tuple], after: dict[str, tuple]) -> list[str]:
    """Readable differences: added, removed and changed paths."""
    changes = [f"added {p}" for p in sorted(after.keys() - before.keys())]
    changes += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    changes += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return changes


def step_times(stderr: str) -> dict[str, tuple[float, str]]:
    """install-node's per-step lines ``step NAME: RESULT in N s`` as {name: (seconds, result)}."""
    times: dict[str, tuple[float, str]] = {}
    for line in stderr.splitlines():
        marker = line.find(": step ")
        if marker < 0 or " in " not in line or line.endswith(": start"):
            continue
        name, _, rest = line[marker + len(": step ") :].partition(": ")
        result, _, seconds = rest.rpartition(" in ")
        times[name] = (float(seconds.removesuffix(" s")), result)
    return times
