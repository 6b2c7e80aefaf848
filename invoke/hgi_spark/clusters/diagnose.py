"""One archive that tells what a cluster is doing: every node's logs, the rendered configuration,
status, with every secret masked and big logs cut to their tail.

Each kind of cluster hands the archive what its nodes have (files on this machine, or what ssh
brings back); a node that cannot be reached is listed in the summary and the rest goes on.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOG_TAIL_BYTES = 1024 * 1024  # the last MiB of each log
MASK = "(masked)"


@dataclass
class Archive:
    """A ``.tar.gz`` being written: text and files go in masked, the summary last."""

    path: Path
    secrets: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    _tar: tarfile.TarFile | None = None

    def __enter__(self) -> Archive:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = self.path.with_name(self.path.name + ".partial")
        self._tar = tarfile.open(self._partial, "w:gz")
        return self

    def __exit__(self, kind: Any, *_rest: Any) -> None:
        assert self._tar is not None
        self.add_text("SUMMARY.txt", "\n".join(self.summary) + "\n")
        self._tar.close()
        if kind is None:
            self._partial.replace(self.path)
        else:
            self._partial.unlink(missing_ok=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            if secret:
                text = text.replace(secret, MASK)
        return text

    def add_text(self, name: str, text: str) -> None:
        assert self._tar is not None
        data = self.mask(text).encode("utf-8", errors="replace")
        info = tarfile.TarInfo(f"{self.path.name.removesuffix('.tar.gz')}/{name}")
        info.size = len(data)
        info.mtime = int(time.time())
        info.mode = 0o600
        self._tar.addfile(info, io.BytesIO(data))

    def add_file(self, name: str, path: Path, *, tail: int = LOG_TAIL_BYTES) -> None:
        """A file's text (its last ``tail`` bytes when bigger), masked."""
        try:
            with open(path, "rb") as handle:
                handle.seek(0, 2)
                size = handle.tell()
                handle.seek(max(0, size - tail))
                data = handle.read()
        except OSError as error:
            self.add_text(name + ".unreadable", f"{path}: {error.strerror}\n")
            return
        prefix = f"[... {size - tail} earlier bytes left out ...]\n" if size > tail else ""
        self.add_text(name, prefix + data.decode("utf-8", errors="replace"))


def archive_name(deployment: str) -> str:
    """``<name>-<owner>-<UTC time>.tar.gz``."""
    return f"{deployment.replace('/', '-')}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.tar.gz"


def masked_tfvars(tfvars: Mapping[str, Any], sensitive: Iterable[str]) -> str:
    """The rendered variables with every sensitive one masked."""
    hidden = set(sensitive)
    return json.dumps({k: (MASK if k in hidden else v) for k, v in tfvars.items()}, indent=2, sort_keys=True) + "\n"


def newest(paths: Iterable[Path], count: int) -> list[Path]:
    """The ``count`` most recently changed of ``paths``."""
    existing = [p for p in paths if p.exists()]
    return sorted(existing, key=lambda p: p.stat().st_mtime, reverse=True)[:count]
