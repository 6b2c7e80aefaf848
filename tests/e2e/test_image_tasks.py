"""The image tasks end to end: `bash invoke.sh image hail-base/1.0.0 ...` against the Keystone/Glance fixture.

What a user types, with the credentials an openrc.sh would export. `packer build` is the recording
FAKE tests/fakes/packer (a real build needs Nova); its `validate` runs the real packer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "hail-base/1.0.0"


def invoke(env: dict[str, str], *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "HGI_", "OPENRC"))}
    base.update(env)
    base.update(extra or {})
    base["OPENRC"] = "/nonexistent/openrc.sh"  # never fall back to a developer's file
    return subprocess.run(
        ["bash", str(ROOT / "invoke.sh"), "image", IMAGE, *args],
        env=base,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def fake_packer_env(tmp_path_factory) -> dict[str, str]:
    log = tmp_path_factory.mktemp("packer") / "calls.jsonl"
    return {
        "PATH": f"{ROOT / 'tests' / 'fakes'}:{os.environ['PATH']}",
        "FAKE_PACKER_LOG": str(log),
        "FAKE_PACKER_PYTHON": sys.executable,
    }


def test_build_share_accept_and_status(openstack_cloud, fake_packer_env):
    alice, bob = openstack_cloud.env("alice"), openstack_cloud.env("bob")
    bob_project = openstack_cloud.project_id("hgi-dev")

    built = invoke(alice, "build", extra=fake_packer_env)
    assert built.returncode == 0, built.stderr
    assert "hail-base-1.0.0" in built.stdout and "built" in built.stdout
    assert "packer validate" in built.stderr  # the exact command is shown before it runs
    again = invoke(alice, "build", extra=fake_packer_env)
    assert again.returncode == 0, again.stderr
    assert "already present" in again.stdout

    shared = invoke(alice, "share", "--with", bob_project)
    assert shared.returncode == 0, shared.stderr
    assert shared.stdout.split() == ["hail-base-1.0.0", bob_project, bob_project, "pending"]

    accepted = invoke(bob, "accept")
    assert accepted.returncode == 0, accepted.stderr
    assert "accepted" in accepted.stdout

    status = invoke(alice, "status")
    assert status.returncode == 0, status.stderr
    text = status.stdout
    assert "image hail-base/1.0.0" in text and "project: hgi" in text
    for line in ("hgi_hail_version: 0.2.139", "hgi_pyspark_version: 3.5.9", "hgi_java_version: 17"):
        assert line in text
    assert f"{bob_project}: accepted" in text
    print(text)

    report = json.loads(invoke(bob, "status", "--json").stdout)
    assert [i["member_status"] for i in report["shared_with_project"]] == ["accepted"]
    assert report["owned"] == []


def test_one_line_errors_and_exit_codes(openstack_cloud):
    wrong = invoke(dict(openstack_cloud.env("alice"), OS_PASSWORD="wrong"), "status")
    assert wrong.returncode == 7
    assert wrong.stderr.strip().splitlines() == [
        f"error: Keystone at {openstack_cloud.auth_url} rejected user alice: wrong user name or password "
        "(check OS_USERNAME and OS_PASSWORD, or source your openrc file again)"
    ]
    by_name = invoke(openstack_cloud.env("alice"), "share", "--with", "hgi-dev")
    assert by_name.returncode == 4
    assert by_name.stderr.count("\n") == 1 and "give its ID in --with" in by_name.stderr
    nothing = invoke(openstack_cloud.env("admin"), "accept")
    assert nothing.returncode == 4
    assert nothing.stderr.startswith("error: no image hail-base-1.0.0 is shared with project admin (ask the")
    missing = invoke({"OS_AUTH_URL": openstack_cloud.auth_url}, "status")
    assert missing.returncode == 7
    assert missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
