"""One run per deployment: flock + holder record, refused at once, stale holders, side-by-side runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hgi_spark.core import locking
from hgi_spark.core.errors import RefusedError

ROOT = Path(__file__).resolve().parents[3]

HOLD = """
import sys, time
from pathlib import Path
from hgi_spark.core import locking
with locking.hold(Path(sys.argv[1]), sys.argv[2], what="deployment toy/t1"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold_elsewhere(path: Path, task: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path), task],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "invoke")},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


def test_hold_writes_the_holder_and_clears_it(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    with locking.hold(lock, "up", what="deployment toy/t1") as me:
        record = json.loads(lock.read_text())
        assert record["pid"] == os.getpid() == me.pid and record["task"] == "up"
        assert oct(lock.stat().st_mode & 0o777) == "0o600"
    assert lock.read_text() == "" and locking.holder(lock) is None


def test_a_second_holder_is_refused_at_once_naming_the_first(tmp_path: Path) -> None:
    lock = tmp_path / ".lock"
    child = hold_elsewhere(lock, "update")
    try:
        started = time.monotonic()
        with pytest.raises(RefusedError) as caught, locking.hold(lock, "down", what="deployment toy/t1"):
            pass
        assert time.monotonic() - started < 1
        message = caught.value.message
        assert f"deployment toy/t1 is busy: pid {child.pid} running 'update' since " in message
        assert "\n" not in message
        held = locking.holder(lock)
        assert held is not None and held.pid == child.pid
        # Another deployment's lock is independent.
        with locking.hold(tmp_path / "other.lock", "up", what="deployment toy/t2"):
            pass
    finally:
        child.kill()
        child.wait()
    with locking.hold(lock, "down", what="deployment toy/t1"):  # its holder died: the kernel freed it
        pass


def test_a_stale_record_of_a_dead_pid_does_not_block(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / ".lock"
    record = {"pid": int(dead.stdout), "task": "up", "since": "earlier", "host": os.uname().nodename}
    lock.write_text(json.dumps(record))
    assert locking.holder(lock) is None, "a record without an flock holds nothing"
    with locking.hold(lock, "update", what="deployment toy/t1") as me:
        assert json.loads(lock.read_text())["pid"] == me.pid


def test_a_dead_holder_whose_child_keeps_the_lock_is_explained(tmp_path: Path) -> None:
    """The lock is inherited by a child that outlives the recorded pid: say so, and how to find it."""
    lock = tmp_path / ".lock"
    script = (
        "import fcntl, json, os, subprocess, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, json.dumps({'pid': os.getpid(), 'task': 'up', 'since': 'x', 'host': ''}).encode())\n"
        "quiet = subprocess.DEVNULL\n"
        "child = subprocess.Popen(['sleep', '30'], pass_fds=[fd], stdout=quiet, stderr=quiet)\n"
        "print(child.pid, flush=True)\n"
    )
    parent = subprocess.run([sys.executable, "-c", script, str(lock)], capture_output=True, text=True, check=True)
    orphan = int(parent.stdout)
    try:
        expected = "which has exited, but a process it started still holds"
        with pytest.raises(RefusedError, match=expected), locking.hold(lock, "down", what="deployment toy/t1"):
            pass
    finally:
        os.kill(orphan, 9)
