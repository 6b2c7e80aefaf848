"""cloud.connect against the real Keystone of the openstack_cloud fixture: each credential failure is one line."""

from __future__ import annotations

import pytest

from hgi_spark.cloud import connection as cloud
from hgi_spark.core.errors import CloudError, CredentialsError, NotFoundError


def test_connects_as_the_user_of_the_environment(openstack_cloud):
    connection = cloud.connect(openstack_cloud.env("alice"))
    assert cloud.project_id(connection) == openstack_cloud.project_id("hgi")


def test_never_reads_the_process_environment(openstack_cloud, monkeypatch):
    for key, value in openstack_cloud.env("bob").items():
        monkeypatch.setenv(key, value)
    connection = cloud.connect(openstack_cloud.env("alice"))
    assert cloud.project_id(connection) == openstack_cloud.project_id("hgi")


def test_wrong_password(openstack_cloud):
    env = dict(openstack_cloud.env("alice"), OS_PASSWORD="not-it")
    with pytest.raises(CredentialsError, match="rejected user alice: wrong user name or password") as error:
        cloud.connect(env)
    assert "\n" not in error.value.message


def test_unknown_project(openstack_cloud):
    env = dict(openstack_cloud.env("alice"), OS_PROJECT_NAME="no-such-project")
    with pytest.raises(CredentialsError, match="project no-such-project does not exist or alice has no role"):
        cloud.connect(env)


def test_project_of_someone_else(openstack_cloud):
    env = dict(openstack_cloud.env("alice"), OS_PROJECT_NAME="hgi-dev")
    with pytest.raises(CredentialsError, match="project hgi-dev does not exist or alice has no role"):
        cloud.connect(env)


def test_revoked_token(openstack_cloud):
    """A token Keystone no longer accepts (revoked here; an expired one answers the same)."""
    token = openstack_cloud.connect("alice").session.get_token()
    openstack_cloud.admin_session().delete(
        f"{openstack_cloud.auth_url}/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=True
    )
    env = {
        "OS_AUTH_URL": openstack_cloud.auth_url,
        "OS_AUTH_TYPE": "v3token",
        "OS_TOKEN": token,
        "OS_PROJECT_NAME": "hgi",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    with pytest.raises(CredentialsError, match="rejected the token"):
        cloud.connect(env)


def test_missing_variables_fail_before_any_request():
    with pytest.raises(CredentialsError, match="OS_PASSWORD not set"):
        cloud.connect({"OS_AUTH_URL": "http://127.0.0.1:9/v3", "OS_USERNAME": "u", "OS_PROJECT_NAME": "p"})


def test_keystone_unreachable():
    env = {
        "OS_AUTH_URL": "http://127.0.0.1:9/v3",
        "OS_USERNAME": "u",
        "OS_PASSWORD": "p",
        "OS_PROJECT_NAME": "p",
        "OS_USER_DOMAIN_NAME": "Default",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    with pytest.raises(CloudError, match=r"cannot reach Keystone at http://127.0.0.1:9/v3"):
        cloud.connect(env)


def test_unknown_cloud_in_clouds_yaml(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text("clouds:\n  other:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n")
    with pytest.raises(CredentialsError, match="configuration rejected"):
        cloud.connect({"OS_CLOUD": "mine", "OS_CLIENT_CONFIG_FILE": str(clouds)})


def test_clouds_yaml_entry(openstack_cloud, tmp_path):
    alice = openstack_cloud.users["alice"]
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  test:\n    region_name: RegionOne\n    auth:\n"
        f"      auth_url: {alice.auth_url}\n      username: alice\n      password: {alice.password}\n"
        "      project_name: hgi\n      user_domain_name: Default\n      project_domain_name: Default\n"
    )
    connection = cloud.connect({"OS_CLOUD": "test", "OS_CLIENT_CONFIG_FILE": str(clouds)})
    assert cloud.project_id(connection) == openstack_cloud.project_id("hgi")


@pytest.mark.slow
def test_network_id_from_its_name(openstack_compute_cloud):
    """packer's `networks` wants IDs; image.yml gives a name (needs the Neutron of the compute fixture)."""
    from fixtures.openstack import neutron

    connection = cloud.connect(openstack_compute_cloud.env("alice"))
    network = openstack_compute_cloud.connect("admin").network.find_network(neutron.PROJECT_NETWORK)
    assert cloud.network_id(connection, neutron.PROJECT_NETWORK) == network.id
    with pytest.raises(NotFoundError, match="network no-such-net not found"):
        cloud.network_id(connection, "no-such-net")
