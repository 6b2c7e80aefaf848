"""What run-node writes in system mode (an OpenStack node), rendered under NODE_SYSROOT in a temp dir.

`run-node --role ROLE --render-only` with NODE_MODE=system writes the systemd units, the worker's
fstab line and the master's NFS configuration below NODE_SYSROOT, and starts nothing. The node
environments come from terraform/spark/modules/cluster applied with real terraform (conftest.py),
with the node's paths moved into the temp dir, so these tests check what a node would really get.
Covered: NFSv4 only (issue 15, point 3), reboots (point 4), executor ports (point 5) and the tmp
volume's growth (point 6).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT

SCRIPTS = ROOT / "terraform" / "modules" / "spark-node" / "scripts"
RUN_NODE = SCRIPTS / "run-node"
FLAVOR_TABLE = ROOT / "terraform" / "modules" / "spark-sizing" / "tests" / "flavors.tftest.hcl"
VOLUME_ID = "6f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b"
DEVICE = "/dev/disk/by-id/virtio-6f1c2d3e-4b5a-6978-8"


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    """A folder laid out like the Hail venv (nothing in it runs: --render-only starts nothing)."""
    root = tmp_path / "venv"
    site = root / "lib" / "python3.11" / "site-packages"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").symlink_to(sys.executable)
    (site / "pyspark" / "bin").mkdir(parents=True)
    (site / "pyspark" / "bin" / "spark-class").write_text("#!/bin/sh\nexit 99\n")
    (site / "pyspark" / "bin" / "spark-class").chmod(0o755)
    (site / "hail" / "backend").mkdir(parents=True)
    (site / "hail" / "backend" / "hail-all-spark.jar").write_bytes(b"")
    return root


def render(env: dict[str, str], role: str, tmp_path: Path, venv: Path) -> Path:
    """Render a node's files from its terraform-made environment; return NODE_SYSROOT."""
    sysroot = tmp_path / f"root-{role}"
    local = dict(env)
    local.update(
        PATH="/usr/local/bin:/usr/bin:/bin",
        NODE_SYSROOT=str(sysroot),
        STATE_DIR=str(tmp_path / f"state-{role}"),
        HAIL_HOME=str(venv),
        HAIL_VENV=str(venv),
        HAIL_TMP_DIR=str(tmp_path / "hail-tmp"),
    )
    if role == "master":
        local["NOTEBOOK_DIR"] = str(tmp_path / "notebooks")
    done = subprocess.run(
        [str(RUN_NODE), "--role", role, "--render-only"], env=local, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return sysroot


def unit_sections(text: str) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections[current] = {}
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            sections[current][key] = value
    return sections


def spark_defaults(env: dict[str, str], role: str, tmp_path: Path) -> dict[str, str]:
    conf = tmp_path / f"state-{role}" / "conf" / "spark" / "spark-defaults.conf"
    pairs = (line.split(None, 1) for line in conf.read_text().splitlines() if line and not line.startswith("#"))
    return {key: value.strip() for key, value in pairs}


# --- point 4: reboots -----------------------------------------------------------------------------


def test_every_service_waits_for_the_shared_tmp_and_comes_back(render_cluster, tmp_path: Path, venv: Path) -> None:
    cluster = render_cluster(1, tmp_volume_id=VOLUME_ID)
    tmp_dir = str(tmp_path / "hail-tmp")
    for role, env, services in (
        ("master", cluster["master_env"], ["hgi-spark-master", "hgi-jupyter"]),
        ("worker", cluster["worker_envs"][0], ["hgi-spark-worker"]),
    ):
        sysroot = render(env, role, tmp_path, venv)
        for service in services:
            unit = unit_sections((sysroot / "etc/systemd/system" / f"{service}.service").read_text())
            # RequiresMountsFor= implies Requires= and After= on the path's mount units (systemd.unit(5)).
            assert unit["Unit"]["RequiresMountsFor"] == tmp_dir, service
            assert unit["Service"]["Restart"] == "always", service
            assert unit["Unit"]["StartLimitBurst"] == "10" and unit["Unit"]["StartLimitIntervalSec"] == "600", service
            assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_accepts_every_rendered_unit(render_cluster, tmp_path: Path, venv: Path) -> None:
    """systemd-analyze verify (Debian's systemd 252) loads each unit: a misspelt key or a bad value
    is only a warning to systemd, so any output fails the test."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    cluster = render_cluster(1, tmp_volume_id=VOLUME_ID)
    units: list[Path] = []
    for role, env in (("master", cluster["master_env"]), ("worker", cluster["worker_envs"][0])):
        units += sorted((render(env, role, tmp_path, venv) / "etc" / "systemd" / "system").glob("*.service"))
    assert {u.name for u in units} == {
        "hgi-spark-master.service", "hgi-jupyter.service", "hgi-spark-grow-tmp.service", "hgi-spark-worker.service",
    }  # fmt: skip
    done = subprocess.run([analyze, "verify", "--man=no", *map(str, units)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_the_worker_mounts_nfs4_with_retries_from_fstab(render_cluster, tmp_path: Path, venv: Path) -> None:
    env = render_cluster(1)["worker_envs"][0]
    tmp_dir = tmp_path / "hail-tmp"
    sysroot = tmp_path / "root-worker"
    (sysroot / "etc").mkdir(parents=True)
    # An earlier rendering's line for the same mount point (e.g. an older run-node) is replaced.
    old_line = f"10.42.0.10:{tmp_dir} {tmp_dir} nfs defaults 0 0"
    (sysroot / "etc" / "fstab").write_text(f"UUID=abc / ext4 defaults 0 1\n{old_line}\n")
    for _ in range(2):  # idempotent
        render(env, "worker", tmp_path, venv)
    lines = (sysroot / "etc" / "fstab").read_text().splitlines()
    assert lines[0] == "UUID=abc / ext4 defaults 0 1"
    assert len(lines) == 2
    source, mount_point, fstype, options, *_ = lines[1].split()
    assert (source, mount_point, fstype) == (f"10.42.0.10:{tmp_dir}", str(tmp_dir), "nfs")
    options = options.split(",")
    assert "nfsvers=4.2" in options and "hard" in options and "_netdev" in options and "nofail" in options
    assert "retry=15" in options and "x-systemd.mount-timeout=16min" in options
    assert not [o for o in options if o.startswith(("vers=3", "nfsvers=3", "udp"))]


def test_systemds_fstab_generator_makes_it_a_waiting_mount_unit(render_cluster, tmp_path: Path, venv: Path) -> None:
    """Debian's systemd-fstab-generator turns the line into the .mount unit hgi-spark-worker requires:
    it may take 16 minutes (mount.nfs retries for 15) and, being nofail, never fails the boot."""
    generator = Path("/usr/lib/systemd/system-generators/systemd-fstab-generator")
    if not generator.is_file():
        pytest.skip("systemd-fstab-generator is not installed")
    sysroot = render(render_cluster(1)["worker_envs"][0], "worker", tmp_path, venv)
    out = tmp_path / "generated"
    out.mkdir()
    done = subprocess.run(
        [str(generator), str(out), str(out), str(out)],
        env={"SYSTEMD_FSTAB": str(sysroot / "etc" / "fstab"), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [mount] = [m for m in out.glob("*.mount") if "hail" in m.name]
    unit = unit_sections(mount.read_text())
    assert unit["Mount"]["Type"] == "nfs" and unit["Mount"]["TimeoutSec"] == "16min"
    assert unit["Mount"]["What"] == f"10.42.0.10:{tmp_path / 'hail-tmp'}"
    assert (out / "remote-fs.target.wants" / mount.name).is_symlink()
    assert not (out / "remote-fs.target.requires" / mount.name).exists()


# --- point 3: NFSv4 only, and the master never exports an empty mount point -------------------------


def test_the_master_serves_nfs4_only_once_its_tmp_volume_is_mounted(render_cluster, tmp_path, venv) -> None:
    env = render_cluster(1, tmp_volume_id=VOLUME_ID)["master_env"]
    assert env["HAIL_TMP_DEVICE"] == DEVICE
    sysroot = render(env, "master", tmp_path, venv)
    tmp_dir = str(tmp_path / "hail-tmp")

    nfs_conf = (sysroot / "etc" / "nfs.conf.d" / "hgi-spark.conf").read_text()
    section = nfs_conf.split("[nfsd]", 1)[1]
    assert re.search(r"^vers3=n$", section, re.M) and re.search(r"^vers4\.2=y$", section, re.M)
    assert re.search(r"^udp=n$", section, re.M)

    drop_in = unit_sections((sysroot / "etc/systemd/system/nfs-server.service.d/hgi-spark.conf").read_text())
    assert drop_in["Unit"]["RequiresMountsFor"] == tmp_dir
    assert drop_in["Unit"]["After"] == "hgi-spark-grow-tmp.service"

    exports = (sysroot / "etc" / "exports.d" / "hgi-spark.exports").read_text()
    assert exports == f"{tmp_dir} 10.42.0.0/24(rw,sync,root_squash,no_subtree_check,mp)\n"


def test_without_a_volume_the_export_needs_no_mount(render_cluster, tmp_path: Path, venv: Path) -> None:
    env = render_cluster(1)["master_env"]
    assert env["HAIL_TMP_DEVICE"] == ""
    sysroot = render(env, "master", tmp_path, venv)
    exports = (sysroot / "etc" / "exports.d" / "hgi-spark.exports").read_text()
    assert exports.endswith("(rw,sync,root_squash,no_subtree_check)\n")
    assert (sysroot / "etc" / "nfs.conf.d" / "hgi-spark.conf").is_file()
    assert not (sysroot / "etc/systemd/system/hgi-spark-grow-tmp.service").exists()


# --- point 6: the tmp volume's filesystem grows with the volume ----------------------------------------


def test_the_master_grows_its_tmp_filesystem_at_boot(render_cluster, tmp_path: Path, venv: Path) -> None:
    env = render_cluster(1, tmp_volume_id=VOLUME_ID)["master_env"]
    sysroot = render(env, "master", tmp_path, venv)
    unit = unit_sections((sysroot / "etc/systemd/system/hgi-spark-grow-tmp.service").read_text())
    assert unit["Service"] == {"Type": "oneshot", "ExecStart": f"/sbin/resize2fs {DEVICE}"}
    assert unit["Unit"]["RequiresMountsFor"] == str(tmp_path / "hail-tmp")
    assert "nfs-server.service" in unit["Unit"]["Before"].split()
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    start = (SCRIPTS / "run-node").read_text()
    assert "systemctl enable --now hgi-spark-grow-tmp" in start


# --- point 5: executors never run out of ports, for every flavor the sizing accepts -----------------------


def flavor_table() -> dict[str, tuple[int, int]]:
    """The flavors of spark-sizing's table test: 2 vCPU / 4 GiB up to 64 vCPU / 512 GiB."""
    text = FLAVOR_TABLE.read_text(encoding="utf-8")
    found = re.findall(r'"([0-9]+c-[0-9]+g)"\s*=\s*\{\s*vcpus\s*=\s*([0-9]+),\s*ram_mb\s*=\s*([0-9]+)', text)
    return {label: (int(vcpus), int(ram)) for label, vcpus, ram in found}


def test_the_flavor_table_reaches_64_vcpus_and_512_gib() -> None:
    table = flavor_table()
    assert len(table) >= 15
    assert table["64c-512g"] == (64, 524288)


def inside(rules: dict[str, Any], first: int, last: int) -> bool:
    return any(r["protocol"] == "tcp" and r["min"] <= first and last <= r["max"] for r in rules.values())


@pytest.mark.parametrize("label", sorted(flavor_table()))
def test_spark_ports_and_security_groups_agree(render_cluster, tmp_path: Path, venv: Path, label: str) -> None:
    vcpus, ram_mb = flavor_table()[label]
    cluster = render_cluster(1, worker_flavor={"vcpus": vcpus, "ram_mb": ram_mb})
    executors = cluster["worker_size"]["executors_per_worker"]
    render(cluster["worker_envs"][0], "worker", tmp_path, venv)
    conf = spark_defaults(cluster["worker_envs"][0], "worker", tmp_path)
    retries = int(conf["spark.port.maxRetries"])

    # Executors pin no port: a pinned spark.blockManager.port would give a worker maxRetries + 1
    # ports for its executors, fewer than a 64-vCPU worker runs (16).
    assert "spark.blockManager.port" not in conf and "spark.executor.port" not in conf, (
        f"{label}: {executors} executors per worker, pinned ports allow {retries + 1}"
    )
    rules = cluster["internal_rules"]
    pinned = {key: int(conf[key]) for key in ("spark.driver.port", "spark.driver.blockManager.port", "spark.ui.port")}
    # Each pinned port may move up by maxRetries: the whole range is open between members.
    for key, port in pinned.items():
        assert inside(rules, port, port + retries), f"{key} {port}..{port + retries} is not open inside the cluster"
    # The app UI range the security group opens is exactly what maxRetries allows.
    assert rules["spark-app-ui tcp"]["max"] - rules["spark-app-ui tcp"]["min"] == retries
    # Executors' ports come from the kernel's ephemeral range (Linux default 32768..60999), all open.
    ephemeral = rules["spark-rpc-ephemeral tcp"]
    assert (ephemeral["min"], ephemeral["max"]) == (32768, 60999)
    assert ephemeral["max"] - ephemeral["min"] + 1 >= 2 * executors + 1  # RPC + block manager each, + worker
    if label == "64c-512g":
        assert executors == 16 > retries + 1  # what the old pinned block manager port could not serve
