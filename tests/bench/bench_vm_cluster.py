"""Benchmark a whole VM cluster through terraform/spark-vm: `terraform apply` of the root module
(network, tmp volume, master and workers, the user-data of terraform/spark/modules/cluster), then
per node the host-clock seconds from the apply's start until its console shows cloud-init's
stages and the ready line (or its failed form), then `terraform destroy` and a check that nothing
is left (no qemu, no tap, no namespace, no runtime files).

Run (root): python3 tests/bench/bench_vm_cluster.py --image IMAGE.qcow2 [--workers N]
            [--owner bench] [--tmp-volume-gb G] [--keep] [--json FILE]
It renders the variables as the wrapper would (deployments/defaults.yml < deployments/spark-vm/
defaults.yml, plus the injected ones) into a temporary folder that is also the deployment folder
(runtime/ below it), so the repository is never written to. With a plain Debian disk (no
/opt/hgi-spark) every node prints `hgi-spark-node-ready-failed`: the mechanics are measured all the
same. --keep leaves the cluster running and prints the state file for a later `terraform destroy`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "terraform" / "spark-vm"
STAGES = {
    "init-local": "running 'init-local'",
    "final": "running 'modules:final'",
    "keys": "-----END SSH HOST KEY KEYS-----",
}


def merged(*files: Path) -> dict:
    def merge(a: dict, b: dict) -> dict:
        out = dict(a)
        for key, value in b.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict) and value
            out[key] = merge(out[key], value) if both else value
        return out

    result: dict = {}
    for file in files:
        result = merge(result, yaml.safe_load(file.read_text()) or {})
    return result


def tfvars(args: argparse.Namespace, deployment_dir: Path, key: Path) -> dict:
    values = merged(ROOT / "deployments" / "defaults.yml", ROOT / "deployments" / "spark-vm" / "defaults.yml")
    values.pop("terraform", None)
    name, version = values.pop("image").split("/")
    salt = "0123456789ab"
    values |= {
        "deployment_name": "spark-vm",
        "deployment_owner": args.owner,
        "deployment_dir": str(deployment_dir),
        "image": {"name": name, "version": version, "glance_name": f"{name}-{version}", "software": {}},
        "image_path": str(args.image),
        "accelerator": args.accel,
        # jupyter_server's sha1 format for the password "bench".
        "jupyter_password_hash": f"sha1:{salt}:{hashlib.sha1(b'bench' + salt.encode()).hexdigest()}",
        "ssh_public_key_file": str(key) + ".pub",
        "workers": args.workers,
        "tmp_volume_gb": args.tmp_volume_gb,
        "forwarded_ports": {"ssh": args.port_base, "http": args.port_base + 1, "https": args.port_base + 2},
        "subnet_cidr": "10.78.0.0/24",
        "stop_grace_s": args.stop_grace_s,
    }
    return values


def tf_env(work: Path) -> dict[str, str]:
    """terraform's data dir in the work folder; an empty CLI config of our own (no warning)."""
    config = work / "terraformrc"
    config.touch()
    return {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_DATA_DIR": str(work / ".terraform"),
        "TF_CLI_CONFIG_FILE": str(config),
    }


def terraform(state: Path, *argv: str) -> float:
    started = time.perf_counter()
    subprocess.run(
        ["terraform", f"-chdir={MODULE}", *argv], check=True, env=tf_env(state.parent), stdout=subprocess.DEVNULL
    )
    return time.perf_counter() - started


def watch(outputs: dict, started: float, timeout: float) -> dict[str, dict[str, float]]:
    logs = outputs["console_logs"]["value"]
    ready = outputs["ready_lines"]["value"]
    seen: dict[str, dict[str, float]] = {name: {} for name in logs}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, log in logs.items():
            text = Path(log).read_bytes().decode(errors="replace") if Path(log).exists() else ""
            marker, rest = ready[name].split(" ", 1)
            needles = dict(STAGES, ready=ready[name], failed=f"{marker}-failed {rest}")
            for stage, needle in needles.items():
                if stage not in seen[name] and needle in text:
                    seen[name][stage] = time.time() - started
        if all(("ready" in s or "failed" in s) and "keys" in s for s in seen.values()):
            return seen
        time.sleep(0.5)
    print(json.dumps(seen, indent=1))
    raise SystemExit(f"timeout after {timeout} s")


def leftovers(outputs: dict, deployment_dir: Path) -> list[str]:
    found = []
    for name, vm in outputs["vms"]["value"].items():
        if Path(vm["dir"]).exists():
            found.append(f"{name}: {vm['dir']}")
        if subprocess.run(["ip", "link", "show", vm["tap"]], capture_output=True).returncode == 0:
            found.append(f"{name}: tap {vm['tap']}")
        if subprocess.run(["pgrep", "-f", "--", f"-pidfile {vm['pid_file']}"], capture_output=True).returncode == 0:
            found.append(f"{name}: qemu")
    netns = outputs["network"]["value"]["netns"]
    if Path(f"/run/netns/{netns}").exists():
        found.append(f"namespace {netns}")
    runtime = deployment_dir / "runtime"
    found += [str(p) for p in runtime.rglob("*")] if runtime.exists() else []
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--owner", default="bench")
    parser.add_argument("--tmp-volume-gb", type=int, default=4)
    parser.add_argument("--accel", choices=["tcg", "kvm"], default="tcg")
    parser.add_argument("--port-base", type=int, default=22400)
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--stop-grace-s", type=int, default=0, help="ACPI power-off grace at destroy")
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces and taps)")
    args.image = args.image.resolve()
    work = Path(tempfile.mkdtemp(prefix="bench-vm-cluster-"))
    key = work / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (work / "terraform.tfvars.json").write_text(json.dumps(tfvars(args, work, key), indent=1))
    state = work / "terraform.tfstate"
    plan = work / "up.tfplan"
    common = [f"-state={state}", "-input=false"]
    result: dict = {"workers": args.workers, "image": str(args.image)}
    terraform(state, "init", "-backend=false", "-input=false")
    result["plan"] = terraform(state, "plan", *common, f"-var-file={work / 'terraform.tfvars.json'}", f"-out={plan}")
    started = time.time()
    result["apply"] = terraform(state, "apply", *common, str(plan))
    shown = subprocess.run(
        ["terraform", f"-chdir={MODULE}", "output", f"-state={state}", "-json"],
        check=True,
        capture_output=True,
        text=True,
        env=tf_env(work),
    )
    outputs = json.loads(shown.stdout)
    try:
        result["nodes"] = watch(outputs, started, args.timeout)
        result["all_ready"] = max(max(s.values()) for s in result["nodes"].values())
    finally:
        if args.keep:
            print(f"kept: terraform -chdir={MODULE} destroy -state={state} -var-file={work / 'terraform.tfvars.json'}")
        else:
            down = work / "down.tfplan"
            var_file = f"-var-file={work / 'terraform.tfvars.json'}"
            result["plan_destroy"] = terraform(state, "plan", "-destroy", *common, var_file, f"-out={down}")
            result["destroy"] = terraform(state, "apply", *common, str(down))
            result["leftovers"] = leftovers(outputs, work)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    if result.get("leftovers"):
        raise SystemExit("leftovers: " + ", ".join(result["leftovers"]) + f" (state in {work})")
    if not args.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
