"""The only place that runs terraform: its argv, environment, working directory, streaming and signals.

Each deployment gets its own terraform *working directory*, rebuilt before every run inside the
deployment's data dir (``TF_DATA_DIR=deployments/NAME/OWNER/.terraform``)::

    .terraform/workdir/terraform/NAME/      real folder: a symlink to every file of terraform/NAME/,
                                            plus zz_hgi_backend_override.tf (generated)
    .terraform/workdir/terraform/modules -> terraform/modules (and every other sibling of NAME)

Why: terraform reads the configuration from, and writes the dependency lock file
``.terraform.lock.hcl`` into, its working directory, and it fixes the backend *type* in the
configuration. Running in the shared ``terraform/NAME/`` would make every deployment of a module
share (and dirty) one lock file, and would leave no clean way to put local state in the deployment
folder or to switch one deployment to a remote backend. In the mirror, relative module sources
(``../modules/x``) and ``path.module`` resolve as in the original, error messages name the same
file names, the lock file is the deployment's own, and the generated override file sets the
backend: ``local`` with ``path`` = the deployment's ``terraform.tfstate``, or ``s3`` with the
settings from the deployment YAML passed as ``-backend-config`` (credentials only from the
environment: ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``; terraform's S3 lock file on by
default, so two machines never write one state at once: statelock.py says who holds it). A root module that commits a
``.terraform.lock.hcl`` gets it copied in and ``init -lockfile=readonly``: provider selections
then come from git and no run can change them.

Every command is printed before it runs; long steps stream live with terraform's colours on a
terminal (``-no-color`` when stdout is not a terminal or ``CI``/``NO_COLOR`` is set). The child
runs in its own session: Ctrl-C reaches only this process, which forwards one SIGINT to terraform
and waits for it to stop gracefully (state written, lock released).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from hgi_spark.core.errors import HgiError, RefusedError, ToolError
from hgi_spark.deploy import statelock

BINARY_ENV = "TERRAFORM"
OVERRIDE_FILE = "zz_hgi_backend_override.tf"
LOCK_FILE = ".terraform.lock.hcl"
INSTALL_HINT = (
    "install terraform >= 1.6 (https://developer.hashicorp.com/terraform/install, or HashiCorp's apt "
    "repository), or OpenTofu and set TERRAFORM=tofu"
)
# The first terraform (and OpenTofu) whose s3 backend takes use_lockfile.
LOCKFILE_SINCE = (1, 10)
# Settings the wrapper must never write to disk: they come from the environment only.
SECRET_BACKEND_KEYS = ("access_key", "secret_key", "token", "sts_token")


# The line terraform apply prints before its dump of every output (colours stripped).
OUTPUTS_HEADER = re.compile(r"^(\x1b\[[0-9;]*m)*Outputs:(\x1b\[[0-9;]*m)*\s*$")


@dataclass
class _Tail:
    """One log file being shown on one stream, up to a line matching ``until`` (the rest stays in the log)."""

    reader: TextIO
    stream: TextIO
    until: re.Pattern[str] | None = None
    showing: bool = True
    pending: str = ""

    def show(self, *, final: bool) -> bool:
        """Show the complete lines written since last time; whether anything new was read."""
        chunk = self.reader.read()
        self.pending += chunk
        *lines, self.pending = self.pending.split("\n")
        if final and self.pending:
            lines.append(self.pending)
            self.pending = ""
        for line in lines:
            if self.showing and self.until is not None and self.until.match(line):
                self.showing = False
            if self.showing:
                try:
                    self.stream.write(line + "\n")
                    self.stream.flush()
                except (OSError, ValueError):
                    self.showing = False
        return bool(chunk)


def _follow(child: subprocess.Popen[str], log: Path, until: re.Pattern[str] | None, errors: Path | None = None) -> str:
    """Show the child's logs as they grow, line by line: its output on stdout (until a line matches
    ``until``), its errors on stderr. A terminal that went away stops the showing, never the child."""
    with contextlib.ExitStack() as stack:
        tails = [_Tail(stack.enter_context(open(log, encoding="utf-8", errors="replace")), sys.stdout, until)]
        if errors is not None:
            tails.append(_Tail(stack.enter_context(open(errors, encoding="utf-8", errors="replace")), sys.stderr))
        while True:
            running = child.poll() is None
            read = [tail.show(final=not running) for tail in tails]
            if not running:
                return ""
            if not any(read):
                time.sleep(0.05)


class Interrupted(HgiError):
    """Ctrl-C (or SIGTERM) reached terraform, which stopped gracefully."""

    exit_code = 130


@dataclass(frozen=True)
class Backend:
    """Where state lives: ``local`` (a file in the deployment folder) or ``s3`` (settings, no secrets)."""

    type: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def override_hcl(self, state: Path) -> str:
        body = f"    path = {json.dumps(str(state))}\n" if self.type == "local" else ""
        return (
            "# Generated by the deployment wrapper on every run (see invoke/hgi_spark/terraform.py).\n"
            f'terraform {{\n  backend "{self.type}" {{\n{body}  }}\n}}\n'
        )

    def init_args(self) -> list[str]:
        """``-backend-config`` pairs; values that are not strings are written as HCL (e.g. objects)."""
        args = []
        for key, value in sorted(self.settings.items()):
            if key in SECRET_BACKEND_KEYS:
                raise ToolError(f"backend setting '{key}' is a secret", fix="set it in the environment only")
            if value is None:
                continue
            text = value if isinstance(value, str) else _hcl(value)
            args.append(f"-backend-config={key}={text}")
        return args


def _hcl(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def s3_backend(raw: Mapping[str, Any]) -> Backend:
    """An S3-compatible backend from the YAML ``terraform.backend`` (config.S3Backend dumped)."""
    settings = {k: v for k, v in raw.items() if k != "type"}
    endpoint = settings.pop("endpoint", None)
    if endpoint:
        settings["endpoints"] = {"s3": endpoint}
        # An object store that is not AWS has no STS, IMDS or AWS regions to check.
        settings.update(
            skip_requesting_account_id=True,
            skip_region_validation=True,
            skip_metadata_api_check=True,
            skip_s3_checksum=True,
        )
    return Backend("s3", settings)


def binary() -> str:
    """The terraform executable: ``$TERRAFORM`` (a name on PATH or a path), default ``terraform``."""
    name = os.environ.get(BINARY_ENV) or "terraform"
    found = shutil.which(name)
    if not found:
        raise ToolError(f"'{name}' not found on PATH (TERRAFORM={name})", fix=INSTALL_HINT)
    return found


@functools.lru_cache(maxsize=8)
def _version_of(path: str) -> str:
    result = subprocess.run([path, "version", "-json"], capture_output=True, text=True, check=False)
    try:
        return str(json.loads(result.stdout)["terraform_version"])
    except (ValueError, KeyError):
        raise ToolError(f"'{path} version -json' gave no version", fix=INSTALL_HINT) from None


def version() -> str:
    """The version of the chosen binary (terraform and OpenTofu both answer ``version -json``); once."""
    return _version_of(binary())


def colour_wanted(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    if os.environ.get("CI") or os.environ.get("NO_COLOR"):
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def mirror_workdir(terraform_dir: Path, root_module: Path, data_dir: Path) -> Path:
    """(Re)build the deployment's working directory of symlinks; returns the root module's mirror."""
    top = data_dir / "workdir" / terraform_dir.name
    mirror = top / root_module.name
    mirror.mkdir(parents=True, exist_ok=True)
    _sync_links(terraform_dir, top, skip={root_module.name})
    _sync_links(root_module, mirror, skip={OVERRIDE_FILE})
    committed = root_module / LOCK_FILE
    if committed.is_file():
        shutil.copyfile(committed, mirror / LOCK_FILE)
    return mirror


def _sync_links(source: Path, target: Path, *, skip: set[str]) -> None:
    """Make ``target`` hold a symlink to every entry of ``source`` (minus ``skip``), and no stale ones.

    Hidden entries (``.terraform/``, a lock file) and state files are never mirrored.
    """
    wanted = {
        entry.name: entry
        for entry in source.iterdir()
        if entry.name not in skip and not entry.name.startswith((".", "terraform.tfstate"))
    }
    for existing in target.iterdir():
        if existing.is_symlink() and existing.name not in wanted:
            existing.unlink()
    for name, entry in wanted.items():
        link = target / name
        if link.is_symlink() and os.readlink(link) == str(entry):
            continue
        if link.is_symlink():
            link.unlink()
        if not link.exists():
            link.symlink_to(entry)


@dataclass
class Terraform:
    """terraform for one deployment: its working directory, data dir, state and backend."""

    terraform_dir: Path
    root_module: Path
    data_dir: Path
    state: Path
    backend: Backend = field(default_factory=lambda: Backend("local"))
    env: Mapping[str, str] = field(default_factory=dict)
    echo: TextIO = field(default_factory=lambda: sys.stderr)
    colour: bool | None = None
    _workdir: Path | None = None

    # --- environment --------------------------------------------------------------------------

    @property
    def workdir(self) -> Path:
        """The mirror terraform runs in (built on first use, once per object)."""
        if self._workdir is None:
            self.data_dir.mkdir(mode=0o700, exist_ok=True)
            workdir = mirror_workdir(self.terraform_dir, self.root_module, self.data_dir)
            override = workdir / OVERRIDE_FILE
            text = self.backend.override_hcl(self.state.resolve())
            if not override.is_file() or override.read_text(encoding="utf-8") != text:
                override.write_text(text, encoding="utf-8")
            self._workdir = workdir
        return self._workdir

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(
            TF_DATA_DIR=str(self.data_dir.resolve()),
            TF_IN_AUTOMATION="1",
            TF_INPUT="0",
            CHECKPOINT_DISABLE="1",
        )
        return env

    def _colour_args(self) -> list[str]:
        wanted = colour_wanted() if self.colour is None else self.colour
        return [] if wanted else ["-no-color"]

    def argv(self, *args: str) -> list[str]:
        return [binary(), f"-chdir={self.workdir}", *args]

    # --- commands -----------------------------------------------------------------------------

    def configured_backend(self) -> str | None:
        """The backend type the data dir was initialised with (None before the first init)."""
        try:
            saved = json.loads((self.data_dir / "terraform.tfstate").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return (saved.get("backend") or {}).get("type")

    def require_same_backend(self) -> None:
        """A change of backend type is refused (terraform would want a state migration first)."""
        before = self.configured_backend()
        if before is not None and before != self.backend.type:
            migrate = self.show_command(self.argv("init", "-migrate-state", *self.backend.init_args()))[2:]
            raise RefusedError(
                f"the state backend changed from {before} to {self.backend.type}: its state must move first",
                fix=f"review, then move it with: {migrate}",
            )

    def require_lockfile_support(self) -> None:
        """An S3 state lock file needs terraform (or OpenTofu) >= 1.10: older ones reject the setting."""
        if not self.backend.settings.get("use_lockfile"):
            return
        found = version()
        if tuple(int(part) for part in re.findall(r"\d+", found)[:2]) < LOCKFILE_SINCE:
            raise ToolError(
                f"terraform {found} cannot lock an S3 state (use_lockfile needs terraform >= 1.10)",
                key="terraform.backend.use_lockfile",
                fix="install terraform >= 1.10 or OpenTofu >= 1.10 (use_lockfile: false leaves two machines unguarded)",
            )

    def init(self) -> None:
        """init in the deployment's working directory (the backend must be the one it was initialised with)."""
        self.require_same_backend()
        self.require_lockfile_support()
        lockfile = ["-lockfile=readonly"] if (self.root_module / LOCK_FILE).is_file() else []
        try:
            self.stream("init", "-input=false", *lockfile, *self.backend.init_args())
        except Interrupted:
            raise
        except ToolError as error:
            if needs_providers(self.root_module):
                error.fix = (
                    "if this machine cannot reach the provider registry, point TF_CLI_CONFIG_FILE at a CLI config "
                    "whose provider_installation has a filesystem_mirror or network_mirror of the providers "
                    "(README.md, 'Offline sites': terraform providers mirror)"
                )
            raise

    def validate(self) -> None:
        self.stream("validate")

    def plan(self, out: Path, *, var_file: Path, destroy: bool = False, parallelism: int = 10) -> None:
        extra = ["-destroy"] if destroy else []
        self.stream(
            "plan",
            "-input=false",
            f"-parallelism={parallelism}",
            f"-var-file={var_file.resolve()}",
            f"-out={out.resolve()}",
            *extra,
        )

    def apply(self, plan: Path, *, parallelism: int = 10) -> None:
        """Apply exactly this saved plan (terraform never prompts for a saved plan).

        terraform's own dump of the outputs at the end is left out: the wrapper prints them once, readable.
        """
        try:
            self.stream(
                "apply", "-input=false", f"-parallelism={parallelism}", str(plan.resolve()), until=OUTPUTS_HEADER
            )
        finally:
            self.protect_state()

    def protect_state(self) -> None:
        """Local state and its backup hold secrets: 0600 even if an older file had wider modes."""
        if self.backend.type != "local":
            return
        for path in (self.state, self.state.with_name(self.state.name + ".backup")):
            if path.is_file() and path.stat().st_mode & 0o077:
                path.chmod(0o600)

    def show_plan(self, plan: Path) -> dict[str, Any]:
        return json.loads(self.capture("show", "-json", str(plan.resolve())) or "{}")

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.capture("output", "-json") or "{}")

    def state_pull(self) -> dict[str, Any] | None:
        text = self.capture("state", "pull").strip()
        return json.loads(text) if text else None

    # --- running ------------------------------------------------------------------------------

    def stream(self, command: str, *args: str, until: re.Pattern[str] | None = None) -> None:
        """Run a step, its output written to ``TF_DATA_DIR/logs/COMMAND.log`` and shown from there
        (up to a line matching ``until``): terraform never writes to a terminal or pipe that may go
        away with us, so a lost session or a killed wrapper never stops it half-way."""
        argv = self.argv(command, *self._colour_args(), *args)
        print(self.show_command(argv), file=self.echo, flush=True)
        log = self.data_dir / "logs" / f"{command}.log"
        errors = log.with_suffix(".errors.log")
        log.parent.mkdir(parents=True, exist_ok=True)
        code = run_forwarding_signals(argv, env=self.environment(), log=log, until=until, errors=errors).returncode
        if code != 0:
            locked = statelock.refusal(errors, lambda lock: self.show_command(self.argv("force-unlock", lock))[2:])
            if locked is not None:
                raise locked
            raise ToolError(f"terraform {command} failed with exit code {code} (its output is above)")

    def capture(self, command: str, *args: str) -> str:
        """Run a query and return its stdout; its stderr (warnings, errors) still reaches the user."""
        argv = self.argv(command, "-no-color", *args) if command != "state" else self.argv(command, *args)
        result = self._run(argv, capture=True)
        if result.returncode != 0:
            raise ToolError(f"terraform {command} failed with exit code {result.returncode} (see above)")
        return result.stdout

    def show_command(self, argv: Sequence[str]) -> str:
        return f"$ TF_DATA_DIR={shlex.quote(str(self.data_dir.resolve()))} {shlex.join(argv)}"

    def _run(self, argv: list[str], *, capture: bool) -> subprocess.CompletedProcess[str]:
        print(self.show_command(argv), file=self.echo, flush=True)
        return run_forwarding_signals(argv, env=self.environment(), capture=capture)


def needs_providers(root_module: Path) -> bool:
    """Whether the root module requires a provider plugin (init then needs the registry or a mirror)."""
    return any("required_providers" in p.read_text(encoding="utf-8") for p in root_module.glob("*.tf"))


def run_forwarding_signals(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    capture: bool = False,
    log: Path | None = None,
    until: re.Pattern[str] | None = None,
    errors: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a child in its own session; SIGINT/SIGTERM sent to us are passed on, then we wait for it.

    Own session: a Ctrl-C on the terminal reaches this process only, so terraform gets exactly one
    interrupt (a second one would make it exit at once, without saving state). A second Ctrl-C is
    forwarded too: the user insists. A hang-up (the terminal closed) is one Ctrl-C: terraform stops
    gracefully, writes its state and releases its lock. Files it writes get mode 0600 (state and
    plans hold secrets). With ``log``, its output goes to that file (and ``errors``, when given, its
    errors to that one), both shown from there as they grow.
    """
    received: list[int] = []
    output: Any = subprocess.PIPE if capture else None
    error_output: Any = None
    to_files = log is not None and not capture
    if to_files:
        output = open(log, "w", encoding="utf-8")  # noqa: SIM115 (closed below, after the child started)
        if errors is not None:
            error_output = open(errors, "w", encoding="utf-8")  # noqa: SIM115 (the same)
    try:
        child = subprocess.Popen(
            list(argv),
            env=dict(env),
            stdout=output,
            stderr=error_output,
            text=True,
            start_new_session=True,
            umask=0o077,
        )
    except FileNotFoundError:
        raise ToolError(f"'{argv[0]}' not found", fix=INSTALL_HINT) from None
    finally:
        if to_files:
            output.close()
            if error_output is not None:
                error_output.close()

    def forward(signum: int, _frame: Any) -> None:
        received.append(signum)
        if signum == signal.SIGHUP:  # the terminal is gone: what is still said goes nowhere, quietly
            quiet = os.open(os.devnull, os.O_WRONLY)
            os.dup2(quiet, 1)
            os.dup2(quiet, 2)
            os.close(quiet)
        if child.poll() is None:
            child.send_signal(signal.SIGINT if signum in (signal.SIGINT, signal.SIGHUP) else signum)

    previous = {}
    if threading.current_thread() is threading.main_thread():  # only there can handlers be set
        previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        if to_files:
            stdout = _follow(child, log, until, errors)  # type: ignore[arg-type]
        else:
            stdout, _ = child.communicate()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if received:
        name = signal.Signals(received[0]).name
        raise Interrupted(
            f"{name} passed to terraform, which stopped (exit code {child.returncode}); state is as terraform saved it",
            fix="check with 'status', then plan again",
        )
    return subprocess.CompletedProcess(list(argv), child.returncode, stdout or "", "")
