"""The guarded deployment workflow: render, init, validate, plan to a file, apply exactly that file.

Rules (see invoke/README.md, "## deployment"):
- ``up`` is the only step that plans and applies in one go; ``update`` and ``down`` apply only the
  plan file ``plan --to update|destroy`` made, and refuse when it is missing or stale (plans.py).
- A plan is removed once applied (or once an apply of it started), never reused.
- The configuration is loaded and validated before anything is written, and one run at a time
  holds the deployment (core/locking.py). No step deletes state.
- What differs per kind of cluster is asked of its Cluster (clusters/), never decided by name.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.clusters.base import PURPOSES, Purpose
from hgi_spark.core import locking, tables
from hgi_spark.core.errors import ConfigError, NotFoundError, RefusedError, UsageError
from hgi_spark.core.layout import Repository
from hgi_spark.deploy import plans
from hgi_spark.deploy.plans import PlanStatus, PlanSummary, plan_status
from hgi_spark.deploy.run import Run, StateUnreadable, load

# The task that applies each plan, for messages.
APPLIED_BY = {"up": "up", "update": "update", "destroy": "down"}

__all__ = ["PlanStatus", "PlanSummary", "Run", "load", "plan_status"]


@contextmanager
def holding(run: Run, task: str) -> Iterator[None]:
    with locking.hold(run.paths.lock, task, what=f"deployment {run.deployment.ref}"):
        yield


# --- the steps --------------------------------------------------------------------------------------------


def _remove_plan(run: Run, purpose: str) -> None:
    for path in (run.paths.plan_file(purpose), run.paths.plan_record(purpose)):
        _inside(run, path).unlink(missing_ok=True)


def _inside(run: Run, path: Path) -> Path:
    """Every path a step removes must be directly in the deployment's folder."""
    if path.resolve().parent != run.paths.folder.resolve():
        raise RefusedError(f"refusing to touch {path}: not in {run.display(run.paths.folder)}/")
    return path


def check_purpose(purpose: str) -> Purpose:
    if purpose not in PURPOSES:
        raise UsageError(f"unknown plan purpose '{purpose}'", fix=f"use --to {'|'.join(PURPOSES)}")
    return purpose  # type: ignore[return-value]


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
        run.say(f"{run.display(run.paths.definition)}: the YAML and its variables are valid; rendered {rendered.name}")
        run.terraform.init()
        run.terraform.validate()
        return rendered


def _prepare(run: Run, purpose: Purpose, *, skip_checks: bool) -> Path:
    """init, the cluster's checks and preparation for ``purpose``, render terraform.tfvars.json.

    A local state is read before init (terraform would stop on a broken one with a page of text);
    a remote state can only be read once the backend is initialised.
    """
    local = run.terraform.backend.type == "local"
    if not local:
        run.terraform.init()
    state = run.state(fresh=True)  # a local state terraform could not read stops here, in one line
    run.cluster.check(purpose, state, skip=skip_checks)
    run.cluster.prepare(purpose)
    rendered = _render(run)
    if local:
        run.terraform.init()
    return rendered


def _make_plan(run: Run, purpose: Purpose, rendered: Path) -> PlanSummary:
    """Plan to ``<purpose>.tfplan`` and record its inputs; no plan file is left on failure."""
    _remove_plan(run, purpose)
    run.with_cloud_credentials()
    plan_file = run.paths.plan_file(purpose)
    try:
        before = plans.fingerprint(run)
        run.terraform.plan(
            plan_file,
            var_file=rendered,
            destroy=purpose == "destroy",
            parallelism=run.deployment.wrapper.parallelism,
        )
        shown = run.terraform.show_plan(plan_file)
        summary = PlanSummary.from_json(purpose, shown)
        strays = run.cluster.strays(run.state())
        if strays and purpose == "destroy":
            summary = dataclasses.replace(summary, strays=tuple(strays))
        elif strays:
            run.say(f"running, not in state: {', '.join(strays)} (this {purpose} replaces them)")
        run.cluster.check_plan(purpose, shown)
        after = plans.fingerprint(run)
        changed = plans.differences(before, after)
        if changed:
            raise RefusedError(f"inputs changed while planning: {'; '.join(changed)}", fix="plan again")
        plans.write_record(run, purpose, plan_file, summary, after)
    except BaseException:
        _remove_plan(run, purpose)
        raise
    return summary


def plan(name: str | None, purpose: str, repo: Repository | None = None, *, skip_checks: bool = False) -> PlanSummary:
    """``plan --to up|update|destroy``: write ``<purpose>.tfplan`` and its record, show a summary."""
    wanted = check_purpose(purpose)
    run = load(name, repo)
    if wanted == "destroy":
        _refuse_protected(run, "a destroy plan")
    with holding(run, f"plan --to {wanted}"):
        return _make_plan(run, wanted, _prepare(run, wanted, skip_checks=skip_checks))


def _apply_plan(run: Run, purpose: Purpose) -> None:
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
    if status.summary:
        run.say(f"applying: {status.summary}")
    run.with_cloud_credentials()
    try:
        run.terraform.apply(status.path, parallelism=run.deployment.wrapper.parallelism)
    finally:
        _remove_plan(run, purpose)  # applied, failed or interrupted: a plan is never reused
        run.state(fresh=True)
    from hgi_spark.deploy import orphans  # only after an apply

    orphans.settle(run)  # import blocks of `orphans --adopt` go once the state holds them
    run.cluster.finish(purpose, run.state())


def update(name: str | None, repo: Repository | None = None) -> Outputs:
    """Apply ``update.tfplan``; returns the outputs once the nodes are ready."""
    run = load(name, repo)
    with holding(run, "update"):
        _apply_plan(run, "update")
        return _outputs_when_ready(run)


def _refuse_protected(run: Run, what: str) -> None:
    if run.deployment.protect:
        raise RefusedError(
            f"deployment {run.deployment.ref} is protected: {what} refused",
            file=run.display(run.paths.definition),
            key="protect",
            fix="set protect: false in the deployment's YAML first, if it really is to go",
        )


def down(name: str | None, repo: Repository | None = None) -> Outputs:
    """Apply ``destroy.tfplan``; returns what is left in the state's outputs (normally nothing)."""
    run = load(name, repo)
    _refuse_protected(run, "down")
    with holding(run, "down"):
        _apply_plan(run, "destroy")
        return _outputs(run)


def up(name: str | None, repo: Repository | None = None, *, skip_checks: bool = False) -> tuple[PlanSummary, Outputs]:
    """clean -> init -> validate -> plan up.tfplan -> apply exactly it -> remove it -> outputs."""
    run = load(name, repo)
    with holding(run, "up"):
        _clean(run)
        rendered = _prepare(run, "up", skip_checks=skip_checks)
        run.terraform.validate()
        summary = _make_plan(run, "up", rendered)
        run.say(summary.line())
        _apply_plan(run, "up")
        return summary, _outputs_when_ready(run)


# --- read-only ---------------------------------------------------------------------------------------


class Outputs(dict):
    """The outputs (``terraform output -json`` shape), with the cluster's own rows to show beside them."""

    def __init__(self, values: Mapping[str, Any], rows: list[tuple[str, str]] | None = None) -> None:
        super().__init__(values)
        self.rows = list(rows or [])

    def text(self, *, show_secrets: bool = False) -> str:
        """One row per node, then the URLs, the rest, and the cluster's rows (the certificate ...)."""
        return tables.outputs_text(self, show_secrets=show_secrets, extra=self.rows)

    def json(self, *, show_secrets: bool = False) -> str:
        return tables.as_json(self, show_secrets=show_secrets)


def _outputs(run: Run) -> Outputs:
    """``terraform output -json`` shape; read from the local state file when there is one (no init)."""
    if run.terraform.backend.type == "local":
        values = dict((run.state() or {}).get("outputs", {}))
    else:
        values = run.terraform.outputs()
    return Outputs(values, run.cluster.output_rows() if values else [])


def _outputs_when_ready(run: Run) -> Outputs:
    """The outputs once the cluster's nodes report themselves configured (kinds that can tell)."""
    result = _outputs(run)
    run.cluster.wait_ready(result, run.state())
    return result


def outputs(name: str | None, repo: Repository | None = None) -> Outputs:
    """The deployment's outputs (name -> {value, type, sensitive}); read-only, no lock needed."""
    return _outputs(load(name, repo))


@dataclass(frozen=True)
class Status:
    """Where a deployment stands: rows for people, outputs, and what could not be read."""

    rows: list[tuple[str, str]]
    outputs: dict[str, Any]
    problems: tuple[str, ...] = ()

    def as_dict(self, *, show_secrets: bool = False) -> dict[str, Any]:
        return {
            "status": dict(self.rows),
            "outputs": tables.values(self.outputs, show_secrets=show_secrets),
            "problems": list(self.problems),
        }

    def as_json(self, *, show_secrets: bool = False) -> str:
        return json.dumps(self.as_dict(show_secrets=show_secrets), indent=2, sort_keys=True)

    def as_text(self, *, show_secrets: bool = False) -> str:
        return tables.table(self.rows) + "\n\n" + tables.outputs_text(self.outputs, show_secrets=show_secrets)


def status(name: str | None, repo: Repository | None = None) -> Status:
    """State, pending plans (fresh or stale, and why), lock, the cluster's own rows, outputs."""
    return _status(load(name, repo))


def _status(run: Run) -> Status:
    d = run.deployment
    rows = [("deployment", str(d.ref)), ("root module", run.display(d.paths.root_module) + "/")]
    problems: list[str] = []
    if run.terraform.backend.type == "local":
        rows.append(("state", run.display(d.paths.state)))
    else:
        settings = run.terraform.backend.settings
        rows.append(("state", f"{run.terraform.backend.type}://{settings.get('bucket')}/{settings.get('key')}"))
    try:
        state = run.state()
    except StateUnreadable as error:
        state = None
        problems.append(error.message)
        rows.append(("resources", f"UNREADABLE: {error.problem} ({error.fix})"))
    else:
        if state:
            resources = state.get("resources", [])
            instances = sum(len(r.get("instances", [])) for r in resources if r.get("mode") == "managed")
            rows.append(("resources", f"{instances} (serial {state.get('serial')})"))
        else:
            rows.append(("resources", "none: not deployed"))
    for purpose in PURPOSES:
        pending = plan_status(run, purpose) if not problems else None  # a plan of an unreadable state is not judged
        if pending is None:
            continue
        verdict = "fresh" if pending.fresh else "stale: " + "; ".join(pending.problems)
        what = (pending.summary or "").removeprefix(f"{purpose} plan: ")
        rows.append((f"{purpose} plan", f"{what} (made {pending.made}; {verdict})"))
    holder = locking.holder(d.paths.lock)
    rows.append(("lock", holder.describe() if holder else "free"))
    outputs = dict((state or {}).get("outputs", {}))
    rows.extend(run.cluster.status_rows(state, outputs))
    return Status(rows, outputs, tuple(problems))


def health(name: str | None, repo: Repository | None = None) -> Any:
    """Per-node health of a running cluster (``status --nodes``): bounded waits, never a traceback."""
    run = load(name, repo)
    state = run.state()
    return run.cluster.health(state, dict((state or {}).get("outputs", {})))


def diagnose(name: str | None, dest: Path, repo: Repository | None = None) -> Path:
    """``diagnose``: one archive of every node's logs and state, the rendered configuration and
    status, every secret masked (the Jupyter password and its hash, sensitive variables)."""
    from hgi_spark.clusters.diagnose import Archive, archive_name, masked_tfvars
    from hgi_spark.core import secrets

    run = load(name, repo)
    secret = secrets.JupyterSecret.of(run.paths)
    hidden = [p.read_text(encoding="utf-8").strip() for p in (secret.password_file, secret.hash_file) if p.is_file()]
    try:
        state = run.state()
    except StateUnreadable as error:
        state = None
        run.say(f"diagnose: {error.message}")
    outputs = dict((state or {}).get("outputs", {}))
    path = dest.expanduser().absolute() / archive_name(str(run.deployment.ref))
    with Archive(path, secrets=hidden) as archive:
        sensitive = [n for n, v in run.deployment.variables.items() if v.sensitive]
        try:
            archive.add_text("configuration/terraform.tfvars.json", masked_tfvars(run.tfvars(), sensitive))
        except ConfigError as error:
            archive.summary.append(f"configuration: {error.message}")
        for layer in run.deployment.input_files:
            archive.add_file(f"configuration/{run.display(layer)}", layer)
        archive.add_text("status.json", _status(run).as_json() + "\n")
        run.cluster.diagnose(state, outputs, archive)
        found = run.cluster.health(state, outputs)
        archive.add_text("health.json", json.dumps(found.as_dict(), indent=2) + "\n")
        archive.summary.extend(f"{label}: {row}" for label, row in found.rows())
    return path


def _deployed(run: Run) -> dict[str, Any]:
    result = _outputs(run)
    if not result:
        raise NotFoundError(f"deployment {run.deployment.ref} is not up", fix=f"bring it up: {run.command('up')}")
    return result


def submit(name: str | None, script: str, args: Sequence[str], repo: Repository | None = None) -> int:
    """Run a Python script on the deployment's cluster; returns its exit code."""
    run = load(name, repo)
    outputs = _deployed(run)
    return run.cluster.submit(run.state(), outputs, script, list(args))


def install(name: str | None, repo: Repository | None = None) -> Any:
    """``install``: the YAML's extra packages onto the running cluster now, under the deployment's
    lock (clusters/extras.py). A kind whose nodes must restart to use them (the local cluster)
    gets an update plan made here, to review and apply with ``update``, as any other change."""
    run = load(name, repo)
    with holding(run, "install"):
        outputs = _deployed(run)
        report = run.cluster.install(run.state(), outputs)
        if report.needs_update:
            summary = _make_plan(run, "update", _prepare(run, "update", skip_checks=False))
            note = f"{summary.line()}; the nodes restart onto the new environment with: {run.command('update')}"
            report = dataclasses.replace(report, note=note)
        return report


def ssh_config(name: str | None, repo: Repository | None = None) -> str:
    """A ``~/.ssh/config`` entry for the deployment's master, its host key pinned."""
    run = load(name, repo)
    return run.cluster.ssh_config(_outputs(run))


def preflight(name: str | None, repo: Repository | None = None) -> Any:
    """The ``preflight`` task: the cloud checks of a deployment whose kind has them."""
    run = load(name, repo)
    report = getattr(run.cluster, "preflight", None)
    if report is None:
        raise UsageError(
            f"deployment {run.deployment.ref} runs terraform/{run.deployment.ref.name}/: there is no cloud to check",
            fix="preflight is for OpenStack deployments such as spark/OWNER",
        )
    return report()


# --- idle clusters -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Idleness:
    """``idle``: whether the cluster does nothing, since when, and the last things that ran."""

    deployment: str
    idle: bool
    seconds: float
    since: str
    why: str
    last_application: str = ""
    last_kernel: str = ""

    def line(self) -> str:
        if not self.idle:
            return f"{self.deployment}: busy: {self.why}"
        text = f"{self.deployment}: idle for {_duration(self.seconds)}, since {self.since}"
        for label, value in (("last application", self.last_application), ("last kernel activity", self.last_kernel)):
            if value:
                text += f"; {label}: {value}"
        return text


def _duration(seconds: float) -> str:
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m" if hours else f"{minute}m{second:02d}s"


def _idleness(run: Run, state: Mapping[str, Any] | None) -> Idleness:
    from hgi_spark.clusters import health

    outputs = dict((state or {}).get("outputs", {}))
    found = run.cluster.health(state, outputs).view
    idle = health.idleness(found, run.cluster.up_since(state))
    app = idle.last_application
    kernel = idle.last_kernel
    return Idleness(
        str(run.deployment.ref),
        idle.idle,
        idle.seconds(),
        idle.since.isoformat(timespec="seconds") if idle.since else "unknown",
        idle.why,
        f"{app.name} ({app.user}) ended {app.ended.isoformat(timespec='seconds')}" if app and app.ended else "",
        kernel.last_activity.isoformat(timespec="seconds") if kernel and kernel.last_activity else "",
    )


def idle(name: str | None, repo: Repository | None = None) -> Idleness:
    """``idle``, read-only: how long the cluster has had no running application and no busy kernel."""
    run = load(name, repo)
    state = run.state()
    if not state or not state.get("outputs"):
        raise NotFoundError(f"deployment {run.deployment.ref} is not up", fix=f"bring it up: {run.command('up')}")
    return _idleness(run, state)


def reap(name: str | None, repo: Repository | None = None) -> str:
    """``reap`` (cron, CI schedules): destroy the cluster when it opted in with ``max_idle`` and has
    been idle longer; otherwise say why not. Never with work running, the lock held, or protected."""
    run = load(name, repo)
    d = run.deployment
    if d.max_idle_s is None:
        return f"{d.ref}: not reaped: max_idle is not set in its YAML (no opt-in)"
    _refuse_protected(run, "reap")
    if locking.holder(run.paths.lock) is not None:
        return f"{d.ref}: not reaped: {locking.holder(run.paths.lock).describe()}"  # type: ignore[union-attr]
    with holding(run, "reap"):
        state = run.state(fresh=True)
        if not state or not state.get("outputs"):
            return f"{d.ref}: not reaped: it is not up"
        found = _idleness(run, state)
        if not found.idle:
            return f"{d.ref}: not reaped: {found.why}"
        if found.seconds < d.max_idle_s:
            limit = _duration(d.max_idle_s)
            return f"{d.ref}: not reaped: idle for {_duration(found.seconds)}, less than max_idle {limit}"
        run.say(f"reaping: {found.line()} (max_idle {_duration(d.max_idle_s)})")
        summary = _make_plan(run, "destroy", _prepare(run, "destroy", skip_checks=False))
        run.say(summary.line())
        _apply_plan(run, "destroy")
        return f"{d.ref}: reaped after {_duration(found.seconds)} idle: {summary.line()}"
