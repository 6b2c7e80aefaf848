"""The pre-flight: reading a deployment (fast), and against real Keystone, Glance, Nova API and Neutron server.

As admin the fixture created flavors m1.medium/m1.large/m1.xlarge, the external network ``public``,
project hgi's network ``hgi-net`` and hgi's quotas (cores 40, ports 50 ...); here alice (project
hgi) and bob (project hgi-dev) run the checks as a deployment's owner would.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from hgi_spark.cloud import connection
from hgi_spark.cloud.project import Project
from hgi_spark.clusters.openstack import preflight, report, request
from hgi_spark.clusters.openstack.cluster import SKIP_ENV, OpenStackCluster
from hgi_spark.clusters.openstack.report import FAIL, NOT_CHECKED, OK
from hgi_spark.clusters.openstack.request import Request
from hgi_spark.core.errors import CloudError, UsageError
from hgi_spark.core.layout import DeploymentRef


def check(env, request, *, plan=None, steps=None):
    """The pre-flight of ``request`` with the credentials ``env``, as the OpenStack cluster runs it."""
    return preflight.run(
        request, lambda: Project(connection.connect(env)), connection.describe(env), plan=plan, steps=steps
    )


def plan_creating(groups: int, rules: int) -> dict:
    """What `terraform show -json` says of a plan that creates these security groups and rules."""
    changes = [{"type": request.SECURITY_GROUP, "change": {"actions": ["create"]}}] * groups
    changes += [{"type": request.SECURITY_GROUP_RULE, "change": {"actions": ["create"]}}] * rules
    return {"resource_changes": changes}


def new_public_key(folder: Path) -> str:
    key = folder / f"id-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", str(key)], check=True)
    return key.with_suffix(".pub").read_text().strip()


def upload_image(cloud, user: str, name: str, visibility: str = "shared"):
    """A tiny active image owned by ``user``'s project (the bytes do not matter to the checks)."""
    conn = cloud.connect(user)
    return conn.image.create_image(
        name=name, disk_format="raw", container_format="bare", data=b"\0" * 1024, visibility=visibility
    )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def request_for(openstack_compute_cloud, tmp_path):
    """A Request that passes for alice: an image of hers, the fixture's flavors and networks."""

    def make(**changes) -> Request:
        version = f"1.0.{uuid.uuid4().int % 100000}"
        base = Request(
            deployment=f"spark/{unique('t')}",
            master_flavor="m1.large",
            worker_flavor="m1.medium",
            workers=3,
            image=f"hail-base/{version}",
            glance_name=f"hail-base-{version}",
            network="hgi-net",
            create_network=False,
            external_network="public",
            keypair=unique("key"),
            public_key=new_public_key(tmp_path),
            volume_gb=0,
            subnet_name=None,
            source="deployments/spark/t/deployment.yml",
        )
        return dataclasses.replace(base, **changes)

    return make


def rows(report) -> dict[str, preflight.Check]:
    return {c.name: c for c in report.checks}


@pytest.mark.slow
def test_everything_passes(openstack_compute_cloud, request_for):
    request = request_for(volume_gb=50)
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    assert report.ok, report.table()
    found = rows(report)
    assert found["credentials"].result == OK
    assert found["flavor (master)"].detail == "m1.large: 4 vCPUs, 8192 MiB RAM"
    assert found["flavor (worker)"].detail == "m1.medium: 2 vCPUs, 4096 MiB RAM"
    assert report.flavors == {
        "master": {"name": "m1.large", "vcpus": 4, "ram_mb": 8192},
        "worker": {"name": "m1.medium", "vcpus": 2, "ram_mb": 4096},
    }
    assert found["image"].detail == f"{request.glance_name}: active, own"
    assert (found["cores"].needed, found["cores"].available) == ("10", "40")
    assert (found["instances"].needed, found["instances"].available) == ("4", "20")
    assert found["RAM (MiB)"].needed == str(8192 + 3 * 4096)
    assert found["floating IPs"].result == OK
    assert found["security groups"].result == NOT_CHECKED  # counted from the plan, when there is one
    # No Cinder in this cloud: said, not guessed.
    assert found["volumes"].result == NOT_CHECKED
    assert "no block-storage endpoint" in found["volumes"].detail
    assert "FAIL" not in report.table()


@pytest.mark.slow
def test_flavor_missing(openstack_compute_cloud, request_for):
    request = request_for(worker_flavor="m1.huge")
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    worker = rows(report)["flavor (worker)"]
    assert worker.result == FAIL
    assert worker.detail == "no flavor 'm1.huge' visible to this project"
    assert "m1.large, m1.medium, m1.xlarge" in worker.fix
    assert rows(report)["cores"].result == NOT_CHECKED
    assert [c.name for c in report.failures] == ["flavor (worker)"]


@pytest.mark.slow
def test_hundred_workers_exceed_the_cores_quota(openstack_compute_cloud, request_for):
    request = request_for(workers=100)
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    cores = rows(report)["cores"]
    assert cores.result == FAIL
    assert (cores.needed, cores.available) == ("204", "40")
    assert cores.detail.startswith("needs 204, only 40 of 40 left (4 + 100 × 2 vCPUs")
    assert "quota" in cores.fix
    assert {c.name for c in report.failures} == {"instances", "cores", "RAM (MiB)", "ports"}
    assert "cores: needs 204, only 40 of 40 left" in report.summary()


@pytest.mark.slow
def test_image_missing(openstack_compute_cloud, request_for):
    request = request_for()
    report = check(openstack_compute_cloud.env("alice"), request)
    image = rows(report)["image"]
    assert image.result == FAIL
    assert image.detail == f"no image {request.glance_name} visible to this project"
    assert f"bash invoke.sh image {request.image} build" in image.fix
    assert [c.name for c in report.failures] == ["image"]


@pytest.mark.slow
def test_image_shared_but_not_accepted(openstack_compute_cloud, request_for):
    request = request_for(network=None, create_network=True)
    image = upload_image(openstack_compute_cloud, "alice", request.glance_name)
    alice = openstack_compute_cloud.connect("alice")
    bob_project = openstack_compute_cloud.project_id("hgi-dev")
    alice.image.add_member(image, member=bob_project)
    report = check(openstack_compute_cloud.env("bob"), request)
    found = rows(report)["image"]
    assert found.result == FAIL
    assert found.detail == f"{request.glance_name} is shared with this project but pending, not accepted"
    assert found.fix == f"run: bash invoke.sh image {request.image} accept"

    bob = openstack_compute_cloud.connect("bob")
    bob.image.update_member(bob_project, image, status="accepted")
    report = check(openstack_compute_cloud.env("bob"), request)
    assert rows(report)["image"].detail == f"{request.glance_name}: active, shared, accepted"
    assert report.ok, report.table()


@pytest.mark.slow
def test_image_not_active(openstack_compute_cloud, request_for):
    """An image whose upload never finished (Glance: queued) cannot boot anything."""
    request = request_for()
    alice = openstack_compute_cloud.connect("alice")
    alice.image.create_image(name=request.glance_name, disk_format="raw", container_format="bare")
    image = rows(check(openstack_compute_cloud.env("alice"), request))["image"]
    assert (image.result, image.detail) == (FAIL, f"{request.glance_name} exists but is queued, not active")
    assert image.fix.endswith(f"bash invoke.sh image {request.image} build --force")


@pytest.mark.slow
def test_another_projects_user_cannot_see_the_image(openstack_compute_cloud, request_for):
    request = request_for(network=None, create_network=True)
    upload_image(openstack_compute_cloud, "alice", request.glance_name, visibility="private")
    assert rows(check(openstack_compute_cloud.env("alice"), request))["image"].result == OK
    report = check(openstack_compute_cloud.env("bob"), request)
    image = rows(report)["image"]
    assert image.result == FAIL
    assert image.detail == f"no image {request.glance_name} visible to this project"


@pytest.mark.slow
def test_network_missing(openstack_compute_cloud, request_for):
    request = request_for(network="no-such-net", external_network="hgi-net")
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    found = rows(report)
    assert found["network"].result == FAIL
    assert found["network"].detail == "no network 'no-such-net' visible to this project"
    # A project network is no place for floating IPs: the fix names the external ones.
    assert found["external network"].result == FAIL
    assert found["external network"].detail == "'hgi-net' is not external"
    assert "one of: public" in found["external network"].fix


@pytest.mark.slow
def test_network_created_by_the_plan_counts_against_the_quota(openstack_compute_cloud, request_for):
    request = request_for(network=None, create_network=True)
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    found = rows(report)
    assert found["network"].detail == "created by the plan (network.create: true)"
    assert (found["networks"].needed, found["routers"].needed) == ("1", "1")
    assert found["ports"].needed == "5"
    assert report.ok, report.table()


@pytest.mark.slow
def test_an_update_needs_only_what_the_deployment_lacks(openstack_compute_cloud, request_for):
    """Resources tagged with the deployment's name and owner (as the root module tags them) are not new."""
    request = request_for()
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    found = rows(check(openstack_compute_cloud.env("alice"), request, plan=plan_creating(2, 12)))
    assert found["security groups"].needed == "2"
    # Each new group brings Neutron's two default egress rules.
    assert found["security group rules"].needed == str(12 + 2 * 2)
    # An update plan creates only what the deployment lacks: counted from the plan, nothing else.
    found = rows(check(openstack_compute_cloud.env("alice"), request, plan=plan_creating(0, 3)))
    assert (found["security groups"].needed, found["security group rules"].needed) == ("0", "3")
    assert found["security group rules"].result == OK


@pytest.mark.slow
def test_an_update_subtracts_the_servers_the_deployment_has(openstack_compute_cloud, request_for):
    """A server of this deployment, found by the metadata every node carries, is not new usage.

    Without nova-compute the server stays in BUILD (Nova's quota usage then does not count it, as
    a real cloud would): what is asserted is the subtraction from what the plan needs. Deleting it
    needs Placement, which the fixture does not run: it stays, in this session's throwaway database,
    under a deployment name no other test uses.
    """
    request = request_for()
    image = upload_image(openstack_compute_cloud, "alice", request.glance_name)
    alice = openstack_compute_cloud.connect("alice")
    server = alice.compute.create_server(
        name=f"{request.deployment.replace('/', '-')}-worker-001",
        image_id=image.id,
        flavor_id=alice.compute.find_flavor("m1.medium", ignore_missing=False).id,
        networks=[{"uuid": alice.network.find_network("hgi-net", ignore_missing=False).id}],
        metadata={preflight.DEPLOYMENT_METADATA: request.deployment},
    )
    assert server.id
    found = rows(check(openstack_compute_cloud.env("alice"), request))
    assert found["instances"].needed == "3"
    assert found["cores"].needed == str(4 + 3 * 2 - 2)
    assert found["cores"].detail == "4 + 3 × 2 vCPUs, less 2 this deployment already uses"
    assert found["RAM (MiB)"].needed == str(8192 + 3 * 4096 - 4096)


@pytest.fixture
def with_cinder(openstack_compute_cloud):
    """Cinder API in the catalog for one test, then out again (the other tests see a cloud without it)."""
    from fixtures.openstack import cinder

    openstack_compute_cloud.add_service(cinder.Cinder())
    try:
        cinder.seed(openstack_compute_cloud)
        yield openstack_compute_cloud
    finally:
        cinder.remove(openstack_compute_cloud)


@pytest.mark.slow
def test_volume_quota_when_the_cloud_has_cinder(with_cinder, request_for):
    request = request_for(volume_gb=600)
    upload_image(with_cinder, "alice", request.glance_name)
    report = check(with_cinder.env("alice"), request)
    found = rows(report)
    assert (found["volumes"].result, found["volumes"].needed, found["volumes"].available) == (OK, "1", "4")
    gigabytes = found["volume GB"]
    assert (gigabytes.result, gigabytes.needed, gigabytes.available) == (FAIL, "600", "500")
    assert gigabytes.fix.endswith("a smaller tmp_volume_gb, or 0 for none")
    assert found["GB per volume"].available == "unlimited"
    assert [c.name for c in report.failures] == ["volume GB"]


@pytest.mark.slow
def test_key_pair_taken_by_another_key(openstack_compute_cloud, request_for, tmp_path):
    request = request_for()
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    alice = openstack_compute_cloud.connect("alice")
    other = alice.compute.create_keypair(name=request.keypair, public_key=new_public_key(tmp_path))
    report = check(openstack_compute_cloud.env("alice"), request)
    found = rows(report)["key pair"]
    assert found.result == FAIL
    assert found.detail == f"{request.keypair} already holds another public key ({other.fingerprint})"
    assert [c.name for c in report.failures] == ["key pair"]

    same = dataclasses.replace(request, public_key=other.public_key.strip() + " another-comment")
    assert rows(check(openstack_compute_cloud.env("alice"), same))["key pair"].result == OK


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"OS_PASSWORD": "not-it"}, "rejected user alice: wrong user name or password"),
        ({"OS_PROJECT_NAME": "no-such-project"}, "project no-such-project does not exist or alice has no role"),
        ({"OS_PASSWORD": ""}, "OpenStack credentials incomplete: OS_PASSWORD not set"),
    ],
)
def test_credentials_fail_in_one_line(openstack_compute_cloud, request_for, change, message):
    env = {**openstack_compute_cloud.env("alice"), **change}
    report = check(env, request_for())
    first = report.checks[0]
    assert (first.name, first.result) == ("credentials", FAIL)
    assert message in first.detail
    assert "\n" not in first.detail
    assert {c.result for c in report.checks[1:]} == {NOT_CHECKED}


@pytest.mark.slow
def test_expired_token(openstack_compute_cloud, request_for):
    """A token Keystone no longer accepts (revoked here; an expired one is refused the same way)."""
    token = openstack_compute_cloud.connect("alice").session.get_token()
    openstack_compute_cloud.admin_session().delete(
        f"{openstack_compute_cloud.auth_url}/auth/tokens", headers={"X-Subject-Token": token}, raise_exc=True
    )
    env = {
        "OS_AUTH_URL": openstack_compute_cloud.auth_url,
        "OS_AUTH_TYPE": "v3token",
        "OS_TOKEN": token,
        "OS_PROJECT_NAME": "hgi",
        "OS_PROJECT_DOMAIN_NAME": "Default",
    }
    report = check(env, request_for())
    assert report.checks[0].result == FAIL
    assert "rejected the token" in report.checks[0].detail


@pytest.mark.slow
def test_report_as_json_and_table(openstack_compute_cloud, request_for):
    request = request_for(workers=100)
    report = check(openstack_compute_cloud.env("alice"), request)
    data = report.as_dict()
    assert data["ok"] is False
    assert {"name", "result", "detail", "needed", "available", "fix"} <= set(data["checks"][0])
    table = report.table()
    assert "fix: build it" in table
    assert table.splitlines()[-1].startswith(f"pre-flight of {request.deployment}: ")


@pytest.mark.slow
def test_the_checks_are_quick(openstack_compute_cloud, request_for):
    """The target: the whole pre-flight well under 2 s against the loopback cloud."""
    request = request_for()
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    report = check(openstack_compute_cloud.env("alice"), request)
    assert report.ok, report.table()
    assert report.seconds < 2.0


# --- reading the deployment (no cloud) -------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[4]


def test_security_groups_and_rules_are_counted_from_the_plan():
    """Only what the plan creates counts: kept resources, updates and deletions do not."""
    plan = plan_creating(2, 19)
    plan["resource_changes"] += [
        {"type": request.SECURITY_GROUP_RULE, "change": {"actions": ["no-op"]}},
        {"type": request.SECURITY_GROUP_RULE, "change": {"actions": ["delete"]}},
        {"type": "openstack_compute_instance_v2", "change": {"actions": ["create"]}},
    ]
    assert request.rules_in_plan(plan) == (2, 19 + 2 * 2)
    assert request.rules_in_plan({}) == (0, 0)


def test_resource_prefix_as_the_naming_module_makes_it():
    assert DeploymentRef("spark", "ld14").slug == "spark-ld14"
    assert DeploymentRef("spark", "j.smith_2").slug == "spark-j-smith-2"


def test_request_from_the_example_deployment(tmp_path, monkeypatch):
    from hgi_spark.core import config

    monkeypatch.setenv("HOME", str(tmp_path))  # ~/.ssh/id_ed25519.pub of the example does not exist here
    deployment = config.load_deployment("spark/example")
    asked = request.request_from(deployment)
    assert (asked.master_flavor, asked.worker_flavor, asked.workers) == ("m1.large", "m1.xlarge", 4)
    assert (asked.image, asked.glance_name) == ("hail-base/1.0.0", "hail-base-1.0.0")
    assert (asked.network, asked.create_network, asked.external_network) == ("example-network", False, "public")
    assert asked.keypair == "spark-example-key"
    assert asked.volume_gb == 100
    assert asked.public_key is None
    assert asked.public_key_problem.startswith(f"cannot read ssh_public_key_file {tmp_path}/.ssh/id_ed25519.pub")
    assert (asked.allowed_cidrs, asked.subnet_name) == (1, None)


def test_table_puts_the_fix_under_a_failing_row():
    found = report.Report(
        "spark/x",
        [
            report.Check("credentials", OK, "user alice in project hgi"),
            report.Check("cores", FAIL, "needs 204, only 40 of 40 left", "204", "40", fix="ask for more"),
        ],
        seconds=0.25,
    )
    assert found.table().splitlines() == [
        "CHECK        RESULT  NEEDED  AVAILABLE  DETAIL",
        "credentials  ok                         user alice in project hgi",
        "cores        FAIL    204     40         needs 204, only 40 of 40 left",
        "             fix: ask for more",
        "pre-flight of spark/x: 1 FAILED (0.25 s)",
    ]
    assert found.summary() == "cores: needs 204, only 40 of 40 left"
    with pytest.raises(CloudError, match="pre-flight of spark/x failed: cores: needs 204"):
        found.require_ok()


def example_cluster(said: list[str]) -> OpenStackCluster:
    from hgi_spark.core import config

    return OpenStackCluster(config.load_deployment("spark/example"), said.append)


def test_the_environment_switch_skips_loudly(monkeypatch):
    """HGI_SKIP_PREFLIGHT=1 (for CI jobs) is --skip-preflight: a warning, and nothing is checked."""
    said: list[str] = []
    cluster = example_cluster(said)
    monkeypatch.setattr(cluster, "preflight", lambda **_: pytest.fail("the cloud was asked"))
    monkeypatch.setenv(SKIP_ENV, "1")
    cluster.check("up", None)
    assert said[0].startswith("WARNING: pre-flight checks of spark/example SKIPPED")
    monkeypatch.delenv(SKIP_ENV)
    cluster.check("update", None, skip=True)
    assert said[1].startswith("WARNING: pre-flight checks of spark/example SKIPPED")
    cluster.check("destroy", None)  # a destroy plan adds nothing: not checked, said in one line
    assert said[2] == "pre-flight: not needed for a destroy plan (it adds nothing to the cloud)"


def test_only_openstack_deployments_have_a_preflight():
    from hgi_spark.deploy import workflow

    with pytest.raises(UsageError, match="spark-local/demo runs terraform/spark-local/: there is no cloud"):
        workflow.preflight("spark-local/demo")


def test_status_without_credentials_says_not_checked(monkeypatch, tmp_path):
    """status must not fail (nor prompt) for want of credentials: one row says why the cloud was not asked."""
    from hgi_spark.cloud import credentials

    for key in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("OPENRC", str(tmp_path / "openrc.sh"))
    monkeypatch.setenv("HOME", str(tmp_path))
    credentials.forget()
    rows = example_cluster([]).status_rows(None, {})
    cloud = [row for row in rows if row[0].startswith("cloud: ")]
    assert len(cloud) == 1
    assert cloud[0][0] == "cloud: credentials"
    assert cloud[0][1].startswith("FAIL: no OpenStack credentials")
    assert dict(rows)["tls"].startswith("no certificate yet")  # https by default: made by the first plan


def test_https_by_default_with_a_self_signed_certificate_and_its_fingerprint(monkeypatch, tmp_path):
    """No tls: in the YAML: the wrapper makes a certificate once (0600), terraform gets its files,
    and the fingerprint shown is the certificate's SHA-256, as a browser shows it."""
    import shutil
    import ssl

    from hgi_spark.core import config, secrets
    from hgi_spark.core.layout import Repository

    repo = tmp_path / "repo"
    for part in ("deployments", "images", "terraform"):
        shutil.copytree(ROOT / part, repo / part, ignore=shutil.ignore_patterns(".terraform*", "runtime"))
    cluster = OpenStackCluster(config.load_deployment("spark/example", Repository(repo)), lambda _text: None)
    cluster.prepare("up")
    files = secrets.TlsFiles.of(cluster.deployment.paths)
    assert oct(files.key_file.stat().st_mode & 0o777) == "0o600"
    assert cluster.extra_tfvars(None)["tls"] == files.as_variable()
    der = ssl.PEM_cert_to_DER_cert(files.certificate_file.read_text())
    expected = hashlib.sha256(der).hexdigest().upper()
    shown = dict(cluster.output_rows())["tls certificate"]
    assert shown.replace("SHA-256 ", "").replace(":", "") == expected
    before = files.certificate_file.read_bytes()
    cluster.prepare("update")
    assert files.certificate_file.read_bytes() == before, "made once"


@pytest.mark.slow
def test_a_subnet_without_a_router_to_the_external_network_fails_early(openstack_compute_cloud, request_for):
    """The floating IP would fail late, after the servers were made: said before planning."""
    alice = openstack_compute_cloud.connect("alice")
    name = unique("unrouted")
    network = alice.network.create_network(name=name)
    alice.network.create_subnet(network_id=network.id, name=f"{name}-subnet", ip_version=4, cidr="10.99.0.0/24")
    request = request_for(network=name)
    upload_image(openstack_compute_cloud, "alice", request.glance_name)
    found = rows(check(openstack_compute_cloud.env("alice"), request))
    assert found["route to external"].result == FAIL
    assert "has no router with a gateway on public" in found["route to external"].detail
    assert found["network"].result == OK
