"""Glance and the Keystone look-ups sharing needs, through openstacksdk (no CLI output parsing).

With connection.py and project.py, the only modules importing openstacksdk. Functions take a connection and return
plain data (:class:`ImageInfo`, :class:`Member`), so images.py orchestrates without the SDK.
Known Glance behaviour this relies on: a ``private`` image refuses members (403), a member starts
``pending`` and is hidden from the receiver's default list until accepted, and under Keystone's
default policy a project member may not look up another project (403).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keystoneauth1.exceptions as ksa
import openstack.connection
import openstack.exceptions as sdk

from hgi_spark.cloud.connection import project_id
from hgi_spark.core.errors import CloudError, NotFoundError, RefusedError, first_line

Connection = openstack.connection.Connection

#: Image properties this project sets (versions, commit); shown by status.
PROPERTY_PREFIX = "hgi_"
_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Member:
    project_id: str
    status: str  # pending, accepted, rejected


@dataclass(frozen=True)
class ImageInfo:
    id: str
    name: str
    status: str
    visibility: str
    owner: str
    created_at: str
    properties: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "status": self.status,
            "visibility": self.visibility,
            "owner": self.owner,
            "created_at": self.created_at,
            "properties": dict(self.properties),
        }


def _info(image: Any) -> ImageInfo:
    extra = dict(getattr(image, "properties", None) or {})
    properties = {k: str(v) for k, v in extra.items() if k.startswith(PROPERTY_PREFIX)}
    return ImageInfo(
        id=image.id,
        name=image.name or "",
        status=image.status or "",
        visibility=image.visibility or "",
        owner=image.owner_id or image.owner or "",
        created_at=image.created_at or "",
        properties=properties,
    )


def _call(what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
    """Turn SDK failures into one line; NotFound and Forbidden stay for the caller to interpret."""
    try:
        result = function(*args, **kwargs)
        return list(result) if _is_generator(result) else result
    except (sdk.NotFoundException, sdk.ForbiddenException):
        raise
    except sdk.EndpointNotFound as error:
        raise CloudError(f"{what}: no image service in the catalog ({error})", fix="check OS_REGION_NAME") from None
    except (sdk.SDKException, ksa.ClientException) as error:
        raise CloudError(f"{what}: {first_line(error)}") from None


def _is_generator(value: Any) -> bool:
    return hasattr(value, "__next__")


# --- finding images ------------------------------------------------------------------------------


def owned_images(connection: Connection, name: str) -> list[ImageInfo]:
    """Images called ``name`` owned by the connection's project, any status, newest first."""
    images = _call(f"listing images named {name}", connection.image.images, name=name, owner=project_id(connection))
    return sorted((_info(i) for i in images), key=lambda i: i.created_at, reverse=True)


def visible_images(connection: Connection, name: str) -> list[ImageInfo]:
    """Every image called ``name`` the project can see (its own, accepted ones, public, community)."""
    images = _call(f"listing images named {name}", connection.image.images, name=name)
    return [_info(i) for i in images]


def shared_with_me(connection: Connection, name: str) -> list[tuple[ImageInfo, str]]:
    """Images called ``name`` that other projects share with this one, with this project's member status.

    Pending ones are not in the default list, so ask for visibility=shared and every member status.
    """
    images = _call(
        f"listing images shared as {name}",
        connection.image.images,
        name=name,
        visibility="shared",
        member_status="all",
    )
    mine = project_id(connection)
    found = []
    for image in images:
        info = _info(image)
        if info.owner == mine:
            continue
        member = get_member(connection, info.id, mine)
        if member is not None:  # an admin lists every shared image: keep those shared with us
            found.append((info, member.status))
    return found


def get_image(connection: Connection, image_id: str) -> ImageInfo:
    return _info(_call(f"reading image {image_id}", connection.image.get_image, image_id))


# --- members -------------------------------------------------------------------------------------


def members(connection: Connection, image_id: str) -> list[Member]:
    try:
        found = _call(f"listing members of image {image_id}", connection.image.members, image_id)
    except sdk.ForbiddenException:
        return []  # not the owner, nor a member: nothing to see
    return [Member(m.member_id or m.id, m.status) for m in found]


def get_member(connection: Connection, image_id: str, project: str) -> Member | None:
    try:
        member = _call("reading a member", connection.image.get_member, project, image_id)
    except (sdk.NotFoundException, sdk.ForbiddenException):
        return None
    return Member(member.member_id or member.id, member.status)


def add_member(connection: Connection, image: ImageInfo, project: str) -> Member:
    """Add ``project`` (an ID, never a name) as a member; an existing membership is returned as is."""
    existing = get_member(connection, image.id, project)
    if existing:
        return existing
    try:
        member = _call(f"sharing {image.name}", connection.image.add_member, image.id, member=project)
    except sdk.ForbiddenException:
        raise RefusedError(
            f"Glance refused to add project {project} to image {image.name} (visibility {image.visibility})",
            fix="only the owner of a shared image can add members",
        ) from None
    except sdk.NotFoundException:
        raise NotFoundError(f"image {image.name} ({image.id}) disappeared while sharing it") from None
    return Member(member.member_id or project, member.status)


def set_member_status(connection: Connection, image: ImageInfo, project: str, status: str) -> Member:
    """The receiving project accepts (or rejects) an image shared with it."""
    try:
        member = _call(f"accepting {image.name}", connection.image.update_member, project, image.id, status=status)
    except (sdk.NotFoundException, sdk.ForbiddenException):
        raise NotFoundError(f"image {image.name} ({image.id}) is not shared with project {project}") from None
    return Member(project, member.status)


# --- changing images -----------------------------------------------------------------------------


def set_visibility(connection: Connection, image: ImageInfo, visibility: str) -> ImageInfo:
    try:
        updated = _call(
            f"making {image.name} {visibility}", connection.image.update_image, image.id, visibility=visibility
        )
    except sdk.ForbiddenException:
        raise RefusedError(
            f"Glance refused to make image {image.name} {visibility}", fix="only its owner can change that"
        ) from None
    return _info(updated)


def update(connection: Connection, image: ImageInfo, *, name: str | None = None, **properties: str) -> ImageInfo:
    """Rename an image and/or set properties (what ``build --force`` does to the new image)."""
    attrs: dict[str, Any] = dict(properties)
    if name is not None:
        attrs["name"] = name
    return _info(_call(f"updating image {image.name}", connection.image.update_image, image.id, **attrs))


def delete(connection: Connection, image: ImageInfo) -> None:
    _call(f"deleting image {image.name} ({image.id})", connection.image.delete_image, image.id)


# --- projects ------------------------------------------------------------------------------------


def looks_like_project_id(text: str) -> bool:
    return bool(_PROJECT_ID.match(text))


def find_project(connection: Connection, name: str) -> str | None:
    """A project's ID through Keystone; None when not permitted (403). NotFoundError when it does not exist."""
    try:
        project = connection.identity.find_project(name, ignore_missing=True)
    except sdk.ForbiddenException:
        return None
    except sdk.DuplicateResource:
        raise NotFoundError(
            f"more than one project is called {name}", fix="give the project's ID instead of its name"
        ) from None
    except (sdk.SDKException, ksa.ClientException) as error:
        if getattr(error, "status_code", None) == 403:
            return None
        raise CloudError(f"looking up project {name}: {first_line(error)}") from None
    if project is None:
        raise NotFoundError(f"project {name} not found in Keystone", fix="check the name, or give the project's ID")
    return str(project.id)


def project_names(connection: Connection, ids: Iterable[str], known: Mapping[str, str]) -> dict[str, str]:
    """ID -> name for display: Keystone when permitted, else the configured map, else nothing."""
    by_id = {v: k for k, v in known.items()}
    names: dict[str, str] = {}
    for project in ids:
        if project in by_id:
            names[project] = by_id[project]
            continue
        try:
            names[project] = str(connection.identity.get_project(project).name)
        except (sdk.SDKException, ksa.ClientException):
            continue
    return names
