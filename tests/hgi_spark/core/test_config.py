"""Configuration layers, validation against variables.tf, and the one-line errors they give."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hgi_spark.core import config
from hgi_spark.core.errors import ConfigError, NotFoundError, UsageError
from hgi_spark.core.layout import Repository

REPO = Path(__file__).resolve().parents[3]

VARIABLES_TF = """
variable "deployment_name" {
  type = string
}
variable "deployment_owner" {
  type = string
}
variable "image" {
  type = object({ name = string, version = string, glance_name = string, software = map(string) })
  default = null
}
variable "workers" {
  type     = number
  default  = 1
  nullable = false
}
variable "flavor" {
  type = string
}
variable "network" {
  type = object({
    name   = string
    create = optional(bool, false)
    cidrs  = optional(list(string), [])
  })
  default = { name = "net" }
}
variable "ports" {
  type = map(number)
  default = {}
}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A repository tree with one toy root module and one deployment of it."""
    (tmp_path / "terraform" / "toy").mkdir(parents=True)
    (tmp_path / "terraform" / "toy" / "variables.tf").write_text(VARIABLES_TF)
    shutil.copytree(REPO / "images" / "hail-base", tmp_path / "images" / "hail-base")
    (tmp_path / "deployments" / "toy" / "t1").mkdir(parents=True)
    (tmp_path / "deployments" / "defaults.yml").write_text("terraform:\n  parallelism: 4\nports:\n  ssh: 22\n")
    (tmp_path / "deployments" / "toy" / "defaults.yml").write_text("flavor: m1.small\nworkers: 2\n")
    write(tmp_path, "workers: 3\nimage: hail-base/1.0.0\n")
    return Repository(tmp_path)


def write(root: Path, text: str) -> Path:
    path = root / "deployments" / "toy" / "t1" / "deployment.yml"
    path.write_text(text)
    return path


def test_layers_merge_nearest_wins(repo: Repository) -> None:
    deployment = config.load_deployment("toy/t1", repo)
    values = deployment.tfvars()
    assert values["workers"] == 3
    assert values["flavor"] == "m1.small"
    assert values["ports"] == {"ssh": 22}
    assert values["deployment_name"] == "toy" and values["deployment_owner"] == "t1"
    assert values["image"]["glance_name"] == "hail-base-1.0.0"
    assert values["image"]["software"]["hail"] == "0.2.139"
    assert deployment.wrapper.parallelism == 4
    assert "terraform" not in values


def test_deep_merge_keeps_sibling_keys(repo: Repository) -> None:
    (repo.root / "deployments" / "toy" / "defaults.yml").write_text(
        "flavor: m1.small\nnetwork:\n  name: shared\n  cidrs: [10.0.0.0/8]\n"
    )
    write(repo.root, "network:\n  create: true\n")
    values = config.load_deployment("toy/t1", repo).tfvars()
    assert values["network"] == {"name": "shared", "cidrs": ["10.0.0.0/8"], "create": True}


def test_write_tfvars_is_private_and_exact(repo: Repository) -> None:
    deployment = config.load_deployment("toy/t1", repo)
    path = deployment.write_tfvars()
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text()) == deployment.tfvars()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "wrokers: 3\n",
            "deployments/toy/t1/deployment.yml:1:1: unknown key 'wrokers': terraform/toy/ declares no such "
            "variable (did you mean 'workers'?)",
        ),
        (
            "workers: three\n",
            'deployments/toy/t1/deployment.yml:1:1: workers: expected a number, got "three" (change the value\'s type)',
        ),
        (
            "network:\n  name: n\n  creat: true\n",
            "deployments/toy/t1/deployment.yml:3:3: network: unknown key 'creat' (did you mean 'create'?)",
        ),
        (
            "workers: [1\n",
            "deployments/toy/t1/deployment.yml:2:1: malformed YAML: expected ',' or ']', but got '<stream end>' "
            "(fix the syntax at that position)",
        ),
        (
            "- a\n- b\n",
            "deployments/toy/t1/deployment.yml: expected a mapping of keys at the top level, got list "
            "(write 'key: value' lines)",
        ),
        (
            "deployment_name: x\n",
            "deployments/toy/t1/deployment.yml:1:1: 'deployment_name' is set by the wrapper, not in YAML "
            "(remove the key)",
        ),
        (
            "terraform:\n  parallelism: 0\n",
            "deployments/toy/t1/deployment.yml:2:3: terraform.parallelism: input should be greater than or equal to 1, "
            "got 0",
        ),
        (
            "image: hail-base/9.9.9\n",
            "deployments/toy/t1/deployment.yml:1:1: image: unknown image 'hail-base/9.9.9': "
            "images/hail-base/9.9.9/image.yml does not exist (defined images: hail-base/1.0.0)",
        ),
        (
            "workers: null\n",
            "deployments/toy/t1/deployment.yml:1:1: workers: null is not allowed here "
            "(give it a value, or remove the key)",
        ),
        (
            "image: hail-base\n",
            "image: malformed image name 'hail-base': expected NAME/VERSION with VERSION as X.Y.Z",
        ),
    ],
)
def test_bad_input_is_one_line_naming_file_and_key(repo: Repository, text: str, expected: str) -> None:
    write(repo.root, text)
    tfvars = repo.root / "deployments" / "toy" / "t1" / "terraform.tfvars.json"
    with pytest.raises((ConfigError, NotFoundError)) as caught:
        config.load_deployment("toy/t1", repo).write_tfvars()
    assert expected in caught.value.message
    assert "\n" not in caught.value.message
    assert not tfvars.exists()


def test_required_variable_without_value(repo: Repository) -> None:
    (repo.root / "deployments" / "toy" / "defaults.yml").write_text("workers: 2\n")
    with pytest.raises(ConfigError, match="required variable flavor of terraform/toy/ has no value"):
        config.load_deployment("toy/t1", repo).tfvars()


def test_unknown_deployment_lists_the_defined_ones(repo: Repository) -> None:
    with pytest.raises(NotFoundError) as caught:
        config.load_deployment("toy/nobody", repo)
    assert caught.value.message == (
        "unknown deployment 'toy/nobody': deployments/toy/nobody/deployment.yml does not exist "
        "(defined deployments: toy/t1)"
    )


def test_malformed_names_are_usage_errors(repo: Repository) -> None:
    with pytest.raises(UsageError) as caught:
        config.load_deployment("Spark", repo)
    assert caught.value.exit_code == 2
    with pytest.raises(UsageError, match=r"VERSION as X\.Y\.Z"):
        config.load_image("hail-base/latest", repo)


def test_image_definition_is_validated(repo: Repository) -> None:
    path = repo.root / "images" / "hail-base" / "1.0.0" / "image.yml"
    path.write_text(path.read_text().replace("hail: 0.2.139", "hail: latest"))
    with pytest.raises(ConfigError) as caught:
        config.load_image("hail-base/1.0.0", repo)
    assert caught.value.message.startswith("images/hail-base/1.0.0/image.yml:")
    assert "software.hail: string should match pattern" in caught.value.message


def test_shipped_image_definition_loads() -> None:
    image = config.load_image("hail-base/1.0.0", Repository(REPO))
    assert image.ref.glance_name == "hail-base-1.0.0"
    assert image.constraints_file is not None and image.constraints_file.is_file()
    assert f"hail=={image.software.hail}" in image.constraints_file.read_text()
    assert f"pyspark=={image.software.pyspark}" in image.constraints_file.read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "extra_python_packages:\n  - toolz\n  - 'numpy>=>1'\n",
            ["deployment.yml:5:5: extra_python_packages:", "not a pip requirement"],
        ),
        ("extra_python_packages:\n  - x @ https://example.org/x.whl\n", ["deployment.yml:4:5:", "names a URL"]),
        (
            "extra_system_packages:\n  - libcurl4\n  - Bad_Name\n",
            ["deployment.yml:5:5: extra_system_packages:", "not a Debian package name"],
        ),
        ("extra_python_packages: toolz\n", ["extra_python_packages", "a list"]),
    ],
)
def test_extra_packages_are_checked_item_by_item(repo: Repository, text: str, expected: list[str]) -> None:
    write(repo.root, "workers: 3\nimage: hail-base/1.0.0\n" + text)
    with pytest.raises(ConfigError) as error:
        config.load_deployment("toy/t1", repo)
    assert all(part in error.value.message for part in expected), error.value.message
    assert "\n" not in error.value.message


def test_extra_packages_are_wrapper_keys_never_terraform_variables(repo: Repository) -> None:
    """A change to them never reaches terraform: no node's user data changes, no server is replaced."""
    before = config.load_deployment("toy/t1", repo).tfvars()
    write(
        repo.root, "workers: 3\nimage: hail-base/1.0.0\nextra_python_packages: [toolz]\nextra_system_packages: [jq]\n"
    )
    loaded = config.load_deployment("toy/t1", repo)
    assert loaded.tfvars() == before
    assert loaded.extra_python_packages == ("toolz",) and loaded.extra_system_packages == ("jq",)
