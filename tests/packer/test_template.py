"""packer/hail-base.pkr.hcl with the real packer (Debian's 1.6.6): format, syntax, every argument decoded.

A full ``packer validate`` authenticates against Keystone; here it is pointed at a closed port on
127.0.0.1, so it decodes every block and argument (an unknown one fails before authentication)
and then stops at the connection. The validate against a real Keystone is in tests/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import hcl2
import pytest

REPO = Path(__file__).resolve().parents[2]
PACKER_DIR = REPO / "packer"
TEMPLATE = PACKER_DIR / "hail-base.pkr.hcl"
PLUGINS = PACKER_DIR / "plugins" / "plugins.pkr.hcl"
SAMPLE = PACKER_DIR / "hail-base.sample.pkrvars.hcl"
INSTALL_NODE = PACKER_DIR / "scripts" / "install-node"
# Scripts that run on the host (before packer), never uploaded: the qemu source's base disk and wheels.
HOST_SCRIPTS = {"make-base-disk", "make-wheelhouse"}
# The install line's only per-source part: the qemu source installs from the host's wheelhouse.
FIND_LINKS = (
    '${source.type == "qemu" && var.qemu_wheelhouse_dir != "" ? " --find-links http://$PACKER_HTTP_ADDR/" : ""}'
)

pytestmark = pytest.mark.skipif(shutil.which("packer") is None, reason="packer missing: bash tests/run installs it")


def unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


def variables() -> dict[str, dict]:
    template = hcl2.load(TEMPLATE.open())
    return {unquote(name): body for block in template["variable"] for name, body in block.items()}


def provisioners() -> list[tuple[str, dict]]:
    template = hcl2.load(TEMPLATE.open())
    (build,) = template["build"]
    return [(unquote(kind), body) for block in build["provisioner"] for kind, body in block.items()]


def packer(*args: str, env: dict[str, str] | None = None, cwd: Path = PACKER_DIR) -> subprocess.CompletedProcess:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "CHECKPOINT_DISABLE": "1"}
    return subprocess.run(
        ["packer", *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, check=False
    )


def test_template_and_plugins_are_formatted() -> None:
    for path in (TEMPLATE, PLUGINS, SAMPLE):
        result = packer("fmt", "-check", str(path))
        assert result.returncode == 0, f"{path.name} is not packer-fmt clean: {result.stdout}"


def test_syntax_only_validate_passes() -> None:
    result = packer("validate", "-syntax-only", str(TEMPLATE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_plugins_stay_out_of_the_folder_packer_1_6_reads() -> None:
    assert "required_plugins" not in TEMPLATE.read_text()
    assert "required_plugins" in PLUGINS.read_text()
    assert PLUGINS.parent != TEMPLATE.parent


def test_every_argument_decodes_and_validate_stops_only_at_keystone(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is closed again: nothing listens, authentication is refused at once.
    (tmp_path / "install.env").write_text("# sample\n")
    env = {
        "OS_AUTH_URL": f"http://127.0.0.1:{port}/v3",
        "OS_USERNAME": "builder",
        "OS_PASSWORD": "secret",
        "OS_PROJECT_NAME": "hgi",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    result = packer(
        "validate",
        "-only=openstack.hail-base",
        f"-var-file={SAMPLE}",
        f"-var=install_env_file={tmp_path / 'install.env'}",
        str(TEMPLATE),
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "connection refused" in output, output
    assert "Unsupported argument" not in output and "Unsupported block" not in output, output
    assert output.count("* ") == 1, output  # exactly one error: the refused connection


def test_the_qemu_source_validates_offline(tmp_path: Path) -> None:
    """The qemu source needs no cloud: with its inputs present the full validate passes."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "key")], check=True)
    (tmp_path / "base.qcow2").write_bytes(b"")
    (tmp_path / "install.env").write_text("# sample\n")
    for name in ("user-data", "meta-data", "wheels/.keep"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    variables = {
        "install_env_file": tmp_path / "install.env",
        "qemu_base_disk": tmp_path / "base.qcow2",
        "qemu_output_directory": tmp_path / "output",
        "qemu_seed_dir": tmp_path,
        "qemu_ssh_private_key_file": tmp_path / "key",
        "qemu_wheelhouse_dir": tmp_path / "wheels",
        "qemu_serial_log": tmp_path / "serial.log",
    }
    result = packer(
        "validate",
        "-only=qemu.hail-base",
        f"-var-file={SAMPLE}",
        *(f"-var={name}={value}" for name, value in variables.items()),
        str(TEMPLATE),
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bogus_argument_would_be_caught_by_that_validate(tmp_path: Path) -> None:
    broken = tmp_path / "hail-base.pkr.hcl"
    broken.write_text(TEMPLATE.read_text().replace("  flavor  ", "  flavour ", 1).replace("  flavor ", "  flavour ", 1))
    assert "flavour" in broken.read_text()
    env = {"OS_AUTH_URL": "http://127.0.0.1:9/v3", "OS_USERNAME": "u", "OS_PASSWORD": "p", "OS_PROJECT_NAME": "p"}
    result = packer("validate", f"-var-file={SAMPLE}", str(broken), env=env)
    assert 'An argument named "flavour" is not expected here' in result.stdout + result.stderr


def test_sample_var_file_sets_every_required_variable_and_only_declared_ones() -> None:
    declared = variables()
    sample = {unquote(key): value for key, value in hcl2.load(SAMPLE.open()).items() if not key.startswith("__")}
    assert set(sample) <= set(declared), set(sample) - set(declared)
    required = {name for name, body in declared.items() if "default" not in body}
    assert required <= set(sample), required - set(sample)
    assert set(sample["software"]) == {"java", "python", "hail", "pyspark", "jupyterlab"}


def test_every_variable_is_typed_described_and_documented() -> None:
    readme = (PACKER_DIR / "README.md").read_text()
    for name, body in variables().items():
        assert "type" in body and body.get("description"), name
        assert f"| `{name}` |" in readme, f"{name} is not documented in packer/README.md"


def test_provisioners_upload_and_run_exactly_the_install_script() -> None:
    steps = provisioners()
    uploads = [body["source"] for kind, body in steps if kind == "file"]
    scripts = sorted(p.name for p in (PACKER_DIR / "scripts").iterdir() if p.name not in HOST_SCRIPTS)
    assert scripts == ["install-hail-env", "install-node"]
    for script in scripts:  # install-node sources install-hail-env from its own folder
        assert f'"${{path.root}}/scripts/{script}"' in uploads, "every script but the host's must be uploaded"
    commands = [line for kind, body in steps if kind == "shell" for line in body.get("inline", [])]
    (run,) = [unquote(line) for line in commands if "install-node --" in line]
    assert run.endswith(FIND_LINKS), run
    run = run.removesuffix(FIND_LINKS)
    flags = re.findall(r"(--[a-z-]+)", run)
    usage = subprocess.run(["bash", str(INSTALL_NODE), "--help"], capture_output=True, text=True, check=True).stdout
    assert flags == ["--env-file", "--constraints", "--node-scripts"]
    for flag in [*flags, "--find-links"]:
        assert flag in usage
    destinations = {unquote(body["destination"]) for kind, body in steps if kind == "file"}
    for flag, value in zip(flags, run.split(" --")[1:], strict=True):
        assert flag.lstrip("-") in value
        assert value.split()[1] in destinations, f"{flag} names a file that is not uploaded"


def test_the_test_harness_stages_files_where_the_template_uploads_them() -> None:
    """tests/packer/ runs install-node the way this template does: same folder, same flags."""
    import packer_rootfs

    template = hcl2.load(TEMPLATE.open())
    staging = unquote(template["locals"][0]["staging"])
    assert staging == packer_rootfs.STAGING
    (run,) = [
        unquote(line)
        for kind, body in provisioners()
        if kind == "shell"
        for line in body.get("inline", [])
        if "install-node --" in line
    ]
    template_command = run.removesuffix(FIND_LINKS).replace("${local.staging}", staging).removeprefix("sudo -n ")
    harness_command = packer_rootfs.NodeRoot(Path("/nonexistent")).command()
    assert harness_command == template_command
