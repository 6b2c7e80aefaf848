"""ssh-config: host keys from a console log, pinned in a known_hosts file, checked by real OpenSSH.

The console logs are built the way cloud-init prints them (its write-ssh-key-fingerprints script:
a fingerprint block through logger, then the public keys between BEGIN/END lines) around host
keys made by ssh-keygen. The rendered entry is read back by `ssh -G`; and a real sshd (Debian's
binary, fetched with `apt-get download` into the shared test cache $HGI_TEST_CACHE, default
~/.cache/hgi-spark-tests, and run as nobody on 127.0.0.1)
proves the pin: the pinned key gets as far as authentication, another key is refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hgi_spark.clusters import remote as sshconfig
from hgi_spark.core.errors import ConfigError, NotFoundError


def make_host_key(folder: Path, kind: str) -> tuple[Path, str]:
    """A host key pair made by ssh-keygen; returns the private key path and the public line."""
    folder.mkdir(parents=True, exist_ok=True)
    private = folder / f"ssh_host_{kind}_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@spark-t1-master", "-f", str(private)], check=True
    )
    return private, (folder / f"ssh_host_{kind}_key.pub").read_text().strip()


def console_log(public_lines: list[str]) -> str:
    """What Nova's console log holds after cloud-init's keys-to-console, among boot noise."""
    return "\n".join(
        [
            "[    0.000000] Linux version 6.1.0-27-cloud-amd64",
            "[   12.412345] cloud-init[812]: Cloud-init v. 22.4.2 running 'modules:final'",
            "<14>Nov 25 10:00:01 cloud-init: #############################################################",
            "<14>Nov 25 10:00:01 cloud-init: -----BEGIN SSH HOST KEY FINGERPRINTS-----",
            "<14>Nov 25 10:00:01 cloud-init: 256 SHA256:abc root@spark-t1-master (ED25519)",
            "<14>Nov 25 10:00:01 cloud-init: -----END SSH HOST KEY FINGERPRINTS-----",
            "-----BEGIN SSH HOST KEY KEYS-----",
            *public_lines,
            "-----END SSH HOST KEY KEYS-----",
            "hgi-spark-node-ready role=master name=spark-t1-master",
            "[   40.000001] cloud-init[812]: Cloud-init v. 22.4.2 finished",
        ]
    )


def outputs(host: str = "203.0.113.7", port: int = 22, identity: str = "~/.ssh/id_ed25519") -> dict:
    return {
        "ssh": {
            "value": {
                "alias": "spark-t1-master",
                "host": host,
                "user": "debian",
                "port": port,
                "identity_file": identity,
                "server": "spark-t1-master",
            },
            "type": "object",
            "sensitive": False,
        }
    }


# --- parsing ------------------------------------------------------------------------------------


def test_host_keys_are_read_from_the_keys_block(tmp_path: Path) -> None:
    _, ed25519 = make_host_key(tmp_path, "ed25519")
    _, ecdsa = make_host_key(tmp_path, "ecdsa")
    keys = sshconfig.host_keys(console_log([ecdsa, ed25519]), server="spark-t1-master")
    assert [(k.type, k.key) for k in keys] == [tuple(line.split()[:2]) for line in (ecdsa, ed25519)]


def test_the_last_block_wins_after_a_rebuild(tmp_path: Path) -> None:
    _, old = make_host_key(tmp_path / "old", "ed25519")
    _, new = make_host_key(tmp_path / "new", "ed25519")
    keys = sshconfig.host_keys(console_log([old]) + "\n" + console_log([new]), server="spark-t1-master")
    assert [k.key for k in keys] == [new.split()[1]]


def test_keys_with_a_journal_prefix_are_found(tmp_path: Path) -> None:
    _, ed25519 = make_host_key(tmp_path, "ed25519")
    keys = sshconfig.host_keys(console_log([f"cloud-init[812]: {ed25519}"]), server="spark-t1-master")
    assert keys[0].key == ed25519.split()[1]


def test_no_keys_yet_is_one_readable_error() -> None:
    with pytest.raises(NotFoundError, match="console log of spark-t1-master shows no SSH host keys yet") as error:
        sshconfig.host_keys("[    0.000000] Linux version 6.1.0\n", server="spark-t1-master")
    assert "wait until the node has booted" in error.value.fix


def test_outputs_without_ssh_say_run_up_first() -> None:
    with pytest.raises(NotFoundError, match="no `ssh` output"):
        sshconfig.target({})
    with pytest.raises(ConfigError, match="lacks"):
        sshconfig.target({"ssh": {"value": {"alias": "x"}}})


# --- the entry and the pinned keys --------------------------------------------------------------


def test_pin_writes_known_hosts_and_a_strict_entry(tmp_path: Path) -> None:
    _, ed25519 = make_host_key(tmp_path / "keys", "ed25519")
    secrets = tmp_path / "deployment" / "secrets"
    entry = sshconfig.entry(
        outputs(), lambda server: console_log([ed25519]), secrets / "known_hosts", deployment="spark/t1"
    )
    known_hosts = secrets / "known_hosts"
    assert known_hosts.read_text() == f"spark-t1-master {' '.join(ed25519.split()[:2])}\n"
    assert stat.S_IMODE(known_hosts.stat().st_mode) == 0o600
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert "StrictHostKeyChecking yes" in entry and "StrictHostKeyChecking no" not in entry
    assert entry.startswith("# spark/t1: the master spark-t1-master")

    listed = subprocess.run(["ssh-keygen", "-l", "-f", str(known_hosts)], capture_output=True, text=True, check=True)
    assert "spark-t1-master" in listed.stdout and "(ED25519)" in listed.stdout
    found = subprocess.run(["ssh-keygen", "-F", "spark-t1-master", "-f", str(known_hosts)], capture_output=True)
    assert found.returncode == 0


def test_openssh_reads_the_entry_as_written(tmp_path: Path) -> None:
    _, ed25519 = make_host_key(tmp_path / "keys", "ed25519")
    entry = sshconfig.entry(
        outputs(port=2222), lambda server: console_log([ed25519]), tmp_path / "known_hosts", deployment="spark/t1"
    )
    config = tmp_path / "config"
    config.write_text(entry)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(config), "spark-t1-master"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    settings = dict(line.split(" ", 1) for line in resolved)
    assert settings["hostname"] == "203.0.113.7"
    assert settings["port"] == "2222"
    assert settings["user"] == "debian"
    assert settings["hostkeyalias"] == "spark-t1-master"
    assert settings["stricthostkeychecking"] == "true"
    assert settings["userknownhostsfile"] == str(tmp_path / "known_hosts")
    assert settings["identitiesonly"] == "yes"


def test_no_identity_file_no_identity_lines(tmp_path: Path) -> None:
    _, ed25519 = make_host_key(tmp_path / "keys", "ed25519")
    entry = sshconfig.entry(
        outputs(identity=""), lambda server: console_log([ed25519]), tmp_path / "known_hosts", deployment="d"
    )
    assert "IdentityFile" not in entry and "IdentitiesOnly" not in entry


# --- a real sshd on 127.0.0.1 proves the pin ----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def running_sshd(sshd_binary: Path) -> Iterator[tuple[int, str]]:
    """sshd -D as nobody on 127.0.0.1 with a fresh host key; stopped by pid at the end."""
    # A folder of its own that nobody may traverse (pytest's tmp_path is private to root).
    work = Path(tempfile.mkdtemp(prefix="hgi-sshd-"))
    work.chmod(0o755)
    private, public = make_host_key(work, "ed25519")
    shutil.chown(private, user="nobody")
    port = _free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {private}\nPidFile none\nUsePAM no\n"
        "StrictModes no\nAuthorizedKeysFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
    )
    # nobody cannot traverse the cache in root's home: run copies from the work folder.
    binary = work / "sshd"
    shutil.copy2(sshd_binary, binary)
    libraries = work / "lib"
    shutil.copytree(sshd_binary.parents[2] / "usr" / "lib" / "x86_64-linux-gnu", libraries)
    env = {**os.environ, "LD_LIBRARY_PATH": str(libraries)}
    log = (work / "sshd.log").open("w")
    process = subprocess.Popen(
        [
            "setpriv",
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            str(binary),
            "-D",
            "-e",
            "-f",
            str(config),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while "Server listening" not in (work / "sshd.log").read_text():
            assert process.poll() is None, f"sshd exited: {(work / 'sshd.log').read_text()}"
            assert time.monotonic() < deadline, "sshd did not start within 10 s"
            time.sleep(0.05)
        yield port, public
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        shutil.rmtree(work)


def _ssh(entry: str, folder: Path) -> subprocess.CompletedProcess[str]:
    config = folder / "config"
    config.write_text(entry)
    return subprocess.run(
        ["ssh", "-F", str(config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "spark-t1-master", "true"],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="starting sshd as nobody needs root")
def test_the_pinned_key_is_accepted_and_another_is_refused(running_sshd, tmp_path: Path) -> None:
    port, public = running_sshd
    pinned = tmp_path / "pinned"
    entry = sshconfig.entry(
        outputs("127.0.0.1", port, ""), lambda s: console_log([public]), pinned / "known_hosts", deployment="d"
    )
    accepted = _ssh(entry, pinned)
    # Past host key verification: only authentication fails (the test has no user key on the server).
    assert "Permission denied (publickey)" in accepted.stderr, accepted.stderr
    assert "Host key verification failed" not in accepted.stderr

    _, other = make_host_key(tmp_path / "other", "ed25519")
    wrong = tmp_path / "wrong"
    entry = sshconfig.entry(
        outputs("127.0.0.1", port, ""), lambda s: console_log([other]), wrong / "known_hosts", deployment="d"
    )
    refused = _ssh(entry, wrong)
    assert refused.returncode != 0
    assert "Host key verification failed" in refused.stderr, refused.stderr


# --- Nova's console log through openstacksdk ----------------------------------------------------


@pytest.mark.slow
def test_console_log_of_a_missing_server_is_not_found(openstack_compute_cloud) -> None:
    """Against the Nova API of the loopback fixture (no compute: no server can exist)."""
    from test_readiness import openstack_cluster

    reader = openstack_cluster(openstack_compute_cloud.env("alice")).console_reader()
    with pytest.raises(NotFoundError, match="server spark-t1-master not found in this project"):
        reader("spark-t1-master")


def test_the_keys_pinned_at_the_first_up_are_kept(tmp_path: Path) -> None:
    """After a reboot or weeks of logging the console no longer shows the keys: the pinned ones stay."""
    known = tmp_path / "known_hosts"
    ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    sshconfig.pin(outputs(), lambda server: console_log([ed25519]), known)

    def gone(_server: str) -> str:
        raise AssertionError("the console is not read again")

    entry = sshconfig.entry(outputs(), gone, known, deployment="spark/t1")
    assert "StrictHostKeyChecking yes" in entry and ed25519.split()[1] in known.read_text()
