"""Session-wide fixtures shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fixtures.openstack import Cloud, start_cloud


@pytest.fixture(scope="session")
def openstack_cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Debian's Keystone and Glance on 127.0.0.1 (see tests/fixtures/openstack/README.md); stopped at the end."""
    cloud = start_cloud(tmp_path_factory.mktemp("openstack"))
    try:
        yield cloud
    finally:
        cloud.stop()


@pytest.fixture(scope="session")
def openstack_compute_cloud(openstack_cloud: Cloud) -> Cloud:
    """The same cloud plus Nova API and Neutron server, seeded as admin with flavors, networks and quotas.

    See tests/fixtures/openstack/nova.py and neutron.py; stopped with openstack_cloud.
    """
    from fixtures.openstack import neutron, nova

    openstack_cloud.add_services([nova.Nova(), neutron.Neutron()])
    nova.seed(openstack_cloud)
    neutron.seed(openstack_cloud)
    return openstack_cloud
