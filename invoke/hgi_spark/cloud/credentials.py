"""OpenStack credentials for the tasks that talk to the cloud, and only for them.

Order: what the environment already holds (``OS_CLOUD`` with a clouds.yaml, or the ``OS_*``
variables of an openrc file, application credentials included); otherwise ``openrc.sh`` in the
repository root (or the file named by ``OPENRC``), sourced by bash so that it prompts for the
password exactly as the file downloaded from Horizon does. With no terminal and no password it
fails at once: it never waits on a prompt nobody can answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from hgi_spark.core.errors import CredentialsError
from hgi_spark.core.layout import Repository

_CLOUDS_YAML = (
    Path("clouds.yaml"),
    Path.home() / ".config" / "openstack" / "clouds.yaml",
    Path("/etc/openstack/clouds.yaml"),
)
_SOURCE_TIMEOUT_S = 300  # a person typing a password; without a terminal it never waits
_cache: dict[str, str] | None = None


def _os_vars(environ: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k.startswith("OS_")}


def missing_variables(env: Mapping[str, str]) -> list[str]:
    """What an openrc-style environment lacks to authenticate (empty list when complete)."""
    needed = ["OS_AUTH_URL"]
    auth_type = env.get("OS_AUTH_TYPE", "").lower()
    if auth_type in ("v3applicationcredential", "applicationcredential"):
        if not (env.get("OS_APPLICATION_CREDENTIAL_ID") or env.get("OS_APPLICATION_CREDENTIAL_NAME")):
            needed.append("OS_APPLICATION_CREDENTIAL_ID")
        needed.append("OS_APPLICATION_CREDENTIAL_SECRET")
    elif auth_type in ("token", "v3token"):
        needed.append("OS_TOKEN")
    else:
        if not (env.get("OS_USERNAME") or env.get("OS_USER_ID")):
            needed.append("OS_USERNAME")
        needed.append("OS_PASSWORD")
        if not (env.get("OS_PROJECT_NAME") or env.get("OS_PROJECT_ID") or env.get("OS_TENANT_NAME")):
            needed.append("OS_PROJECT_NAME")
    return [name for name in needed if not env.get(name)]


def _has_terminal() -> bool:
    try:
        with open("/dev/tty"):
            return sys.stdin.isatty()
    except OSError:
        return False


def openrc_path(repo: Repository | None = None, environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("OPENRC"):
        return Path(environ["OPENRC"]).expanduser()
    return (repo or Repository.default()).root / "openrc.sh"


def source_openrc(path: Path, environ: Mapping[str, str], *, interactive: bool) -> dict[str, str]:
    """Source an openrc file in bash and return the OS_* variables it leaves set.

    Its prompt goes to the terminal (stderr); the variables come back on a private pipe. A password
    already in the environment answers the prompt; with neither, stdin is empty so ``read`` returns.
    """
    password = environ.get("OS_PASSWORD", "")
    read_end, write_end = os.pipe()
    script = 'source "$1" >&2 || exit 3; env -0 >&"$2"'
    stdin: int | None
    if password:
        stdin, feed = subprocess.PIPE, (password + "\n").encode()
    elif interactive:
        stdin, feed = None, None  # the terminal answers the prompt
    else:
        stdin, feed = subprocess.DEVNULL, None
    env = {k: v for k, v in environ.items() if not k.startswith("OS_")}
    try:
        process = subprocess.Popen(
            ["bash", "-c", script, "openrc", str(path), str(write_end)],
            stdin=stdin,
            stdout=subprocess.DEVNULL if not interactive else sys.stderr,
            stderr=None if interactive else subprocess.DEVNULL,
            pass_fds=(write_end,),
            env=env,
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        if feed is not None and process.stdin is not None:
            try:
                process.stdin.write(feed)
                process.stdin.close()
            except BrokenPipeError:
                pass
        output = reader.read()
    try:
        code = process.wait(timeout=_SOURCE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        raise CredentialsError("timed out reading the password", file=path) from None
    if code != 0:
        raise CredentialsError(f"sourcing the file failed (bash exit {code})", file=path, fix="check it in a shell")
    result: dict[str, str] = {}
    for entry in output.split(b"\0"):
        key, _, value = entry.decode(errors="replace").partition("=")
        if key.startswith("OS_"):
            result[key] = value
    if password:
        result["OS_PASSWORD"] = password
    return result


def given(environ: Mapping[str, str] | None = None, repo: Repository | None = None) -> bool:
    """Whether any credentials are offered at all: OS_CLOUD, OS_AUTH_URL or an openrc file."""
    environ = os.environ if environ is None else environ
    return bool(environ.get("OS_CLOUD") or environ.get("OS_AUTH_URL") or openrc_path(repo, environ).is_file())


def openstack_environment(
    environ: Mapping[str, str] | None = None,
    repo: Repository | None = None,
    *,
    interactive: bool | None = None,
) -> dict[str, str]:
    """The OS_* variables to authenticate with, loaded once per process."""
    global _cache
    use_cache = environ is None
    if use_cache and _cache is not None:
        return dict(_cache)
    environ = dict(os.environ if environ is None else environ)
    interactive = _has_terminal() if interactive is None else interactive

    if environ.get("OS_CLOUD"):
        config_file = environ.get("OS_CLIENT_CONFIG_FILE")
        candidates = [Path(config_file)] if config_file else list(_CLOUDS_YAML)
        if not any(p.expanduser().is_file() for p in candidates):
            raise CredentialsError(
                f"OS_CLOUD={environ['OS_CLOUD']} is set but no clouds.yaml was found",
                fix="put it in ~/.config/openstack/clouds.yaml or point OS_CLIENT_CONFIG_FILE at it",
            )
        result = _os_vars(environ)
    elif environ.get("OS_AUTH_URL"):
        result = _os_vars(environ)
        missing = missing_variables(result)
        if missing == ["OS_PASSWORD"] and interactive:
            import getpass

            result["OS_PASSWORD"] = getpass.getpass(
                f"OpenStack password for {result.get('OS_USERNAME', '?')} "
                f"in project {result.get('OS_PROJECT_NAME', '?')}: "
            )
            missing = missing_variables(result)
        if missing:
            raise CredentialsError(
                f"the environment has OS_AUTH_URL but lacks {', '.join(missing)}",
                fix="source your openrc file again, or set the missing variables",
            )
    else:
        path = openrc_path(repo, environ)
        if not path.is_file():
            raise CredentialsError(
                "no OpenStack credentials: OS_CLOUD and OS_AUTH_URL are unset and "
                f"{path.name if 'OPENRC' not in environ else path} does not exist",
                fix="download the OpenStack RC file from Horizon (API Access) to openrc.sh in the repository root, "
                "or set OPENRC, OS_CLOUD or the OS_* variables",
            )
        result = source_openrc(path, environ, interactive=interactive)
        if not result.get("OS_PASSWORD") and missing_variables(result) == ["OS_PASSWORD"] and not interactive:
            raise CredentialsError(
                "no password: there is no terminal to ask on",
                file=path,
                fix="set OS_PASSWORD (or use OS_CLOUD or an application credential) when running without a terminal",
            )
        missing = missing_variables(result)
        if missing:
            raise CredentialsError(
                f"the file does not set {', '.join(missing)}",
                file=path,
                fix="download a fresh OpenStack RC file from Horizon (API Access)",
            )
    if use_cache:
        _cache = dict(result)
    return result


def forget() -> None:
    """Drop the cached credentials (tests, or after a rejected password)."""
    global _cache
    _cache = None
