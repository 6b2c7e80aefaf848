"""The VM cluster's node scripts (terraform/spark-vm/scripts): the NoCloud seed they write, pid-file
handling that never signals a foreign process, qemu's exact argv through a fake qemu (the seam),
and, marked slow, two real VMs on a private bridge booted, reached and destroyed without leftovers.

The real boot needs root, qemu-system-x86, qemu-utils, genisoimage, iproute2 and a bootable
Debian 12 cloud disk: HGI_SPARK_VM_IMAGE, or the one tests/vm/make-dev-image makes in
~/.cache/hgi-spark/dev/debian12-dev.qcow2 (skipped when there is none).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "terraform" / "spark-vm" / "scripts"
VM_NODE = SCRIPTS / "vm-node"
VM_NET = SCRIPTS / "vm-net"
DEV_IMAGE = Path.home() / ".cache" / "hgi-spark" / "dev" / "debian12-dev.qcow2"

needs_qemu_img = pytest.mark.skipif(
    not (shutil.which("qemu-img") and shutil.which("genisoimage")), reason="needs qemu-utils and genisoimage"
)
needs_root_net = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("ip"), reason="needs root and iproute2 (network namespaces)"
)


def run(cmd: list[str], env: dict[str, str], check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**os.environ, **env}, text=True, capture_output=True, check=check, timeout=120)


def base_image(tmp_path: Path) -> Path:
    image = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "64M"], check=True)
    return image


def vm_env(tmp_path: Path, image: Path, *, master: bool = True, tag: str = "t") -> dict[str, str]:
    env = {
        "VM_NAME": f"spark-vm-{tag}-master" if master else f"spark-vm-{tag}-worker-001",
        "VM_DIR": str(tmp_path / ("master" if master else "worker-1")),
        "VM_IMAGE": str(image),
        "VM_ACCEL": "tcg",
        "VM_VCPUS": "2",
        "VM_MEMORY_MB": "2048",
        "VM_NETNS": f"hgi-test-{os.getpid()}-{tag}",
        "VM_BRIDGE": "br-cluster",
        "VM_TAP": f"hst{os.getpid() % 100000:05d}{tag}{'m' if master else 'w1'}"[:15],
        "VM_MAC": "52:54:00:aa:bb:0a" if master else "52:54:00:aa:bb:0b",
        "VM_ADDRESS": "10.98.0.10/24" if master else "10.98.0.11/24",
        "VM_PUBLIC_KEYS": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test",
        "VM_USER_DATA": "#cloud-config\nruncmd:\n  - echo 'hgi-spark-node-ready role=master name=x'\n",
        "VM_STOP_GRACE_S": "0",
    }
    if master:
        env |= {
            "VM_PUBLIC_MAC": "52:54:01:aa:bb:0a",
            "VM_HOSTFWD": "tcp:127.0.0.1:22999-:22,tcp:127.0.0.1:28999-:80",
        }
    return env


@needs_qemu_img
def test_render_only_writes_the_nocloud_seed_and_an_overlay(tmp_path: Path) -> None:
    image = base_image(tmp_path)
    env = vm_env(tmp_path, image)
    done = run([str(VM_NODE), "--render-only"], env)
    assert done.returncode == 0, done.stderr
    vm_dir = Path(env["VM_DIR"])
    seed = vm_dir / "seed"
    assert (seed / "user-data").read_text() == env["VM_USER_DATA"]
    assert (seed / "user-data").stat().st_mode & 0o077 == 0
    meta = (seed / "meta-data").read_text()
    assert "instance-id: spark-vm-t-master\n" in meta and "local-hostname: spark-vm-t-master\n" in meta
    assert '  - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForTests test"' in meta
    net = (seed / "network-config").read_text()
    assert 'name: eth0\n    mac_address: "52:54:00:aa:bb:0a"' in net and "address: 10.98.0.10/24" in net
    assert 'name: eth1\n    mac_address: "52:54:01:aa:bb:0a"' in net and "address: 10.0.2.15/24" in net
    info = subprocess.run(["qemu-img", "info", str(vm_dir / "disk.qcow2")], capture_output=True, text=True).stdout
    assert f"backing file: {image}" in info
    assert (vm_dir / "seed.iso").stat().st_size > 0


@needs_qemu_img
def test_a_worker_has_no_user_mode_nic(tmp_path: Path) -> None:
    env = vm_env(tmp_path, base_image(tmp_path), master=False)
    assert run([str(VM_NODE), "--render-only"], env).returncode == 0
    net = (Path(env["VM_DIR"]) / "seed" / "network-config").read_text()
    assert "eth1" not in net and "address: 10.98.0.11/24" in net


def test_status_of_a_vm_never_started(tmp_path: Path) -> None:
    done = run([str(VM_NODE), "--status"], vm_env(tmp_path, tmp_path / "none.qcow2"))
    assert done.returncode == 3
    assert done.stdout == "spark-vm-t-master stopped -\n"


def test_a_pid_file_of_a_foreign_process_is_dropped_never_signalled(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    Path(env["VM_DIR"]).mkdir()
    foreign = subprocess.Popen(["sleep", "60"])
    try:
        (Path(env["VM_DIR"]) / "qemu.pid").write_text(f"{foreign.pid}\n")
        done = run([str(VM_NODE), "--stop"], env)
        assert done.returncode == 0, done.stderr
        assert "not this VM's qemu" in done.stderr and "process left alone" in done.stderr
        assert foreign.poll() is None, "a foreign process was signalled"
        assert not (Path(env["VM_DIR"]) / "qemu.pid").exists()
    finally:
        foreign.kill()
        foreign.wait()


def test_a_dead_vm_is_reported_with_its_pid(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    Path(env["VM_DIR"]).mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    (Path(env["VM_DIR"]) / "qemu.pid").write_text(f"{gone.pid}\n")
    done = run([str(VM_NODE), "--status"], env)
    assert done.returncode == 3 and done.stdout == f"spark-vm-t-master dead {gone.pid}\n"
    done = run([str(VM_NODE), "--stop"], env)
    assert "is gone (crashed or killed" in done.stderr


def test_a_missing_variable_is_named(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    env["VM_TAP"] = ""
    done = run([str(VM_NODE), "--status"], env)
    assert done.returncode == 1 and "missing environment: VM_TAP" in done.stderr


FAKE_QEMU = """#!/usr/bin/env bash
# Records its argv, then "daemonizes" like qemu: a child named after the pid file, whose pid it writes.
printf '%s\\n' "$@" >"${FAKE_ARGV}"
pidfile=""
while [[ $# -gt 0 ]]; do [[ $1 == -pidfile ]] && pidfile="$2"; shift; done
setsid bash -c 'sleep 300; true' fake-qemu -pidfile "${pidfile}" </dev/null >/dev/null 2>&1 &
echo $! >"${pidfile}"
"""


@needs_qemu_img
@needs_root_net
def test_start_passes_qemu_the_exact_argv_and_leaves_no_orphan_when_the_tap_is_missing(tmp_path: Path) -> None:
    image = base_image(tmp_path)
    env = vm_env(tmp_path, image, tag="f")
    fake = tmp_path / "fake-qemu"
    fake.write_text(FAKE_QEMU)
    fake.chmod(0o755)
    volume = tmp_path / "volumes" / "tmp.qcow2"
    env |= {
        "VM_QEMU": str(fake),
        "FAKE_ARGV": str(tmp_path / "argv"),
        "VM_DATA_DISK": str(volume),
        "VM_DATA_DISK_GB": "1",
        "VM_DATA_DISK_SERIAL": "0123456789abcdef0123",
        "VM_BRIDGE_ADDRESS": "10.98.0.1/24",
    }
    assert run([str(VM_NODE), "--create-volume"], env).returncode == 0
    assert run([str(VM_NET), "--up"], env).returncode == 0
    try:
        done = run([str(VM_NODE), "--start"], env)
        # The fake made no tap: attaching it fails, and the "qemu" must be stopped, not orphaned.
        assert done.returncode == 1 and "could not attach" in done.stderr, done.stderr
        argv = (tmp_path / "argv").read_text().splitlines()
        assert argv[:4] == ["-accel", "tcg,thread=single", "-cpu", "Nehalem"]
        joined = " ".join(argv)
        assert "-smp 2 -m 2048" in joined
        assert f"file={env['VM_DIR']}/disk.qcow2,if=none,id=root,format=qcow2" in joined
        assert "virtio-blk-pci,drive=root,bootindex=0" in joined
        assert f"tap,id=cluster,ifname={env['VM_TAP']},script=no,downscript=no" in joined
        assert "virtio-net-pci,netdev=cluster,mac=52:54:00:aa:bb:0a,romfile=" in joined
        assert "user,id=public,restrict=on,hostfwd=tcp:127.0.0.1:22999-:22,hostfwd=tcp:127.0.0.1:28999-:80" in joined
        assert "virtio-blk-pci,drive=data,serial=0123456789abcdef0123" in joined
        assert f"file,id=console,path={env['VM_DIR']}/console.log" in joined
        assert not (Path(env["VM_DIR"]) / "qemu.pid").exists()
        leftovers = subprocess.run(["pgrep", "-f", f"fake-qemu -pidfile {env['VM_DIR']}"], capture_output=True)
        assert leftovers.returncode == 1, "the fake qemu was orphaned"
    finally:
        run([str(VM_NET), "--down", "--force"], env)
        run([str(VM_NODE), "--delete-volume"], env)
    assert not Path(f"/run/netns/{env['VM_NETNS']}").exists()
    assert not volume.exists()


@needs_root_net
def test_network_down_refuses_while_a_tap_is_attached(tmp_path: Path) -> None:
    env = {"VM_NETNS": f"hgi-test-{os.getpid()}-n", "VM_BRIDGE": "br-cluster", "VM_BRIDGE_ADDRESS": "10.97.0.1/24"}
    assert run([str(VM_NET), "--up"], env).returncode == 0
    try:
        assert "kept" in run([str(VM_NET), "--up"], env).stderr
        ns = env["VM_NETNS"]
        subprocess.run(["ip", "-n", ns, "tuntap", "add", "dev", "hstestattached", "mode", "tap"], check=True)
        subprocess.run(["ip", "-n", ns, "link", "set", "hstestattached", "master", "br-cluster"], check=True)
        done = run([str(VM_NET), "--down"], env)
        assert done.returncode == 1 and "hstestattached" in done.stderr
        status = run([str(VM_NET), "--status"], env)
        assert status.stdout.startswith(f"{ns} up br-cluster hstestattached")
    finally:
        assert run([str(VM_NET), "--down", "--force"], env).returncode == 0
    assert run([str(VM_NET), "--status"], env).returncode == 3


# A TCP server in a member's namespace: accepts on each port and says "ok".
LISTEN = """
import socket, sys, threading
def serve(port):
    server = socket.create_server(("0.0.0.0", port))
    while True:
        connection, _ = server.accept()
        connection.sendall(b"ok")
        connection.close()
for port in sys.argv[1:]:
    threading.Thread(target=serve, args=(int(port),), daemon=True).start()
print("listening", flush=True)
threading.Event().wait()
"""

CONNECT = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2) as connection:
        print(connection.recv(2).decode())
except OSError as error:
    print(type(error).__name__)
"""


@needs_root_net
@pytest.mark.skipif(not shutil.which("nft"), reason="needs nftables (tests/run installs it)")
def test_between_members_only_the_security_groups_ports_pass(tmp_path: Path) -> None:
    """Two members on the cluster bridge (veth pairs in namespaces of their own standing for VMs):
    a port the group opens connects, with its replies; one it does not is dropped (a timeout, as
    with Neutron) and counted; the bridge's own address (this machine) is not a member."""
    tag = f"{os.getpid() % 100000}"
    env = {
        "VM_NETNS": f"hgi-test-{tag}-sg",
        "VM_BRIDGE": "br-cluster",
        "VM_BRIDGE_ADDRESS": "10.96.0.1/24",
        "VM_MEMBER_RULES": "tcp:2049-2049 tcp:7000-7010",
    }
    members = {f"hgi-test-{tag}-m{i}": f"10.96.0.1{i}" for i in (1, 2)}
    listener = None
    assert run([str(VM_NET), "--up"], env).returncode == 0
    try:
        for i, (ns, address) in enumerate(members.items(), start=1):
            subprocess.run(["ip", "netns", "add", ns], check=True)
            subprocess.run(
                [
                    "ip",
                    "-n",
                    env["VM_NETNS"],
                    "link",
                    "add",
                    f"hst{tag}p{i}",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    ns,
                ],
                check=True,
            )
            subprocess.run(
                ["ip", "-n", env["VM_NETNS"], "link", "set", f"hst{tag}p{i}", "master", "br-cluster", "up"], check=True
            )
            subprocess.run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"], check=True)
            subprocess.run(["ip", "-n", ns, "link", "set", "eth0", "up"], check=True)
        first, second = members
        listener = subprocess.Popen(
            ["ip", "netns", "exec", first, "python3", "-c", LISTEN, "2049", "7005", "8080"],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert listener.stdout is not None and listener.stdout.readline().strip() == "listening"

        def connect(ns: str, port: int) -> str:
            argv = ["ip", "netns", "exec", ns, "python3", "-c", CONNECT, members[first], str(port)]
            return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout.strip()

        assert connect(second, 2049) == "ok"
        assert connect(second, 7005) == "ok"
        assert connect(second, 8080) == "TimeoutError"  # dropped, not refused
        assert connect(env["VM_NETNS"], 8080) == "ok"  # the bridge's address is this machine, not a member
        status = run([str(VM_NET), "--status"], env).stdout
        dropped = int(status.split("security group: ", 1)[1].split()[0])
        assert dropped > 0, status
        assert "kept" in run([str(VM_NET), "--up"], env).stderr  # reloaded, not doubled
        assert connect(second, 8080) == "TimeoutError" and connect(second, 2049) == "ok"
    finally:
        if listener is not None:
            listener.kill()
            listener.wait()
        for ns in members:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        assert run([str(VM_NET), "--down", "--force"], env).returncode == 0


def boot_image() -> Path | None:
    image = Path(os.environ.get("HGI_SPARK_VM_IMAGE", DEV_IMAGE))
    return image if image.is_file() else None


@pytest.mark.slow
@needs_qemu_img
@needs_root_net
@pytest.mark.skipif(boot_image() is None, reason="no VM image (tests/vm/make-dev-image makes one)")
def test_two_vms_boot_reach_each_other_and_leave_nothing(tmp_path: Path) -> None:
    image = boot_image()
    assert image is not None
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    vms = [vm_env(tmp_path, image, master=True, tag="b"), vm_env(tmp_path, image, master=False, tag="b")]
    for vm in vms:
        vm["VM_PUBLIC_KEYS"] = (tmp_path / "id_ed25519.pub").read_text().strip()
        vm["VM_USER_DATA"] = (
            "#cloud-config\nssh:\n  emit_keys_to_console: true\n"
            f"runcmd:\n  - echo 'hgi-spark-node-ready role=test name={vm['VM_NAME']}'\n"
        )
        vm["VM_BRIDGE_ADDRESS"] = "10.98.0.1/24"
        vm["VM_WAIT_TIMEOUT_S"] = "900"
    assert run([str(VM_NET), "--up"], vms[0]).returncode == 0
    try:
        for vm in vms:
            done = run([str(VM_NODE), "--start"], vm)
            assert done.returncode == 0, done.stderr
        for vm in vms:
            line = f"hgi-spark-node-ready role=test name={vm['VM_NAME']}"
            done = subprocess.run(
                [str(VM_NODE), "--wait", line], env={**os.environ, **vm}, capture_output=True, text=True, timeout=1000
            )
            assert done.returncode == 0, done.stderr
            # cloud-init prints the host keys at the very end of its final stage, after runcmd.
            keys = subprocess.run(
                [str(VM_NODE), "--wait", "-----END SSH HOST KEY KEYS-----"], env={**os.environ, **vm}, timeout=300
            )
            assert keys.returncode == 0
            console = (Path(vm["VM_DIR"]) / "console.log").read_text(errors="replace")
            assert "-----BEGIN SSH HOST KEY KEYS-----" in console and "running 'modules:final'" in console
        ssh = ["ssh", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]
        ssh += ["-o", "ConnectTimeout=30", "-i", str(key), "-p", "22999", "debian@127.0.0.1"]
        remote = "hostname; ping -c 1 -W 5 10.98.0.11"
        done = subprocess.run([*ssh, remote], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("spark-vm-b-master\n") and "1 received" in done.stdout
        probe = ["timeout", "5", "bash", "-c", "echo >/dev/tcp/10.98.0.11/22"]
        assert subprocess.run(["ip", "netns", "exec", vms[0]["VM_NETNS"], *probe]).returncode == 0
    finally:
        for vm in vms:
            run([str(VM_NODE), "--destroy"], vm)
        down = run([str(VM_NET), "--down"], vms[0])
    assert down.returncode == 0, down.stderr
    for vm in vms:
        assert not Path(vm["VM_DIR"]).exists()
        assert subprocess.run(["ip", "link", "show", vm["VM_TAP"]], capture_output=True).returncode != 0
        qemu = subprocess.run(["pgrep", "-f", "--", f"-pidfile {vm['VM_DIR']}/qemu.pid"], capture_output=True)
        assert qemu.returncode == 1
    assert not Path(f"/run/netns/{vms[0]['VM_NETNS']}").exists()


def test_wait_fails_at_once_on_the_nodes_failed_line(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    Path(env["VM_DIR"]).mkdir()
    console = Path(env["VM_DIR"]) / "console.log"
    console.write_text("[  99.1] cloud-init[480]: hgi-spark-node-ready-failed role=master name=spark-vm-t-master\n")
    done = run([str(VM_NODE), "--wait", "hgi-spark-node-ready role=master name=spark-vm-t-master"], env)
    assert done.returncode == 1 and "hgi-spark-node-ready-failed role=master" in done.stderr


def test_wait_fails_when_qemu_is_gone(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    Path(env["VM_DIR"]).mkdir()
    (Path(env["VM_DIR"]) / "console.log").write_text("booting\n")
    done = run([str(VM_NODE), "--wait", "hgi-spark-node-ready role=master name=spark-vm-t-master"], env)
    assert done.returncode == 1 and "qemu exited before" in done.stderr


@needs_qemu_img
@needs_root_net
def test_a_forwarded_port_held_by_another_program_stops_the_start(tmp_path: Path) -> None:
    env = vm_env(tmp_path, base_image(tmp_path), tag="p") | {"VM_BRIDGE_ADDRESS": "10.98.0.1/24"}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env["VM_HOSTFWD"] = f"tcp:127.0.0.1:{port}-:22"
        assert run([str(VM_NET), "--up"], env).returncode == 0
        try:
            done = run([str(VM_NODE), "--start"], env)
        finally:
            run([str(VM_NET), "--down", "--force"], env)
    assert done.returncode == 1
    assert f"port {port} on this machine (forwarded to the VM's port 22) is in use" in done.stderr
    assert not (Path(env["VM_DIR"]) / "qemu.pid").exists()


def test_wait_fails_at_once_on_a_kernel_panic(tmp_path: Path) -> None:
    env = vm_env(tmp_path, tmp_path / "none.qcow2")
    Path(env["VM_DIR"]).mkdir()
    panic = "[    0.016000] ---[ end Kernel panic - not syncing: IO-APIC + timer doesn't work!  Boot with apic=debug\n"
    (Path(env["VM_DIR"]) / "console.log").write_text(panic)
    done = run([str(VM_NODE), "--wait", "hgi-spark-node-ready role=master name=spark-vm-t-master"], env)
    assert done.returncode == 1 and "the guest kernel panicked" in done.stderr
