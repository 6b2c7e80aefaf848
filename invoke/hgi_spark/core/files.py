"""Generated files: written so that a reader never sees half a file or looser permissions, and
shown relative to the repository in messages."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, *, mode: int = 0o600, folder_mode: int | None = None) -> Path:
    """Write ``text`` to a temporary file beside ``path`` with ``mode``, then rename it into place.

    ``folder_mode`` (e.g. 0o700 for secrets) is applied to the parent folder, created if needed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if folder_mode is not None:
        path.parent.chmod(folder_mode)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def display(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` when it is inside it (messages name repository files so)."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
