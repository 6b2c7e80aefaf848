"""glance.py against the real Glance and Keystone of the openstack_cloud fixture: the behaviour sharing relies on."""

from __future__ import annotations

import uuid

import pytest

from hgi_spark.cloud import glance
from hgi_spark.core.errors import NotFoundError


@pytest.fixture
def image(openstack_cloud) -> glance.ImageInfo:
    """A small active image owned by alice's project hgi, with a unique name."""
    conn = openstack_cloud.connect("alice")
    created = conn.image.create_image(
        name=f"glance-test-{uuid.uuid4().hex[:8]}",
        disk_format="raw",
        container_format="bare",
        data=b"x",
        hgi_hail_version="0.2.139",
        other_property="not ours",
    )
    return glance.get_image(conn, created.id)


def test_owned_image_and_its_properties(openstack_cloud, image):
    conn = openstack_cloud.connect("alice")
    (found,) = glance.owned_images(conn, image.name)
    assert found.id == image.id and found.status == "active"
    assert found.visibility == "shared"  # Glance's default for a new image
    assert found.properties == {"hgi_hail_version": "0.2.139"}  # only this project's properties
    assert glance.owned_images(openstack_cloud.connect("bob"), image.name) == []


def test_member_is_pending_and_hidden_until_accepted(openstack_cloud, image):
    alice, bob = openstack_cloud.connect("alice"), openstack_cloud.connect("bob")
    bob_project = openstack_cloud.project_id("hgi-dev")
    first = glance.add_member(alice, image, bob_project)
    assert first == glance.Member(bob_project, "pending")
    assert glance.add_member(alice, image, bob_project) == first  # idempotent
    assert glance.members(alice, image.id) == [first]

    assert image.id not in [i.id for i in glance.visible_images(bob, image.name)]
    assert [(i.id, status) for i, status in glance.shared_with_me(bob, image.name)] == [(image.id, "pending")]
    glance.set_member_status(bob, image, bob_project, "accepted")
    assert image.id in [i.id for i in glance.visible_images(bob, image.name)]
    assert [status for _, status in glance.shared_with_me(bob, image.name)] == ["accepted"]
    assert glance.members(bob, image.id) == [glance.Member(bob_project, "accepted")]  # a member sees itself only


def test_accepting_what_is_not_shared(openstack_cloud, image):
    bob = openstack_cloud.connect("bob")
    with pytest.raises(NotFoundError, match="is not shared with project"):
        glance.set_member_status(bob, image, openstack_cloud.project_id("hgi-dev"), "accepted")


def test_project_lookup_is_forbidden_to_members_and_allowed_to_admin(openstack_cloud):
    """Keystone's default policy: a member may not look up another project (why share needs IDs or a map)."""
    assert glance.find_project(openstack_cloud.connect("alice"), "hgi-dev") is None
    admin = openstack_cloud.connect("admin")
    assert glance.find_project(admin, "hgi-dev") == openstack_cloud.project_id("hgi-dev")
    with pytest.raises(NotFoundError, match="project nobody-here not found"):
        glance.find_project(admin, "nobody-here")


def test_project_names_from_keystone_or_the_map(openstack_cloud):
    hgi_dev = openstack_cloud.project_id("hgi-dev")
    assert glance.project_names(openstack_cloud.connect("admin"), [hgi_dev], {}) == {hgi_dev: "hgi-dev"}
    assert glance.project_names(openstack_cloud.connect("alice"), [hgi_dev], {}) == {}
    assert glance.project_names(openstack_cloud.connect("alice"), [hgi_dev], {"dev": hgi_dev}) == {hgi_dev: "dev"}


def test_project_ids_are_recognised():
    assert glance.looks_like_project_id(uuid.uuid4().hex)
    assert not glance.looks_like_project_id("hgi-dev")
