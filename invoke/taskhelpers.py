"""What every task shares: the one place where expected errors become a line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from invoke import Exit

from hgi_spark.errors import HgiError


def debugging() -> bool:
    """HGI_DEBUG=1 (or invoke.sh --debug) shows tracebacks for expected errors too."""
    return os.environ.get("HGI_DEBUG", "") not in ("", "0", "false", "no")


def handled(body: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's typed errors into one line on stderr and the error's exit code.

    Unexpected exceptions are bugs and keep their traceback.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except HgiError as error:
            if debugging():
                traceback.print_exc(file=sys.stderr)
            raise Exit(f"error: {error.message}", code=error.exit_code) from None
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None

    return wrapper
