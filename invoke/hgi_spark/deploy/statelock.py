"""terraform's own state lock, as one line: who holds it, since when, and how a person may release it.

The wrapper's flock (core/locking.py) keeps two runs on one machine apart; a remote state shared by
several machines is guarded by terraform's lock in the backend (S3: the ``.tflock`` object written
with a conditional PUT, ``use_lockfile``). When terraform cannot take it, it prints the holder's
lock info among a page of text; this module turns that into the refusal the user reads. The wrapper
never releases a lock itself: only a person who knows the holder is dead may (``force-unlock``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path

from hgi_spark.core.errors import RefusedError

MARKER = "Error acquiring the state lock"
_COLOUR = re.compile(r"\x1b\[[0-9;]*m")
_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):\s*(.*?)\s*$")
_SUBSECOND = re.compile(r"(\d{2}:\d{2}:\d{2})\.\d+")


class StateLocked(RefusedError):
    """Another terraform run (on this machine or another) holds the deployment's state lock."""


def lock_info(text: str) -> dict[str, str] | None:
    """The lock info terraform printed with its "Error acquiring the state lock", or None when it did not say that."""
    lines = [_COLOUR.sub("", line).lstrip("│╷╵ ").rstrip() for line in text.splitlines()]
    if not any(MARKER in line for line in lines):
        return None
    info: dict[str, str] = {}
    for line in lines:
        found = _FIELD.match(line)
        if found and found.group(1) not in info:
            info[found.group(1)] = found.group(2)
    if not info.get("ID"):
        info["Error"] = next((line.removeprefix("Error message: ") for line in lines if "Error message:" in line), "")
    return info


def describe(info: Mapping[str, str]) -> str:
    """``root@host (apply, terraform 1.11.4) since 2026-01-02 03:04:05 +0000 UTC``: the holder, for people."""
    operation = info.get("Operation", "").removeprefix("OperationType").lower() or "a run"
    version = f", terraform {info['Version']}" if info.get("Version") else ""
    since = _SUBSECOND.sub(r"\1", info.get("Created", "")) or "an unknown time"
    return f"{info.get('Who') or 'someone'} ({operation}{version}) since {since}"


def refusal(errors: Path, unlock_command: Callable[[str], str]) -> StateLocked | None:
    """The refusal for a step that failed on the state lock (None when it failed for another reason).

    ``unlock_command`` gives the exact ``force-unlock`` command for a lock ID, to show, never to run.
    """
    try:
        text = errors.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    info = lock_info(text)
    if info is None:
        return None
    if not info.get("ID"):
        return StateLocked(
            f"terraform could not take the state lock: {info.get('Error') or 'see its output above'}",
            fix="check the backend's endpoint and credentials, then run again",
        )
    path = f" of {info['Path']}" if info.get("Path") else ""
    return StateLocked(
        f"the state{path} is locked by another terraform run: {describe(info)}, lock ID {info['ID']}",
        fix=(
            "wait for that run to finish, then run again; only if it is dead (its machine gone), "
            f"release the lock by hand: {unlock_command(info['ID'])}"
        ),
    )
