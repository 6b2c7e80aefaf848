"""packer.py: version detection, init only on packer >= 1.7, the var file, and a real full validate.

The full `packer validate` runs Debian's real packer 1.6.6 against the Keystone of the
openstack_cloud fixture (it authenticates there). `packer build` is never run for real: it needs Nova.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import hcl2
import pytest

from hgi_spark.core import config
from hgi_spark.core.errors import ToolError
from hgi_spark.core.layout import Repository
from hgi_spark.images import packer

ROOT = Path(__file__).resolve().parents[3]
TEMPLATE = ROOT / "packer" / "hail-base.pkr.hcl"
FAKE = ROOT / "tests" / "fakes" / "packer"
REAL_PACKER = shutil.which("packer")

needs_real_packer = pytest.mark.skipif(
    REAL_PACKER is None, reason="packer is not installed (tests/run installs it: apt-get install packer)"
)


def template_variables() -> dict[str, bool]:
    """Variable name -> has a default, as declared by the template."""
    document = hcl2.load(TEMPLATE.open())
    found = {}
    for block in document["variable"]:
        for name, body in block.items():
            found[name.strip('"')] = "default" in body
    return found


def var_values(tmp_path: Path) -> dict:
    image = config.load_image("hail-base/1.0.0", Repository(ROOT))
    return packer.var_values(
        image,
        glance_name="hail-base-1.0.0",
        git_commit="0123abc",
        install_env_file=tmp_path / "install.env",
    )


def test_version_of_old_and_new_packer():
    assert packer.parse_version("Packer v1.6.6\n") == (1, 6, 6)
    new = "Packer v1.11.2\n\nYour version of Packer is out of date! The latest version\nis 1.12.0."
    assert packer.parse_version(new) == (1, 11, 2)
    with pytest.raises(ToolError, match="cannot read the version"):
        packer.parse_version("no version here")


def test_missing_packer_says_how_to_install(tmp_path):
    with pytest.raises(ToolError, match=r"packer not found .*apt-get install packer"):
        packer.find({"PATH": str(tmp_path)})


@needs_real_packer
def test_finds_debian_packer_without_init():
    tool = packer.find({"PATH": os.environ["PATH"]})
    assert tool.version >= (1, 6, 6)
    assert tool.has_init == (tool.version >= (1, 7, 0))


def test_init_runs_only_on_packer_with_init(tmp_path, monkeypatch):
    log = tmp_path / "calls.jsonl"
    monkeypatch.setenv("FAKE_PACKER_LOG", str(log))
    env = {"PATH": os.environ["PATH"], "FAKE_PACKER_LOG": str(log)}
    old = packer.find({"PATH": os.environ["PATH"], "PACKER": str(FAKE)})
    assert old.version == (1, 6, 6)
    assert packer.init(old, TEMPLATE, env) is False

    monkeypatch.setenv("FAKE_PACKER_VERSION", "Packer v1.11.2")
    new = packer.find({"PATH": os.environ["PATH"], "PACKER": str(FAKE)})
    assert new.has_init
    assert packer.init(new, TEMPLATE, env) is True
    calls = [json.loads(line)["argv"] for line in log.read_text().splitlines()]
    assert ["init", str(TEMPLATE.parent / "plugins")] in calls
    assert sum(1 for argv in calls if argv[0] == "init") == 1


def test_var_file_gives_every_required_variable_and_only_declared_ones(tmp_path):
    declared = template_variables()
    values = var_values(tmp_path)
    assert set(values) <= set(declared), f"not declared in the template: {set(values) - set(declared)}"
    required = {name for name, has_default in declared.items() if not has_default}
    assert required <= set(values), f"required but not given: {required - set(values)}"
    assert values["software"]["hail"] == "0.2.139"
    assert values["source_image_name"] == "debian-12-genericcloud-amd64"
    assert values["constraints_file"].endswith("images/hail-base/1.0.0/constraints.txt")


def test_environment_drops_the_callers_openstack_variables():
    env = packer.environment({"OS_AUTH_URL": "http://a/v3"}, {"PATH": "/bin", "OS_PASSWORD": "theirs"})
    assert env["OS_AUTH_URL"] == "http://a/v3"
    assert "OS_PASSWORD" not in env
    assert env["PATH"] == "/bin"
    assert env["CHECKPOINT_DISABLE"] == "1"


@needs_real_packer
def test_real_validate_of_the_template_against_keystone(openstack_cloud, tmp_path):
    (tmp_path / "install.env").write_text("HAIL_VERSION=0.2.139\n")
    var_file = packer.write_var_file(var_values(tmp_path), tmp_path / "hail-base.pkrvars.json")
    tool = packer.find({"PATH": os.environ["PATH"]})
    env = packer.environment(openstack_cloud.env("alice"))
    packer.validate(tool, TEMPLATE, var_file, env, only=packer.OPENSTACK_SOURCE)


@needs_real_packer
def test_real_validate_fails_on_wrong_password(openstack_cloud, tmp_path, capfd):
    (tmp_path / "install.env").write_text("HAIL_VERSION=0.2.139\n")
    var_file = packer.write_var_file(var_values(tmp_path), tmp_path / "hail-base.pkrvars.json")
    tool = packer.find({"PATH": os.environ["PATH"]})
    env = packer.environment(dict(openstack_cloud.env("alice"), OS_PASSWORD="wrong"))
    with pytest.raises(ToolError, match="packer validate failed"):
        packer.validate(tool, TEMPLATE, var_file, env, only=packer.OPENSTACK_SOURCE)
    assert "Authentication failed" in capfd.readouterr().err
