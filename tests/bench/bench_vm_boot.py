"""Benchmark the VM cluster's mechanics: N qemu VMs booted by terraform/spark-vm/scripts/vm-node on
a private bridge (vm-net), from qemu's start to cloud-init and a ready line, then stop and destroy.

Run (root): python3 tests/bench/bench_vm_boot.py --image IMAGE.qcow2 [--vms 1 3] [--runs N]
            [--accel tcg|kvm] [--user-data FILE --ready-line LINE] [--check-network]
Without --user-data each VM gets a small #cloud-config whose runcmd prints
`hgi-spark-node-ready role=bench name=NAME` (the cluster's ready line format) and cloud-init
prints the ssh host keys, as the cluster's user-data asks. Per VM, host-clock seconds from
`vm-node --start`:
  console     the first byte on the serial console (firmware, boot loader)
  init-local  cloud-init's first stage starts ("running 'init-local'")
  final       cloud-init's final stage starts ("running 'modules:final'")
  ready       the ready line is on the console
  keys        the ssh host keys are on the console
and for the whole cluster: start (all vm-node --start), ready (the last VM ready), stop (every
vm-node --destroy: qemu gone, tap, overlay and seed removed), net-down (vm-net --down).
--check-network also connects to every VM's ssh port from the namespace, logs in to the first VM through its
forwarded ssh port on 127.0.0.1 and pings every other VM from it (VM to VM on the bridge).
Everything lives in a temporary folder (or --dir) and is removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "terraform" / "spark-vm" / "scripts"
MARKERS = {
    "console": None,
    "init-local": "running 'init-local'",
    "final": "running 'modules:final'",
    "keys": "-----END SSH HOST KEY KEYS-----",
}
SUBNET = "10.79.0"
SSH_PORT_BASE = 22300
SSH_OPTS = ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"]


def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env={**os.environ, **(env or {})}, check=check, text=True, capture_output=True)


def vm_env(base: Path, index: int, args: argparse.Namespace, user_data: str, netns: str, key: str) -> dict[str, str]:
    name = f"bench-vm-{index}"
    env = {
        "VM_NAME": name,
        "VM_DIR": str(base / name),
        "VM_IMAGE": str(args.image),
        "VM_ACCEL": args.accel,
        "VM_VCPUS": str(args.vcpus),
        "VM_MEMORY_MB": str(args.memory_mb),
        "VM_NETNS": netns,
        "VM_BRIDGE": "br-bench",
        "VM_TAP": f"hsbench{os.getpid() % 10000:04d}{index}",
        "VM_MAC": f"52:54:00:be:{os.getpid() % 256:02x}:{index + 10:02x}",
        "VM_ADDRESS": f"{SUBNET}.{index + 10}/24",
        "VM_PUBLIC_KEYS": key,
        "VM_USER_DATA": user_data.replace("NAME", name),
        "VM_STOP_GRACE_S": "0",
    }
    if index == 0:
        env["VM_PUBLIC_MAC"] = f"52:54:01:be:{os.getpid() % 256:02x}:0a"
        env["VM_HOSTFWD"] = f"tcp:127.0.0.1:{SSH_PORT_BASE + os.getpid() % 100}-:22"
    return env


def default_user_data() -> str:
    return (
        "#cloud-config\nssh:\n  emit_keys_to_console: true\n"
        "runcmd:\n  - echo 'hgi-spark-node-ready role=bench name=NAME'\n"
    )


Seen = dict[str, dict[str, float]]


def watch(vms: list[dict[str, str]], ready_line: str, started: dict[str, float], timeout: float) -> Seen:
    """Poll every console log; note the host time each marker first appears."""
    seen: Seen = {vm["VM_NAME"]: {} for vm in vms}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = time.time()
        for vm in vms:
            name = vm["VM_NAME"]
            log = Path(vm["VM_DIR"]) / "console.log"
            text = log.read_bytes().decode(errors="replace") if log.exists() else ""
            marks = dict(MARKERS, ready=ready_line.replace("NAME", name))
            for mark, needle in marks.items():
                if mark not in seen[name] and text and (needle is None or needle in text):
                    seen[name][mark] = now - started[name]
            if ready_line.replace("NAME", name) + "-failed" in text or f"{ready_line.split(' ')[0]}-failed" in text:
                seen[name].setdefault("failed", now - started[name])
        if all(("ready" in s and "keys" in s) or "failed" in s for s in seen.values()):
            return seen
        time.sleep(0.2)
    raise SystemExit(f"timeout after {timeout} s; seen so far: {json.dumps(seen)}")


def check_network(vms: list[dict[str, str]], netns: str, key_file: Path) -> list[str]:
    lines = []
    for vm in vms:
        address = vm["VM_ADDRESS"].split("/")[0]
        probe = ["ip", "netns", "exec", netns, "timeout", "5", "bash", "-c", f"echo >/dev/tcp/{address}/22"]
        ok = run(probe, check=False).returncode == 0
        lines.append(f"tcp from the namespace to {vm['VM_NAME']} {address}:22: {'ok' if ok else 'FAILED'}")
    port = vms[0]["VM_HOSTFWD"].split(":")[2].split("-")[0]
    ssh = ["ssh", *SSH_OPTS, "-o", "ConnectTimeout=20", "-i", str(key_file), "-p", port, "debian@127.0.0.1"]
    for vm in vms[1:]:
        address = vm["VM_ADDRESS"].split("/")[0]
        done = run([*ssh, "ping", "-c", "1", "-W", "5", address], check=False)
        verdict = "ok" if done.returncode == 0 else "FAILED " + done.stderr[-300:]
        lines.append(f"ssh 127.0.0.1:{port} (first VM), ping {vm['VM_NAME']} {address}: {verdict}")
    if len(vms) == 1:
        done = run([*ssh, "hostname"], check=False)
        verdict = "ok " + done.stdout.strip() if done.returncode == 0 else "FAILED " + done.stderr[-300:]
        lines.append(f"ssh 127.0.0.1:{port}: {verdict}")
    return lines


def one_run(args: argparse.Namespace, count: int, base: Path) -> dict:
    netns = f"hgi-bench-{os.getpid()}"
    net_env = {"VM_NETNS": netns, "VM_BRIDGE": "br-bench", "VM_BRIDGE_ADDRESS": f"{SUBNET}.1/24"}
    key_file = base / "id_ed25519"
    if not key_file.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_file)])
    key = (base / "id_ed25519.pub").read_text().strip()
    user_data = Path(args.user_data).read_text() if args.user_data else default_user_data()
    vms = [vm_env(base, i, args, user_data, netns, key) for i in range(count)]
    result: dict = {"vms": count}
    run([str(SCRIPTS / "vm-net"), "--up"], net_env)
    try:
        started: dict[str, float] = {}
        t0 = time.perf_counter()
        for vm in vms:
            started[vm["VM_NAME"]] = time.time()
            run([str(SCRIPTS / "vm-node"), "--start"], vm)
        result["start"] = time.perf_counter() - t0
        result["per_vm"] = watch(vms, args.ready_line, started, args.timeout)
        result["ready"] = time.perf_counter() - t0
        if args.check_network:
            result["network"] = check_network(vms, netns, key_file)
    finally:
        t1 = time.perf_counter()
        for vm in vms:
            run([str(SCRIPTS / "vm-node"), "--destroy"], vm, check=False)
        result["stop"] = time.perf_counter() - t1
        t2 = time.perf_counter()
        run([str(SCRIPTS / "vm-net"), "--down"], net_env, check=False)
        result["net-down"] = time.perf_counter() - t2
    leftovers = [vm["VM_NAME"] for vm in vms if Path(vm["VM_DIR"]).exists()]
    leftovers += [netns] if Path(f"/run/netns/{netns}").exists() else []
    result["leftovers"] = leftovers
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True, help="the qcow2 to boot (never written to)")
    parser.add_argument("--vms", type=int, nargs="+", default=[1, 3], help="cluster sizes to measure")
    parser.add_argument("--runs", type=int, default=1, help="runs per size")
    parser.add_argument("--accel", choices=["tcg", "kvm"], default="tcg")
    parser.add_argument("--vcpus", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=2048)
    parser.add_argument("--user-data", help="a user-data file (NAME is replaced by the VM's name)")
    parser.add_argument("--ready-line", default="hgi-spark-node-ready role=bench name=NAME")
    parser.add_argument("--timeout", type=float, default=1200)
    parser.add_argument("--check-network", action="store_true")
    parser.add_argument("--dir", type=Path, help="where the VMs live (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces and taps)")
    args.image = args.image.resolve()
    base = args.dir or Path(tempfile.mkdtemp(prefix="bench-vm-"))
    base.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        for count in args.vms:
            for _ in range(args.runs):
                res = one_run(args, count, base)
                results.append(res)
                print(json.dumps(res, indent=1), flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)
    print("\nvms  start  ready  stop  net-down  per VM: init-local / final / ready (s from its start)")
    for res in results:
        per = "; ".join(
            f"{n}: {v.get('init-local', 0):.0f} / {v.get('final', 0):.0f} / {v.get('ready', v.get('failed', 0)):.0f}"
            for n, v in res["per_vm"].items()
        )
        times = f"{res['start']:5.1f}  {res['ready']:5.0f}  {res['stop']:4.1f}  {res['net-down']:8.2f}"
        print(f"{res['vms']:>3}  {times}  {per}")
    for count in args.vms:
        readies = [r["ready"] for r in results if r["vms"] == count]
        print(f"{count} VM(s): median ready {statistics.median(readies):.0f} s over {len(readies)} run(s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if any(r["leftovers"] for r in results):
        raise SystemExit("leftovers: " + ", ".join(x for r in results for x in r["leftovers"]))


if __name__ == "__main__":
    main()
