"""``submit`` on an OpenStack cluster: a local Python script run by spark-submit on the master.

The script travels on ssh's stdin into a temporary file on the master and runs there in the
application user's login environment (``bash -l`` reads /etc/profile.d/hgi-spark.sh: the same
spark-defaults.conf as pyspark and JupyterLab), with the arguments quoted for the remote shell.
ssh trusts only the host key that ``ssh-config`` pinned from the master's console log
(``secrets/known_hosts``); the local cluster's submit is local.submit.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import NotFoundError, RefusedError

if TYPE_CHECKING:
    from .config import Deployment

# Runs on the master: the script arrives on stdin; its exit code is ssh's.
REMOTE = 'f="$(mktemp --suffix=.py)" && trap \'rm -f "$f"\' EXIT && cat >"$f" && spark-submit "$f"{args}; exit $?'


def ssh_command(outputs: Mapping[str, Any], known_hosts: Path, args: Sequence[str]) -> list[str]:
    """The ssh argv that runs spark-submit of stdin on the master, host key checked strictly."""
    from . import sshconfig

    spot = sshconfig.target(outputs)
    if not known_hosts.is_file():
        raise RefusedError(
            f"the master's host key is not pinned yet ({known_hosts} is missing)",
            fix="run: bash invoke.sh deployment NAME/OWNER ssh-config (it pins the key from the console log)",
        )
    remote = REMOTE.format(args="".join(" " + shlex.quote(a) for a in args))
    argv = ["ssh", "-p", str(spot.port), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    argv += ["-o", f"HostKeyAlias={spot.alias}", "-o", f"UserKnownHostsFile={known_hosts}"]
    if spot.identity_file:
        argv += ["-i", spot.identity_file, "-o", "IdentitiesOnly=yes"]
    return [*argv, f"{spot.user}@{spot.host}", "bash -lc " + shlex.quote(remote)]


def over_ssh(deployment: Deployment, script: str | Path, args: Sequence[str] = ()) -> int:
    """The ``submit`` hook of OpenStack deployments; returns the remote exit code."""
    from . import workflow

    path = Path(script).expanduser()
    if not path.is_file():
        raise NotFoundError(f"no such script: {script}")
    argv = ssh_command(
        workflow.outputs(str(deployment.ref), deployment.repo), deployment.paths.secrets_dir / "known_hosts", args
    )
    with open(path, "rb") as source:
        return subprocess.run(argv, stdin=source, check=False).returncode
