"""What every task shares: the default names invoke.sh sets, and the one place where expected
errors become a line and an exit code."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from invoke import Exit

from hgi_spark.core.errors import HgiError

DEPLOYMENT_ENV = "HGI_DEPLOYMENT"  # set by invoke.sh from `deployment NAME/OWNER`
IMAGE_ENV = "HGI_IMAGE"  # set by invoke.sh from `image NAME/VERSION`


def debugging() -> bool:
    """HGI_DEBUG=1 (or invoke.sh --debug) shows tracebacks for expected errors too."""
    return os.environ.get("HGI_DEBUG", "") not in ("", "0", "false", "no")


def deployment_name(name: str | None) -> str | None:
    """--name, else the deployment invoke.sh was called with."""
    return name or os.environ.get(DEPLOYMENT_ENV) or None


def image_name(name: str | None) -> str | None:
    """--name, else the image invoke.sh was called with."""
    return name or os.environ.get(IMAGE_ENV) or None


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
