"""Credentials: environment first, then openrc.sh sourced by bash; never a prompt without a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgi_spark.cloud import credentials
from hgi_spark.core.errors import CredentialsError

# The shape of the file Horizon's "OpenStack RC File" link gives (v3, password prompt).
HORIZON_OPENRC = """#!/usr/bin/env bash
export OS_AUTH_URL=https://cloud.example.org:5000/v3
export OS_PROJECT_ID=0123456789abcdef
export OS_PROJECT_NAME="hgi"
export OS_USER_DOMAIN_NAME="Default"
export OS_PROJECT_DOMAIN_ID="default"
unset OS_TENANT_ID
unset OS_TENANT_NAME
export OS_USERNAME="ld14"
echo "Please enter your OpenStack Password for project $OS_PROJECT_NAME as user $OS_USERNAME: "
read -sr OS_PASSWORD_INPUT
export OS_PASSWORD=$OS_PASSWORD_INPUT
export OS_REGION_NAME="RegionOne"
export OS_INTERFACE=public
export OS_IDENTITY_API_VERSION=3
"""
INVOKE_DIR = Path(__file__).resolve().parents[3] / "invoke"


@pytest.fixture
def openrc(tmp_path: Path) -> Path:
    path = tmp_path / "openrc.sh"
    path.write_text(HORIZON_OPENRC)
    return path


def test_environment_variables_win(openrc: Path) -> None:
    env = {"OS_AUTH_URL": "http://k:5000/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_PROJECT_NAME": "x"}
    assert credentials.openstack_environment({**env, "OPENRC": str(openrc), "HOME": "/h"}, interactive=False) == env


def test_application_credentials_need_no_password() -> None:
    env = {
        "OS_AUTH_URL": "http://k:5000/v3",
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_APPLICATION_CREDENTIAL_ID": "id",
        "OS_APPLICATION_CREDENTIAL_SECRET": "s",
    }
    assert credentials.openstack_environment(env, interactive=False) == env


def test_incomplete_environment_names_what_is_missing() -> None:
    with pytest.raises(CredentialsError, match="lacks OS_PASSWORD, OS_PROJECT_NAME"):
        credentials.openstack_environment({"OS_AUTH_URL": "http://k", "OS_USERNAME": "u"}, interactive=False)


def test_os_cloud_needs_a_clouds_yaml(tmp_path: Path) -> None:
    env = {"OS_CLOUD": "mine", "OS_CLIENT_CONFIG_FILE": str(tmp_path / "nope.yaml")}
    with pytest.raises(CredentialsError, match=r"no clouds\.yaml was found"):
        credentials.openstack_environment(env, interactive=False)
    (tmp_path / "nope.yaml").write_text("clouds: {}\n")
    assert credentials.openstack_environment(env, interactive=False)["OS_CLOUD"] == "mine"


def test_no_credentials_at_all_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError) as caught:
        credentials.openstack_environment({"OPENRC": str(tmp_path / "missing.sh")}, interactive=False)
    assert "no OpenStack credentials" in caught.value.message
    assert "\n" not in caught.value.message


def test_openrc_without_terminal_fails_at_once(openrc: Path) -> None:
    started = time.monotonic()
    with pytest.raises(CredentialsError) as caught:
        credentials.openstack_environment({"OPENRC": str(openrc), "PATH": os.environ["PATH"]}, interactive=False)
    assert time.monotonic() - started < 5
    assert caught.value.message == (
        f"{openrc}: no password: there is no terminal to ask on (set OS_PASSWORD (or use OS_CLOUD or an "
        "application credential) when running without a terminal)"
    )


def test_openrc_answered_by_os_password(openrc: Path) -> None:
    env = credentials.openstack_environment(
        {"OPENRC": str(openrc), "OS_PASSWORD": "s3cret", "PATH": os.environ["PATH"]}, interactive=False
    )
    assert env["OS_PASSWORD"] == "s3cret"
    assert env["OS_PROJECT_NAME"] == "hgi"
    assert env["OS_AUTH_URL"] == "https://cloud.example.org:5000/v3"


def test_openrc_missing_variable(openrc: Path) -> None:
    openrc.write_text(HORIZON_OPENRC.replace("export OS_AUTH_URL=https://cloud.example.org:5000/v3\n", ""))
    with pytest.raises(CredentialsError, match="does not set OS_AUTH_URL"):
        credentials.openstack_environment(
            {"OPENRC": str(openrc), "OS_PASSWORD": "x", "PATH": os.environ["PATH"]}, interactive=False
        )


def test_openrc_prompts_on_a_terminal(openrc: Path) -> None:
    """Run the loader on a real pseudo-terminal and type the password at Horizon's prompt."""
    program = (
        "import json, sys; sys.path.insert(0, sys.argv[1]);"
        "from hgi_spark.cloud import credentials;"
        "env = credentials.openstack_environment();"
        "print('RESULT=' + json.dumps({'pw': env['OS_PASSWORD'], 'user': env['OS_USERNAME']}))"
    )
    env = {"OPENRC": str(openrc), "PATH": os.environ["PATH"], "HOME": str(openrc.parent)}
    pid, fd = pty.fork()
    if pid == 0:  # child: the terminal is the pty
        os.execve(sys.executable, [sys.executable, "-c", program, str(INVOKE_DIR)], env)
    output = b""
    deadline = time.monotonic() + 30
    typed = False
    while time.monotonic() < deadline:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
        if not typed and b"Please enter your OpenStack Password" in output:
            time.sleep(0.5)  # let `read -s` turn the echo off, as a person would be slower than that
            os.write(fd, b"typed-pw\n")
            typed = True
    _, status = os.waitpid(pid, 0)
    text = output.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text
    result = json.loads(text.split("RESULT=", 1)[1].strip())
    assert result == {"pw": "typed-pw", "user": "ld14"}
    assert "typed-pw" not in text.split("RESULT=", 1)[0]  # read -s: not echoed


def test_invoke_sh_help_needs_nothing(tmp_path: Path) -> None:
    """--help works with no venv, no credentials and no network."""
    root = INVOKE_DIR.parent
    result = subprocess.run(["bash", str(root / "invoke.sh"), "--help"], capture_output=True, text=True, env={})
    assert result.returncode == 0
    assert "Usage: bash invoke.sh KIND NAME" in result.stdout
