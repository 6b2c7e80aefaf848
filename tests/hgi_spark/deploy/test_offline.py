"""Offline sites: `validate` of an OpenStack deployment on a machine that cannot reach the registry.

Without a mirror: the YAML is said valid first, then one line says how to point terraform at a
provider mirror. With a filesystem mirror (README.md, "Offline sites"), init installs the provider
from it, offline. The mirror here holds a stand-in executable under the OpenStack provider's
name and version: the real provider cannot be downloaded on this machine, and init only installs
it (its checksum goes to the lock file); only the step after init, which would run it, fails.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import ROOT, run_task

PROVIDER = "registry.terraform.io/terraform-provider-openstack/openstack"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the definitions and root modules, so nothing is written into the checkout."""
    tree = tmp_path / "repo"
    for part in ("deployments", "images", "terraform"):
        shutil.copytree(ROOT / part, tree / part, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "runtime"))
    return tree


def validate(repo: Path, cli_config: Path) -> tuple[int, str, str]:
    done = run_task(
        "deployment",
        "spark/example",
        "validate",
        env={"HGI_REPOSITORY": str(repo), "TF_CLI_CONFIG_FILE": str(cli_config), "HOME": str(repo)},
        timeout=120,
    )
    return done.returncode, done.stdout, done.stderr


def test_without_a_mirror_the_yaml_is_valid_and_one_line_says_how(repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.tfrc"
    empty.write_text("")
    code, _out, err = validate(repo, empty)
    assert code == 5
    assert "deployments/spark/example/deployment.yml: the YAML and its variables are valid" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: terraform init failed")
    assert "TF_CLI_CONFIG_FILE" in last and "filesystem_mirror" in last and "Offline sites" in last


def test_a_filesystem_mirror_gives_init_the_provider_offline(repo: Path, tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    binary = mirror / PROVIDER / "3.0.0" / "linux_amd64" / "terraform-provider-openstack_v3.0.0"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\necho 'a stand-in, not the provider' >&2\nexit 1\n")
    binary.chmod(0o755)
    config = tmp_path / "mirror.tfrc"
    config.write_text(
        "provider_installation {\n"
        f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
        '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n}\n'
    )
    _code, out, err = validate(repo, config)
    assert "Terraform has been successfully initialized!" in out, out + err
    assert "terraform-provider-openstack/openstack v3.0.0" in out
    lock = repo / "deployments/spark/example/.terraform/workdir/terraform/spark/.terraform.lock.hcl"
    assert 'version     = "3.0.0"' in lock.read_text()
