"""The pieces of the ssh fan-out that need no node: what a node's answer means, the ssh entries.

A system node's run-node --status is ``systemctl status --no-pager 'hgi-*'``; systemd is not PID 1
here, so its answer is the text systemd 252 (Debian 12, the image's) prints, written out below.
The entries are read back by the real ``ssh -G``. The whole path over real sshd nodes is
tests/e2e/test_nodes_over_ssh.py.
"""

from __future__ import annotations

import base64
import os
import subprocess
import time
from pathlib import Path

from hgi_spark.clusters import health, nodes, remote

SYSTEMCTL = """\
● hgi-spark-master.service - hgi-spark hgi-spark-master
     Loaded: loaded (/etc/systemd/system/hgi-spark-master.service; enabled; preset: enabled)
     Active: active (running) since Tue 2025-01-07 10:00:01 UTC; 1h 2min ago
   Main PID: 1234 (java)
      Tasks: 40 (limit: 4915)
     CGroup: /system.slice/hgi-spark-master.service
             └─1234 /usr/lib/jvm/java-17-openjdk-amd64/bin/java -cp /opt/hail/venv/lib/hgi-spark-master.service

Jan 07 10:00:01 spark-t1-master systemd[1]: Started hgi-spark-master.service - hgi-spark hgi-spark-master.

× hgi-jupyter.service - hgi-spark hgi-jupyter
     Loaded: loaded (/etc/systemd/system/hgi-jupyter.service; enabled; preset: enabled)
     Active: failed (Result: exit-code) since Tue 2025-01-07 10:05:00 UTC; 57min ago
   Main PID: 1300 (code=exited, status=1/FAILURE)

○ hgi-spark-grow-tmp.service - hgi-spark: grow the shared tmp filesystem to its volume's size
     Loaded: loaded (/etc/systemd/system/hgi-spark-grow-tmp.service; enabled; preset: enabled)
     Active: inactive (dead) since Tue 2025-01-07 10:00:00 UTC; 1h 2min ago
"""


def master() -> remote.Node:
    return remote.Node("spark-t1-master", "master", "10.42.0.10")


def test_systemctl_status_gives_each_unit_its_state_and_a_oneshot_only_when_failed() -> None:
    found = {p.name: p for p in nodes.parse_systemctl(SYSTEMCTL)}
    assert set(found) == {"spark-master", "jupyter"}
    assert found["spark-master"].shown() == "running (pid 1234)"
    assert found["jupyter"].shown() == "failed (Result: exit-code)"  # no pid of a process that is gone


def test_a_system_node_s_answer_adds_its_other_units_and_names_a_missing_one() -> None:
    answer = f"@@ status\n{SYSTEMCTL}@@ status-exit 3\n@@ mode system\n@@ extra\nnginx active\nnfs-server failed\n"
    answer += "@@ tmp\n10.42.0.10:/opt/hail/tmp 107374182400 53687091200 53687091200 50% /opt/hail/tmp\n"
    view = health.MasterView(False, problem="down")
    row = nodes.node_health(nodes.Answer(master(), True, answer), view, 8081)
    assert row.services["nginx"] == "running" and row.services["nfs-server"] == "failed"
    assert row.tmp_free == "shared tmp: 50.0 GiB free of 100.0" and not row.healthy

    worker = remote.Node("spark-t1-worker-001", "worker", "10.42.0.11")
    answer = "@@ status\n@@ status-exit 3\n@@ mode system\n@@ extra\nnfs-mount not-mounted\n@@ tmp\ndf: timed out\n"
    row = nodes.node_health(nodes.Answer(worker, True, answer), view, 8081)
    assert row.services == {"spark-worker": "missing (no such unit)", "nfs-mount": "not-mounted"}
    assert row.tmp_free == "shared tmp: df: timed out"


def test_run_node_failing_is_said_and_a_node_without_ssh_is_unreachable() -> None:
    view = health.MasterView(False, problem="down")
    said = "@@ status\nrun-node: missing node environment: NODE_NAME\n@@ status-exit 1\n@@ mode\n@@ extra\n@@ tmp\n"
    row = nodes.node_health(nodes.Answer(master(), True, said), view, 8081)
    assert row.services == {"run-node": "error: run-node: missing node environment: NODE_NAME"}
    gone = nodes.node_health(nodes.Answer(master(), False, problem="Connection refused"), view, 8081)
    assert health.ClusterHealth([gone], view).rows()[0] == ("spark-t1-master", "UNREACHABLE: Connection refused")


def test_framed_files_are_decoded_cut_and_kept_inside_the_node_s_folder() -> None:
    big = nodes.LOG_TAIL_BYTES + 10
    text = "\n".join(
        [
            "@@file logs/spark.log 5",
            base64.b64encode(b"hello").decode(),
            f"@@file ../../etc/x {big}",
            base64.b64encode(b"tail").decode(),
            "@@unreadable nginx/error.log /var/log/nginx/error.log",
        ]
    )
    found = dict(nodes.files(text))
    assert found["logs/spark.log"] == "hello"
    assert found["etc/x"] == "[... 10 earlier bytes left out ...]\ntail"
    assert "not readable" in found["nginx/error.log.unreadable"]


def outputs() -> dict:
    values = {
        "master_name": "spark-t1-master",
        "worker_names": ["spark-t1-worker-001", "spark-t1-worker-002"],
        "master_private_ip": "10.42.0.10",
        "worker_private_ips": ["10.42.0.11", "10.42.0.12"],
        "ssh": {
            "alias": "spark-t1-master",
            "host": "203.0.113.7",
            "user": "debian",
            "port": 22,
            "identity_file": "~/.ssh/id_ed25519",
            "server": "spark-t1-master",
        },
    }
    return {k: {"value": v} for k, v in values.items()}


KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"


def console(_name: str) -> str:
    return f"-----BEGIN SSH HOST KEY KEYS-----\n{KEY}\n-----END SSH HOST KEY KEYS-----\n"


def test_workers_are_pinned_beside_the_master_and_reached_through_it(tmp_path: Path) -> None:
    known = tmp_path / "secrets" / "known_hosts"
    entry = remote.entry(outputs(), console, known, deployment="spark/t1")

    def no_console(name: str) -> str:
        return "still booting" if name.endswith("002") else console(name)

    entries = remote.worker_entries(outputs(), no_console, known, port=22)
    assert [line.split()[0] for line in known.read_text().splitlines()] == ["spark-t1-master", "spark-t1-worker-001"]
    assert "# spark-t1-worker-002: no host key pinned yet" in entries
    config = tmp_path / "config"
    config.write_text(entry + entries)
    resolved = subprocess.run(
        ["ssh", "-G", "-F", str(config), "spark-t1-worker-001"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    settings = dict(line.split(" ", 1) for line in resolved)
    assert settings["hostname"] == "10.42.0.11"
    assert settings["proxyjump"] == "spark-t1-master"
    assert settings["hostkeyalias"] == "spark-t1-worker-001"
    assert settings["stricthostkeychecking"] == "true"

    # A refreshed master keeps the workers' keys.
    remote.pin(outputs(), console, known, refresh=True)
    assert len(known.read_text().splitlines()) == 2


def test_the_fan_out_config_puts_batch_options_first(tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    remote.pin(outputs(), console, known)
    text = nodes.ssh_config(outputs(), known, port=22, deployment="spark/t1")
    assert text.startswith("BatchMode yes\nConnectTimeout ")
    assert "Host spark-t1-master" in text and "Host spark-t1-worker-001" not in text  # not pinned: not asked


def test_the_scripts_sent_to_the_nodes_are_shellcheck_clean(tmp_path: Path) -> None:
    """They are Python strings, so tests/run's shellcheck of files does not see them."""
    import shutil

    import pytest

    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (tests/run installs it)")
    paths = nodes.NodePaths("/var/lib/hgi-spark", "/opt/hail/tmp", "/etc/hgi-spark", "/opt/hgi-spark/node/run-node")
    for name, text in (
        ("status", nodes.status_script(master(), paths)),
        ("collect", nodes.collect_script(master(), paths)),
    ):
        script = tmp_path / f"{name}.sh"
        script.write_text("#!/bin/bash\n" + text)
        done = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout


def flaky_ssh(folder: Path, failures: int) -> Path:
    """An ssh client on PATH whose first ``failures`` connections time out in the banner exchange
    (what a loaded master's sshd did to the workers' jumps under emulation), then runs the script.
    A stand-in: a real sshd cannot be made to miss the banner deadline on demand."""
    count = folder / "attempts"
    ssh = folder / "ssh"
    ssh.write_text(
        "#!/bin/bash\n"
        f'n=$(( $(cat {count} 2>/dev/null || echo 0) + 1 )); echo "$n" >{count}\n'
        f"if (( n <= {failures} )); then echo 'Connection timed out during banner exchange' >&2; exit 255; fi\n"
        "exec bash -s\n"
    )
    ssh.chmod(0o755)
    return count


def test_an_install_asks_again_when_ssh_failed_before_the_script_ran(tmp_path: Path, monkeypatch) -> None:
    count = flaky_ssh(tmp_path, failures=2)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    node = remote.Node("spark-t-worker-001", "worker", "10.0.0.11")
    answer = nodes.run_on(tmp_path / "config", node, "echo done\n", 30, reconnects=3, pause_s=0)
    assert answer.ok and answer.stdout == "done\n" and count.read_text().strip() == "3"

    count.unlink()
    once = nodes.run_on(tmp_path / "config", node, "echo done\n", 30, pause_s=0)
    assert not once.ok and once.problem == "Connection timed out during banner exchange"
    assert count.read_text().strip() == "1"  # a read asks once


def test_a_jump_that_never_ends_does_not_hold_the_answer(tmp_path: Path, monkeypatch) -> None:
    """ssh exits but the jump it started keeps its stderr (a silent worker's forward never closes):
    the answer comes when ssh ends, not at the deadline. A stand-in ssh: the real case needs a
    master whose sshd forwards to a port that never speaks (tests/e2e/test_nodes_over_ssh.py)."""
    ssh = tmp_path / "ssh"
    ssh.write_text("#!/bin/bash\nsleep 300 &\necho 'Connection timed out during banner exchange' >&2\nexit 255\n")
    ssh.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    node = remote.Node("spark-t-worker-003", "worker", "10.0.0.13")
    started = time.monotonic()
    answer = nodes.run_on(tmp_path / "config", node, "echo done\n", 60)
    assert time.monotonic() - started < 10
    assert not answer.ok and answer.problem == "Connection timed out during banner exchange"


def test_asking_again_stops_at_the_deadline(tmp_path: Path, monkeypatch) -> None:
    count = flaky_ssh(tmp_path, failures=100)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    node = remote.Node("spark-t-worker-001", "worker", "10.0.0.11")
    answer = nodes.run_on(
        tmp_path / "config", node, "echo done\n", nodes.CONNECT_TIMEOUT_S + 3, reconnects=5, pause_s=2
    )
    assert not answer.ok and count.read_text().strip() == "2"
