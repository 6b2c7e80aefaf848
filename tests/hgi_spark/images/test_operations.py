"""images.py against the real Keystone and Glance of the openstack_cloud fixture.

alice (project hgi) owns and shares images; bob (project hgi-dev) receives them. Each test uses
its own image version, so tests share the session's cloud without seeing each other's images.
`packer build` is the recording FAKE tests/fakes/packer (a real build needs Nova): it leaves an
active image in Glance as packer would; `packer validate` inside it is the real packer.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from pathlib import Path

import pytest

from hgi_spark.cloud import glance
from hgi_spark.core import config
from hgi_spark.core.errors import CredentialsError, NotFoundError, RefusedError, ToolError
from hgi_spark.core.layout import Repository
from hgi_spark.images import operations as images

ROOT = Path(__file__).resolve().parents[3]
FAKES = ROOT / "tests" / "fakes"
_versions = itertools.count(1)


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    """A repository tree with the real packer/, terraform/ and deployments/ and a copy of images/."""
    root = tmp_path / "repo"
    root.mkdir()
    for name in ("packer", "terraform", "deployments"):
        (root / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "images", root / "images")
    return Repository(root)


@pytest.fixture
def image(repo: Repository) -> config.Image:
    """hail-base at a version of its own (1.0.0's definition), e.g. hail-base/9.0.3."""
    version = f"9.0.{next(_versions)}"
    shutil.copytree(repo.images_dir / "hail-base" / "1.0.0", repo.images_dir / "hail-base" / version)
    return config.load_image(f"hail-base/{version}", repo)


@pytest.fixture
def fake_packer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tests/fakes/packer first on PATH; returns the JSON-lines log of its calls."""
    log = tmp_path / "packer-calls.jsonl"
    log.touch()
    monkeypatch.setenv("PATH", f"{FAKES}:{Path(sys.executable).parent}:/usr/bin:/bin")
    monkeypatch.delenv("PACKER", raising=False)
    monkeypatch.setenv("FAKE_PACKER_LOG", str(log))
    monkeypatch.setenv("FAKE_PACKER_PYTHON", sys.executable)
    return log


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]


def quiet(_line: str) -> None:
    """Messages are not what these tests check."""


def built(cloud, image: config.Image, user: str = "alice") -> glance.ImageInfo:
    """The image as a packer build leaves it, created in Glance directly (for share/accept tests)."""
    conn = cloud.connect(user)
    created = conn.image.create_image(
        name=image.ref.glance_name,
        disk_format="qcow2",
        container_format="bare",
        data=b"fake disk",
        hgi_hail_version="0.2.139",
    )
    return glance.get_image(conn, created.id)


# --- build ---------------------------------------------------------------------------------------


def test_build_then_skip_when_present(openstack_cloud, image, fake_packer):
    env = openstack_cloud.env("alice")
    first = images.build(image, env, log=quiet)
    assert first.built
    argvs = calls(fake_packer)
    commands = [a[0] for a in argvs]
    assert commands == ["version", "validate", "build"]  # no init on 1.6.6; validate before build
    build_call = json.loads(fake_packer.read_text().splitlines()[-1])
    assert build_call["env"]["OS_USERNAME"] == "alice"
    assert first.image.name == image.ref.glance_name
    assert first.image.status == "active"
    assert first.image.properties["hgi_hail_version"] == "0.2.139"
    assert first.image.properties["hgi_image_version"] == image.ref.version

    second = images.build(image, env, log=quiet)
    assert not second.built
    assert second.image.id == first.image.id
    assert [a[0] for a in calls(fake_packer)] == [*commands, "version"]  # no validate, no build


def test_force_replaces_only_after_success_and_keeps_members(openstack_cloud, image, fake_packer, monkeypatch):
    env = openstack_cloud.env("alice")
    old = images.build(image, env, log=quiet).image
    bob_project = openstack_cloud.project_id("hgi-dev")
    images.share(image, env, [bob_project], log=quiet)

    monkeypatch.setenv("FAKE_PACKER_FAIL_BUILD", "1")
    with pytest.raises(ToolError, match="packer build failed"):
        images.build(image, env, force=True, log=quiet)
    conn = openstack_cloud.connect("alice")
    assert [i.id for i in glance.owned_images(conn, image.ref.glance_name)] == [old.id]

    monkeypatch.setenv("FAKE_PACKER_FAIL_BUILD", "0")
    result = images.build(image, env, force=True, log=quiet)
    assert result.built and result.replaced == (old.id,)
    build_argv = calls(fake_packer)[-1]
    var_file = next(a for a in build_argv if a.startswith("-var-file="))
    assert var_file  # built under a temporary name, then renamed
    owned = glance.owned_images(conn, image.ref.glance_name)
    assert [i.id for i in owned] == [result.image.id] != [old.id]
    assert owned[0].properties["hgi_image_name"] == image.ref.glance_name
    assert [m.project_id for m in glance.members(conn, result.image.id)] == [bob_project]
    assert result.members_carried == (bob_project,)


def test_build_without_packer_says_how_to_install(openstack_cloud, image, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("PACKER", raising=False)
    with pytest.raises(ToolError, match="apt-get install packer"):
        images.build(image, openstack_cloud.env("alice"), log=quiet)


def test_build_with_wrong_password_never_runs_packer(openstack_cloud, image, fake_packer):
    env = dict(openstack_cloud.env("alice"), OS_PASSWORD="wrong")
    with pytest.raises(CredentialsError, match="wrong user name or password"):
        images.build(image, env, log=quiet)
    assert [a[0] for a in calls(fake_packer)] == ["version"]


# --- share and accept ----------------------------------------------------------------------------


def test_share_accept_then_visible_from_the_other_project(openstack_cloud, image):
    own = built(openstack_cloud, image)
    bob = openstack_cloud.connect("bob")
    assert own.id not in [i.id for i in glance.visible_images(bob, own.name)]

    bob_project = openstack_cloud.project_id("hgi-dev")
    result = images.share(image, openstack_cloud.env("alice"), [bob_project], log=quiet)
    assert [(m.project_id, m.status, m.added) for m in result.members] == [(bob_project, "pending", True)]
    assert own.id not in [i.id for i in glance.visible_images(bob, own.name)]  # pending: not listed yet

    accepted = images.accept(image, openstack_cloud.env("bob"), log=quiet)
    assert [(a.image.id, a.previous_status) for a in accepted] == [(own.id, "pending")]
    assert own.id in [i.id for i in glance.visible_images(bob, own.name)]

    again = images.accept(image, openstack_cloud.env("bob"), log=quiet)  # already accepted: fine
    assert [a.previous_status for a in again] == ["accepted"]


def test_share_twice_is_idempotent(openstack_cloud, image):
    own = built(openstack_cloud, image)
    bob_project = openstack_cloud.project_id("hgi-dev")
    env = openstack_cloud.env("alice")
    images.share(image, env, [bob_project], log=quiet)
    second = images.share(image, env, [bob_project, bob_project], log=quiet)
    assert [(m.project_id, m.added) for m in second.members] == [(bob_project, False)]
    conn = openstack_cloud.connect("alice")
    assert [m.project_id for m in glance.members(conn, own.id)] == [bob_project]


def test_share_by_name_is_refused_without_keystone_or_map_and_never_adds_the_name(openstack_cloud, image):
    own = built(openstack_cloud, image)
    with pytest.raises(NotFoundError, match=r"cannot resolve project hgi-dev to an ID.*projects: \{hgi-dev: ID\}"):
        images.share(image, openstack_cloud.env("alice"), ["hgi-dev"], log=quiet)
    conn = openstack_cloud.connect("alice")
    assert glance.members(conn, own.id) == []


def test_share_by_name_through_the_projects_map(openstack_cloud, repo):
    version = f"9.0.{next(_versions)}"
    folder = repo.images_dir / "hail-base" / version
    shutil.copytree(repo.images_dir / "hail-base" / "1.0.0", folder)
    bob_project = openstack_cloud.project_id("hgi-dev")
    with (folder / "image.yml").open("a") as handle:
        handle.write(f"projects:\n  hgi-dev: {bob_project}\n")
    image = config.load_image(f"hail-base/{version}", repo)
    built(openstack_cloud, image)
    result = images.share(image, openstack_cloud.env("alice"), ["hgi-dev"], log=quiet)
    assert [(m.project, m.project_id) for m in result.members] == [("hgi-dev", bob_project)]


def test_share_by_name_through_keystone_when_permitted(openstack_cloud, image):
    built(openstack_cloud, image, user="admin")
    result = images.share(image, openstack_cloud.env("admin"), ["hgi-dev"], log=quiet)
    assert [m.project_id for m in result.members] == [openstack_cloud.project_id("hgi-dev")]


def test_share_with_unknown_project(openstack_cloud, image):
    built(openstack_cloud, image, user="admin")
    with pytest.raises(NotFoundError, match="project no-such-team not found in Keystone"):
        images.share(image, openstack_cloud.env("admin"), ["no-such-team"], log=quiet)


def test_share_makes_a_private_image_shared(openstack_cloud, image):
    own = built(openstack_cloud, image)
    conn = openstack_cloud.connect("alice")
    glance.set_visibility(conn, own, "private")
    result = images.share(image, openstack_cloud.env("alice"), [openstack_cloud.project_id("hgi-dev")], log=quiet)
    assert result.visibility_changed
    assert glance.get_image(conn, own.id).visibility == "shared"


def test_share_of_an_image_that_does_not_exist(openstack_cloud, image):
    with pytest.raises(NotFoundError, match=rf"no image {image.ref.glance_name} in project hgi \(build it first"):
        images.share(image, openstack_cloud.env("alice"), ["0" * 32], log=quiet)


def test_share_by_someone_who_is_not_the_owner(openstack_cloud, image):
    built(openstack_cloud, image)
    images.share(image, openstack_cloud.env("alice"), [openstack_cloud.project_id("hgi-dev")], log=quiet)
    images.accept(image, openstack_cloud.env("bob"), log=quiet)
    with pytest.raises(RefusedError, match=r"belongs to project .*, not to hgi-dev: only its owner can share it"):
        images.share(image, openstack_cloud.env("bob"), ["0" * 32], log=quiet)


def test_accept_with_nothing_shared(openstack_cloud, image):
    with pytest.raises(NotFoundError, match=rf"no image {image.ref.glance_name} is shared with project hgi-dev"):
        images.accept(image, openstack_cloud.env("bob"), log=quiet)


def test_accept_in_the_owning_project(openstack_cloud, image):
    built(openstack_cloud, image)
    with pytest.raises(RefusedError, match="belongs to project hgi itself"):
        images.accept(image, openstack_cloud.env("alice"), log=quiet)


def test_wrong_password_and_unknown_project(openstack_cloud, image):
    with pytest.raises(CredentialsError, match="wrong user name or password"):
        images.accept(image, dict(openstack_cloud.env("bob"), OS_PASSWORD="nope"), log=quiet)
    with pytest.raises(CredentialsError, match="project nowhere does not exist"):
        images.status(image, dict(openstack_cloud.env("bob"), OS_PROJECT_NAME="nowhere"))


# --- status --------------------------------------------------------------------------------------


def test_status_shows_properties_members_and_what_is_shared(openstack_cloud, image):
    own = built(openstack_cloud, image)
    bob_project = openstack_cloud.project_id("hgi-dev")
    images.share(image, openstack_cloud.env("alice"), [bob_project], log=quiet)

    report = images.status(image, openstack_cloud.env("alice"))
    (mine,) = report["owned"]
    assert mine["id"] == own.id
    assert mine["properties"]["hgi_hail_version"] == "0.2.139"
    assert mine["members"] == [{"project_id": bob_project, "project": "", "status": "pending"}]
    assert "hgi_pyspark_version" in mine["differs_from_definition"]  # not set on this image
    text = images.format_status(report)
    assert f"{bob_project}: pending" in text and "hgi_hail_version: 0.2.139" in text
    assert json.loads(images.format_status(report, as_json=True)) == report

    theirs = images.status(image, openstack_cloud.env("bob"))
    assert theirs["owned"] == []
    assert [(i["id"], i["member_status"]) for i in theirs["shared_with_project"]] == [(own.id, "pending")]
    assert "(accept to use it)" in images.format_status(theirs)


def test_status_of_an_image_nowhere(openstack_cloud, image):
    report = images.status(image, openstack_cloud.env("alice"))
    assert report["owned"] == [] and report["shared_with_project"] == []
    assert "not in Glance for this project" in images.format_status(report)
