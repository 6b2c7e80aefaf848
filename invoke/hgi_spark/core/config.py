"""Deployment and image definitions: YAML layers merged, validated, and turned into terraform inputs.

Layers, nearest wins: ``deployments/defaults.yml`` < ``deployments/<name>/defaults.yml`` <
``deployments/<name>/<owner>/deployment.yml``; ``images/<name>/defaults.yml`` <
``images/<name>/<version>/image.yml``. The wrapper's own keys (``terraform:``, ``image:``) have
pydantic models here; every other deployment key must be a variable of the root module, with the
type declared there (see variables.py).
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import yamlio
from .errors import ConfigError, NotFoundError
from .files import display, write_atomic
from .layout import DeploymentPaths, DeploymentRef, ImagePaths, ImageRef, Repository
from .variables import Variable, model_for, read_variables

# Keys the wrapper handles itself; never passed to terraform as they are written.
WRAPPER_KEYS = ("terraform", "image", "protect", "max_idle", "extra_python_packages", "extra_system_packages")
# Former deployment keys that are facts of the image now, and where they live.
IMAGE_FACTS = {
    "app_user": "app_user: of images/NAME/defaults.yml",
    "node_paths": "layout: (and app_user.home) of images/NAME/defaults.yml",
}
# Variables the wrapper fills in when the root module declares them.
INJECTED_VARIABLES = ("deployment_name", "deployment_owner", "deployment_dir", "repository_root", "image")

_VERSION_PATTERN = r"^\d+(\.\d+)*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


# --- image definitions -----------------------------------------------------------------------------


class BaseImage(_Strict):
    """The Glance image a build starts from: a name, or a filter for the most recent match."""

    name: str | None = None
    filter: dict[str, Any] | None = None


class BuildSettings(_Strict):
    base_image: BaseImage
    flavor: str
    network: str | None = None
    floating_ip_network: str | None = None
    security_groups: list[str] = Field(default_factory=list)
    disk_gb: int = Field(ge=5)
    ssh_user: str
    use_blockstorage_volume: bool = False


class Software(_Strict):
    """Versions baked into the image, and installed by the local cluster."""

    java: str = Field(pattern=r"^\d+$")
    python: str = Field(pattern=r"^3\.\d+$")
    hail: str = Field(pattern=_VERSION_PATTERN)
    pyspark: str = Field(pattern=_VERSION_PATTERN)
    jupyterlab: str = Field(pattern=_VERSION_PATTERN)


_ABSOLUTE_PATH = r"^/[A-Za-z0-9._/-]*$"


class AppUser(_Strict):
    """The user Spark, Jupyter and jobs run as on every node; fixed ids, so that what it writes on
    the shared tmp directory (NFS) is its own on every node, whichever image a node booted."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_-]*$")
    uid: int = Field(ge=1000, lt=60000)
    gid: int = Field(ge=1000, lt=60000)
    home: str = Field(pattern=_ABSOLUTE_PATH)


class ImageLayout(_Strict):
    """Where things are on a node: install-node puts them there, the node scripts find them there."""

    hail_home: str = Field(pattern=_ABSOLUTE_PATH)
    hail_venv: str = Field(pattern=_ABSOLUTE_PATH)
    hail_tmp_dir: str = Field(pattern=_ABSOLUTE_PATH)
    node_scripts_dir: str = Field(pattern=_ABSOLUTE_PATH)
    etc_dir: str = Field(pattern=_ABSOLUTE_PATH)
    state_dir: str = Field(pattern=_ABSOLUTE_PATH)


class ImageFile(_Strict):
    description: str = ""
    build: BuildSettings
    software: Software
    app_user: AppUser
    layout: ImageLayout
    constraints: str | None = None
    projects: dict[str, str] = Field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """One validated image definition."""

    ref: ImageRef
    paths: ImagePaths
    description: str
    build: BuildSettings
    software: Software
    app_user: AppUser
    layout: ImageLayout
    constraints_file: Path | None
    projects: dict[str, str]
    input_files: tuple[Path, ...]

    def as_terraform_object(self) -> dict[str, Any]:
        """The ``image`` variable a root module receives: the nodes' paths and user come from here."""
        return {
            "name": self.ref.name,
            "version": self.ref.version,
            "glance_name": self.ref.glance_name,
            "software": self.software.model_dump(),
            "app_user": self.app_user.model_dump(),
            "layout": self.layout.model_dump(),
        }


def load_image(name: str | None, repo: Repository | None = None) -> Image:
    """Load and validate ``images/NAME/VERSION/image.yml`` over its defaults."""
    repo = repo or Repository.default()
    paths = ImagePaths(repo, ImageRef.parse(name))
    paths.require_exists()
    documents, merged = _layers(repo, paths.layers)
    parsed = _validated(ImageFile, merged, documents)
    constraints = None
    if parsed.constraints:
        constraints = paths.folder / parsed.constraints
        if not constraints.is_file():
            raise ConfigError(
                f"constraints file '{parsed.constraints}' does not exist",
                file=_display(repo, paths.definition),
                key="constraints",
                fix="name a file beside image.yml, or remove the key",
            )
    return Image(
        ref=paths.ref,
        paths=paths,
        description=parsed.description,
        build=parsed.build,
        software=parsed.software,
        app_user=parsed.app_user,
        layout=parsed.layout,
        constraints_file=constraints,
        projects=dict(parsed.projects),
        input_files=tuple(d_path for d_path in paths.layers if d_path.is_file()),
    )


# --- deployment definitions ------------------------------------------------------------------------


class S3Backend(_Strict):
    """An S3-compatible remote state (e.g. OpenStack's object store); secrets come from the environment."""

    type: Literal["s3"]
    bucket: str
    key: str
    region: str = "us-east-1"
    endpoint: str | None = None
    skip_credentials_validation: bool = True
    use_path_style: bool = True
    # terraform's own state lock (a .tflock object written with If-None-Match: *, terraform >= 1.10):
    # a second machine's plan/update/down is refused while one run holds the state.
    use_lockfile: bool = True


class WrapperSettings(_Strict):
    """The ``terraform:`` section: how the wrapper runs terraform for this deployment."""

    parallelism: int = Field(default=10, ge=1, le=256)
    wait_ready_s: int = Field(default=900, ge=0)  # after up/update, wait for nodes to report ready; 0: don't
    backend: S3Backend | None = None


class WrapperKeys(BaseModel):
    """The wrapper's keys in a deployment file; everything else belongs to the root module."""

    model_config = ConfigDict(extra="ignore", strict=True, defer_build=True)

    terraform: WrapperSettings = Field(default_factory=WrapperSettings)
    image: str | None = None
    # Termination protection: down (and reap) refuse the deployment while this is true.
    protect: bool = False
    # Opt-in for `reap`: destroy the cluster after this long without work, e.g. 2h, 90m, 30s.
    max_idle: str | None = Field(default=None, pattern=r"^\d+(s|m|h|d)$")
    # Installed on every node, into the Hail venv under the image's pip constraints (clusters/extras.py);
    # never terraform variables, so a change to them never touches a node's user data.
    extra_python_packages: list[str] = Field(default_factory=list)
    extra_system_packages: list[str] = Field(default_factory=list)

    @field_validator("image")
    @classmethod
    def _image_shape(cls, value: str | None) -> str | None:
        if value is not None:
            ImageRef.parse(value, source="image")
        return value


@dataclass
class Deployment:
    """One validated deployment definition and the root module that runs it."""

    ref: DeploymentRef
    paths: DeploymentPaths
    repo: Repository
    settings: dict[str, Any]
    wrapper: WrapperSettings
    image: Image | None
    protect: bool
    variables: dict[str, Variable]
    input_files: list[Path]
    max_idle_s: int | None = None
    extra_python_packages: tuple[str, ...] = ()
    extra_system_packages: tuple[str, ...] = ()
    _documents: list[yamlio.YamlDocument] = field(default_factory=list, repr=False)

    def tfvars(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The values for ``terraform.tfvars.json``: YAML keys, injected values, then ``extra``."""
        values: dict[str, Any] = {k: v for k, v in self.settings.items() if k in self.variables}
        injected = {
            "deployment_name": self.ref.name,
            "deployment_owner": self.ref.owner,
            "deployment_dir": str(self.paths.folder.resolve()),
            "repository_root": str(self.repo.root.resolve()),
        }
        if self.image is not None:
            injected["image"] = self.image.as_terraform_object()
        values.update({k: v for k, v in injected.items() if k in self.variables})
        for key, value in (extra or {}).items():
            if key not in self.variables:
                raise ConfigError(
                    f"the wrapper sets '{key}' but the root module does not declare it",
                    file=_display(self.repo, self.paths.root_module / "variables.tf"),
                    fix=f'add: variable "{key}" {{ ... }}',
                )
            values[key] = value
        missing = sorted(n for n, v in self.variables.items() if v.required and n not in values)
        if missing:
            raise ConfigError(
                f"required variable{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
                f"of {_display(self.repo, self.paths.root_module)}/ ha{'ve' if len(missing) > 1 else 's'} no value",
                file=_display(self.repo, self.paths.definition),
                fix=f"set {missing[0]}: ... in the deployment file or in a defaults.yml above it",
            )
        return values

    def where(self, key_path: tuple[str | int, ...]) -> str:
        """``file:line:column`` of a key (or list item) in the nearest layer that writes it."""
        return _where(self._documents, key_path)

    def write_tfvars(self, extra: Mapping[str, Any] | None = None) -> Path:
        """Render ``terraform.tfvars.json`` atomically with mode 0600 (it may hold secrets)."""
        values = self.tfvars(extra)
        target = self.paths.tfvars
        text = json.dumps(values, indent=2, sort_keys=True) + "\n"
        if target.is_file() and target.read_text(encoding="utf-8") == text:
            return target  # unchanged: keep its mtime, nothing to do
        return write_atomic(target, text, mode=0o600)

    def render_check(self) -> dict[str, Any]:
        """Validate everything that rendering needs, writing nothing."""
        return self.tfvars()


def load_deployment(name: str | None, repo: Repository | None = None) -> Deployment:
    """Load, merge and validate a deployment; raises ConfigError/NotFoundError, writes nothing."""
    repo = repo or Repository.default()
    paths = DeploymentPaths(repo, DeploymentRef.parse(name))
    paths.require_exists()
    documents, merged = _layers(repo, paths.layers)
    wrapper_keys = _validated(WrapperKeys, merged, documents)
    _check_extras(wrapper_keys, documents)

    variables = read_variables(paths.root_module)
    module_keys = {k: v for k, v in merged.items() if k not in WRAPPER_KEYS}
    _reject_unknown_keys(module_keys, variables, documents, repo, paths)
    model = model_for(variables, list(module_keys), where=_display(repo, paths.root_module / "variables.tf"))
    _validated(model, module_keys, documents)

    image = None
    if wrapper_keys.image is not None:
        try:
            image = load_image(wrapper_keys.image, repo)
        except NotFoundError as error:  # say which deployment file asked for it
            error.file = _where(documents, ("image",))
            error.key = "image"
            raise
    return Deployment(
        ref=paths.ref,
        paths=paths,
        repo=repo,
        settings=module_keys,
        wrapper=wrapper_keys.terraform,
        protect=wrapper_keys.protect,
        max_idle_s=duration_s(wrapper_keys.max_idle),
        extra_python_packages=tuple(wrapper_keys.extra_python_packages),
        extra_system_packages=tuple(wrapper_keys.extra_system_packages),
        image=image,
        variables=variables,
        input_files=[p for p in paths.layers if p.is_file()],
        _documents=documents,
    )


def duration_s(text: str | None) -> int | None:
    """``2h`` -> 7200 (s, m, h, d); None stays None."""
    if text is None:
        return None
    return int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]


# Debian policy: lower case letters, digits, + - and ., at least two long, starting alphanumeric.
_DEBIAN_NAME = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")


def _check_extras(keys: WrapperKeys, documents: list[yamlio.YamlDocument]) -> None:
    """Each extra package as pip or apt would read it, else one line at its own line of the YAML."""
    if not keys.extra_python_packages and not keys.extra_system_packages:
        return
    from packaging.requirements import InvalidRequirement, Requirement  # only when there are any

    for index, text in enumerate(keys.extra_python_packages):
        where = _where(documents, ("extra_python_packages", index))
        try:
            requirement = Requirement(text)
        except InvalidRequirement as error:
            raise ConfigError(
                f"'{text}' is not a pip requirement ({str(error).splitlines()[0]})",
                file=where,
                key="extra_python_packages",
                fix="write NAME, NAME==VERSION or NAME>=VERSION, e.g. toolz==1.0.0",
            ) from None
        if requirement.url:
            raise ConfigError(
                f"'{text}' names a URL: the nodes install from the package index's wheels only",
                file=where,
                key="extra_python_packages",
                fix="name a package and version on PyPI instead",
            )
    for index, name in enumerate(keys.extra_system_packages):
        if not _DEBIAN_NAME.match(name):
            raise ConfigError(
                f"'{name}' is not a Debian package name",
                file=_where(documents, ("extra_system_packages", index)),
                key="extra_system_packages",
                fix="lower-case letters, digits, '+', '-' and '.', e.g. libcurl4 (no versions, no spaces)",
            )


# --- helpers ------------------------------------------------------------------------------------------


def _display(repo: Repository, path: Path) -> str:
    return display(path, repo.root)


def _layers(repo: Repository, layers: list[Path]) -> tuple[list[yamlio.YamlDocument], dict[str, Any]]:
    """The YAML layers that exist, and their deep merge (nearest wins)."""
    documents = [yamlio.load(p, display=_display(repo, p)) for p in layers if p.is_file()]
    return documents, _merge(documents)


def _validated(model: Any, data: dict[str, Any], documents: list[yamlio.YamlDocument]) -> Any:
    """``model`` validated from ``data``; the first problem as one ConfigError naming file:line:col."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise _explain(error, documents, model) from None


def _merge(documents: list[yamlio.YamlDocument]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for document in documents:
        merged = yamlio.merge(merged, document.data)
    return merged


def _has(node: Any, part: str | int) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and part < len(node)


def _where(documents: list[yamlio.YamlDocument], key_path: tuple) -> str:
    """The nearest layer that writes key_path (or its closest parent), as file:line:column."""
    for document in reversed(documents):
        node: Any = document.data
        found = True
        for part in key_path:
            if (isinstance(node, dict) and part in node) or (
                isinstance(node, list) and isinstance(part, int) and part < len(node)
            ):
                node = node[part]
            else:
                found = False
                break
        if found:
            return document.where(key_path)
    for document in reversed(documents):
        if key_path and key_path[0] in document.data:
            return document.where(key_path)
    return str(documents[-1].path) if documents else ""


def _reject_unknown_keys(
    keys: dict[str, Any],
    variables: dict[str, Variable],
    documents: list[yamlio.YamlDocument],
    repo: Repository,
    paths: DeploymentPaths,
) -> None:
    settable = sorted(set(variables) - set(INJECTED_VARIABLES))
    for key in keys:
        if key in INJECTED_VARIABLES and key in variables:
            raise ConfigError(
                f"'{key}' is set by the wrapper, not in YAML",
                file=_where(documents, (key,)),
                fix="remove the key",
            )
        if key in IMAGE_FACTS:
            raise ConfigError(
                f"'{key}' is no longer a deployment key: it is a fact of the image, {IMAGE_FACTS[key]}",
                file=_where(documents, (key,)),
                fix="remove the key (a deployment cannot change what its image has baked in)",
            )
        if key not in variables:
            raise ConfigError(
                f"unknown key '{key}': {_display(repo, paths.root_module)}/ declares no such variable",
                file=_where(documents, (key,)),
                fix=_did_you_mean(key, [*settable, *WRAPPER_KEYS]),
            )


def _did_you_mean(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known keys: {', '.join(sorted(allowed))}"


_EXPECTED = {
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _allowed_at(model: Any, loc: tuple) -> list[str]:
    """The field names allowed where an unknown key was found (for did-you-mean)."""
    current = model
    for part in loc[:-1]:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        current = _model_in(annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _explain(error: ValidationError, documents: list[yamlio.YamlDocument], model: Any) -> ConfigError:
    """The first pydantic error as one line: file:line:col, key path, what was expected, the fix."""
    detail = error.errors()[0]
    loc = tuple(p for p in detail["loc"] if not (isinstance(p, str) and ("[" in p or p in ("function-after",))))
    key = ".".join(str(p) for p in loc) or None
    where = _where(documents, loc)
    kind = detail["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_at(model, loc)
        return ConfigError(
            f"unknown key '{loc[-1]}'",
            file=where,
            key=".".join(str(p) for p in loc[:-1]) or None,
            fix=_did_you_mean(str(loc[-1]), allowed) if allowed else "remove it",
        )
    if kind == "missing":
        return ConfigError("required key is missing", file=where, key=key, fix="add it (see the example files)")
    shown = detail.get("input")
    if shown is None and "input" in detail and kind != "missing":
        return ConfigError("null is not allowed here", file=where, key=key, fix="give it a value, or remove the key")
    expected = _EXPECTED.get(kind)
    got = f", got {json.dumps(shown) if not isinstance(shown, dict | list) else type(shown).__name__}"
    if expected:
        return ConfigError(f"expected {expected}{got}", file=where, key=key, fix="change the value's type")
    message = detail["msg"]
    message = message[0].lower() + message[1:] if message else "invalid value"
    message = message.replace("Value error, ", "").replace("value error, ", "")
    return ConfigError(f"{message}{got}", file=where, key=key)
