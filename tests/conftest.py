"""The one conftest of the test suite: the repository, terraform's CLI configuration, a task run
as a user runs it, the renderer of the cluster module, and the OpenStack services on loopback.

The provider of terraform/spark cannot be downloaded here, so what OpenStack would tell the root
module (flavor sizes, port addresses, the subnet, the volume ID) is given as plain inputs to
terraform/spark/modules/cluster, applied with real terraform to a local state in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from fixtures.openstack import Cloud, start_cloud

ROOT = Path(__file__).resolve().parents[1]
INVOKE_SH = ROOT / "invoke.sh"
# Fixtures that start a service: a test using one is slow, so `tests/run --fast` starts none.
SERVICE_FIXTURES = {
    "openstack_cloud",
    "openstack_compute_cloud",
    "with_cinder",
    "running_sshd",
    "s3_endpoint",
    "ssh_fleet",
}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark slow every test that needs a service (before `-m "not slow"` deselects)."""
    for item in items:
        if SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def terraform_cli_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty terraform CLI configuration of the tests' own: no warning, no plugin cache, no mirror."""
    given = os.environ.get("TF_CLI_CONFIG_FILE")
    if given and Path(given).is_file():
        yield Path(given)
        return
    path = tmp_path_factory.mktemp("terraformrc") / "terraformrc"
    path.write_text("")
    os.environ["TF_CLI_CONFIG_FILE"] = str(path)
    try:
        yield path
    finally:
        os.environ.pop("TF_CLI_CONFIG_FILE", None)


@pytest.fixture
def repo_root() -> Path:
    """The checkout under test."""
    return ROOT


def run_task(
    *args: str, root: Path = ROOT, env: Mapping[str, str] | None = None, timeout: float = 900, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """``bash invoke.sh ARGS...`` of the checkout at ``root``, as a user types it (no terminal)."""
    environment = {**os.environ, **(env or {})}
    environment.pop("HGI_DEPLOYMENT", None)
    environment.pop("HGI_IMAGE", None)
    return subprocess.run(
        ["bash", str(root / "invoke.sh"), *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
        **kwargs,
    )


# --- the cluster module, rendered offline --------------------------------------------------------

CLUSTER_MODULE = ROOT / "terraform" / "spark" / "modules" / "cluster"

# What the root module would read from OpenStack, for a deployment like the example.
CLOUD_FACTS: dict[str, Any] = {
    "master_flavor": {"vcpus": 4, "ram_mb": 16384},
    "worker_flavor": {"vcpus": 8, "ram_mb": 32768},
    "master_address": "10.42.0.10",
    "subnet_cidr": "10.42.0.0/24",
    "jupyter_password_hash": "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo",
}

TLS_CERT = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUX\n-----END CERTIFICATE-----\n"
TLS_KEY = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49\n-----END PRIVATE KEY-----\n"


def terraform_env(tmp: Path) -> dict[str, str]:
    """terraform's environment for a test: its own data dir and an empty CLI config (no warnings)."""
    cli_config = tmp / "terraformrc"
    cli_config.touch()
    return {
        **os.environ,
        "TF_IN_AUTOMATION": "1",
        "TF_CLI_CONFIG_FILE": str(cli_config),
        "TF_DATA_DIR": str(tmp / ".terraform"),
        "CHECKPOINT_DISABLE": "1",
    }


def run_terraform(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run terraform; on failure the assertion shows its output."""
    result = subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"terraform {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def example_tfvars() -> dict[str, Any]:
    """The example deployment's values as the wrapper renders them (deployments/spark/example)."""
    from hgi_spark.core import config

    return config.load_deployment("spark/example").tfvars()


Renderer = Callable[..., dict[str, Any]]


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    path = shutil.which("terraform")
    if path is None:
        pytest.fail("terraform is not on PATH (it is preinstalled on the project's machines)")
    return path


@pytest.fixture
def render_cluster(tmp_path: Path, terraform_binary: str) -> Iterator[Renderer]:
    """Apply modules/cluster for the example deployment with `workers` workers; return its outputs."""

    def render(workers: int, **overrides: Any) -> dict[str, Any]:
        tfvars = example_tfvars()
        wanted = {
            "deployment_name", "deployment_owner", "image", "ports", "sizing", "spark",
            "ready_timeout_s", "internal_ephemeral_ports",
        }  # fmt: skip
        values = {k: v for k, v in tfvars.items() if k in wanted}
        values.update(CLOUD_FACTS)
        values["workers"] = workers
        values["worker_addresses"] = [f"10.42.{1 + i // 250}.{1 + i % 250}" for i in range(workers)]
        values.update(overrides)
        work = tmp_path / f"render-{workers}"
        work.mkdir()
        source = os.path.relpath(CLUSTER_MODULE, work)
        variables = "\n".join(f'variable "{name}" {{}}' for name in sorted(values))
        arguments = "\n".join(f"  {name} = var.{name}" for name in sorted(values))
        (work / "main.tf").write_text(
            f'{variables}\n\nmodule "cluster" {{\n  source = "{source}"\n{arguments}\n}}\n\n'
            'output "cluster" {\n  value     = module.cluster\n  sensitive = true\n}\n',
            encoding="utf-8",
        )
        (work / "terraform.tfvars.json").write_text(json.dumps(values), encoding="utf-8")
        env = terraform_env(work)
        run_terraform(["init", "-input=false", "-no-color"], work, env)
        run_terraform(["apply", "-input=false", "-no-color", "-auto-approve"], work, env)
        outputs = json.loads(run_terraform(["output", "-json"], work, env).stdout)
        return outputs["cluster"]["value"]

    yield render


# --- OpenSSH servers on loopback ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def sshd_binary() -> Path:
    """Debian's sshd, unpacked (never installed: no service starts) into the shared test cache."""
    from fixtures import sshd

    try:
        return sshd.sshd_binary()
    except RuntimeError as error:
        pytest.fail(str(error))


@pytest.fixture
def ssh_fleet(sshd_binary: Path, tmp_path: Path) -> Iterator[Any]:
    """Real sshd nodes on loopback addresses, each with its own folders (tests/fixtures/sshd.py);
    every one stopped by its pid at the end."""
    from fixtures import sshd

    if os.geteuid() != 0:
        pytest.skip("sshd nodes in mount namespaces need root")
    fleet = sshd.Fleet.make(tmp_path / "fleet")
    try:
        yield fleet
    finally:
        fleet.stop()


# --- OpenStack on loopback ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Debian's Keystone and Glance on 127.0.0.1 (see tests/fixtures/openstack/README.md); stopped at the end."""
    cloud = start_cloud(tmp_path_factory.mktemp("openstack"))
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def openstack_compute_cloud(openstack_cloud: Cloud) -> Cloud:
    """The same cloud plus Nova API and Neutron server, seeded as admin with flavors, networks and quotas.

    See tests/fixtures/openstack/nova.py and neutron.py; stopped with openstack_cloud.
    """
    from fixtures.openstack import neutron, nova

    openstack_cloud.add_services([nova.Nova(), neutron.Neutron()])
    nova.seed(openstack_cloud)
    neutron.seed(openstack_cloud)
    return openstack_cloud
