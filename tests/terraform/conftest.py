"""Render the provider-free part of terraform/spark (modules/cluster) with real terraform, offline.

The OpenStack provider cannot be downloaded here, so what OpenStack would tell the root module
(flavor sizes, port addresses, the subnet, the volume ID) is given as plain inputs to
terraform/spark/modules/cluster, applied with terraform to a local state in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
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
            "deployment_name", "deployment_owner", "image", "app_user", "ports", "sizing", "spark",
            "node_paths", "ready_timeout_s", "internal_ephemeral_ports",
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
