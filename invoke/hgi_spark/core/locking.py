"""One run at a time per deployment: an flock on the deployment's lock file, with a JSON holder record.

The kernel drops an flock when its holder dies, so a crashed run never blocks the next one; the
record (pid, task, since) is only there to say who holds it. Runs on different deployments take
different lock files and proceed side by side. The file itself is kept: unlinking a lock file
while another process waits on it would let two holders in.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import RefusedError


@dataclass(frozen=True)
class Holder:
    """Who holds a deployment's lock, as written in the lock file."""

    pid: int
    task: str
    since: str
    host: str

    @classmethod
    def read(cls, path: Path) -> Holder | None:
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8") or "null")
            return cls(int(data["pid"]), str(data["task"]), str(data["since"]), str(data.get("host", "")))
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def alive(self) -> bool:
        """Whether the recorded pid still runs (on this host)."""
        if self.host and self.host != socket.gethostname():
            return True  # cannot tell from here: assume it does
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        return f"pid {self.pid} running '{self.task}' since {self.since}"


def _now() -> str:
    return datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")


@contextmanager
def hold(path: Path, task: str, *, what: str) -> Iterator[Holder]:
    """Hold the lock at ``path`` for ``task``, or refuse at once naming the holder.

    ``what`` names the locked thing in the message (e.g. "deployment toy/t1").
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(path, what) from None
        me = Holder(os.getpid(), task, _now(), socket.gethostname())
        record = json.dumps(me.__dict__) + "\n"
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, record.encode(), 0)
        try:
            yield me
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)


def holder(path: Path) -> Holder | None:
    """The current holder, or None when nobody holds the lock (read-only: for ``status``)."""
    if not path.exists():
        return None
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return Holder.read(path) or Holder(0, "unknown", "unknown", "")
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        return None
    finally:
        os.close(descriptor)


def _busy(path: Path, what: str) -> RefusedError:
    found = Holder.read(path)
    # The record is written right after the lock is taken: give a starting holder a moment.
    deadline = time.monotonic() + 0.5
    while found is None and time.monotonic() < deadline:
        time.sleep(0.05)
        found = Holder.read(path)
    if found is None:
        return RefusedError(f"{what} is busy: another run holds {path}", fix="wait for it to finish")
    if not found.alive():
        return RefusedError(
            f"{what} is locked by {found.describe()}, which has exited, but a process it started still holds {path}",
            fix=f"find it with: fuser -v {path}",
        )
    return RefusedError(f"{what} is busy: {found.describe()}", fix="wait for it to finish, then run again")
