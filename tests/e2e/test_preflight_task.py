"""`bash invoke.sh deployment spark/OWNER preflight` end to end, and the checks before `plan`.

A copy of the repository's real root module terraform/spark/ and deployment defaults, with one
deployment of alice's (project hgi) against the openstack_compute_cloud fixture: real Keystone,
Glance, Nova API and Neutron server. Credentials come as an openrc.sh would export them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OWNER = "e2e"
IMAGE_VERSION = "7.7.7"  # an image definition of its own: no clash with the image tasks' tests


@pytest.fixture(scope="module")
def repo(tmp_path_factory, openstack_compute_cloud) -> Path:
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(ROOT / "terraform" / "spark", root / "terraform" / "spark")
    shutil.copytree(ROOT / "terraform" / "modules", root / "terraform" / "modules")
    (root / "deployments" / "spark").mkdir(parents=True)
    shutil.copy(ROOT / "deployments" / "defaults.yml", root / "deployments" / "defaults.yml")
    shutil.copy(ROOT / "deployments" / "spark" / "defaults.yml", root / "deployments" / "spark" / "defaults.yml")
    images = root / "images" / "hail-base"
    shutil.copytree(ROOT / "images" / "hail-base" / "1.0.0", images / IMAGE_VERSION)
    for extra in (ROOT / "images" / "hail-base").glob("*.yml"):
        shutil.copy(extra, images / extra.name)
    key = root / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    write_deployment(root, workers=3)
    alice = openstack_compute_cloud.connect("alice")
    if not list(alice.image.images(name=f"hail-base-{IMAGE_VERSION}")):
        alice.image.create_image(
            name=f"hail-base-{IMAGE_VERSION}", disk_format="raw", container_format="bare", data=b"\0" * 1024
        )
    return root


def write_deployment(root: Path, **changes) -> None:
    folder = root / "deployments" / "spark" / OWNER
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "image": f"hail-base/{IMAGE_VERSION}",
        "workers": 3,
        "master_flavor": "m1.large",
        "worker_flavor": "m1.medium",
        "external_network": "public",
        "network": {"create": False, "name": "hgi-net"},
        "allowed_cidrs": ["192.0.2.0/24"],
        "ssh_public_key_file": str(root / "id_ed25519.pub"),
        **changes,
    }
    (folder / "deployment.yml").write_text(yaml.safe_dump(settings))


def invoke(repo: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_", "OPENRC"))}
    base.update(env)
    base["HGI_REPOSITORY"] = str(repo)
    base["OPENRC"] = "/nonexistent/openrc.sh"  # never fall back to a developer's file
    return subprocess.run(
        ["bash", str(ROOT / "invoke.sh"), "deployment", f"spark/{OWNER}", *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_preflight_passes_and_reports_flavor_sizes(repo, openstack_compute_cloud):
    result = invoke(repo, openstack_compute_cloud.env("alice"), "preflight")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["CHECK", "RESULT", "NEEDED", "AVAILABLE", "DETAIL"]
    assert any(line.startswith("flavor (worker)") and "m1.medium: 2 vCPUs, 4096 MiB RAM" in line for line in lines)
    assert any(line.startswith("image") and f"hail-base-{IMAGE_VERSION}: active, own" in line for line in lines)
    # Counted from the plan terraform makes (checked then, before the plan is recorded), not guessed here.
    rules = next(line for line in lines if line.startswith("security group rules"))
    assert "not checked" in rules and "counted from the plan" in rules
    assert lines[-1].startswith(f"pre-flight of spark/{OWNER}: passed")

    document = json.loads(invoke(repo, openstack_compute_cloud.env("alice"), "preflight", "--json").stdout)
    assert document["ok"] is True
    assert document["flavors"]["master"] == {"name": "m1.large", "vcpus": 4, "ram_mb": 8192}
    assert document["seconds"] < 2.0


def test_failures_exit_non_zero_with_one_line(repo, openstack_compute_cloud):
    write_deployment(repo, workers=100)
    try:
        result = invoke(repo, openstack_compute_cloud.env("alice"), "preflight", "--json")
    finally:
        write_deployment(repo)
    assert result.returncode == 8, result.stderr
    cores = next(c for c in json.loads(result.stdout)["checks"] if c["name"] == "cores")
    assert (cores["result"], cores["needed"], cores["available"]) == ("FAIL", "204", "40")
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: pre-flight of spark/{OWNER} failed: ")
    assert "cores: needs 204, only 40 of 40 left" in error


def test_wrong_password_is_a_credentials_error(repo, openstack_compute_cloud):
    env = {**openstack_compute_cloud.env("alice"), "OS_PASSWORD": "not-it"}
    result = invoke(repo, env, "preflight")
    assert result.returncode == 7, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: Keystone at ")
    assert "wrong user name or password" in result.stderr


def test_plan_stops_before_terraform_when_a_check_fails(repo, openstack_compute_cloud):
    write_deployment(repo, worker_flavor="m1.huge")
    try:
        result = invoke(repo, openstack_compute_cloud.env("alice"), "plan", "--to", "up")
    finally:
        write_deployment(repo)
    assert result.returncode == 8, result.stderr
    assert re.search(r"^flavor \(worker\)\s+FAIL\s+no flavor 'm1.huge'", result.stderr, re.MULTILINE)
    assert "error: pre-flight failed" not in result.stderr
    assert "--skip-preflight" in result.stderr.splitlines()[-1]
    assert "terraform init" not in result.stderr
    assert not (repo / "deployments" / "spark" / OWNER / "up.tfplan").exists()


def test_skip_preflight_is_said_loudly(repo, openstack_compute_cloud):
    """Skipped, the plan goes on to terraform (whose init cannot download the OpenStack provider here)."""
    write_deployment(repo, worker_flavor="m1.huge")
    try:
        result = invoke(repo, openstack_compute_cloud.env("alice"), "plan", "--to", "up", "--skip-preflight")
    finally:
        write_deployment(repo)
    assert "WARNING: pre-flight checks of spark/e2e SKIPPED" in result.stderr
    assert "flavor (worker)" not in result.stderr
    assert "terraform" in result.stderr


def test_a_destroy_plan_needs_no_preflight(repo, openstack_compute_cloud):
    write_deployment(repo, worker_flavor="m1.huge")
    try:
        result = invoke(repo, openstack_compute_cloud.env("alice"), "plan", "--to", "destroy")
    finally:
        write_deployment(repo)
    assert "pre-flight: not needed for a destroy plan" in result.stderr
    assert "flavor (worker)" not in result.stderr and "WARNING" not in result.stderr


def test_status_shows_the_overlapping_checks(repo, openstack_compute_cloud):
    result = invoke(repo, openstack_compute_cloud.env("alice"), "status")
    assert result.returncode == 0, result.stderr
    assert "cloud: credentials" in result.stdout
    assert f"hail-base-{IMAGE_VERSION}: active, own" in result.stdout
    assert "m1.large: 4 vCPUs, 8192 MiB RAM" in result.stdout
    assert "cores" not in result.stdout  # quotas are about a new plan, not the state
