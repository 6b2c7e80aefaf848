"""``submit`` over ssh (OpenStack and VM clusters), and the kinds that have it.

This test needs no master: `ssh` and `sudo` are fake executables on PATH (ssh records its argv,
then runs the remote command with the real bash; sudo records the user and runs the command in a
login shell, where a fake `spark-submit` prints what it got). It proves the script reaches the
remote side whole and runs as the application user, the arguments survive both shells' quoting,
the host key is checked strictly against the pinned file, and the exit code comes back. The VM
cluster's tests run the real ssh, sudo and spark-submit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from hgi_spark import clusters
from hgi_spark.clusters import remote
from hgi_spark.clusters.base import Cluster
from hgi_spark.core.errors import NotFoundError, RefusedError

OUTPUTS = {
    "ssh": {
        "value": {
            "alias": "spark-ld14-master",
            "host": "203.0.113.7",
            "user": "debian",
            "port": 22,
            "identity_file": "/home/u/.ssh/id_ed25519",
            "server": "spark-ld14-master",
        }
    }
}


def test_every_kind_of_cluster_has_its_own_submit() -> None:
    for kind in ("spark", "spark-local"):
        assert clusters.class_for(kind).submit is not Cluster.submit
    assert clusters.class_for("toy") is Cluster


def test_the_ssh_command_checks_the_pinned_host_key(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    with pytest.raises(RefusedError, match="host key is not pinned"):
        remote.submit_argv(OUTPUTS, known, "hgi")
    known.write_text("spark-ld14-master ssh-ed25519 AAAA\n")
    argv = remote.submit_argv(OUTPUTS, known, "hgi")
    assert argv[:3] == ["ssh", "-p", "22"]
    assert "StrictHostKeyChecking=yes" in argv and f"UserKnownHostsFile={known}" in argv
    assert "HostKeyAlias=spark-ld14-master" in argv and "/home/u/.ssh/id_ed25519" in argv
    assert argv[-2] == "debian@203.0.113.7"
    assert argv[-1] == "sudo -n --login --user=hgi bash -s", "nothing sudo --login would escape"


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
        '#!/bin/sh\necho "LOG $HGI_DRIVER_LOG"; printf "ARGS"; for a in "$@"; do printf " [%s]" "$a"; done; echo\n'
        'for a in "$@"; do case $a in *.py) cat "$a" ;; esac; done\n'
        'for a in "$@"; do case $a in fail) exit 7 ;; esac; done\n'
    )
    # sudo -n --login --user=U CMD...: record U, run CMD in a login shell (.bash_profile read).
    (bin_dir / "sudo").write_text(
        "#!/bin/bash\n"
        "while [ $# -gt 0 ]; do case $1 in "
        f'--user=*) echo "${{1#--user=}}" >{str(tmp_path / "sudo-user")!r}; shift ;; -*) shift ;; *) break ;; '
        "esac; done\n"
        'exec bash -l -c \'"$@"\' sudo "$@"\n'
    )
    for name in ("ssh", "spark-submit", "sudo"):
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
    argv = remote.submit_argv(OUTPUTS, known, "hgi")
    import subprocess

    text = remote.submit_input(script.read_text(), ["one", "two words", "it's"])
    code = subprocess.run(argv, input=text, text=True, check=False).returncode
    captured = capfd.readouterr()
    out = captured.out
    assert code == 0
    assert "[one] [two words] [it's]" in out
    assert "LOG " in out and "/submit-logs/submit-" in out.split("LOG ", 1)[1]  # the driver's full log
    assert "driver log on the master: " in captured.err and "/submit-logs/submit-" in captured.err
    assert "print('hello from the job')" in out  # the whole script arrived in the remote temp file
    assert json.loads(fake_ssh.read_text())[-2] == "debian@203.0.113.7"
    assert (tmp_path / "sudo-user").read_text().strip() == "hgi"  # the application user runs it
    failing = remote.submit_input(script.read_text(), ["fail"])
    assert subprocess.run(argv, input=failing, text=True, check=False).returncode == 7


def test_a_missing_script_is_named(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no such script"):
        remote.submit(OUTPUTS, tmp_path / "known_hosts", "hgi", tmp_path / "missing.py")
