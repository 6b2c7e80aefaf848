"""``submit`` dispatch through the root module's profile, and the OpenStack side over ssh.

No master can run here, so `ssh` is a fake executable on PATH (it records its argv and stdin, then
runs the remote command with the real bash, where a fake `spark-submit` prints what it got): it
proves the script reaches the remote side whole, the arguments survive the remote shell's quoting,
the host key is checked strictly against the pinned file, and the exit code comes back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hgi_spark import rootmodules, submit
from hgi_spark.errors import NotFoundError, RefusedError

OUTPUTS = {
    "ssh": {
        "value": {
            "alias": "spark-ld14-master",
            "host": "203.0.113.7",
            "user": "hgi",
            "port": 22,
            "identity_file": "/home/u/.ssh/id_ed25519",
            "server": "spark-ld14-master",
        }
    }
}


def test_every_root_module_with_a_cluster_has_a_submit_hook() -> None:
    assert rootmodules.profile("spark-local").submit is not None
    assert rootmodules.profile("spark").submit is submit.over_ssh


def test_the_ssh_command_checks_the_pinned_host_key(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with pytest.raises(RefusedError, match="host key is not pinned"):
        submit.ssh_command(OUTPUTS, known, [])
    known.write_text("spark-ld14-master ssh-ed25519 AAAA\n")
    argv = submit.ssh_command(OUTPUTS, known, ["a b"])
    assert argv[:3] == ["ssh", "-p", "22"]
    assert "StrictHostKeyChecking=yes" in argv and f"UserKnownHostsFile={known}" in argv
    assert "HostKeyAlias=spark-ld14-master" in argv and "/home/u/.ssh/id_ed25519" in argv
    assert argv[-2] == "hgi@203.0.113.7"
    assert argv[-1].startswith("bash -lc ")


@pytest.fixture
def fake_ssh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "ssh-argv.json"
    (bin_dir / "ssh").write_text(
        "#!/usr/bin/env python3\n"
        "import json, os, subprocess, sys\n"
        f"json.dump(sys.argv[1:], open({str(record)!r}, 'w'))\n"
        "remote = sys.argv[-1]\n"
        f"env = dict(os.environ, HOME={str(tmp_path / 'home')!r})\n"
        "sys.exit(subprocess.run(['bash', '-c', remote], stdin=sys.stdin, env=env).returncode)\n"
    )
    # The master's login shell finds spark-submit on PATH (there: /etc/profile.d/hgi-spark.sh).
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".bash_profile").write_text(f'PATH="{bin_dir}:$PATH"\n')
    (bin_dir / "spark-submit").write_text(
        '#!/bin/sh\nprintf "ARGS"; for a in "$@"; do printf " [%s]" "$a"; done; echo\ncat "$1"\n'
        'case "$2" in fail) exit 7 ;; esac\n'
    )
    for name in ("ssh", "spark-submit"):
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return record


def test_the_script_runs_on_the_remote_side_with_its_arguments(
    fake_ssh: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text("spark-ld14-master ssh-ed25519 AAAA\n")
    script = tmp_path / "job.py"
    script.write_text("print('hello from the job')\n")
    argv = submit.ssh_command(OUTPUTS, known, ["one", "two words", "it's"])
    import subprocess

    with open(script, "rb") as source:
        code = subprocess.run(argv, stdin=source, check=False).returncode
    out = capfd.readouterr().out
    assert code == 0
    assert "[one] [two words] [it's]" in out
    assert "print('hello from the job')" in out  # the whole script arrived in the remote temp file
    assert json.loads(fake_ssh.read_text())[-2] == "hgi@203.0.113.7"
    failing = submit.ssh_command(OUTPUTS, known, ["fail"])
    with open(script, "rb") as source:
        assert subprocess.run(failing, stdin=source, check=False).returncode == 7


def test_a_missing_script_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such script"):
        submit.over_ssh(None, tmp_path / "missing.py")  # type: ignore[arg-type]
