"""What the ``image`` tasks do: build (skip when present), share, accept, status.

Each operation works out the state read-only first (what exists, who owns it, which projects the
names stand for) and changes nothing until every input is known to be good. A project *name* is
never handed to Glance as a member: Glance would store it as a member ID nobody can accept.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hgi_spark.cloud import connection as cloud
from hgi_spark.cloud import glance
from hgi_spark.core.config import Image, load_image
from hgi_spark.core.errors import CloudError, NotFoundError, RefusedError, UsageError
from hgi_spark.core.files import display
from hgi_spark.images import packer, provisioning

Log = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _definition(image: Image) -> str:
    return display(image.paths.definition, image.paths.repo.root)


def _defaults_file(image: Image) -> str:
    return f"images/{image.ref.name}/defaults.yml"


# --- build ---------------------------------------------------------------------------------------


TARGETS = ("openstack", "qemu")


@dataclass(frozen=True)
class BuildResult:
    image: glance.ImageInfo
    built: bool  # False: skipped, an active image was there already
    replaced: tuple[str, ...] = ()  # IDs of the images --force replaced
    members_carried: tuple[str, ...] = ()

    def line(self) -> str:
        return f"{self.image.name} {self.image.id} {'built' if self.built else 'already present'}"


def build_named(name: str | None, *, target: str = "openstack", force: bool = False) -> Any:
    """The ``build`` task: load the definition, build it for ``target`` (Glance, or the local qemu cache)."""
    if target not in TARGETS:
        raise UsageError(f"unknown target '{target}'", fix=f"use --target {' or '.join(TARGETS)}")
    image = load_image(name)
    if target == "qemu":
        from hgi_spark.images import qemu

        return qemu.build(image, force=force)
    from hgi_spark.cloud import credentials

    return build(image, credentials.openstack_environment(repo=image.paths.repo), force=force)


def build(image: Image, env: Mapping[str, str], *, force: bool = False, log: Log = _stderr) -> BuildResult:
    """Build ``image`` with packer unless the project already has it active; ``force`` replaces it after success."""
    tool = packer.find()  # a missing packer fails before anything talks to the cloud
    connection = cloud.connect(env)
    name = image.ref.glance_name
    owned = glance.owned_images(connection, name)
    existing = [i for i in owned if i.status == "active"]
    for leftover in (i for i in owned if i.status != "active"):
        log(f"note: {name} {leftover.id} is {leftover.status} (a failed upload?): left as it is, not counted")
    if existing and not force:
        log(
            f"{name} is already in Glance ({existing[0].id}, {existing[0].created_at}): not building (--force rebuilds)"
        )
        return BuildResult(existing[0], built=False)
    build_name = f"{name}-build-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}" if existing else name
    networks = [cloud.network_id(connection, image.build.network)] if image.build.network else []
    commit = provisioning.repository_commit(image.paths.repo.root)
    packer_env = packer.environment(env)
    with tempfile.TemporaryDirectory(prefix="hgi-packer-") as folder:
        install_env = provisioning.write_install_env(image, Path(folder) / "install.env", commit=commit)
        values = packer.var_values(
            image,
            glance_name=build_name,
            git_commit=commit,
            install_env_file=install_env,
            networks=networks,
            cloud=env.get("OS_CLOUD", ""),
        )
        var_file = packer.write_var_file(values, Path(folder) / f"{image.ref.name}.pkrvars.json")
        template = image.paths.template
        if not template.is_file():
            raise NotFoundError(f"no packer template {template.name}", file=template.parent)
        packer.init(tool, template, packer_env)
        packer.validate(tool, template, var_file, packer_env, only=packer.OPENSTACK_SOURCE)
        log(f"building {build_name} with packer {tool.version_text} (git commit {commit})")
        packer.build(tool, template, var_file, packer_env, only=packer.OPENSTACK_SOURCE)
    built = [i for i in glance.owned_images(connection, build_name) if i.status == "active"]
    if not built:
        raise CloudError(
            f"packer finished but the project has no active image named {build_name}",
            fix=f"look at `openstack image list --name {build_name}`",
        )
    new = built[0]
    if not existing:
        log(f"built {name} ({new.id})")
        return BuildResult(new, built=True)
    return _replace(connection, new, existing, name, log)


def _replace(
    connection: Any, new: glance.ImageInfo, old: Sequence[glance.ImageInfo], name: str, log: Log
) -> BuildResult:
    """Move the members of the old image(s) to the new one, delete them, give the new one the real name."""
    carried: list[str] = []
    for image in old:
        for member in glance.members(connection, image.id):
            glance.add_member(connection, new, member.project_id)
            carried.append(member.project_id)
    for image in old:
        glance.delete(connection, image)
        log(f"deleted the previous {name} ({image.id})")
    renamed = glance.update(connection, new, name=name, hgi_image_name=name)
    if carried:
        log(f"shared the new image with the same projects again; each must accept it: {', '.join(carried)}")
    log(f"built {name} ({renamed.id}), replacing {len(old)} image(s)")
    return BuildResult(renamed, built=True, replaced=tuple(i.id for i in old), members_carried=tuple(carried))


# --- share ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shared:
    project: str  # as the user wrote it
    project_id: str
    status: str  # the member's status: pending, accepted, rejected
    added: bool  # False: it was a member already


@dataclass(frozen=True)
class ShareResult:
    image: glance.ImageInfo
    members: tuple[Shared, ...]
    visibility_changed: bool = False


def resolve_project(connection: Any, image: Image, project: str) -> str:
    """A project's ID: an ID as given, else Keystone (when the policy lets us), else image.yml's ``projects``."""
    if glance.looks_like_project_id(project):
        return project
    found = glance.find_project(connection, project)  # NotFoundError when Keystone says it does not exist
    if found:
        return found
    if project in image.projects:
        return image.projects[project]
    raise NotFoundError(
        f"cannot resolve project {project} to an ID: Keystone does not let this user look projects up",
        fix=f"give its ID in --with (`openstack project show {project} -f value -c id` run in that project, "
        f"or Horizon > Identity > Projects), or add `projects: {{{project}: ID}}` to {_defaults_file(image)}",
    )


def _owned_image(connection: Any, env: Mapping[str, str], image: Image) -> glance.ImageInfo:
    """This project's image called <name>-<version> (the newest active one), or why there is none."""
    name = image.ref.glance_name
    owned = glance.owned_images(connection, name)
    active = [i for i in owned if i.status == "active"]
    if active:
        return active[0]
    here = cloud.project_name(connection, env)
    if owned:
        raise NotFoundError(
            f"image {name} in project {here} is {owned[0].status}, not active",
            fix=f"rebuild it: {image.ref.command('build --force')}",
        )
    others = [i for i in glance.visible_images(connection, name) if i.owner != cloud.project_id(connection)]
    if others:
        raise RefusedError(
            f"image {name} belongs to project {others[0].owner}, not to {here}: only its owner can share it",
            fix="run share with the owning project's credentials",
        )
    raise NotFoundError(f"no image {name} in project {here}", fix=f"build it first: {image.ref.command('build')}")


def share(image: Image, env: Mapping[str, str], projects: Sequence[str], *, log: Log = _stderr) -> ShareResult:
    """Make the image ``shared`` if needed and add each project as a member (idempotent)."""
    connection = cloud.connect(env)
    found = _owned_image(connection, env, image)
    me = cloud.project_id(connection)
    targets = {project: resolve_project(connection, image, project) for project in projects}  # all, first
    if found.visibility in ("public", "community"):
        log(f"{found.name} is {found.visibility}: every project sees it already; no members needed")
        return ShareResult(found, ())
    changed = False
    if found.visibility == "private":
        found = glance.set_visibility(connection, found, "shared")
        changed = True
        log(f"{found.name}: visibility private -> shared (a private image refuses members)")
    shared: list[Shared] = []
    for project, project_id in targets.items():
        if project_id == me:
            log(f"{project} owns {found.name}: not adding it as a member")
            continue
        before = glance.get_member(connection, found.id, project_id)
        member = before or glance.add_member(connection, found, project_id)
        shared.append(Shared(project, project_id, member.status, added=before is None))
        verb = "shared with" if before is None else "already shared with"
        log(f"{found.name} {verb} {project} ({project_id}): {member.status}")
    return ShareResult(found, tuple(shared), visibility_changed=changed)


def share_named(name: str | None, projects: Sequence[str]) -> list[str]:
    """The ``share`` task: one line per member (image, project, its ID, member status)."""
    from hgi_spark.cloud import credentials

    image = load_image(name)
    result = share(image, credentials.openstack_environment(repo=image.paths.repo), projects)
    return [f"{result.image.name} {m.project} {m.project_id} {m.status}" for m in result.members]


# --- accept --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Accepted:
    image: glance.ImageInfo
    previous_status: str


def accept(image: Image, env: Mapping[str, str], *, log: Log = _stderr) -> list[Accepted]:
    """With the receiving project's credentials: accept every image of that name shared with it."""
    connection = cloud.connect(env)
    name = image.ref.glance_name
    here = cloud.project_name(connection, env)
    offers = glance.shared_with_me(connection, name)
    if not offers:
        if glance.owned_images(connection, name):
            raise RefusedError(f"image {name} belongs to project {here} itself: there is nothing to accept")
        raise NotFoundError(
            f"no image {name} is shared with project {here}",
            fix=f"ask the owning project to run: {image.ref.command(f'share --with {here}')}",
        )
    me = cloud.project_id(connection)
    done: list[Accepted] = []
    for info, status in offers:
        if status != "accepted":
            glance.set_member_status(connection, info, me, "accepted")
            log(f"accepted {name} ({info.id}) from project {info.owner} (was {status})")
        else:
            log(f"{name} ({info.id}) from project {info.owner} was accepted already")
        done.append(Accepted(info, status))
    return done


def accept_named(name: str | None) -> list[str]:
    """The ``accept`` task: one line per image accepted."""
    from hgi_spark.cloud import credentials

    image = load_image(name)
    return [
        f"{a.image.name} {a.image.id} accepted"
        for a in accept(image, credentials.openstack_environment(repo=image.paths.repo))
    ]


# --- status --------------------------------------------------------------------------------------


def status(image: Image, env: Mapping[str, str]) -> dict[str, Any]:
    """Read-only: this project's image(s) of that name with properties and members, and those shared with it."""
    connection = cloud.connect(env)
    name = image.ref.glance_name
    me = cloud.project_id(connection)
    expected = {f"hgi_{key}_version": str(value) for key, value in image.software.model_dump().items()}
    owned = []
    for info in glance.owned_images(connection, name):
        found_members = glance.members(connection, info.id)
        names = glance.project_names(connection, [m.project_id for m in found_members], image.projects)
        owned.append(
            {
                **info.as_dict(),
                "differs_from_definition": {
                    key: {"definition": value, "image": info.properties.get(key)}
                    for key, value in expected.items()
                    if info.properties.get(key) != value
                },
                "members": [
                    {"project_id": m.project_id, "project": names.get(m.project_id, ""), "status": m.status}
                    for m in found_members
                ],
            }
        )
    shared = [{**info.as_dict(), "member_status": st} for info, st in glance.shared_with_me(connection, name)]
    return {
        "image": str(image.ref),
        "glance_name": name,
        "definition": _definition(image),
        "project": {"id": me, "name": cloud.project_name(connection, env)},
        "software": {k: str(v) for k, v in image.software.model_dump().items()},
        "owned": owned,
        "shared_with_project": shared,
    }


def format_status(report: Mapping[str, Any], *, as_json: bool = False) -> str:
    """The status as text for people, or as JSON for scripts."""
    if as_json:
        return json.dumps(report, indent=2, sort_keys=True)
    lines = [f"image {report['image']} ({report['definition']}) in Glance as {report['glance_name']}"]
    local = report.get("local")
    if local is not None:
        lines.append(
            f"local (qemu): {local.get('path') if local.get('present') else 'not built'} ({local.get('detail', '')})"
        )
    if "glance" in report:
        lines.append(f"glance: {report['glance']}")
        lines.append("versions in the definition: " + ", ".join(f"{k} {v}" for k, v in report["software"].items()))
        return "\n".join(lines)
    project = report["project"]
    lines.append(f"project: {project['name']} ({project['id']})")
    if not report["owned"] and not report["shared_with_project"]:
        lines.append("not in Glance for this project: neither built here nor shared with it")
    for info in report["owned"]:
        lines.append(
            f"here: {info['id']} {info['status']}, visibility {info['visibility']}, created {info['created_at']}"
        )
        lines.extend(f"  {key}: {value}" for key, value in sorted(info["properties"].items()))
        for key, values in sorted(info["differs_from_definition"].items()):
            lines.append(f"  ! {key} is {values['image']} but the definition says {values['definition']}")
        if info["members"]:
            lines.append("  members:")
            for member in info["members"]:
                label = f"{member['project']} ({member['project_id']})" if member["project"] else member["project_id"]
                lines.append(f"    {label}: {member['status']}")
        else:
            lines.append("  members: none (share --with PROJECT)")
    for info in report["shared_with_project"]:
        lines.append(
            f"shared with this project: {info['id']} {info['status']} from project {info['owner']}, "
            f"{info['member_status']}" + (" (accept to use it)" if info["member_status"] == "pending" else "")
        )
        lines.extend(f"  {key}: {value}" for key, value in sorted(info["properties"].items()))
    lines.append("versions in the definition: " + ", ".join(f"{k} {v}" for k, v in report["software"].items()))
    return "\n".join(lines)


def status_named(name: str | None, *, as_json: bool = False) -> str:
    """The ``status`` task: the local qemu image cache always, Glance when credentials are at hand."""
    from hgi_spark.cloud import credentials
    from hgi_spark.images import qemu

    image = load_image(name)
    if credentials.given(repo=image.paths.repo):
        report = status(image, credentials.openstack_environment(repo=image.paths.repo))
    else:
        report = {
            "image": str(image.ref),
            "glance_name": image.ref.glance_name,
            "definition": _definition(image),
            "glance": "not checked: no OpenStack credentials (OS_CLOUD, OS_* or openrc.sh)",
            "software": {k: str(v) for k, v in image.software.model_dump().items()},
        }
    report["local"] = qemu.local_status(image)
    return format_status(report, as_json=as_json)
