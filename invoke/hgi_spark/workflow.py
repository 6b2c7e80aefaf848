"""The guarded deployment workflow: render, init, validate, plan to a file, apply exactly that file.

Rules (see invoke/README.md, "## deployment"):
- ``up`` is the only step that plans and applies in one go; ``update`` and ``down`` apply only the
  plan file ``plan --to update|destroy`` made, and refuse when it is missing or stale.
- A plan file has a record beside it (``<purpose>.tfplan.json``) with digests of everything it
  was made from: the YAML layers, the rendered variables, every file of the root module and of the
  modules it calls, the provider lock file, the terraform version, and the state it was planned
  against (lineage + serial). Any difference makes it stale, and we say which.
- A plan is removed once applied (or once an apply of it started), never reused.
- The configuration is loaded and validated before anything is written, and one run at a time
  holds the deployment (locking.py). No step deletes state.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from . import config, credentials, locking, rootmodules
from . import terraform as tf
from .errors import ConfigError, RefusedError, UsageError
from .files import write_atomic
from .layout import DeploymentPaths, Repository

PURPOSES = ("up", "update", "destroy")
# The task that applies each plan, for messages.
APPLIED_BY = {"up": "up", "update": "update", "destroy": "down"}
RECORD_VERSION = 1


# --- one deployment, ready to run -------------------------------------------------------------------


@dataclass
class Run:
    """A loaded, validated deployment with its profile and its terraform runner."""

    deployment: config.Deployment
    profile: rootmodules.Profile
    terraform: tf.Terraform
    echo: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def paths(self) -> DeploymentPaths:
        return self.deployment.paths

    def command(self, task: str) -> str:
        """The command line a user types for ``task`` on this deployment."""
        return f"bash invoke.sh deployment {self.deployment.ref} {task}"

    def display(self, path: Path) -> str:
        try:
            return str(path.resolve().relative_to(self.deployment.repo.root.resolve()))
        except ValueError:
            return str(path)

    def say(self, text: str) -> None:
        print(text, file=self.echo, flush=True)

    def extra_tfvars(self) -> Mapping[str, Any]:
        hook = self.profile.extra_tfvars
        return hook(self.deployment) if hook else {}

    def with_cloud_credentials(self) -> None:
        """Only root modules that talk to OpenStack get (and may prompt for) credentials."""
        if self.profile.needs_cloud:
            cloud = credentials.openstack_environment(repo=self.deployment.repo)
            self.terraform.env = {**self.terraform.env, **cloud}


def load(name: str | None, repo: Repository | None = None, *, echo: TextIO | None = None) -> Run:
    """Load and validate the deployment; writes nothing (a bad YAML leaves no file behind)."""
    deployment = config.load_deployment(name, repo)
    backend = tf.Backend("local")
    if deployment.wrapper.backend is not None:
        backend = tf.s3_backend(deployment.wrapper.backend.model_dump())
    echo = echo or sys.stderr
    runner = tf.Terraform(
        terraform_dir=deployment.repo.terraform_dir,
        root_module=deployment.paths.root_module,
        data_dir=deployment.paths.data_dir,
        state=deployment.paths.state,
        backend=backend,
        echo=echo,
    )
    return Run(deployment, rootmodules.profile(deployment.ref.name), runner, echo)


@contextmanager
def holding(run: Run, task: str) -> Iterator[None]:
    with locking.hold(run.paths.lock, task, what=f"deployment {run.deployment.ref}"):
        yield


# --- fingerprints of a plan's inputs ------------------------------------------------------------------


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _sha256_json(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _module_dirs(run: Run) -> list[Path]:
    """The root module and every local module it calls (from terraform's modules.json after init)."""
    dirs = [run.paths.root_module.resolve()]
    manifest = run.paths.data_dir / "modules" / "modules.json"
    try:
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("Modules", [])
    except (OSError, ValueError):
        entries = []
    workdir = run.paths.data_dir / "workdir" / "terraform" / run.deployment.ref.name
    for entry in entries:
        if entry.get("Dir") in (None, "", "."):
            continue  # the root module itself (terraform sees its mirror)
        directory = Path(entry["Dir"])
        resolved = (directory if directory.is_absolute() else workdir / directory).resolve()
        if resolved.is_dir() and resolved not in dirs:
            dirs.append(resolved)
    if not entries:  # not initialised yet: be conservative
        shared = (run.deployment.repo.terraform_dir / "modules").resolve()
        if shared.is_dir():
            dirs.append(shared)
    return dirs


def _module_files(directory: Path) -> Iterator[Path]:
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory).parts
        if any(p.startswith(".") or p == "tests" for p in relative) or path.suffix == ".md":
            continue
        if path.is_file():
            yield path


def _state_identity(run: Run) -> dict[str, Any] | None:
    """Lineage and serial of the state as it is now (local file, or pulled from the backend)."""
    if run.terraform.backend.type == "local":
        try:
            state = json.loads(run.paths.state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
    else:
        state = run.terraform.state_pull()
    if not state:
        return None
    return {"lineage": state.get("lineage"), "serial": state.get("serial")}


def fingerprint(run: Run) -> dict[str, Any]:
    """Everything a plan depends on, as digests keyed by what a user would recognise."""
    d = run.deployment
    files: dict[str, str | None] = {}
    for layer in d.paths.layers:
        files[run.display(layer)] = _sha256_file(layer)
    if d.image is not None:
        for path in d.image.input_files:
            files[run.display(path)] = _sha256_file(path)
    for directory in _module_dirs(run):
        for path in _module_files(directory):
            files[run.display(path)] = _sha256_file(path)
    lock = run.paths.data_dir / "workdir" / "terraform" / d.ref.name / tf.LOCK_FILE
    files["provider lock file"] = _sha256_file(lock)
    return {
        "files": files,
        "variables": _sha256_json(d.tfvars(run.extra_tfvars())),
        "terraform_version": tf.version(),
        "backend": {"type": run.terraform.backend.type, **dict(run.terraform.backend.settings)},
        "state": _state_identity(run),
    }


def differences(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """What changed between two fingerprints, in words."""
    changes = []
    old_files, new_files = recorded.get("files", {}), current.get("files", {})
    for name in sorted(set(old_files) | set(new_files)):
        before, after = old_files.get(name), new_files.get(name)
        if before == after:
            continue
        if before is None:
            changes.append(f"{name} was added")
        elif after is None:
            changes.append(f"{name} was removed")
        else:
            changes.append(f"{name} changed")
    if recorded.get("variables") != current.get("variables"):
        changes.append("the rendered variables changed")
    if recorded.get("terraform_version") != current.get("terraform_version"):
        changes.append(f"terraform version {recorded.get('terraform_version')} -> {current.get('terraform_version')}")
    if recorded.get("backend") != current.get("backend"):
        changes.append("the state backend changed")
    old_state, new_state = recorded.get("state"), current.get("state")
    if old_state != new_state:
        if old_state and new_state and old_state.get("lineage") != new_state.get("lineage"):
            changes.append("the state was replaced (another lineage)")
        else:
            changes.append(f"the state changed since planned ({_serial(old_state)} -> {_serial(new_state)})")
    return changes


def _serial(state: Mapping[str, Any] | None) -> str:
    return "no state" if not state else f"serial {state.get('serial')}"


# --- plan summary --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSummary:
    purpose: str
    add: int
    change: int
    destroy: int
    destroyed: tuple[str, ...]
    outputs_changed: int

    @classmethod
    def from_json(cls, purpose: str, plan: Mapping[str, Any]) -> PlanSummary:
        add = change = destroy = 0
        destroyed = []
        for resource in plan.get("resource_changes", []):
            actions = resource.get("change", {}).get("actions", [])
            add += "create" in actions
            change += "update" in actions
            if "delete" in actions:
                destroy += 1
                destroyed.append(resource.get("address", "?"))
        changed = sum(1 for c in plan.get("output_changes", {}).values() if c.get("actions") not in (["no-op"], None))
        return cls(purpose, add, change, destroy, tuple(destroyed), changed)

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.destroy or self.outputs_changed)

    def line(self) -> str:
        if self.empty:
            return f"{self.purpose} plan: no changes"
        text = f"{self.purpose} plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy"
        if self.purpose == "destroy" and self.destroyed:
            text += ": " + ", ".join(self.destroyed)
        elif not (self.add or self.change or self.destroy):
            text += f" ({self.outputs_changed} output{'s' if self.outputs_changed != 1 else ''} to change)"
        return text


# --- the steps --------------------------------------------------------------------------------------------


def _remove_plan(run: Run, purpose: str) -> None:
    for path in (run.paths.plan_file(purpose), run.paths.plan_record(purpose)):
        _inside(run, path).unlink(missing_ok=True)


def _inside(run: Run, path: Path) -> Path:
    """Every path a step removes must be directly in the deployment's folder."""
    if path.resolve().parent != run.paths.folder.resolve():
        raise RefusedError(f"refusing to touch {path}: not in {run.display(run.paths.folder)}/")
    return path


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise UsageError(f"unknown plan purpose '{purpose}'", fix=f"use --to {'|'.join(PURPOSES)}")


def _clean(run: Run) -> list[Path]:
    removed = []
    for purpose in PURPOSES:
        for path in (run.paths.plan_file(purpose), run.paths.plan_record(purpose)):
            if path.exists():
                _inside(run, path).unlink()
                removed.append(path)
    if run.paths.tfvars.exists():
        _inside(run, run.paths.tfvars).unlink()
        removed.append(run.paths.tfvars)
    return removed


def clean(name: str | None, repo: Repository | None = None) -> list[Path]:
    """Remove plan files, their records and the rendered variables; never state, never elsewhere."""
    run = load(name, repo)
    with holding(run, "clean"):
        return _clean(run)


def _render(run: Run) -> Path:
    return run.deployment.write_tfvars(run.extra_tfvars())


def init(name: str | None, repo: Repository | None = None) -> None:
    """terraform init in the deployment's own working directory and data dir."""
    run = load(name, repo)
    with holding(run, "init"):
        run.terraform.init()


def validate(name: str | None, repo: Repository | None = None) -> Path:
    """Validate the YAML, render terraform.tfvars.json, init, and terraform validate."""
    run = load(name, repo)
    with holding(run, "validate"):
        rendered = _render(run)
        run.terraform.init()
        run.terraform.validate()
        return rendered


def _prepare(run: Run) -> Path:
    """Pre-flight checks (when the module has them), render terraform.tfvars.json, init."""
    if run.profile.preflight is not None:
        run.profile.preflight(run.deployment)
    rendered = _render(run)
    run.terraform.init()
    return rendered


def _make_plan(run: Run, purpose: str, rendered: Path) -> PlanSummary:
    """Plan to ``<purpose>.tfplan`` and record its inputs; no plan file is left on failure."""
    _remove_plan(run, purpose)
    run.with_cloud_credentials()
    plan_file = run.paths.plan_file(purpose)
    try:
        before = fingerprint(run)
        run.terraform.plan(
            plan_file,
            var_file=rendered,
            destroy=purpose == "destroy",
            parallelism=run.deployment.wrapper.parallelism,
        )
        summary = PlanSummary.from_json(purpose, run.terraform.show_plan(plan_file))
        after = fingerprint(run)
        changed = differences(before, after)
        if changed:
            raise RefusedError(f"inputs changed while planning: {'; '.join(changed)}", fix="plan again")
        record = {
            "version": RECORD_VERSION,
            "purpose": purpose,
            "made": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
            "plan_sha256": _sha256_file(plan_file),
            "summary": summary.line(),
            "inputs": after,
        }
        write_atomic(run.paths.plan_record(purpose), json.dumps(record, indent=2, sort_keys=True) + "\n")
    except BaseException:
        _remove_plan(run, purpose)
        raise
    return summary


def plan(name: str | None, purpose: str, repo: Repository | None = None) -> PlanSummary:
    """``plan --to up|update|destroy``: write ``<purpose>.tfplan`` and its record, show a summary."""
    _check_purpose(purpose)
    run = load(name, repo)
    with holding(run, f"plan --to {purpose}"):
        return _make_plan(run, purpose, _prepare(run))


@dataclass(frozen=True)
class PlanStatus:
    """A pending plan file: fresh, or stale and why (read-only)."""

    purpose: str
    path: Path
    made: str | None
    summary: str | None
    problems: tuple[str, ...]

    @property
    def fresh(self) -> bool:
        return not self.problems


def plan_status(run: Run, purpose: str) -> PlanStatus | None:
    """None when there is no plan file; otherwise whether it can still be applied, and if not why."""
    plan_file, record_file = run.paths.plan_file(purpose), run.paths.plan_record(purpose)
    if not plan_file.exists():
        return None
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return PlanStatus(purpose, plan_file, None, None, (f"{run.display(record_file)} is missing or unreadable",))
    problems = []
    if record.get("version") != RECORD_VERSION or record.get("purpose") != purpose:
        problems.append(f"{run.display(record_file)} is not a {purpose} plan record of this wrapper")
    if record.get("plan_sha256") != _sha256_file(plan_file):
        problems.append(f"{run.display(plan_file)} itself changed")
    try:
        current = fingerprint(run)
    except ConfigError as error:
        problems.append(f"the configuration no longer renders ({error.problem})")
    else:
        problems.extend(differences(record.get("inputs", {}), current))
    return PlanStatus(purpose, plan_file, record.get("made"), record.get("summary"), tuple(problems))


def _apply_plan(run: Run, purpose: str) -> None:
    """Apply exactly ``<purpose>.tfplan`` after checking it is fresh; it is removed afterwards."""
    task = APPLIED_BY[purpose]
    make = run.command(f"plan --to {purpose}")
    status = plan_status(run, purpose)
    if status is None:
        raise RefusedError(
            f"no {purpose} plan: {run.display(run.paths.plan_file(purpose))} does not exist",
            fix=f"make one with: {make}, review it, then run '{task}'",
        )
    if not status.fresh:
        shown = "; ".join(status.problems[:3])
        more = f" (+{len(status.problems) - 3} more)" if len(status.problems) > 3 else ""
        raise RefusedError(
            f"stale {purpose} plan made {status.made}: {shown}{more}; nothing applied, plan left as is",
            fix=f"make a new one with: {make}",
        )
    run.with_cloud_credentials()
    try:
        run.terraform.apply(status.path, parallelism=run.deployment.wrapper.parallelism)
    finally:
        _remove_plan(run, purpose)  # applied, failed or interrupted: a plan is never reused


def update(name: str | None, repo: Repository | None = None) -> dict[str, Any]:
    """Apply ``update.tfplan``; returns the outputs afterwards."""
    run = load(name, repo)
    with holding(run, "update"):
        _apply_plan(run, "update")
        return _outputs_when_ready(run)


def down(name: str | None, repo: Repository | None = None) -> dict[str, Any]:
    """Apply ``destroy.tfplan``; returns what is left in the state's outputs (normally nothing)."""
    run = load(name, repo)
    with holding(run, "down"):
        _apply_plan(run, "destroy")
        return _outputs(run)


def up(name: str | None, repo: Repository | None = None) -> tuple[PlanSummary, dict[str, Any]]:
    """clean -> init -> validate -> plan up.tfplan -> apply exactly it -> remove it -> outputs."""
    run = load(name, repo)
    with holding(run, "up"):
        _clean(run)
        rendered = _prepare(run)
        run.terraform.validate()
        summary = _make_plan(run, "up", rendered)
        run.say(summary.line())
        _apply_plan(run, "up")
        return summary, _outputs_when_ready(run)


# --- read-only ---------------------------------------------------------------------------------------


def _state(run: Run) -> dict[str, Any] | None:
    if run.terraform.backend.type == "local":
        try:
            return json.loads(run.paths.state.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
    if not (run.paths.data_dir / "terraform.tfstate").is_file():
        raise RefusedError(
            "the remote backend is not initialised for this deployment", fix=f"run: {run.command('init')}"
        )
    return run.terraform.state_pull()


def _outputs(run: Run) -> dict[str, Any]:
    """``terraform output -json`` shape; read from the local state file when there is one (no init)."""
    if run.terraform.backend.type == "local":
        state = _state(run) or {}
        return dict(state.get("outputs", {}))
    return run.terraform.outputs()


def _outputs_when_ready(run: Run) -> dict[str, Any]:
    """The outputs once the module's nodes report themselves configured (when its profile can tell)."""
    result = _outputs(run)
    if run.profile.wait_ready is not None:
        run.profile.wait_ready(run.deployment, result, run.say)
    return result


def outputs(name: str | None, repo: Repository | None = None) -> dict[str, Any]:
    """The deployment's outputs (name -> {value, type, sensitive}); read-only, no lock needed."""
    return _outputs(load(name, repo))


@dataclass(frozen=True)
class Status:
    rows: list[tuple[str, str]]
    outputs: dict[str, Any]


def status(name: str | None, repo: Repository | None = None) -> Status:
    """Where the deployment stands: state, pending plans (fresh or stale, and why), lock, outputs."""
    run = load(name, repo)
    d = run.deployment
    rows = [("deployment", str(d.ref)), ("root module", run.display(d.paths.root_module) + "/")]
    state = _state(run)
    if run.terraform.backend.type == "local":
        rows.append(("state", run.display(d.paths.state)))
    else:
        settings = run.terraform.backend.settings
        rows.append(("state", f"{run.terraform.backend.type}://{settings.get('bucket')}/{settings.get('key')}"))
    if state:
        resources = state.get("resources", [])
        instances = sum(len(r.get("instances", [])) for r in resources if r.get("mode") == "managed")
        rows.append(("resources", f"{instances} (serial {state.get('serial')})"))
    else:
        rows.append(("resources", "none: not deployed"))
    for purpose in PURPOSES:
        pending = plan_status(run, purpose)
        if pending is None:
            continue
        verdict = "fresh" if pending.fresh else "stale: " + "; ".join(pending.problems)
        what = (pending.summary or "").removeprefix(f"{purpose} plan: ")
        rows.append((f"{purpose} plan", f"{what} (made {pending.made}; {verdict})"))
    holder = locking.holder(d.paths.lock)
    rows.append(("lock", holder.describe() if holder else "free"))
    if run.profile.status_rows is not None:
        rows.extend(run.profile.status_rows(d))
    if run.profile.ready_rows is not None and state:
        rows.extend(run.profile.ready_rows(d, state.get("outputs", {})))
    return Status(rows, dict((state or {}).get("outputs", {})) if state else {})
