"""The exception tree: every expected failure is one readable line and an exit code.

Errors are raised once, in the library, with the file, the key path and the fix; the task layer
prints the message (no traceback unless HGI_DEBUG=1) and exits with ``exit_code``.
"""

from __future__ import annotations

from pathlib import Path


def first_line(error: BaseException) -> str:
    """The first line of another library's error, for one of ours (its type when it says nothing)."""
    return (str(error).strip() or type(error).__name__).splitlines()[0]


class HgiError(Exception):
    """An expected failure with a message fit for the user."""

    exit_code = 1

    def __init__(
        self,
        problem: str,
        *,
        fix: str | None = None,
        file: str | Path | None = None,
        key: str | None = None,
    ) -> None:
        self.problem = problem
        self.fix = fix
        self.file = str(file) if file is not None else None
        self.key = key
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}: "
        if self.key:
            where += f"{self.key}: "
        text = f"{where}{self.problem}"
        if self.fix:
            text += f" ({self.fix})"
        return text


class UsageError(HgiError):
    """The command line itself is wrong: unknown kind, malformed name, bad option value."""

    exit_code = 2


class ConfigError(HgiError):
    """A YAML file or the merged configuration is invalid."""

    exit_code = 3


class NotFoundError(HgiError):
    """A deployment, image, project or cloud resource does not exist."""

    exit_code = 4


class ToolError(HgiError):
    """An external tool (terraform, packer, nginx, java ...) is missing or failed."""

    exit_code = 5


class RefusedError(HgiError):
    """A guarded step refuses to act: no plan, stale plan, deployment locked, unsafe change."""

    exit_code = 6


class CredentialsError(HgiError):
    """OpenStack credentials are missing, incomplete or rejected."""

    exit_code = 7


class CloudError(HgiError):
    """OpenStack answered with an error, or a pre-flight check failed."""

    exit_code = 8
