"""Plan files and their records: what a plan was made from, and whether it may still be applied.

A plan file has a record beside it (``<purpose>.tfplan.json``) with digests of everything it was
made from: the YAML layers, the rendered variables, every file of the root module and of the
modules it calls, the provider lock file, the terraform version, the backend and the state it was
planned against (lineage + serial). Any difference makes it stale, and ``differences`` says which.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hgi_spark.core.errors import ConfigError
from hgi_spark.core.files import write_atomic
from hgi_spark.deploy import terraform as tf

if TYPE_CHECKING:
    from hgi_spark.deploy.run import Run

RECORD_VERSION = 1
# Written by orphans --adopt into the working directory (deploy/orphans.py).
IMPORTS_FILE = "zz_hgi_orphans_import.tf"

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
    """Lineage and serial of the state as it is now (read afresh: a plan must see a change)."""
    state = run.state(fresh=True)
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
    imports = lock.with_name(IMPORTS_FILE)  # orphans --adopt: import blocks the plan carries out
    if imports.is_file():
        files["orphans' import blocks"] = _sha256_file(imports)
    return {
        "files": files,
        "variables": _sha256_json(run.tfvars()),
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
    """What a plan does, in counts and the addresses a reviewer must not miss."""

    purpose: str
    add: int
    change: int
    destroy: int
    destroyed: tuple[str, ...]
    outputs_changed: int
    replaced: tuple[str, ...] = ()
    strays: tuple[str, ...] = ()  # running outside the state: a destroy stops them too

    @classmethod
    def from_json(cls, purpose: str, plan: Mapping[str, Any]) -> PlanSummary:
        add = change = destroy = 0
        destroyed, replaced = [], []
        for resource in plan.get("resource_changes", []):
            actions = resource.get("change", {}).get("actions", [])
            add += "create" in actions
            change += "update" in actions
            if "delete" in actions:
                destroy += 1
                if "create" in actions:
                    replaced.append(resource.get("address", "?"))
                else:
                    destroyed.append(resource.get("address", "?"))
        changed = sum(1 for c in plan.get("output_changes", {}).values() if c.get("actions") not in (["no-op"], None))
        return cls(purpose, add, change, destroy, tuple(destroyed), changed, tuple(replaced))

    @property
    def empty(self) -> bool:
        return not (self.add or self.change or self.destroy or self.outputs_changed or self.strays)

    def line(self) -> str:
        also = f"; also stops, running but not in state: {', '.join(self.strays)}" if self.strays else ""
        if not (self.add or self.change or self.destroy or self.outputs_changed):
            return f"{self.purpose} plan: no changes{also}"
        text = f"{self.purpose} plan: {self.add} to add, {self.change} to change, {self.destroy} to destroy"
        if self.purpose == "destroy" and self.destroyed:
            text += ": " + ", ".join(self.destroyed)
        elif not (self.add or self.change or self.destroy):
            text += f" ({self.outputs_changed} output{'s' if self.outputs_changed != 1 else ''} to change)"
        if self.replaced and self.purpose != "up":
            text += f"; REPLACES {len(self.replaced)}: " + ", ".join(self.replaced)
        return text + also


def write_record(run: Run, purpose: str, plan_file: Path, summary: PlanSummary, inputs: Mapping[str, Any]) -> Path:
    """The record beside a plan file: its digest, its summary, and the inputs it was made from."""
    record = {
        "version": RECORD_VERSION,
        "purpose": purpose,
        "made": datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds"),
        "plan_sha256": _sha256_file(plan_file),
        "summary": summary.line(),
        "inputs": dict(inputs),
    }
    return write_atomic(run.paths.plan_record(purpose), json.dumps(record, indent=2, sort_keys=True) + "\n")


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
